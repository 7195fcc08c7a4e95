// Storage: the shared buffer behind one or more tensor views. Owning storage
// comes from the device's pool; non-owning storage wraps a caller's pointer.
// The version counter is bumped by every in-place write so that autograd can
// detect a saved tensor that was modified before backward.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>

#include "avgrad/core/allocator.hpp"
#include "avgrad/core/device.hpp"
#include "avgrad/core/dtype.hpp"

namespace avgrad {

template <Element T, Device D> class Storage;

/// Host storage.
template <Element T> class Storage<T, Cpu> {
 public:
  /// Owning: `n` elements from the pool, uninitialised.
  explicit Storage(std::int64_t n) : size_(n), owning_(true) {
    AVGRAD_CHECK(n >= 0, "Storage", "negative element count ", n);
    data_ = n > 0 ? static_cast<T*>(CpuPoolAllocator::instance().allocate(bytes())) : nullptr;
  }
  /// Non-owning view of external memory; the caller keeps it alive.
  Storage(T* external, std::int64_t n) : data_(external), size_(n), owning_(false) {}

  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  ~Storage() {
    if (owning_ && data_) CpuPoolAllocator::instance().deallocate(data_, bytes());
  }

  T* data() noexcept { return data_; }
  const T* data() const noexcept { return data_; }
  std::int64_t size() const noexcept { return size_; }
  std::size_t bytes() const noexcept { return static_cast<std::size_t>(size_) * sizeof(T); }
  bool owning() const noexcept { return owning_; }

  std::uint64_t version() const noexcept { return version_; }
  void bump_version() noexcept { ++version_; }

 private:
  T* data_ = nullptr;
  std::int64_t size_ = 0;
  bool owning_ = true;
  std::uint64_t version_ = 0;
};

}  // namespace avgrad
