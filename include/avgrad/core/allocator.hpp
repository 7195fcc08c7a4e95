// Pooled host allocator: blocks are rounded to size classes and cached on free,
// so a steady-state training or attack loop neither calls malloc nor faults in
// fresh pages each step. Statistics let tests and benchmarks prove it.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <vector>

#include "avgrad/core/error.hpp"

namespace avgrad {

/// Counters of one allocator. bytes_* count size-class bytes, not requests.
struct AllocatorStats {
  std::size_t in_use = 0;                ///< bytes handed out and not yet returned
  std::size_t reserved = 0;              ///< bytes obtained from the system (in use + cached)
  std::size_t peak_in_use = 0;           ///< high-water mark of in_use
  std::uint64_t allocations = 0;         ///< calls to allocate()
  std::uint64_t system_allocations = 0;  ///< allocate() calls the cache could not serve
};

/// Thread-safe caching allocator for host memory, 64-byte aligned (one cache
/// line, enough for AVX-512 loads). Size classes: powers of two up to 1 MiB,
/// then multiples of 1 MiB, so reuse is likely and waste stays below 2x / 1 MiB.
class CpuPoolAllocator {
 public:
  static constexpr std::size_t kAlignment = 64;

  static CpuPoolAllocator& instance() {
    static CpuPoolAllocator* pool = new CpuPoolAllocator();  // leaked: outlives static tensors
    return *pool;
  }

  void* allocate(std::size_t bytes) {
    std::size_t cls = size_class(bytes);
    std::lock_guard lock(mutex_);
    ++stats_.allocations;
    void* p = nullptr;
    auto it = free_.find(cls);
    if (it != free_.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
    } else {
      p = std::aligned_alloc(kAlignment, cls);
      if (!p) {
        release_cached_locked();  // retry once with the cache returned to the system
        p = std::aligned_alloc(kAlignment, cls);
      }
      AVGRAD_CHECK(p != nullptr, "CpuPoolAllocator", "out of host memory allocating ", cls, " bytes");
      stats_.reserved += cls;
      ++stats_.system_allocations;
    }
    stats_.in_use += cls;
    if (stats_.in_use > stats_.peak_in_use) stats_.peak_in_use = stats_.in_use;
    return p;
  }

  void deallocate(void* p, std::size_t bytes) noexcept {
    if (!p) return;
    std::size_t cls = size_class(bytes);
    std::lock_guard lock(mutex_);
    stats_.in_use -= cls;
    try {
      free_[cls].push_back(p);
    } catch (...) {  // bookkeeping failed: give the block back instead
      std::free(p);
      stats_.reserved -= cls;
    }
  }

  /// Returns every cached (free) block to the system.
  void empty_cache() {
    std::lock_guard lock(mutex_);
    release_cached_locked();
  }

  AllocatorStats stats() const {
    std::lock_guard lock(mutex_);
    return stats_;
  }
  void reset_peak() {
    std::lock_guard lock(mutex_);
    stats_.peak_in_use = stats_.in_use;
  }

  static std::size_t size_class(std::size_t bytes) {
    constexpr std::size_t kMiB = std::size_t{1} << 20;
    if (bytes <= kAlignment) return kAlignment;
    if (bytes <= kMiB) return std::bit_ceil(bytes);
    return (bytes + kMiB - 1) / kMiB * kMiB;
  }

 private:
  CpuPoolAllocator() = default;
  void release_cached_locked() {
    for (auto& [cls, blocks] : free_) {
      for (void* b : blocks) std::free(b);
      stats_.reserved -= cls * blocks.size();
      blocks.clear();
    }
  }

  mutable std::mutex mutex_;
  std::map<std::size_t, std::vector<void*>> free_;
  AllocatorStats stats_;
};

/// Statistics of the host pool (for tests, benchmarks and progress output).
inline AllocatorStats cpu_memory_stats() { return CpuPoolAllocator::instance().stats(); }
inline void cpu_empty_cache() { CpuPoolAllocator::instance().empty_cache(); }

}  // namespace avgrad
