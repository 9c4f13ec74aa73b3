#pragma once
// A caching allocator over any raw alloc/free pair (spec §4). Device backends wrap
// cudaMalloc/cudaFree (or any other device's) with it; tests wrap a fake one on the CPU.
//
// Requests round up to 512 bytes. Small requests (<= 1 MiB) are carved out of 2 MiB
// segments, large ones out of 20 MiB segments (or their own segment, rounded to 2 MiB,
// above 10 MiB). A free block is reused for a later request of the same stream when it
// is big enough, split when the rest is worth keeping, and merged with free neighbours
// of its segment when freed. When the raw allocator fails, every wholly free cached
// segment is released and the request retried; if that fails too, kiln::Error
// "out of memory" names the request and the pool's state.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <set>
#include <vector>
#include <string>

#include <optional>

#include "kiln/backend.h"
#include "src/memory/alloc_observer.h"
#include "src/memory/pointer_table.h"

namespace kiln::memory {

struct RawAllocator {
  std::function<void*(size_t)> alloc;       // returns null when the device is full
  std::function<void(void*, size_t)> free;
};

// Keeps the freed nodes of one node-based container type for reuse: std::set allocates
// a node per insert, and the free-block sets insert and erase on every allocate/free.
struct NodeCache {
  std::vector<void*> spare;
  size_t node_size = 0;  // the one node size cached (set by the first node returned)
  NodeCache() = default;
  NodeCache(const NodeCache&) = delete;
  NodeCache& operator=(const NodeCache&) = delete;
  ~NodeCache() {
    for (void* p : spare) ::operator delete(p);
  }
};

template <typename T>
struct RecyclingAllocator {
  using value_type = T;
  NodeCache* cache;
  explicit RecyclingAllocator(NodeCache* c) : cache(c) {}
  template <typename U>
  RecyclingAllocator(const RecyclingAllocator<U>& o) : cache(o.cache) {}
  T* allocate(size_t n) {
    if (n == 1 && cache->node_size == sizeof(T) && !cache->spare.empty()) {
      void* p = cache->spare.back();
      cache->spare.pop_back();
      return static_cast<T*>(p);
    }
    return static_cast<T*>(::operator new(n * sizeof(T)));
  }
  void deallocate(T* p, size_t n) {
    if (n == 1 && (cache->node_size == 0 || cache->node_size == sizeof(T))) {
      cache->node_size = sizeof(T);
      cache->spare.push_back(p);
      return;
    }
    ::operator delete(p);
  }
  template <typename U>
  bool operator==(const RecyclingAllocator<U>& o) const {
    return cache == o.cache;
  }
};

class CachingAllocator {
 public:
  static constexpr size_t kMinBlock = 512;
  static constexpr size_t kSmallRequest = size_t(1) << 20;    // <= this: small pool
  static constexpr size_t kSmallSegment = size_t(2) << 20;
  static constexpr size_t kLargeSegment = size_t(20) << 20;
  static constexpr size_t kOwnSegment = size_t(10) << 20;     // >= this: a segment of its own
  static constexpr size_t kSegmentRound = size_t(2) << 20;

  // traced: the device its allocations are reported as to the alloc observer (none: unreported).
  CachingAllocator(std::string device_name, RawAllocator raw, std::optional<Device> traced = std::nullopt);
  ~CachingAllocator();  // returns every cached segment; live blocks are the owners' to free
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  // A block of at least bytes, usable in stream order on stream. Never null (0 bytes: a
  // minimum block). Throws kiln::Error when the device has no room.
  void* allocate(size_t bytes, uintptr_t stream = 0);
  // Gives a block from allocate back to the cache (null is ignored).
  void deallocate(void* ptr);

  MemoryStats stats() const;
  void reset_peak();
  void empty_cache();  // returns every wholly free segment to the raw allocator
  size_t segment_count() const;
  std::vector<MemorySegmentInfo> snapshot() const;  // segments by address, blocks in order

  static size_t round_size(size_t bytes) {
    return bytes < kMinBlock ? kMinBlock : (bytes + kMinBlock - 1) / kMinBlock * kMinBlock;
  }

 private:
  struct Block {
    char* ptr = nullptr;
    size_t size = 0;
    uintptr_t stream = 0;
    bool small = false;
    bool allocated = false;
    Block* prev = nullptr;  // neighbours inside one segment
    Block* next = nullptr;
  };
  struct BySize {  // free blocks ordered by (stream, size, address): best fit first
    bool operator()(const Block* a, const Block* b) const {
      if (a->stream != b->stream) return a->stream < b->stream;
      if (a->size != b->size) return a->size < b->size;
      return a->ptr < b->ptr;
    }
  };
  // Nothing on the allocate/free path touches the system heap once warm: block records
  // (spare_blocks_) and the sets' nodes (nodes_) are recycled, live blocks sit in an
  // open-addressing table. (std::pmr's pool resource measured slower than malloc.)
  using FreeSet = std::set<Block*, BySize, RecyclingAllocator<Block*>>;

  Block* take_free(FreeSet& pool, size_t size, uintptr_t stream);
  Block* new_segment(size_t segment_bytes, size_t request, bool small, uintptr_t stream);
  void release_free_segments();
  std::string state_locked() const;
  Block* new_block();
  void recycle(Block* b);

  void notify(const void* ptr, int64_t bytes, uintptr_t stream, int64_t allocated, int64_t reserved) const;

  std::string device_name_;
  RawAllocator raw_;
  std::optional<Device> traced_;
  mutable std::mutex mutex_;
  NodeCache nodes_;  // declared before the sets, which return their nodes to it
  FreeSet small_free_{BySize{}, RecyclingAllocator<Block*>(&nodes_)};
  FreeSet large_free_{BySize{}, RecyclingAllocator<Block*>(&nodes_)};
  PointerTable<Block*> live_;
  std::vector<Block*> spare_blocks_;
  MemoryStats stats_;
};

}  // namespace kiln::memory
