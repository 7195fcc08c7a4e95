// The device allocator's caching policy, driven by a fake device whose streams and
// events are plain integers: reuse per stream, deferred reuse after record_stream,
// out-of-memory retry, empty_cache, statistics and poisoning. Runs without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>

#include "avgrad/backend/stream_pool.hpp"

using avgrad::backend::StreamCachingPool;

namespace {

/// A host-memory "device": events complete when the test says so.
struct FakeDevice {
  using stream_type = int;
  using event_type = int;

  std::size_t capacity = std::size_t{1} << 30;  // bytes the fake device can hand out
  std::size_t used = 0;
  int mallocs = 0, frees = 0, syncs = 0, next_event = 0;
  std::set<int> completed;  // events that have finished
  std::set<int> live_events;
  std::map<void*, std::size_t> sizes;

  void* allocate(std::size_t bytes) {
    if (used + bytes > capacity) return nullptr;
    void* p = std::malloc(bytes);
    used += bytes;
    ++mallocs;
    sizes[p] = bytes;
    return p;
  }
  void free(void* p) {
    used -= sizes.at(p);
    sizes.erase(p);
    ++frees;
    std::free(p);
  }
  int record(int /*stream*/) {
    live_events.insert(next_event);
    return next_event++;
  }
  bool done(int e) const { return completed.count(e) > 0; }
  void release(int e) { live_events.erase(e); }
  void synchronize() {
    ++syncs;
    for (int e = 0; e < next_event; ++e) completed.insert(e);
  }
  void poison(void* p, std::size_t bytes, int /*stream*/) { std::memset(p, 0xFF, bytes); }
};

using Pool = StreamCachingPool<FakeDevice>;

TEST(StreamCachingPool, SizeClasses) {
  EXPECT_EQ(Pool::size_class(1), 512u);
  EXPECT_EQ(Pool::size_class(512), 512u);
  EXPECT_EQ(Pool::size_class(513), 1024u);
  EXPECT_EQ(Pool::size_class((1u << 20) - 1), 1u << 20);
  EXPECT_EQ(Pool::size_class((1u << 20) + 1), 2u << 20);
  EXPECT_EQ(Pool::size_class((5u << 20) + 7), 6u << 20);
}

TEST(StreamCachingPool, SameStreamReusesWithoutTheSystem) {
  Pool pool;
  void* a = pool.allocate(1000, /*stream=*/0);
  pool.deallocate(a);
  void* b = pool.allocate(900, 0);  // same size class (1024)
  EXPECT_EQ(a, b);
  EXPECT_EQ(pool.system().mallocs, 1);
  auto s = pool.stats();
  EXPECT_EQ(s.allocations, 2u);
  EXPECT_EQ(s.system_allocations, 1u);
  EXPECT_EQ(s.in_use, 1024u);
  EXPECT_EQ(s.reserved, 1024u);
  pool.deallocate(b);
  EXPECT_EQ(pool.stats().in_use, 0u);
  EXPECT_EQ(pool.cached_bytes(0), 1024u);
}

TEST(StreamCachingPool, OtherStreamDoesNotReuse) {
  Pool pool;
  void* a = pool.allocate(1000, 0);
  pool.deallocate(a);
  void* b = pool.allocate(1000, 1);  // stream 1 must not get stream 0's block: no ordering between them
  EXPECT_NE(a, b);
  EXPECT_EQ(pool.system().mallocs, 2);
  pool.deallocate(b);
}

TEST(StreamCachingPool, RecordStreamDefersReuseUntilTheEventCompletes) {
  Pool pool;
  void* a = pool.allocate(4096, 0);
  pool.record_stream(a, 1);  // a kernel on stream 1 reads the block
  pool.deallocate(a);
  EXPECT_EQ(pool.system().live_events.size(), 1u);
  void* b = pool.allocate(4096, 0);
  EXPECT_NE(a, b) << "reused while stream 1 may still read it";
  pool.system().completed.insert(0);  // stream 1's work is done
  pool.deallocate(b);
  void* c = pool.allocate(4096, 0);
  void* d = pool.allocate(4096, 0);
  EXPECT_TRUE((c == a && d == b) || (c == b && d == a));
  EXPECT_TRUE(pool.system().live_events.empty()) << "events are released once collected";
  pool.deallocate(c);
  pool.deallocate(d);
}

TEST(StreamCachingPool, RecordingTheOwnStreamIsFree) {
  Pool pool;
  void* a = pool.allocate(100, 3);
  pool.record_stream(a, 3);
  pool.deallocate(a);
  EXPECT_TRUE(pool.system().live_events.empty());
  void* again = pool.allocate(100, 3);
  EXPECT_EQ(again, a);
  pool.deallocate(again);
}

TEST(StreamCachingPool, OutOfMemoryReleasesTheCacheAndRetries) {
  Pool pool;
  pool.system().capacity = 4u << 20;
  void* a = pool.allocate(2u << 20, 0);
  pool.deallocate(a);                    // cached: 2 MiB of the 4 reserved
  void* b = pool.allocate(3u << 20, 1);  // a 4 MiB class: needs the cached block returned first
  EXPECT_NE(b, nullptr);
  EXPECT_EQ(pool.system().frees, 1);
  EXPECT_EQ(pool.stats().reserved, 4u << 20);
  EXPECT_EQ(pool.system().used, 4u << 20);
  pool.deallocate(b);
}

TEST(StreamCachingPool, OutOfMemoryIsAClearError) {
  Pool pool;
  pool.system().capacity = 1u << 20;
  void* a = pool.allocate(1u << 20, 0);
  try {
    (void)pool.allocate(4u << 20, 0);
    FAIL() << "expected an error";
  } catch (const avgrad::Error& e) {
    EXPECT_NE(std::string(e.what()).find("out of device memory"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("bytes in use"), std::string::npos) << e.what();
  }
  pool.deallocate(a);
}

TEST(StreamCachingPool, EmptyCacheWaitsForPendingBlocksAndFreesAll) {
  Pool pool;
  void* a = pool.allocate(1000, 0);
  void* b = pool.allocate(3u << 20, 0);
  void* live = pool.allocate(10, 2);
  pool.record_stream(a, 1);
  pool.deallocate(a);
  pool.deallocate(b);
  pool.empty_cache();
  EXPECT_EQ(pool.system().syncs, 1) << "a pending block needs the device to finish first";
  EXPECT_EQ(pool.system().frees, 2);
  EXPECT_EQ(pool.stats().reserved, 512u) << "only the live block stays";
  EXPECT_EQ(pool.cached_bytes(0), 0u);
  pool.deallocate(live);
}

TEST(StreamCachingPool, PeakAndReset) {
  Pool pool;
  void* a = pool.allocate(1u << 20, 0);
  void* b = pool.allocate(1u << 20, 0);
  pool.deallocate(a);
  EXPECT_EQ(pool.stats().peak_in_use, 2u << 20);
  pool.reset_peak();
  EXPECT_EQ(pool.stats().peak_in_use, 1u << 20);
  pool.deallocate(b);
}

TEST(StreamCachingPool, PoisonFillsFreshAndReusedBlocks) {
  Pool pool;
  pool.set_poison(true);
  auto* a = static_cast<float*>(pool.allocate(64 * sizeof(float), 0));
  for (int i = 0; i < 64; ++i) EXPECT_TRUE(std::isnan(a[i]));
  a[0] = 1.0f;
  pool.deallocate(a);
  auto* b = static_cast<float*>(pool.allocate(64 * sizeof(float), 0));
  ASSERT_EQ(a, b);
  EXPECT_TRUE(std::isnan(b[0])) << "a reused block is poisoned again";
  pool.deallocate(b);
}

TEST(StreamCachingPool, ForeignPointersAreRefused) {
  Pool pool;
  int x = 0;
  EXPECT_THROW(pool.record_stream(&x, 1), avgrad::Error);
  pool.deallocate(&x);  // ignored, not cached
  EXPECT_EQ(pool.cached_bytes(0), 0u);
  pool.deallocate(nullptr);
  EXPECT_EQ(pool.allocate(0, 0), nullptr);
}

TEST(StreamCachingPool, CachingOffAllocatesExactSizesAndFreesAtOnce) {
  Pool pool;
  void* kept = pool.allocate(1000, 0);
  pool.deallocate(kept);
  EXPECT_EQ(pool.cached_bytes(0), 1024u);
  pool.set_caching(false);
  EXPECT_FALSE(pool.caching());
  EXPECT_EQ(pool.cached_bytes(0), 0u) << "turning caching off empties the cache";
  EXPECT_EQ(pool.system().frees, 1);
  void* a = pool.allocate(1000, 0);
  EXPECT_EQ(pool.system().sizes.at(a), 1000u) << "no size class: the sanitizer sees the true end";
  pool.deallocate(a);
  EXPECT_EQ(pool.system().frees, 2) << "freed, not cached";
  void* b = pool.allocate(3000, 0);
  pool.record_stream(b, 1);
  const int syncs = pool.system().syncs;
  pool.deallocate(b);
  EXPECT_EQ(pool.system().syncs, syncs + 1) << "waits for stream 1 before freeing";
  EXPECT_EQ(pool.system().used, 0u);
  EXPECT_EQ(pool.stats().reserved, 0u);
  EXPECT_EQ(pool.stats().in_use, 0u);
}

}  // namespace
