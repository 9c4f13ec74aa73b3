// Device model (spec §1) and op placement (spec §2.4): DeviceManager, Device::parse,
// DeviceGuard, set_device; CPU fallback and ExecutionStrategy, tested on a fake "metal"
// backend (host memory, only an Add kernel) installed with set_backend_for_testing.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <string>

#include "kiln/device_manager.h"
#include "kiln/ops.h"
#include "tests/support/fake_backend.h"

using namespace kiln;
using kiln::testing::fake_add_calls;
using kiln::testing::FakeGpuScope;
using kiln::testing::kFakeGpu;

namespace {
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

std::vector<float> iota_values(int n, float start, float step) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) v[size_t(i)] = start + step * float(i);
  return v;
}
}  // namespace

// ---- DeviceManager -------------------------------------------------------------------

TEST(DeviceManager, ListsTheCpuFirst) {
  const auto devs = device_manager().devices();
  ASSERT_FALSE(devs.empty());
  EXPECT_EQ(devs[0], kCpu);
  EXPECT_TRUE(device_manager().is_available(DeviceType::Cpu));
  EXPECT_EQ(device_manager().device_count(DeviceType::Cpu), 1);
  EXPECT_TRUE(device_manager().unavailable_reason(DeviceType::Cpu).empty());
  const DeviceInfo info = device_manager().info(kCpu);
  EXPECT_GT(info.total_memory, 0u);
  EXPECT_GE(info.compute_units, 1);
  EXPECT_FALSE(info.name.empty());
  const GpuContext ctx = device_manager().context(kCpu);  // spec §1 per-device settings
  EXPECT_EQ(ctx.device, kCpu);
  EXPECT_GE(ctx.stream_count, 1);
  EXPECT_THROW(device_manager().context(Device(DeviceType::Cpu, 1)), Error);
}

TEST(DeviceManager, UnavailableTypesSayWhy) {
  for (DeviceType t : {DeviceType::Cuda, DeviceType::Metal, DeviceType::OpenCL, DeviceType::CoreML,
                       DeviceType::WebGpu}) {
    const auto& dm = device_manager();
    if (dm.is_available(t)) {  // the CUDA machine
      EXPECT_TRUE(dm.unavailable_reason(t).empty());
      EXPECT_GT(dm.device_count(t), 0);
      continue;
    }
    EXPECT_EQ(dm.device_count(t), 0) << device_type_name(t);
    const std::string why = dm.unavailable_reason(t);
    EXPECT_FALSE(why.empty()) << device_type_name(t);
    EXPECT_TRUE(contains(why, device_type_name(t))) << why;
    const auto devs = dm.devices();
    EXPECT_TRUE(std::none_of(devs.begin(), devs.end(), [t](const Device& d) { return d.type == t; }));
  }
  // Without any GPU, the best device is the CPU; with one, a GPU.
  EXPECT_EQ(device_manager().best_device().is_gpu(), device_manager().is_gpu_available());
}

TEST(DeviceManager, SetDeviceToAMissingDeviceRaises) {
  const Device before = current_device();
  try {
    set_device(Device(DeviceType::Metal, 0));
    FAIL() << "expected kiln::Error";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), "[set_device]")) << e.what();
    EXPECT_TRUE(contains(e.what(), "metal")) << e.what();
  }
  try {
    set_device(Device(DeviceType::Cpu, 3));  // one CPU device only
    FAIL() << "expected kiln::Error";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), "[set_device]")) << e.what();
  }
  try {
    set_device(Device(DeviceType::Cuda, 999));
    FAIL() << "expected kiln::Error";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), "[set_device]")) << e.what();
  }
  EXPECT_EQ(current_device(), before);
  EXPECT_THROW(device_manager().info(Device(DeviceType::Metal, 0)), Error);
}

TEST(Device, ParsesNamesAndIndices) {
  EXPECT_EQ(Device::parse("cpu"), kCpu);
  EXPECT_EQ(Device::parse("cuda"), Device(DeviceType::Cuda, 0));
  EXPECT_EQ(Device::parse("cuda:1"), Device(DeviceType::Cuda, 1));
  EXPECT_EQ(Device::parse("metal:0"), Device(DeviceType::Metal, 0));
  EXPECT_EQ(Device::parse("opencl"), Device(DeviceType::OpenCL, 0));
  EXPECT_EQ(Device::parse("coreml"), Device(DeviceType::CoreML, 0));
  EXPECT_EQ(Device::parse("webgpu:2"), Device(DeviceType::WebGpu, 2));
  EXPECT_EQ(Device(DeviceType::Cuda, 1).str(), "cuda:1");
  EXPECT_EQ(kCpu.str(), "cpu");
  for (const char* bad : {"", "gpu", "CUDA", "cuda:", "cuda:x", "cuda:-1", "cuda:1:2", "cuda:99999999999999999999"}) {
    try {
      (void)Device::parse(bad);
      ADD_FAILURE() << "'" << bad << "' parsed";
    } catch (const Error& e) {
      EXPECT_TRUE(contains(e.what(), "[device]")) << e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "'" << bad << "' raised a non-kiln exception: " << e.what();
    }
  }
}

// ---- with a fake GPU -------------------------------------------------------------------

class FakeGpu : public ::testing::Test {
 protected:
  FakeGpuScope scope_;  // resets the strategy and removes the backend after each test
};

TEST_F(FakeGpu, IsListedAndGuardRestoresTheDevice) {
  EXPECT_TRUE(device_manager().is_available(DeviceType::Metal));
  EXPECT_TRUE(is_gpu_available());
  const auto devs = device_manager().devices();
  EXPECT_NE(std::find(devs.begin(), devs.end(), kFakeGpu), devs.end());
  EXPECT_EQ(current_device(), kCpu);
  {
    DeviceGuard guard(kFakeGpu);
    EXPECT_EQ(current_device(), kFakeGpu);
    Tensor z = empty({2, 3});  // factories follow the current device
    EXPECT_EQ(z.device(), kFakeGpu);
    {
      DeviceGuard inner(kCpu);
      EXPECT_EQ(current_device(), kCpu);
    }
    EXPECT_EQ(current_device(), kFakeGpu);
  }
  EXPECT_EQ(current_device(), kCpu);
}

TEST_F(FakeGpu, RemovingTheBackendRemovesItsKernels) {
  EXPECT_TRUE(kernel_registry().supports(DeviceType::Metal, OpId::Add, DType::Float32));
  EXPECT_FALSE(kernel_registry().supports(DeviceType::Metal, OpId::Mul, DType::Float32));
  set_backend_for_testing(DeviceType::Metal, nullptr);
  EXPECT_FALSE(kernel_registry().supports(DeviceType::Metal, OpId::Add, DType::Float32));
  EXPECT_FALSE(device_manager().is_available(DeviceType::Metal));
  EXPECT_FALSE(device_manager().unavailable_reason(DeviceType::Metal).empty());
  // the CPU's kernels are untouched
  EXPECT_TRUE(kernel_registry().supports(DeviceType::Cpu, OpId::Add, DType::Float32));
}

TEST_F(FakeGpu, TensorsRoundTripThroughTheDevice) {
  const auto v = iota_values(6, -1.5f, 0.5f);
  Tensor g = tensor(v, {2, 3}).to(kFakeGpu);
  EXPECT_EQ(g.device(), kFakeGpu);
  EXPECT_EQ(g.shape(), (Shape{2, 3}));
  EXPECT_EQ(g.to_vector<float>(), v);
  EXPECT_EQ(g.cpu().device(), kCpu);
  EXPECT_EQ(g.at({1, 2}).to_double(), 1.0);
}

TEST_F(FakeGpu, DeviceKernelRunsWhereTheDataLives) {
  Tensor a = tensor(iota_values(6, 0, 1), {2, 3}).to(kFakeGpu);
  Tensor b = tensor(std::vector<float>{10, 20, 30}).to(kFakeGpu);
  Tensor c = add(a, b, 2);  // broadcast, alpha
  EXPECT_EQ(fake_add_calls, 1);
  EXPECT_EQ(c.device(), kFakeGpu);
  EXPECT_EQ(c.to_vector<float>(), (std::vector<float>{20, 41, 62, 23, 44, 65}));
}

TEST_F(FakeGpu, OpsWithoutAKernelFallBackToTheCpu) {
  const auto va = iota_values(6, -1, 0.75f), vb = iota_values(6, 2, -0.5f);
  Tensor a = tensor(va, {2, 3}).to(kFakeGpu);
  Tensor b = tensor(vb, {2, 3}).to(kFakeGpu);
  Tensor m = mul(a, b);
  EXPECT_EQ(m.device(), kFakeGpu);
  const auto mv = m.to_vector<float>();
  for (size_t i = 0; i < 6; ++i) EXPECT_FLOAT_EQ(mv[i], va[i] * vb[i]);
  Tensor e = exp(a);
  EXPECT_EQ(e.device(), kFakeGpu);
  const auto ev = e.to_vector<float>();
  for (size_t i = 0; i < 6; ++i) EXPECT_NEAR(ev[i], std::exp(double(va[i])), 1e-5 * std::exp(double(va[i])));
  Tensor gt0 = gt(a, b);
  EXPECT_EQ(gt0.device(), kFakeGpu);
  EXPECT_EQ(gt0.dtype(), DType::Bool);
  const auto gv = gt0.to_vector<bool>();
  for (size_t i = 0; i < 6; ++i) EXPECT_EQ(gv[i], va[i] > vb[i]);
  // A dtype the device kernel doesn't take (float64 add) falls back too.
  Tensor a64 = a.cpu().to(DType::Float64).to(kFakeGpu);
  Tensor d = add(a64, a64);
  EXPECT_EQ(d.device(), kFakeGpu);
  EXPECT_EQ(d.dtype(), DType::Float64);
  EXPECT_DOUBLE_EQ(d.at({1, 2}).to_double(), 2.0 * double(va[5]));
  EXPECT_EQ(fake_add_calls, 0);
  // inputs unchanged
  EXPECT_EQ(a.to_vector<float>(), va);
  EXPECT_EQ(b.to_vector<float>(), vb);
}

TEST_F(FakeGpu, GpuOnlyRaisesForOpsWithoutADeviceKernel) {
  set_execution_strategy(ExecutionStrategy::gpu_only());
  const auto va = iota_values(4, 1, 1);
  Tensor a = tensor(va).to(kFakeGpu);
  try {
    (void)mul(a, a);
    FAIL() << "expected kiln::Error";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), "[mul]")) << e.what();
    EXPECT_TRUE(contains(e.what(), "metal")) << e.what();
  }
  EXPECT_EQ(a.to_vector<float>(), va);
  // CPU data under GpuOnly moves to the current GPU when it has the kernel...
  Tensor x = tensor(va), y = tensor(iota_values(4, 0.5f, 0));
  set_device(kFakeGpu);  // (on a CUDA machine, cuda:0 would otherwise be the preferred GPU)
  Tensor s = add(x, y);
  EXPECT_EQ(fake_add_calls, 1);
  EXPECT_EQ(s.device(), kCpu);
  EXPECT_EQ(s.to_vector<float>(), (std::vector<float>{1.5f, 2.5f, 3.5f, 4.5f}));
  // ...and raises when it has not.
  try {
    (void)mul(x, y);
    FAIL() << "expected kiln::Error";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), "[mul]")) << e.what();
    EXPECT_TRUE(contains(e.what(), "GpuOnly")) << e.what();
  }
  EXPECT_EQ(x.to_vector<float>(), va);
}

TEST_F(FakeGpu, CpuOnlyComputesOnTheCpu) {
  set_execution_strategy(ExecutionStrategy::cpu_only());
  const auto va = iota_values(5, -2, 1.25f);
  Tensor a = tensor(va).to(kFakeGpu);
  Tensor c = add(a, a);
  EXPECT_EQ(fake_add_calls, 0);
  EXPECT_EQ(c.device(), kFakeGpu);  // results come back to the data's device
  const auto cv = c.to_vector<float>();
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(cv[i], 2 * va[i]);
}

TEST_F(FakeGpu, HybridMovesLargeCpuWorkToTheGpu) {
  set_execution_strategy(ExecutionStrategy::hybrid(100));
  EXPECT_EQ(execution_strategy().kind, ExecutionStrategy::Kind::Hybrid);
  EXPECT_EQ(execution_strategy().gpu_threshold, 100);
  Tensor small_a = tensor(iota_values(99, 0, 1)), small_b = ones({99});
  const auto va = iota_values(100, -5, 0.25f);
  Tensor big_a = tensor(va, {10, 10}), big_b = full({10, 10}, 2.0f);
  set_device(kFakeGpu);  // the GPU Hybrid prefers (the tensors above stay on the CPU)
  Tensor small = add(small_a, small_b);
  EXPECT_EQ(fake_add_calls, 0);  // below the threshold: stays on the CPU
  EXPECT_EQ(small.device(), kCpu);
  EXPECT_EQ(small.at({98}).to_double(), 99.0);

  Tensor big = add(big_a, big_b, 3);
  EXPECT_EQ(fake_add_calls, 1);  // at the threshold: computed on the GPU
  EXPECT_EQ(big.device(), kCpu);  // and brought back
  const auto bv = big.to_vector<float>();
  for (size_t i = 0; i < 100; ++i) EXPECT_EQ(bv[i], va[i] + 6.0f);
  EXPECT_EQ(big_a.to_vector<float>(), va);

  // An op the GPU lacks stays on the CPU, with the right answer.
  Tensor prod = mul(big_a, big_b);
  EXPECT_EQ(fake_add_calls, 1);
  EXPECT_EQ(prod.device(), kCpu);
  EXPECT_EQ(prod.at({9, 9}).to_double(), double(va[99]) * 2.0);

  // A non-contiguous (transposed) CPU input is staged too.
  Tensor tr = add(big_a.t(), big_b);
  EXPECT_EQ(fake_add_calls, 2);
  EXPECT_EQ(tr.at({2, 7}).to_double(), double(va[7 * 10 + 2]) + 2.0);
}

TEST(ExecutionStrategy, DefaultIsComputeWhereTheDataLivesAndNegativeThresholdRaises) {
  const ExecutionStrategy s = execution_strategy();
  EXPECT_EQ(s.kind, ExecutionStrategy::Kind::Hybrid);
  EXPECT_EQ(s.gpu_threshold, INT64_MAX);
  EXPECT_THROW(set_execution_strategy(ExecutionStrategy::hybrid(-1)), Error);
  EXPECT_EQ(execution_strategy().gpu_threshold, INT64_MAX);
  EXPECT_EQ(ExecutionStrategy::cpu_only().str(), "CpuOnly");
  EXPECT_EQ(ExecutionStrategy::hybrid(10).str(), "Hybrid{gpu_threshold=10}");
}

// ---- op dtype declarations (ops.def) -------------------------------------------------

// The CPU is the reference backend: it has a kernel for every dtype every op declares,
// and no backend (CUDA too, when compiled in) has one for a dtype its op does not declare.
TEST(OpDTypes, CpuCoversEveryDeclaredDTypeAndNoBackendMore) {
  for (int o = 0; o < kNumOps; ++o) {
    const OpId op = OpId(o);
    EXPECT_NE(op_dtypes(op), 0u) << op_name(op);
    for (int t = 0; t < kNumDTypes; ++t) {
      const bool declared = op_dtypes(op) & dtype_bit(DType(t));
      EXPECT_EQ(kernel_registry().supports(DeviceType::Cpu, op, DType(t)), declared)
          << op_name(op) << " " << dtype_name(DType(t));
      for (int d = 0; d < kNumDeviceTypes; ++d)
        if (!declared) EXPECT_FALSE(kernel_registry().supports(DeviceType(d), op, DType(t))) << op_name(op);
    }
  }
}

// PyTorch's categories, written out independently of ops.def.
TEST(OpDTypes, DeclarationsFollowTheOpsMeaning) {
  const DTypeSet floating = dtypes({DType::Float32, DType::Float64, DType::Float16, DType::BFloat16});
  const DTypeSet numeric = floating | dtypes({DType::Int32, DType::Int64});
  EXPECT_EQ(op_dtypes(OpId::Add), numeric | dtype_bit(DType::Bool));
  EXPECT_EQ(op_dtypes(OpId::Sub), numeric);  // bool subtraction is an error in PyTorch
  EXPECT_EQ(op_dtypes(OpId::Div), floating);  // the front end promotes integers first
  EXPECT_EQ(op_dtypes(OpId::LogicalNot), dtype_bit(DType::Bool));
  EXPECT_EQ(op_dtypes(OpId::OneHot), dtypes({DType::Int32, DType::Int64}));
  EXPECT_EQ(op_dtypes(OpId::Matmul), numeric);
  EXPECT_EQ(op_dtypes(OpId::Conv2d), floating);
  EXPECT_EQ(dtype_set_str(op_dtypes(OpId::Mean)), "float32, float64, float16, bfloat16");
}

namespace {
std::atomic<int> probe_calls{0};
void probe_kernel(const KernelArgs&) { ++probe_calls; }

// The message dispatch raises for op on int32 tensors on dev (which must leave them unchanged).
std::string dispatch_int32_error(OpId op, Device dev) {
  // (made on the CPU: the fake backend has no fill kernel)
  Tensor a = full({3}, 2, DType::Int32).to(dev), out = zeros({3}, DType::Int32).to(dev);
  const Tensor in[] = {a, a};
  Tensor outs[] = {out};
  try {
    dispatch(op, in, outs);
  } catch (const Error& e) {
    EXPECT_EQ(a.to(kCpu).to_vector<int32_t>(), (std::vector<int32_t>{2, 2, 2}));
    EXPECT_EQ(out.to(kCpu).to_vector<int32_t>(), (std::vector<int32_t>{0, 0, 0}));
    return e.what();
  }
  ADD_FAILURE() << op_name(op) << " ran for int32 on " << dev.str();
  return "";
}
}  // namespace

// One message for a dtype the op does not declare, whatever the device and the strategy.
TEST_F(FakeGpu, UndeclaredDTypeRaisesOneMessageOnEveryDevice) {
  const std::string on_cpu = dispatch_int32_error(OpId::Div, kCpu);
  EXPECT_TRUE(contains(on_cpu, "[div] does not support dtype int32 (supported: float32, float64, float16, bfloat16)"))
      << on_cpu;
  EXPECT_EQ(dispatch_int32_error(OpId::Div, kFakeGpu), on_cpu);
  set_execution_strategy(ExecutionStrategy::gpu_only());
  EXPECT_EQ(dispatch_int32_error(OpId::Div, kFakeGpu), on_cpu);
  EXPECT_EQ(dispatch_int32_error(OpId::Div, kCpu), on_cpu);
}

// add() without dtypes registers the op's declaration; with a set, only its declared part.
TEST_F(FakeGpu, RegistrationDefaultsToTheDeclaredDTypes) {
  KernelRegistry& r = kernel_registry();
  r.add(kFakeGpu.type, OpId::Mul, probe_kernel);
  r.add(kFakeGpu.type, OpId::Sub, probe_kernel, kAllDTypes);  // bool is not declared for sub
  r.add(kFakeGpu.type, OpId::Maximum, probe_kernel, dtype_bit(DType::Int64));
  for (int t = 0; t < kNumDTypes; ++t) {
    const DType dt = DType(t);
    EXPECT_EQ(r.supports(kFakeGpu.type, OpId::Mul, dt), bool(op_dtypes(OpId::Mul) & dtype_bit(dt)));
    EXPECT_EQ(r.supports(kFakeGpu.type, OpId::Sub, dt), dt != DType::Bool) << dtype_name(dt);
    EXPECT_EQ(r.supports(kFakeGpu.type, OpId::Maximum, dt), dt == DType::Int64) << dtype_name(dt);
  }
  // A subset: the registered dtype runs on the device, the others fall back to the CPU.
  probe_calls = 0;
  Tensor i = full({2}, 3, DType::Int64).to(kFakeGpu);
  (void)maximum(i, i);
  EXPECT_EQ(probe_calls, 1);
  Tensor f = full({2}, 3.0, DType::Float32).to(kFakeGpu);
  Tensor m = maximum(f, f);
  EXPECT_EQ(probe_calls, 1);
  EXPECT_EQ(m.device(), kFakeGpu);
  EXPECT_EQ(m.to(kCpu).to_vector<float>(), (std::vector<float>{3, 3}));
}
