#pragma once
// A fake "metal" backend for tests on machines without a GPU: host memory, one device,
// and a single kernel (Add, float32) that counts its calls. Installing it makes metal:0 a
// present GPU, so fallback, execution strategies and device mismatches can be tested.
#include <atomic>

#include "kiln/backend.h"
#include "kiln/dispatch.h"

namespace kiln::testing {

inline constexpr DeviceType kFakeGpuType = DeviceType::Metal;
inline const Device kFakeGpu{DeviceType::Metal, 0};

// Calls of the fake Add kernel since the last install.
extern std::atomic<int> fake_add_calls;

// The fake device's profiler marks: mark k (since the last start) reads back as
// (k + 1) * kFakeMarkTickUs microseconds after time zero. Counts since the last install.
inline constexpr double kFakeMarkTickUs = 10;
struct FakeTracerCounts {
  std::atomic<int> starts{0}, marks{0}, collects{0}, synchronizes{0};
};
extern FakeTracerCounts fake_tracer_counts;

// Installs the fake metal backend for a scope; removes it (and its kernels), restores the
// current device and resets the execution strategy on exit. Tensors on metal must be
// destroyed before the scope ends.
class FakeGpuScope {
 public:
  FakeGpuScope();
  ~FakeGpuScope();
  FakeGpuScope(const FakeGpuScope&) = delete;
  FakeGpuScope& operator=(const FakeGpuScope&) = delete;
};

}  // namespace kiln::testing
