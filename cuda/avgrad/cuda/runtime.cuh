// The CUDA runtime as avgrad uses it: checked calls that name the call and the
// place, the device count, RAII streams and events, and a per-thread current
// stream that every avgrad kernel and cuBLAS call is queued on.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <utility>

#include "avgrad/core/error.hpp"

/// Throws avgrad::Error naming the failed call, the CUDA error and the source line.
#define AVGRAD_CUDA_CHECK(call)                                                                               \
  do {                                                                                                        \
    const cudaError_t avgrad_cuda_status_ = (call);                                                           \
    if (avgrad_cuda_status_ != cudaSuccess)                                                                   \
      throw ::avgrad::Error(                                                                                  \
          "cuda", ::avgrad::detail::concat(#call, " failed: ", cudaGetErrorString(avgrad_cuda_status_), " (", \
                                           __FILE__, ":", __LINE__, ")"));                                    \
  } while (0)

namespace avgrad::cuda {

/// Number of visible GPUs; 0 when there is no driver or no device (never throws).
inline int device_count() noexcept {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky "no device" status
    return 0;
  }
  return n;
}
inline bool available() noexcept { return device_count() > 0; }

/// Name and compute capability of the current device, e.g. "NVIDIA H200 (sm_90)".
inline std::string device_name() {
  int dev = 0;
  AVGRAD_CUDA_CHECK(cudaGetDevice(&dev));
  cudaDeviceProp prop{};
  AVGRAD_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  return detail::concat(prop.name, " (sm_", prop.major, prop.minor, ")");
}

/// A stream handle. Default-constructed it is the legacy default stream (not owned);
/// Stream::create() makes a non-blocking stream the handle owns.
class Stream {
 public:
  Stream() = default;
  static Stream create() {
    Stream s;
    AVGRAD_CUDA_CHECK(cudaStreamCreateWithFlags(&s.handle_, cudaStreamNonBlocking));
    s.owned_ = true;
    return s;
  }
  Stream(Stream&& o) noexcept : handle_(std::exchange(o.handle_, nullptr)), owned_(std::exchange(o.owned_, false)) {}
  Stream& operator=(Stream&& o) noexcept {
    if (this != &o) {
      reset();
      handle_ = std::exchange(o.handle_, nullptr);
      owned_ = std::exchange(o.owned_, false);
    }
    return *this;
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  ~Stream() { reset(); }

  cudaStream_t get() const noexcept { return handle_; }
  void synchronize() const { AVGRAD_CUDA_CHECK(cudaStreamSynchronize(handle_)); }

 private:
  void reset() noexcept {
    if (owned_ && handle_) {
      cudaStreamSynchronize(handle_);  // its work may still use memory the caller frees next
      cudaStreamDestroy(handle_);
    }
    handle_ = nullptr;
    owned_ = false;
  }
  cudaStream_t handle_ = nullptr;
  bool owned_ = false;
};

/// An event, timing enabled so benchmarks can use it.
class Event {
 public:
  Event() { AVGRAD_CUDA_CHECK(cudaEventCreate(&handle_)); }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  ~Event() {
    if (handle_) cudaEventDestroy(handle_);
  }
  void record(cudaStream_t s) { AVGRAD_CUDA_CHECK(cudaEventRecord(handle_, s)); }
  void synchronize() const { AVGRAD_CUDA_CHECK(cudaEventSynchronize(handle_)); }
  bool query() const {
    const cudaError_t st = cudaEventQuery(handle_);
    if (st == cudaErrorNotReady) return false;
    AVGRAD_CUDA_CHECK(st);
    return true;
  }
  /// Milliseconds from `start` to this event (both recorded and complete).
  float elapsed_ms(const Event& start) const {
    float ms = 0;
    AVGRAD_CUDA_CHECK(cudaEventElapsedTime(&ms, start.handle_, handle_));
    return ms;
  }
  cudaEvent_t get() const noexcept { return handle_; }

 private:
  cudaEvent_t handle_ = nullptr;
};

namespace detail {
inline cudaStream_t& current_stream_slot() {
  thread_local cudaStream_t s = nullptr;  // the legacy default stream until a guard says otherwise
  return s;
}
}  // namespace detail

/// The stream this thread's avgrad kernels are queued on.
inline cudaStream_t current_stream() noexcept { return detail::current_stream_slot(); }

/// Makes `s` the current stream for its scope (restores the previous one after).
class StreamGuard {
 public:
  explicit StreamGuard(cudaStream_t s) : previous_(std::exchange(detail::current_stream_slot(), s)) {}
  explicit StreamGuard(const Stream& s) : StreamGuard(s.get()) {}
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;
  ~StreamGuard() { detail::current_stream_slot() = previous_; }

 private:
  cudaStream_t previous_;
};

/// Waits for this thread's current stream (results on the host are valid after it).
inline void synchronize() { AVGRAD_CUDA_CHECK(cudaStreamSynchronize(current_stream())); }

/// Checks the launch of the kernel just queued (a bad configuration, or no image of it
/// for this GPU's architecture), naming the kernel.
inline void check_launch(const char* kernel) {
  const cudaError_t st = cudaPeekAtLastError();
  if (st != cudaSuccess)
    throw Error("cuda", avgrad::detail::concat("launching ", kernel, " failed: ", cudaGetErrorString(st)));
}

/// Blocks a launch of `n` threads needs at `threads` per block, capped to the grid limit
/// (kernels loop with a grid stride, so a capped grid still covers every element).
inline unsigned blocks_for(std::int64_t n, int threads = 256) {
  const std::int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 65535 * 32 ? 65535 * 32 : b));
}

}  // namespace avgrad::cuda
