// Channels-last (NHWC) convolutions on CUDA through cuDNN's NHWC descriptors: forward,
// conv_transpose2d, both backward ops and autograd, in float32/bfloat16/float16, against
// the CPU in float64 on the same (rounded) values; outputs must come back channels-last.
// Also pooling and batch_norm on channels-last CUDA tensors. Skips without a CUDA device.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "kiln/device_manager.h"
#include "kiln/generator.h"
#include "kiln/ops.h"
#include "kiln/ops_backward.h"
#include "tests/support/conv_reference.h"
#include "tests/support/cuda_test.h"

using namespace kiln;
using kiln::testing::kGpu;
using kiln::testing::ConvGeometry;

namespace {
constexpr MemoryFormat kCL = MemoryFormat::ChannelsLast;

std::vector<double> values(const Tensor& t) { return t.to(kCpu).to(DType::Float64).contiguous().to_vector<double>(); }

// Random values already rounded to dt, on the CPU in float64 (the reference's inputs).
Tensor rnd(const Shape& s, DType dt) {
  static Generator gen(97531);
  return randn(s, TensorOptions(DType::Float64), &gen).to(dt).to(DType::Float64);
}

// dt on the GPU, channels-last or not.
Tensor gpu(const Tensor& t, DType dt, bool cl) {
  Tensor g = t.to(dt).to(kGpu);
  return cl ? g.to(kCL) : g;
}

// Relative to the magnitude of the result: cuDNN's float32 is not TF32 (FMA math); the
// half types round the output once (and bfloat16 keeps 8 bits).
double tol_for(DType dt) {
  return dt == DType::Float64 ? 1e-10 : dt == DType::Float32 ? 2e-5 : dt == DType::Float16 ? 4e-3 : 2e-2;
}

void expect_close(const Tensor& got, const std::vector<double>& want, DType dt, const std::string& what) {
  const auto v = values(got);
  ASSERT_EQ(v.size(), want.size()) << what;
  double scale = 1;
  for (double w : want) scale = std::max(scale, std::abs(w));
  for (size_t i = 0; i < v.size(); ++i)
    ASSERT_NEAR(v[i], want[i], tol_for(dt) * (std::abs(want[i]) + 0.1 * scale)) << what << " at " << i;
}

void expect_channels_last(const Tensor& t, const std::string& what) {
  EXPECT_EQ(t.device(), kGpu) << what;
  EXPECT_TRUE(t.is_contiguous(kCL)) << what << " strides " << shape_str(t.strides());
  EXPECT_EQ(t.strides(), channels_last_strides(t.shape())) << what;
}

const DType kDTypes[] = {DType::Float32, DType::BFloat16, DType::Float16};
}  // namespace

TEST(CudaChannelsLast, Conv2dForwardMatchesCpu) {
  REQUIRE_CUDA();
  for (DType dt : kDTypes)
    for (const ConvGeometry& k : kiln::testing::conv_layout_cases())
      for (int layout = 0; layout < 3; ++layout) {  // x channels-last, w channels-last, both
        const bool x_cl = layout != 1, w_cl = layout != 0;
        const std::string what = std::string("conv2d ") + dtype_name(dt) + " layout " + std::to_string(layout);
        Tensor x = rnd(k.x_shape(), dt), w = rnd(k.w_shape(), dt), b = rnd({k.o}, dt);
        const auto vb = values(b);
        const auto ref = kiln::testing::reference_conv2d(k, values(x), values(w), &vb);
        Tensor y = conv2d(gpu(x, dt, x_cl), gpu(w, dt, w_cl), gpu(b, dt, false), k.s, k.p, k.d, k.g);
        ASSERT_EQ(y.shape(), k.y_shape()) << what;
        EXPECT_EQ(y.dtype(), dt);
        expect_channels_last(y, what);
        expect_close(y, ref, dt, what);
      }
}

// float64 stays NCHW on CUDA, as in PyTorch (channels-last operands are converted).
TEST(CudaChannelsLast, Float64ConvRunsNchw) {
  REQUIRE_CUDA();
  const ConvGeometry k = kiln::testing::conv_layout_cases()[0];
  Tensor x = rnd(k.x_shape(), DType::Float64), w = rnd(k.w_shape(), DType::Float64);
  Tensor y = conv2d(gpu(x, DType::Float64, true), gpu(w, DType::Float64, true), Tensor(), k.s, k.p, k.d, k.g);
  EXPECT_TRUE(y.is_contiguous());
  expect_close(y, kiln::testing::reference_conv2d(k, values(x), values(w), nullptr), DType::Float64, "float64");
}

TEST(CudaChannelsLast, Conv2dBackwardOpsMatchCpu) {
  REQUIRE_CUDA();
  for (DType dt : kDTypes)
    for (const ConvGeometry& k : kiln::testing::conv_layout_cases()) {
      const std::string what = std::string("backward ") + dtype_name(dt);
      Tensor x = rnd(k.x_shape(), dt), w = rnd(k.w_shape(), dt), gy = rnd(k.y_shape(), dt);
      // the CPU in float64 (NCHW) is the reference
      const Tensor gx_ref = conv2d_backward_input(gy, w, x.shape(), k.s, k.p, k.d, k.g);
      const auto gw_ref = conv2d_backward_weight(gy, x, w.shape(), k.s, k.p, k.d, k.g, true);
      Tensor gx = conv2d_backward_input(gpu(gy, dt, true), gpu(w, dt, true), x.shape(), k.s, k.p, k.d, k.g);
      expect_channels_last(gx, what + " input");
      expect_close(gx, values(gx_ref), dt, what + " input");
      auto gw = conv2d_backward_weight(gpu(gy, dt, true), gpu(x, dt, true), w.shape(), k.s, k.p, k.d, k.g, true);
      expect_channels_last(gw.weight, what + " weight");
      expect_close(gw.weight, values(gw_ref.weight), dt, what + " weight");
      expect_close(gw.bias, values(gw_ref.bias), dt, what + " bias");
    }
}

TEST(CudaChannelsLast, ConvTranspose2dMatchesCpu) {
  REQUIRE_CUDA();
  for (DType dt : kDTypes) {
    Tensor x = rnd({2, 4, 5, 4}, dt), w = rnd({4, 3, 3, 3}, dt), b = rnd({6}, dt);
    const Tensor ref = conv_transpose2d(x, w, b, {2, 2}, {1, 1}, {1, 0}, 2, {1, 1});
    Tensor y = conv_transpose2d(gpu(x, dt, true), gpu(w, dt, true), gpu(b, dt, false), {2, 2}, {1, 1}, {1, 0}, 2,
                                {1, 1});
    ASSERT_EQ(y.shape(), ref.shape());
    expect_channels_last(y, "conv_transpose2d");
    expect_close(y, values(ref), dt, std::string("conv_transpose2d ") + dtype_name(dt));
  }
}

TEST(CudaChannelsLast, AutogradMatchesCpu) {
  REQUIRE_CUDA();
  const ConvGeometry k = kiln::testing::conv_layout_cases()[0];
  for (DType dt : {DType::Float32, DType::BFloat16}) {
    Tensor x0 = rnd(k.x_shape(), dt), w0 = rnd(k.w_shape(), dt), b0 = rnd({k.o}, dt), gy = rnd(k.y_shape(), dt);
    auto grads = [&](const Device& dev, DType t, bool cl) {
      Tensor x = x0.to(t).to(dev), w = w0.to(t).to(dev);
      if (cl) {
        x = x.to(kCL);
        w = w.to(kCL);
      }
      x = x.detach().requires_grad_();
      w = w.detach().requires_grad_();
      Tensor b = b0.to(t).to(dev).detach().requires_grad_();
      sum(conv2d(x, w, b, k.s, k.p, k.d, k.g) * gy.to(t).to(dev)).backward();
      return std::vector<Tensor>{x.grad(), w.grad(), b.grad()};
    };
    const auto ref = grads(kCpu, DType::Float64, false), got = grads(kGpu, dt, true);
    for (size_t i = 0; i < 3; ++i) {
      ASSERT_EQ(got[i].shape(), ref[i].shape());
      expect_close(got[i], values(ref[i]), dt, "grad " + std::to_string(i));
    }
    expect_channels_last(got[0], "x.grad");
  }
}

TEST(CudaChannelsLast, PoolAndBatchNormMatchCpu) {
  REQUIRE_CUDA();
  for (DType dt : {DType::Float32, DType::BFloat16}) {
    Tensor x = rnd({2, 8, 9, 7}, dt);
    Tensor xg = gpu(x, dt, true);
    auto check = [&](const Tensor& got, const Tensor& want, const char* what) {
      expect_channels_last(got, what);
      expect_close(got, values(want), dt, what);
    };
    check(max_pool2d(xg, {3, 3}, {2, 2}, {1, 1}), max_pool2d(x, {3, 3}, {2, 2}, {1, 1}), "max_pool2d");
    check(avg_pool2d(xg, {2, 2}, {2, 2}), avg_pool2d(x, {2, 2}, {2, 2}), "avg_pool2d");
    // parameters of x's dtype; the reference gets the same rounded values in float64
    Tensor w = rnd({8}, dt), b = rnd({8}, dt), mu = rnd({8}, dt);
    Tensor var = (rnd({8}, DType::Float64).abs() + 0.5).to(dt).to(DType::Float64);
    auto g = [&](const Tensor& p) { return p.to(dt).to(kGpu); };
    check(batch_norm(xg, g(mu), g(var), g(w), g(b), false, 0.1, 1e-5), batch_norm(x, mu, var, w, b, false, 0.1, 1e-5),
          "batch_norm eval");
    check(batch_norm(xg, Tensor(), Tensor(), g(w), g(b), true, 0.1, 1e-5),
          batch_norm(x, Tensor(), Tensor(), w, b, true, 0.1, 1e-5), "batch_norm train");
  }
}

// Elementwise kernels get [N, H, W, C] views of channels-last operands: values against
// the CPU (float64 loops of the same rounded inputs), results channels-last.
TEST(CudaChannelsLast, ElementwiseKeepsTheLayout) {
  REQUIRE_CUDA();
  for (DType dt : {DType::Float32, DType::BFloat16}) {
    Tensor x = rnd({4, 24, 9, 7}, dt), y = rnd({4, 24, 9, 7}, dt), bias = rnd({1, 24, 1, 1}, dt);
    Tensor xg = gpu(x, dt, true), yg = gpu(y, dt, true), bg = gpu(bias, dt, false);
    auto check = [&](const Tensor& got, const Tensor& want, const char* what) {
      expect_channels_last(got, what);
      expect_close(got, values(want), dt, what);
    };
    check(relu(xg), relu(x), "relu");
    check(xg + bg, x + bias, "x + bias");
    check(xg * yg, x * y, "x * y");
    check(where(gt(xg, 0.0), xg, yg), where(gt(x, 0.0), x, y), "where");
    Tensor ip = xg.clone();
    ip.add_(bg);
    check(ip, x + bias, "add_");
    check(cat({xg, yg}, 1), cat({x, y}, 1), "cat dim 1");
    check(cat({xg, yg}, 3), cat({x, y}, 3), "cat dim 3");
  }
}

// A channels-last conv layer trained one step on CUDA gives the CPU's NCHW step.
TEST(CudaChannelsLast, ModuleTrainingStepMatchesCpu) {
  REQUIRE_CUDA();
  Tensor x = rnd({2, 3, 8, 8}, DType::Float32), target = rnd({2, 4, 4, 4}, DType::Float32);
  Tensor w0 = rnd({4, 3, 3, 3}, DType::Float32), b0 = rnd({4}, DType::Float32);
  auto step = [&](const Device& dev, bool cl) {
    Tensor w = w0.to(DType::Float32).to(dev), b = b0.to(DType::Float32).to(dev);
    if (cl) w = w.to(kCL);
    w = w.detach().requires_grad_();
    b = b.detach().requires_grad_();
    Tensor in = x.to(DType::Float32).to(dev);
    if (cl) in = in.to(kCL);
    Tensor y = max_pool2d(relu(batch_norm(conv2d(in, w, b, {1, 1}, {1, 1}), Tensor(), Tensor(), Tensor(), Tensor(),
                                          true, 0.1, 1e-5)),
                          {2, 2});
    if (cl) expect_channels_last(y, "y");
    Tensor d = y - target.to(DType::Float32).to(dev);
    sum(d * d).backward();
    return std::vector<Tensor>{y, w.grad(), b.grad()};
  };
  const auto ref = step(kCpu, false), got = step(kGpu, true);
  for (size_t i = 0; i < 3; ++i) expect_close(got[i], values(ref[i]), DType::Float32, "step " + std::to_string(i));
}
