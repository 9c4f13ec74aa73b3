// The generic caching allocator (src/memory) over a fake raw allocator that hands out
// host memory up to a fixed capacity and records every call; and its live-block table.
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <random>

#include "kiln/error.h"
#include "src/memory/caching_allocator.h"

using kiln::memory::CachingAllocator;
using kiln::memory::RawAllocator;

namespace {
struct FakeDevice {
  size_t capacity;
  size_t used = 0;
  int allocs = 0, frees = 0;
  std::map<void*, size_t> live;
  RawAllocator raw() {
    return RawAllocator{[this](size_t n) -> void* {
                          if (used + n > capacity) return nullptr;
                          void* p = std::malloc(n);
                          used += n;
                          ++allocs;
                          live[p] = n;
                          return p;
                        },
                        [this](void* p, size_t n) {
                          EXPECT_EQ(live.at(p), n);
                          live.erase(p);
                          used -= n;
                          ++frees;
                          std::free(p);
                        }};
  }
};
constexpr size_t MiB = size_t(1) << 20;
}  // namespace

TEST(CachingAllocator, RoundsToMinimumBlock) {
  EXPECT_EQ(CachingAllocator::round_size(0), 512u);
  EXPECT_EQ(CachingAllocator::round_size(1), 512u);
  EXPECT_EQ(CachingAllocator::round_size(512), 512u);
  EXPECT_EQ(CachingAllocator::round_size(513), 1024u);
}

TEST(CachingAllocator, ReusesAFreedBlockWithoutANewSegment) {
  FakeDevice dev{64 * MiB};
  CachingAllocator a("fake:0", dev.raw());
  void* p = a.allocate(1000);
  a.deallocate(p);
  void* q = a.allocate(900);  // same rounded size class: the same block comes back
  EXPECT_EQ(p, q);
  EXPECT_EQ(dev.allocs, 1);
  const auto s = a.stats();
  EXPECT_EQ(s.cache_misses, 1);
  EXPECT_EQ(s.cache_hits, 1);
  EXPECT_EQ(s.allocation_count, 2);
  a.deallocate(q);
}

TEST(CachingAllocator, SmallRequestsShareOneSegmentAndMergeBack) {
  FakeDevice dev{64 * MiB};
  CachingAllocator a("fake:0", dev.raw());
  void* p1 = a.allocate(4096);
  void* p2 = a.allocate(4096);
  void* p3 = a.allocate(4096);
  EXPECT_EQ(dev.allocs, 1);  // one 2 MiB segment split three ways
  EXPECT_EQ(static_cast<char*>(p2) - static_cast<char*>(p1), 4096);
  EXPECT_EQ(static_cast<char*>(p3) - static_cast<char*>(p2), 4096);
  EXPECT_EQ(a.stats().reserved_bytes, int64_t(2 * MiB));
  // Free the middle, then its neighbours: the blocks merge back into the whole segment,
  // which a request for the full 1 MiB small maximum can then use from the start.
  a.deallocate(p2);
  a.deallocate(p1);
  a.deallocate(p3);
  EXPECT_EQ(a.segment_count(), 1u);
  void* big = a.allocate(MiB);
  EXPECT_EQ(big, p1);
  EXPECT_EQ(dev.allocs, 1);
  a.deallocate(big);
  a.empty_cache();
  EXPECT_EQ(dev.frees, 1);
  EXPECT_EQ(a.stats().reserved_bytes, 0);
}

TEST(CachingAllocator, LargeRequestsUseTheLargePool) {
  FakeDevice dev{256 * MiB};
  CachingAllocator a("fake:0", dev.raw());
  void* p = a.allocate(3 * MiB);   // a 20 MiB segment
  void* q = a.allocate(5 * MiB);   // carved from the same segment
  EXPECT_EQ(dev.allocs, 1);
  EXPECT_EQ(static_cast<char*>(q) - static_cast<char*>(p), int64_t(3 * MiB));
  void* r = a.allocate(30 * MiB);  // its own segment, rounded to 2 MiB
  EXPECT_EQ(dev.allocs, 2);
  EXPECT_EQ(a.stats().reserved_bytes, int64_t(20 * MiB + 30 * MiB));
  void* s = a.allocate(100);       // small pool: its own 2 MiB segment
  EXPECT_EQ(dev.allocs, 3);
  for (void* x : {p, q, r, s}) a.deallocate(x);
  EXPECT_EQ(a.stats().allocated_bytes, 0);
}

TEST(CachingAllocator, StreamsDoNotShareFreeBlocks) {
  FakeDevice dev{64 * MiB};
  CachingAllocator a("fake:0", dev.raw());
  void* p = a.allocate(MiB, /*stream=*/1);
  a.deallocate(p);
  void* q = a.allocate(MiB, /*stream=*/2);
  EXPECT_NE(p, q);
  EXPECT_EQ(dev.allocs, 2);
  void* r = a.allocate(MiB, /*stream=*/1);
  EXPECT_EQ(p, r);
  a.deallocate(q);
  a.deallocate(r);
}

TEST(CachingAllocator, StatsTrackAllocatedPeakAndReset) {
  FakeDevice dev{64 * MiB};
  CachingAllocator a("fake:0", dev.raw());
  void* p = a.allocate(1024);
  void* q = a.allocate(2048);
  auto s = a.stats();
  EXPECT_EQ(s.allocated_bytes, 3072);
  EXPECT_EQ(s.peak_allocated_bytes, 3072);
  a.deallocate(q);
  s = a.stats();
  EXPECT_EQ(s.allocated_bytes, 1024);
  EXPECT_EQ(s.peak_allocated_bytes, 3072);
  EXPECT_EQ(s.free_count, 1);
  a.reset_peak();
  EXPECT_EQ(a.stats().peak_allocated_bytes, 1024);
  a.deallocate(p);
}

TEST(CachingAllocator, FreesCachedSegmentsAndRetriesBeforeFailing) {
  FakeDevice dev{40 * MiB};
  CachingAllocator a("fake:0", dev.raw());
  void* p = a.allocate(30 * MiB);
  a.deallocate(p);  // cached, still reserved
  EXPECT_EQ(dev.used, 30 * MiB);
  void* q = a.allocate(36 * MiB);  // does not fit beside the cached block: it is released first
  EXPECT_EQ(dev.frees, 1);
  EXPECT_EQ(a.stats().reserved_bytes, int64_t(36 * MiB));
  a.deallocate(q);
}

TEST(CachingAllocator, OutOfMemoryNamesTheRequestAndThePool) {
  FakeDevice dev{8 * MiB};
  CachingAllocator a("fake:0", dev.raw());
  void* p = a.allocate(4096);
  try {
    a.allocate(64 * MiB);
    FAIL() << "expected kiln::Error";
  } catch (const kiln::Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("out of memory"), std::string::npos) << msg;
    EXPECT_NE(msg.find("fake:0"), std::string::npos) << msg;
    EXPECT_NE(msg.find(std::to_string(64 * MiB)), std::string::npos) << msg;
    EXPECT_NE(msg.find("4096 bytes allocated"), std::string::npos) << msg;
  }
  EXPECT_EQ(a.stats().out_of_memory_count, 1);
  // The allocator still works and the live block is intact.
  EXPECT_EQ(a.stats().allocated_bytes, 4096);
  a.deallocate(p);
}

TEST(CachingAllocator, RejectsForeignPointers) {
  FakeDevice dev{8 * MiB};
  CachingAllocator a("fake:0", dev.raw());
  int x = 0;
  EXPECT_THROW(a.deallocate(&x), kiln::Error);
}

// The live-block table against std::map under random inserts and erases of 512-byte
// aligned addresses (clustered, so probe runs collide, wrap around and grow the table).
TEST(PointerTable, MatchesAMapUnderRandomInsertsAndErases) {
  kiln::memory::PointerTable<int> table;
  std::map<const void*, int> ref;
  std::mt19937_64 rng(7);
  auto addr = [&] { return reinterpret_cast<const void*>(uintptr_t(0x10000) + (rng() % 3000) * 512); };
  for (int step = 0; step < 200000; ++step) {
    const void* k = addr();
    if (rng() % 3 != 0) {
      const int v = int(rng() % 1000);
      table.insert(k, v);
      ref[k] = v;
    } else if (ref.count(k)) {
      table.erase(k);
      ref.erase(k);
    }
    if (step % 997 == 0) {
      ASSERT_EQ(table.size(), ref.size());
      for (const auto& [key, v] : ref) {
        const int* got = table.find(key);
        ASSERT_NE(got, nullptr);
        ASSERT_EQ(*got, v);
      }
      size_t seen = 0;
      table.for_each([&](const void* key, int v) {
        ++seen;
        ASSERT_EQ(ref.at(key), v);
      });
      ASSERT_EQ(seen, ref.size());
    }
  }
  for (int i = 0; i < 100; ++i) {
    const void* k = addr();
    ASSERT_EQ(table.find(k) != nullptr, ref.count(k) == 1);
  }
}
