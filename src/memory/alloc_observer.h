#pragma once
// One observer of every caching allocator's allocations and frees (the profiler's memory
// timeline). Called after the allocator's lock is released; null when nobody listens.
#include <atomic>
#include <cstdint>

#include "kiln/device.h"

namespace kiln::memory {

struct AllocEvent {
  Device device;
  const void* ptr = nullptr;
  int64_t bytes = 0;                    // > 0 allocated, < 0 freed (the block's size)
  int64_t allocated = 0, reserved = 0;  // the allocator's totals after the event
  uintptr_t stream = 0;
};
using AllocObserver = void (*)(const AllocEvent&);

inline std::atomic<AllocObserver> g_alloc_observer{nullptr};
inline void set_alloc_observer(AllocObserver f) { g_alloc_observer.store(f); }

}  // namespace kiln::memory
