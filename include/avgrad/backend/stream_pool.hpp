// The caching policy of the device allocator, separate from any device API so that
// it can be tested on a machine without a GPU: blocks are rounded to size classes,
// cached per stream on free, reused by the same stream at once (stream order makes
// that safe) and by nobody else; a block that another stream used is held back
// until an event recorded on that stream has completed (PyTorch's record_stream).
//
// `System` supplies the device side:
//   using stream_type; using event_type;
//   void* allocate(std::size_t bytes)      (nullptr when out of memory)
//   void free(void* p)
//   event_type record(stream_type s)       (an event after everything queued on s)
//   bool done(event_type e)                (non-blocking query)
//   void release(event_type e)
//   void synchronize()                     (waits for all device work)
//   void poison(void* p, std::size_t bytes, stream_type s)   (fills with NaN bytes)
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "avgrad/core/allocator.hpp"
#include "avgrad/core/error.hpp"

namespace avgrad::backend {

template <class System> class StreamCachingPool {
 public:
  using Stream = typename System::stream_type;
  using Event = typename System::event_type;

  /// Device blocks are at least this large and aligned (cuBLAS/cuDNN like 256 B).
  static constexpr std::size_t kMinBlock = 512;

  explicit StreamCachingPool(System system = {}) : system_(std::move(system)) {}
  StreamCachingPool(const StreamCachingPool&) = delete;
  StreamCachingPool& operator=(const StreamCachingPool&) = delete;
  /// Returns the cached blocks to the system. The process-wide device pools are never
  /// destroyed (at exit the driver may already be gone); a pool with a shorter life, as in
  /// tests, gives back what it holds. Blocks still in use stay with their owners.
  ~StreamCachingPool() {
    std::lock_guard lock(mutex_);
    release_cached_locked(/*wait=*/true);
  }

  /// Powers of two up to 1 MiB, then multiples of 2 MiB: reuse stays likely and the
  /// waste below 2x (small) or 2 MiB (large).
  static std::size_t size_class(std::size_t bytes) {
    constexpr std::size_t kMiB = std::size_t{1} << 20;
    if (bytes <= kMinBlock) return kMinBlock;
    if (bytes <= kMiB) return std::bit_ceil(bytes);
    return (bytes + 2 * kMiB - 1) / (2 * kMiB) * (2 * kMiB);
  }

  /// A block of at least `bytes` usable on `stream` without synchronisation.
  void* allocate(std::size_t bytes, Stream stream) {
    if (bytes == 0) return nullptr;
    std::lock_guard lock(mutex_);
    const std::size_t cls = caching_ ? size_class(bytes) : bytes;
    ++stats_.allocations;
    collect_pending_locked();
    void* p = take_cached_locked(cls, stream);
    if (!p) {
      p = system_.allocate(cls);
      if (!p) {  // give every cached block back and try once more
        release_cached_locked(/*wait=*/true);
        p = system_.allocate(cls);
      }
      AVGRAD_CHECK(p != nullptr, "cuda allocator", "out of device memory allocating ", cls, " bytes (", stats_.in_use,
                   " bytes in use, ", stats_.reserved, " reserved)");
      stats_.reserved += cls;
      ++stats_.system_allocations;
    }
    live_[p] = Live{cls, stream, {}};
    stats_.in_use += cls;
    stats_.peak_in_use = std::max(stats_.peak_in_use, stats_.in_use);
    if (poison_) system_.poison(p, cls, stream);
    return p;
  }

  /// Marks `p` as used by `other` too: on free it is reused only after `other`'s work so
  /// far has completed.
  void record_stream(void* p, Stream other) {
    if (!p) return;
    std::lock_guard lock(mutex_);
    auto it = live_.find(p);
    AVGRAD_CHECK(it != live_.end(), "cuda allocator", "record_stream on a pointer this allocator did not hand out");
    if (other == it->second.stream) return;
    auto& users = it->second.other_streams;
    if (std::find(users.begin(), users.end(), other) == users.end()) users.push_back(other);
  }

  /// Returns `p` to the cache of the stream it was allocated on.
  void deallocate(void* p) noexcept {
    if (!p) return;
    std::lock_guard lock(mutex_);
    auto it = live_.find(p);
    if (it == live_.end()) return;  // not ours: a double free is ignored rather than corrupting the cache
    Live b = std::move(it->second);
    live_.erase(it);
    stats_.in_use -= b.cls;
    try {
      if (b.other_streams.empty()) {
        cache_[{b.cls, b.stream}].push_back(p);
      } else {
        Pending pend{p, b.cls, b.stream, {}};
        for (Stream s : b.other_streams) pend.events.push_back(system_.record(s));
        pending_.push_back(std::move(pend));
      }
    } catch (...) {  // bookkeeping failed: hand the block back to the system
      system_.free(p);
      stats_.reserved -= b.cls;
    }
    if (!caching_) release_cached_locked(/*wait=*/true);
  }

  /// Frees every cached block (waits for pending cross-stream uses first).
  void empty_cache() {
    std::lock_guard lock(mutex_);
    release_cached_locked(/*wait=*/true);
  }

  AllocatorStats stats() const {
    std::lock_guard lock(mutex_);
    return stats_;
  }
  void reset_peak() {
    std::lock_guard lock(mutex_);
    stats_.peak_in_use = stats_.in_use;
  }
  /// Bytes cached (free, ready or pending) per stream; for tests and diagnostics.
  std::size_t cached_bytes(Stream s) const {
    std::lock_guard lock(mutex_);
    std::size_t n = 0;
    for (const auto& [key, blocks] : cache_)
      if (key.second == s) n += key.first * blocks.size();
    for (const auto& p : pending_)
      if (p.stream == s) n += p.cls;
    return n;
  }
  /// Debug mode: every block handed out is first filled with NaN bytes, so a kernel that
  /// leaves part of its output unwritten shows up as NaN in a test.
  void set_poison(bool on) {
    std::lock_guard lock(mutex_);
    poison_ = on;
  }
  bool poison() const {
    std::lock_guard lock(mutex_);
    return poison_;
  }
  /// Caching off (AVGRAD_CUDA_NO_CACHING=1 for the device pool): blocks of exactly the size
  /// asked for, given back to the system when freed (after the streams that used them).
  /// Slow; for compute-sanitizer, which sees out-of-bounds accesses only at the edges of
  /// the system's own allocations.
  void set_caching(bool on) {
    std::lock_guard lock(mutex_);
    caching_ = on;
    if (!on) release_cached_locked(/*wait=*/true);
  }
  bool caching() const {
    std::lock_guard lock(mutex_);
    return caching_;
  }
  System& system() { return system_; }

 private:
  struct Live {
    std::size_t cls;
    Stream stream;
    std::vector<Stream> other_streams;
  };
  struct Pending {
    void* p;
    std::size_t cls;
    Stream stream;
    std::vector<Event> events;
  };

  void* take_cached_locked(std::size_t cls, Stream stream) {
    auto it = cache_.find({cls, stream});
    if (it == cache_.end() || it->second.empty()) return nullptr;
    void* p = it->second.back();
    it->second.pop_back();
    return p;
  }
  /// Moves pending blocks whose events have all completed into the cache.
  void collect_pending_locked() {
    for (auto it = pending_.begin(); it != pending_.end();) {
      bool ready = std::all_of(it->events.begin(), it->events.end(), [&](Event e) { return system_.done(e); });
      if (!ready) {
        ++it;
        continue;
      }
      for (Event e : it->events) system_.release(e);
      cache_[{it->cls, it->stream}].push_back(it->p);
      it = pending_.erase(it);
    }
  }
  void release_cached_locked(bool wait) {
    if (wait && !pending_.empty()) system_.synchronize();
    collect_pending_locked();
    for (auto& [key, blocks] : cache_) {
      for (void* b : blocks) system_.free(b);
      stats_.reserved -= key.first * blocks.size();
      blocks.clear();
    }
  }

  System system_;
  mutable std::mutex mutex_;
  std::map<std::pair<std::size_t, Stream>, std::vector<void*>> cache_;
  std::unordered_map<void*, Live> live_;
  std::vector<Pending> pending_;
  AllocatorStats stats_;
  bool poison_ = false;
  bool caching_ = true;
};

}  // namespace avgrad::backend
