// Device and pinned-host memory for Tensor<T, Cuda>: the stream-aware caching pool
// (backend/stream_pool.hpp) over cudaMalloc, a pinned host pool for transfers, and
// Storage<T, Cuda>, which frees into the cache of the stream it was allocated on.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "avgrad/backend/stream_pool.hpp"
#include "avgrad/core/storage.hpp"
#include "avgrad/cuda/runtime.cuh"

namespace avgrad::cuda {

/// The device side of the caching pool.
struct DeviceMemory {
  using stream_type = cudaStream_t;
  using event_type = cudaEvent_t;

  void* allocate(std::size_t bytes) {
    void* p = nullptr;
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
      (void)cudaGetLastError();  // out of memory is not sticky; the pool retries after emptying
      return nullptr;
    }
    return p;
  }
  void free(void* p) { cudaFree(p); }
  cudaEvent_t record(cudaStream_t s) {
    cudaEvent_t e = nullptr;
    AVGRAD_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    AVGRAD_CUDA_CHECK(cudaEventRecord(e, s));
    return e;
  }
  bool done(cudaEvent_t e) { return cudaEventQuery(e) != cudaErrorNotReady; }
  void release(cudaEvent_t e) { cudaEventDestroy(e); }
  void synchronize() { AVGRAD_CUDA_CHECK(cudaDeviceSynchronize()); }
  void poison(void* p, std::size_t bytes, cudaStream_t s) { AVGRAD_CUDA_CHECK(cudaMemsetAsync(p, 0xFF, bytes, s)); }
};

/// Page-locked host memory: copies from it are truly asynchronous and run at full PCIe/NVLink
/// speed. One logical "stream" (0): a block is reused once the copy that used it has finished,
/// which the transfer code guarantees by synchronising before it frees.
struct PinnedMemory {
  using stream_type = int;
  using event_type = int;

  void* allocate(std::size_t bytes) {
    void* p = nullptr;
    if (cudaHostAlloc(&p, bytes, cudaHostAllocDefault) != cudaSuccess) {
      (void)cudaGetLastError();
      return nullptr;
    }
    return p;
  }
  void free(void* p) { cudaFreeHost(p); }
  int record(int) { return 0; }
  bool done(int) { return true; }
  void release(int) {}
  void synchronize() {}
  void poison(void*, std::size_t, int) {}
};

using DevicePool = backend::StreamCachingPool<DeviceMemory>;
using PinnedPool = backend::StreamCachingPool<PinnedMemory>;

/// The process-wide pools (leaked on purpose: tensors in static storage outlive them otherwise).
/// AVGRAD_CUDA_NO_CACHING=1 turns the device cache off (see StreamCachingPool::set_caching).
inline DevicePool& device_pool() {
  static DevicePool* pool = [] {
    auto* p = new DevicePool();
    const char* off = std::getenv("AVGRAD_CUDA_NO_CACHING");
    if (off && *off && std::string_view(off) != "0") p->set_caching(false);
    return p;
  }();
  return *pool;
}
inline PinnedPool& pinned_pool() {
  static PinnedPool* pool = new PinnedPool();
  return *pool;
}

/// Statistics and cache control of the device pool (torch.cuda.memory_stats / empty_cache).
inline AllocatorStats memory_stats() { return device_pool().stats(); }
inline void empty_cache() { device_pool().empty_cache(); }
/// Tests: every fresh device block is filled with NaN, so a kernel that writes nothing fails.
inline void set_poison(bool on) { device_pool().set_poison(on); }

/// A pinned host buffer of `n` elements, returned to the pinned pool on destruction.
template <class T> class PinnedBuffer {
 public:
  explicit PinnedBuffer(std::int64_t n) : n_(n) {
    p_ = n > 0 ? static_cast<T*>(pinned_pool().allocate(static_cast<std::size_t>(n) * sizeof(T), 0)) : nullptr;
  }
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  ~PinnedBuffer() { pinned_pool().deallocate(p_); }
  T* data() noexcept { return p_; }
  std::int64_t size() const noexcept { return n_; }

 private:
  T* p_ = nullptr;
  std::int64_t n_ = 0;
};

}  // namespace avgrad::cuda

namespace avgrad {

/// Device storage: `n` elements from the caching pool on the current stream, uninitialised.
template <Element T> class Storage<T, Cuda> {
 public:
  explicit Storage(std::int64_t n) : size_(n), owning_(true), stream_(cuda::current_stream()) {
    AVGRAD_CHECK(n >= 0, "Storage<cuda>", "negative element count ", n);
    data_ = n > 0 ? static_cast<T*>(cuda::device_pool().allocate(bytes(), stream_)) : nullptr;
  }
  /// Non-owning view of device memory the caller keeps alive.
  Storage(T* external, std::int64_t n) : data_(external), size_(n), owning_(false), stream_(cuda::current_stream()) {}

  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  ~Storage() {
    if (owning_ && data_) cuda::device_pool().deallocate(data_);
  }

  T* data() noexcept { return data_; }
  const T* data() const noexcept { return data_; }
  std::int64_t size() const noexcept { return size_; }
  std::size_t bytes() const noexcept { return static_cast<std::size_t>(size_) * sizeof(T); }
  bool owning() const noexcept { return owning_; }
  /// The stream the block belongs to; a use on another stream must be recorded.
  cudaStream_t stream() const noexcept { return stream_; }
  /// Marks the block as used by `s` (its reuse then waits for s's work so far).
  void record_stream(cudaStream_t s) {
    if (owning_ && data_) cuda::device_pool().record_stream(data_, s);
  }

  std::uint64_t version() const noexcept { return version_; }
  void bump_version() noexcept { ++version_; }

 private:
  T* data_ = nullptr;
  std::int64_t size_ = 0;
  bool owning_ = true;
  cudaStream_t stream_ = nullptr;
  std::uint64_t version_ = 0;
};

}  // namespace avgrad
