#include "tests/support/fake_backend.h"

#include <cstdlib>
#include <cstring>
#include <memory>

#include "kiln/device_manager.h"
#include "kiln/op_attrs.h"
#include "kiln/tensor.h"

namespace kiln::testing {

std::atomic<int> fake_add_calls{0};
FakeTracerCounts fake_tracer_counts;

namespace {

// Element offset of flat (row-major) index i in a strided view.
int64_t offset_of(const Tensor& t, int64_t i) {
  int64_t off = 0;
  for (int64_t d = t.dim() - 1; d >= 0; --d) {
    const int64_t n = t.size(d);
    off += (i % n) * t.stride(d);
    i /= n;
  }
  return off;
}

// out = a + alpha * b on float32 host memory, any strides (inputs already broadcast).
void fake_add(const KernelArgs& args) {
  ++fake_add_calls;
  const Tensor& a = args.inputs[0];
  const Tensor& b = args.inputs[1];
  const Tensor& out = args.outputs[0];
  const float alpha = args.attrs ? float(args.attr<ScalarAttrs>().value.to_double()) : 1.0f;
  const float* pa = static_cast<const float*>(a.data_ptr());
  const float* pb = static_cast<const float*>(b.data_ptr());
  float* po = static_cast<float*>(out.data_ptr());
  for (int64_t i = 0; i < out.numel(); ++i)
    po[offset_of(out, i)] = pa[offset_of(a, i)] + alpha * pb[offset_of(b, i)];
}

class FakeTracer final : public DeviceTracer {
 public:
  void start(int) override {
    ++fake_tracer_counts.starts;
    next_ = 0;
  }
  uint32_t mark(int) override {
    ++fake_tracer_counts.marks;
    return next_++;
  }
  std::vector<double> collect(int) override {
    ++fake_tracer_counts.collects;
    std::vector<double> t(next_);
    for (uint32_t k = 0; k < next_; ++k) t[k] = double(k + 1) * kFakeMarkTickUs;
    next_ = 0;
    return t;
  }

 private:
  uint32_t next_ = 0;
};

class FakeMetalBackend final : public Backend {
 public:
  DeviceType type() const override { return kFakeGpuType; }
  int device_count() const override { return 1; }
  DeviceInfo device_info(int) const override {
    DeviceInfo info;
    info.name = "fake metal (host memory)";
    info.total_memory = info.free_memory = size_t(1) << 30;
    info.compute_units = 1;
    return info;
  }
  void* allocate(size_t bytes, int) override {
    void* p = std::malloc(bytes ? bytes : 1);
    KILN_CHECK(p != nullptr, "alloc", "fake metal out of memory");
    return p;
  }
  void deallocate(void* p, size_t, int) override { std::free(p); }
  void copy(void* dst, Device, const void* src, Device, size_t bytes, bool) override { std::memcpy(dst, src, bytes); }
  void synchronize(int) override { ++fake_tracer_counts.synchronizes; }
  DeviceTracer* tracer() override { return &tracer_; }
  void register_kernels(KernelRegistry& r) override {
    r.add(kFakeGpuType, OpId::Add, fake_add, dtype_bit(DType::Float32));
  }

 private:
  FakeTracer tracer_;
};

}  // namespace

FakeGpuScope::FakeGpuScope() {
  fake_add_calls = 0;
  fake_tracer_counts.starts = fake_tracer_counts.marks = fake_tracer_counts.collects = 0;
  fake_tracer_counts.synchronizes = 0;
  set_backend_for_testing(kFakeGpuType, std::make_unique<FakeMetalBackend>());
}

FakeGpuScope::~FakeGpuScope() {
  set_execution_strategy(ExecutionStrategy{});
  if (current_device().type == kFakeGpuType) set_device(kCpu);
  set_backend_for_testing(kFakeGpuType, nullptr);
}

}  // namespace kiln::testing
