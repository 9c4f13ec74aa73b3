#include "src/memory/caching_allocator.h"

#include <algorithm>
#include <sstream>
#include <vector>

#include "kiln/error.h"

namespace kiln::memory {

CachingAllocator::CachingAllocator(std::string device_name, RawAllocator raw, std::optional<Device> traced)
    : device_name_(std::move(device_name)), raw_(std::move(raw)), traced_(traced) {}

void CachingAllocator::notify(const void* ptr, int64_t bytes, uintptr_t stream, int64_t allocated,
                              int64_t reserved) const {
  if (!traced_) return;
  if (const AllocObserver f = g_alloc_observer.load(std::memory_order_relaxed))
    f(AllocEvent{*traced_, ptr, bytes, allocated, reserved, stream});
}

CachingAllocator::~CachingAllocator() {
  std::lock_guard<std::mutex> lock(mutex_);
  release_free_segments();
  for (Block* b : spare_blocks_) delete b;
  // Blocks still live (tensors outliving the backend at exit) keep their segments.
}

CachingAllocator::Block* CachingAllocator::new_block() {
  if (spare_blocks_.empty()) return new Block;
  Block* b = spare_blocks_.back();
  spare_blocks_.pop_back();
  *b = Block{};
  return b;
}

void CachingAllocator::recycle(Block* b) { spare_blocks_.push_back(b); }

CachingAllocator::Block* CachingAllocator::take_free(FreeSet& pool, size_t size, uintptr_t stream) {
  Block key;
  key.stream = stream;
  key.size = size;
  key.ptr = nullptr;
  auto it = pool.lower_bound(&key);
  if (it == pool.end() || (*it)->stream != stream) return nullptr;
  Block* b = *it;
  // A large request does not take a huge cached block it would mostly waste.
  if (!b->small && size >= kOwnSegment && b->size > size + kOwnSegment) return nullptr;
  pool.erase(it);
  return b;
}

CachingAllocator::Block* CachingAllocator::new_segment(size_t segment_bytes, size_t request, bool small,
                                                       uintptr_t stream) {
  void* p = raw_.alloc(segment_bytes);
  if (!p) {
    release_free_segments();
    p = raw_.alloc(segment_bytes);
  }
  if (!p) {
    ++stats_.out_of_memory_count;
    KILN_FAIL("alloc", "out of memory on ", device_name_, ": requested ", request, " bytes (a ", segment_bytes,
              "-byte segment); ", state_locked());
  }
  Block* b = new_block();
  b->ptr = static_cast<char*>(p);
  b->size = segment_bytes;
  b->stream = stream;
  b->small = small;
  stats_.reserved_bytes += int64_t(segment_bytes);
  return b;
}

void* CachingAllocator::allocate(size_t bytes, uintptr_t stream) {
  const size_t size = round_size(bytes);
  const bool small = size <= kSmallRequest;
  std::unique_lock<std::mutex> lock(mutex_);
  ++stats_.allocation_count;
  FreeSet& pool = small ? small_free_ : large_free_;
  Block* b = take_free(pool, size, stream);
  if (b) {
    ++stats_.cache_hits;
  } else {
    ++stats_.cache_misses;
    size_t seg = small ? kSmallSegment : size < kOwnSegment ? kLargeSegment
                                                            : (size + kSegmentRound - 1) / kSegmentRound * kSegmentRound;
    b = new_segment(seg, bytes, small, stream);
  }
  // Split off the tail when it is worth keeping as a block of its own.
  const size_t rest = b->size - size;
  if (rest >= (small ? kMinBlock : kSmallRequest + 1)) {
    Block* tail = new_block();
    tail->ptr = b->ptr + size;
    tail->size = rest;
    tail->stream = stream;
    tail->small = small;
    tail->prev = b;
    tail->next = b->next;
    if (b->next) b->next->prev = tail;
    b->next = tail;
    b->size = size;
    pool.insert(tail);
  }
  b->allocated = true;
  live_.insert(b->ptr, b);
  stats_.allocated_bytes += int64_t(b->size);
  stats_.peak_allocated_bytes = std::max(stats_.peak_allocated_bytes, stats_.allocated_bytes);
  void* const p = b->ptr;
  const int64_t block = int64_t(b->size), allocated = stats_.allocated_bytes, reserved = stats_.reserved_bytes;
  lock.unlock();
  notify(p, block, stream, allocated, reserved);
  return p;
}

void CachingAllocator::deallocate(void* ptr) {
  if (!ptr) return;
  std::unique_lock<std::mutex> lock(mutex_);
  Block** found = live_.find(ptr);
  KILN_CHECK(found != nullptr, "free", "pointer was not allocated by the ", device_name_, " caching allocator");
  Block* b = *found;
  live_.erase(ptr);
  ++stats_.free_count;
  stats_.allocated_bytes -= int64_t(b->size);
  b->allocated = false;
  const int64_t freed = int64_t(b->size);
  const uintptr_t stream = b->stream;
  FreeSet& pool = b->small ? small_free_ : large_free_;
  // Merge with free neighbours of the same segment.
  if (Block* p = b->prev; p && !p->allocated) {
    pool.erase(p);
    p->size += b->size;
    p->next = b->next;
    if (b->next) b->next->prev = p;
    recycle(b);
    b = p;
  }
  if (Block* n = b->next; n && !n->allocated) {
    pool.erase(n);
    b->size += n->size;
    b->next = n->next;
    if (n->next) n->next->prev = b;
    recycle(n);
  }
  pool.insert(b);
  const int64_t allocated = stats_.allocated_bytes, reserved = stats_.reserved_bytes;
  lock.unlock();
  notify(ptr, -freed, stream, allocated, reserved);
}

void CachingAllocator::release_free_segments() {
  for (FreeSet* pool : {&small_free_, &large_free_}) {
    std::vector<Block*> whole;
    for (Block* b : *pool)
      if (!b->prev && !b->next) whole.push_back(b);
    for (Block* b : whole) {
      pool->erase(b);
      raw_.free(b->ptr, b->size);
      stats_.reserved_bytes -= int64_t(b->size);
      recycle(b);
    }
  }
}

std::string CachingAllocator::state_locked() const {
  size_t cached = 0;
  for (const FreeSet* pool : {&small_free_, &large_free_})
    for (const Block* b : *pool) cached += b->size;
  std::ostringstream os;
  os << "pool state: " << stats_.allocated_bytes << " bytes allocated in " << live_.size() << " blocks, "
     << stats_.reserved_bytes << " bytes reserved, " << cached << " bytes cached free after releasing whole segments";
  return os.str();
}

MemoryStats CachingAllocator::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

void CachingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lock(mutex_);
  stats_.peak_allocated_bytes = stats_.allocated_bytes;
}

void CachingAllocator::empty_cache() {
  std::lock_guard<std::mutex> lock(mutex_);
  release_free_segments();
}

size_t CachingAllocator::segment_count() const {
  std::lock_guard<std::mutex> lock(mutex_);
  // Segments are the blocks with no predecessor, live or free.
  size_t n = 0;
  live_.for_each([&](const void*, const Block* b) {
    if (!b->prev) ++n;
  });
  for (const FreeSet* pool : {&small_free_, &large_free_})
    for (const Block* b : *pool)
      if (!b->prev) ++n;
  return n;
}

std::vector<MemorySegmentInfo> CachingAllocator::snapshot() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<const Block*> heads;  // the first block of each segment, live or free
  live_.for_each([&](const void*, const Block* b) {
    if (!b->prev) heads.push_back(b);
  });
  for (const FreeSet* pool : {&small_free_, &large_free_})
    for (const Block* b : *pool)
      if (!b->prev) heads.push_back(b);
  std::sort(heads.begin(), heads.end(), [](const Block* a, const Block* b) { return a->ptr < b->ptr; });
  std::vector<MemorySegmentInfo> out;
  for (const Block* head : heads) {
    MemorySegmentInfo seg{reinterpret_cast<uintptr_t>(head->ptr), 0, head->stream, head->small, {}};
    for (const Block* b = head; b; b = b->next) {
      seg.blocks.push_back({size_t(b->ptr - head->ptr), b->size, b->allocated});
      seg.size += b->size;
    }
    out.push_back(std::move(seg));
  }
  return out;
}

}  // namespace kiln::memory
