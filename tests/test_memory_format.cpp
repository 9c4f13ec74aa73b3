// Memory formats (channels-last): strides by hand, PyTorch's rules for size-1 dims and
// Preserve, copies that keep the layout, and conv/pool/batch_norm on channels-last
// tensors against the naive double reference and the NCHW result, forward and backward.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "kiln/autograd.h"
#include "kiln/generator.h"
#include "kiln/nn.h"
#include "kiln/optim.h"
#include "kiln/ops.h"
#include "kiln/ops_backward.h"
#include "tests/support/conv_reference.h"
#include "tests/support/expect_error.h"
#include "tests/support/fake_backend.h"
#include "tests/support/gradcheck.h"

using namespace kiln;
using kiln::testing::ConvGeometry;
using kiln::testing::expect_error;

namespace {
constexpr MemoryFormat kCL = MemoryFormat::ChannelsLast;

std::vector<double> values(const Tensor& t) { return t.to(DType::Float64).contiguous().to_vector<double>(); }

Tensor rnd(const Shape& s, DType dt = DType::Float64) {
  static Generator gen(2468);
  return randn(s, TensorOptions(DType::Float64).device(kCpu), &gen).to(dt);
}

void expect_near(const std::vector<double>& got, const std::vector<double>& want, double tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], tol * (1 + std::abs(want[i]))) << what << " at " << i;
}

double tol_for(DType dt) {
  return dt == DType::Float64 ? 1e-11 : dt == DType::Float32 ? 1e-5 : dt == DType::Float16 ? 4e-3 : 3e-2;
}
}  // namespace

// ---------------------------------------------------------------- the API

TEST(MemoryFormat, ChannelsLastStridesByHand) {
  Tensor t = empty({2, 3, 4, 5}, DType::Float32, kCL);
  EXPECT_EQ(t.strides(), (Strides{60, 1, 15, 3}));  // (H*W*C, 1, W*C, C)
  EXPECT_EQ(t.storage()->nbytes(), size_t(120 * 4));
  EXPECT_TRUE(t.is_contiguous(kCL));
  EXPECT_FALSE(t.is_contiguous());
  EXPECT_FALSE(t.is_contiguous(MemoryFormat::Contiguous));
  EXPECT_EQ(t.suggest_memory_format(), kCL);
  EXPECT_TRUE(t.is_non_overlapping_and_dense());
  EXPECT_EQ(channels_last_strides({8, 16, 7, 9}), (Strides{16 * 7 * 9, 1, 9 * 16, 16}));
  Tensor c = empty({2, 3, 4, 5}, DType::Float32, MemoryFormat::Contiguous);
  EXPECT_EQ(c.strides(), (Strides{60, 20, 5, 1}));
  EXPECT_FALSE(c.is_contiguous(kCL));
  EXPECT_EQ(c.suggest_memory_format(), MemoryFormat::Contiguous);
}

TEST(MemoryFormat, ContiguousChannelsLastStoresNhwc) {
  Tensor x = arange(120, DType::Float32).view({2, 3, 4, 5});  // x[n, c, h, w] = n*60 + c*20 + h*5 + w
  Tensor y = x.contiguous(kCL);
  EXPECT_FALSE(y.shares_storage(x));
  EXPECT_EQ(y.strides(), (Strides{60, 1, 15, 3}));
  EXPECT_EQ(y.to_vector<float>(), x.to_vector<float>());  // same logical values
  const float* p = y.data<float>();
  for (int n = 0; n < 2; ++n)
    for (int h = 0; h < 4; ++h)
      for (int w = 0; w < 5; ++w)
        for (int c = 0; c < 3; ++c)
          ASSERT_EQ(p[((n * 4 + h) * 5 + w) * 3 + c], float(n * 60 + c * 20 + h * 5 + w));
  EXPECT_TRUE(y.contiguous(kCL).is_same(y));  // no copy when already so
  EXPECT_TRUE(y.to(kCL).is_same(y));
  EXPECT_TRUE(y.to(MemoryFormat::Preserve).is_same(y));
  Tensor back = y.contiguous();
  EXPECT_TRUE(back.is_contiguous());
  EXPECT_EQ(back.to_vector<float>(), x.to_vector<float>());
  // An NHWC buffer viewed as NCHW by permute is channels-last without a copy.
  Tensor nhwc = arange(120, DType::Float32).view({2, 4, 5, 3}).permute({0, 3, 1, 2});
  EXPECT_TRUE(nhwc.is_contiguous(kCL));
  EXPECT_EQ(nhwc.suggest_memory_format(), kCL);
  EXPECT_TRUE(nhwc.contiguous(kCL).is_same(nhwc));
}

// PyTorch's answers for the ambiguous shapes (size-1 dims), worked out from its rules.
TEST(MemoryFormat, SizeOneDimsFollowPyTorch) {
  // [2, 3, 1, 1] contiguous (3, 1, 1, 1): contiguous in both formats, suggests NCHW.
  Tensor a = empty({2, 3, 1, 1});
  EXPECT_TRUE(a.is_contiguous());
  EXPECT_TRUE(a.is_contiguous(kCL));
  EXPECT_EQ(a.suggest_memory_format(), MemoryFormat::Contiguous);
  EXPECT_TRUE(a.contiguous(kCL).is_same(a));
  // The same shape allocated channels-last: (3, 1, 3, 3) suggests channels-last.
  Tensor b = empty({2, 3, 1, 1}, {}, kCL);
  EXPECT_EQ(b.strides(), (Strides{3, 1, 3, 3}));
  EXPECT_TRUE(b.is_contiguous());
  EXPECT_EQ(b.suggest_memory_format(), kCL);
  // One channel: [2, 1, 4, 5] contiguous is also channels-last contiguous; suggests NCHW.
  Tensor c = empty({2, 1, 4, 5});
  EXPECT_TRUE(c.is_contiguous(kCL));
  EXPECT_EQ(c.suggest_memory_format(), MemoryFormat::Contiguous);
  // [N, 1, 1, 1] with equal strides: NCHW.
  Tensor d = empty({4, 1, 1, 1});
  EXPECT_EQ(d.suggest_memory_format(), MemoryFormat::Contiguous);
  // [1, C, 1, W] transposed (1, 3) is channels-last contiguous but not suggested as such.
  Tensor e = empty({1, 5, 1, 3}).transpose(1, 3);  // shape [1, 3, 1, 5]
  EXPECT_EQ(e.strides(), (Strides{15, 1, 3, 3}));
  EXPECT_TRUE(e.is_contiguous(kCL));
  EXPECT_EQ(e.suggest_memory_format(), MemoryFormat::Contiguous);
  // to(channels_last) copies unless the tensor already suggests it (contiguous() does not):
  // a depthwise weight [4, 1, 3, 3] gets (9, 1, 3, 1), which suggests channels-last.
  Tensor dw = empty({4, 1, 3, 3});
  EXPECT_TRUE(dw.contiguous(kCL).is_same(dw));
  Tensor dw_cl = dw.to(kCL);
  EXPECT_FALSE(dw_cl.is_same(dw));
  EXPECT_EQ(dw_cl.strides(), (Strides{9, 1, 3, 1}));
  EXPECT_EQ(dw_cl.suggest_memory_format(), kCL);
  EXPECT_TRUE(dw_cl.to(kCL).is_same(dw_cl));
  // A stride-0 channel dim never suggests channels-last; non-4-d tensors never are.
  EXPECT_EQ(full({1, 1, 1, 1}, 1.0).expand({2, 3, 4, 5}).suggest_memory_format(), MemoryFormat::Contiguous);
  EXPECT_FALSE(empty({3, 4, 5}).is_contiguous(kCL));
  EXPECT_EQ(empty({3, 4, 5}).suggest_memory_format(), MemoryFormat::Contiguous);
  // Empty tensors: a zero-size dim is not channels-last (PyTorch suggests contiguous).
  EXPECT_EQ(empty({0, 3, 4, 5}, {}, kCL).suggest_memory_format(), MemoryFormat::Contiguous);
}

TEST(MemoryFormat, PreserveKeepsDenseLayouts) {
  Tensor x = rnd({2, 3, 4, 5}).contiguous(kCL);
  Tensor c = x.clone();
  EXPECT_FALSE(c.shares_storage(x));
  EXPECT_EQ(c.strides(), x.strides());
  EXPECT_EQ(values(c), values(x));
  EXPECT_TRUE(x.clone(MemoryFormat::Contiguous).is_contiguous());
  EXPECT_EQ(x.to(DType::Float32).strides(), x.strides());
  EXPECT_EQ(empty_like(x).strides(), x.strides());
  EXPECT_TRUE(empty_like(x, MemoryFormat::Contiguous).is_contiguous());
  Tensor z = zeros_like(x);
  EXPECT_EQ(z.strides(), x.strides());
  EXPECT_EQ(values(z), std::vector<double>(120, 0.0));
  EXPECT_EQ(values(full_like(x, 2.5)), std::vector<double>(120, 2.5));
  EXPECT_EQ(ones_like(x).strides(), x.strides());
  // A transposed matrix is dense: its clone is transposed too (PyTorch's preserve_format).
  Tensor t = arange(6, DType::Float32).view({2, 3}).t();
  EXPECT_EQ(t.clone().strides(), (Strides{1, 3}));
  EXPECT_EQ(t.clone().to_vector<float>(), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  // Not dense: a slice of a channels-last tensor gets dense channels-last strides.
  Tensor s = x.slice(3, 0, 5, 2);  // [2, 3, 4, 3]
  EXPECT_FALSE(s.is_non_overlapping_and_dense());
  EXPECT_EQ(s.clone().strides(), (Strides{36, 1, 9, 3}));
  EXPECT_EQ(values(s.clone()), values(s));
  // Broadcast (stride 0) dims keep their row-major place.
  EXPECT_EQ(full({3, 1}, 1.0).expand({3, 4}).clone().strides(), (Strides{4, 1}));
}

TEST(MemoryFormat, ErrorsNameTheOp) {
  Tensor x = rnd({2, 3, 4});
  const auto vx = values(x);
  expect_error([] { (void)empty({2, 3}, {}, MemoryFormat::ChannelsLast); }, "empty", "rank 4");
  expect_error([] { (void)empty({2, 3, 4, 5}, {}, MemoryFormat::Preserve); }, "empty", "preserve");
  expect_error([&] { (void)x.contiguous(kCL); }, "contiguous", "rank 4");
  expect_error([&] { (void)x.contiguous(MemoryFormat::Preserve); }, "contiguous", "preserve");
  expect_error([&] { (void)x.is_contiguous(MemoryFormat::Preserve); }, "is_contiguous", "preserve");
  expect_error([&] { (void)x.to(kCL); }, "to", "rank 4");
  expect_error([&] { (void)x.clone(kCL); }, "clone", "rank 4");
  EXPECT_EQ(values(x), vx);
  EXPECT_STREQ(memory_format_name(kCL), "channels_last");
}

TEST(MemoryFormat, CopiesAcrossDevicesKeepTheLayout) {
  kiln::testing::FakeGpuScope scope;
  Tensor x = rnd({2, 3, 4, 5}, DType::Float32).contiguous(kCL);
  Tensor g = x.to(kiln::testing::kFakeGpu);
  EXPECT_EQ(g.strides(), x.strides());
  Tensor back = g.to(kCpu);
  EXPECT_EQ(back.strides(), x.strides());
  EXPECT_EQ(values(back), values(x));
  // Into an existing NCHW tensor on the other device: values land in the right places.
  Tensor nchw = empty({2, 3, 4, 5}, TensorOptions(DType::Float32).device(kiln::testing::kFakeGpu));
  nchw.copy_(x);
  EXPECT_EQ(values(nchw.to(kCpu)), values(x));
}

// ---------------------------------------------------------------- conv2d

namespace {
// The three ways a convolution becomes channels-last (input, weight or both), as PyTorch.
struct Layouts {
  bool x_cl, w_cl;
};
const Layouts kLayouts[] = {{true, false}, {false, true}, {true, true}};
Tensor fmt(const Tensor& t, bool cl) { return cl ? t.to(kCL) : t; }
}  // namespace

TEST(ConvChannelsLast, ForwardMatchesReferenceAndNchw) {
  for (DType dt : {DType::Float64, DType::Float32, DType::BFloat16, DType::Float16}) {
    for (const ConvGeometry& k : kiln::testing::conv_layout_cases()) {
      Tensor x = rnd(k.x_shape(), dt), w = rnd(k.w_shape(), dt), b = rnd({k.o}, dt);
      const auto vb = values(b);
      const auto ref = kiln::testing::reference_conv2d(k, values(x), values(w), &vb);
      const Tensor y_nchw = conv2d(x, w, b, k.s, k.p, k.d, k.g);
      EXPECT_TRUE(y_nchw.is_contiguous());
      for (const Layouts& l : kLayouts) {
        const std::string what = std::string("conv2d ") + dtype_name(dt) + (l.x_cl ? " x_cl" : "") + (l.w_cl ? " w_cl" : "");
        Tensor y = conv2d(fmt(x, l.x_cl), fmt(w, l.w_cl), b, k.s, k.p, k.d, k.g);
        ASSERT_EQ(y.shape(), k.y_shape()) << what;
        EXPECT_TRUE(y.is_contiguous(kCL)) << what;
        EXPECT_EQ(y.strides(), channels_last_strides(k.y_shape())) << what;
        expect_near(values(y), ref, tol_for(dt), what);
        expect_near(values(y), values(y_nchw), tol_for(dt), what + " vs NCHW");
        Tensor y0 = conv2d(fmt(x, l.x_cl), fmt(w, l.w_cl), Tensor(), k.s, k.p, k.d, k.g);
        expect_near(values(y0), kiln::testing::reference_conv2d(k, values(x), values(w), nullptr), tol_for(dt),
                    what + " no bias");
      }
    }
  }
}

TEST(ConvChannelsLast, BackwardOpsMatchNchw) {
  for (DType dt : {DType::Float64, DType::Float32, DType::BFloat16}) {
    for (const ConvGeometry& k : kiln::testing::conv_layout_cases()) {
      Tensor x = rnd(k.x_shape(), dt), w = rnd(k.w_shape(), dt), gy = rnd(k.y_shape(), dt);
      const double tol = dt == DType::Float64 ? 1e-11 : dt == DType::Float32 ? 1e-4 : 5e-2;
      const std::string what = std::string("backward ") + dtype_name(dt);
      Tensor gx_ref = conv2d_backward_input(gy, w, x.shape(), k.s, k.p, k.d, k.g);
      Tensor gx = conv2d_backward_input(gy.to(kCL), w, x.shape(), k.s, k.p, k.d, k.g);
      EXPECT_TRUE(gx.is_contiguous(kCL)) << what;
      expect_near(values(gx), values(gx_ref), tol, what + " input");
      auto gw_ref = conv2d_backward_weight(gy, x, w.shape(), k.s, k.p, k.d, k.g, true);
      auto gw = conv2d_backward_weight(gy.to(kCL), x.to(kCL), w.shape(), k.s, k.p, k.d, k.g, true);
      EXPECT_TRUE(gw.weight.is_contiguous(kCL)) << what;
      expect_near(values(gw.weight), values(gw_ref.weight), tol, what + " weight");
      expect_near(values(gw.bias), values(gw_ref.bias), tol, what + " bias");
    }
  }
}

// Adjoint identity on channels-last tensors, independent of kiln's NCHW path:
// <conv(x, w), gy> = <x, dX(gy)> = <w, dW(gy)> with conv from the naive reference.
TEST(ConvChannelsLast, BackwardOpsAreTheAdjoints) {
  for (const ConvGeometry& k : kiln::testing::conv_layout_cases()) {
    Tensor x = rnd(k.x_shape()), w = rnd(k.w_shape()), gy = rnd(k.y_shape());
    const auto vx = values(x), vw = values(w), vgy = values(gy);
    const auto y = kiln::testing::reference_conv2d(k, vx, vw, nullptr);
    double lhs = 0, rx = 0, rw = 0;
    for (size_t i = 0; i < y.size(); ++i) lhs += y[i] * vgy[i];
    const auto gx = values(conv2d_backward_input(gy.to(kCL), w.to(kCL), x.shape(), k.s, k.p, k.d, k.g));
    const auto gw = values(conv2d_backward_weight(gy.to(kCL), x.to(kCL), w.shape(), k.s, k.p, k.d, k.g).weight);
    for (size_t i = 0; i < vx.size(); ++i) rx += vx[i] * gx[i];
    for (size_t i = 0; i < vw.size(); ++i) rw += vw[i] * gw[i];
    EXPECT_NEAR(rx, lhs, 1e-9 * (1 + std::abs(lhs)));
    EXPECT_NEAR(rw, lhs, 1e-9 * (1 + std::abs(lhs)));
  }
}

TEST(ConvChannelsLast, TransposedConvMatchesNchw) {
  for (DType dt : {DType::Float64, DType::Float32, DType::BFloat16}) {
    Tensor x = rnd({2, 4, 5, 4}, dt), w = rnd({4, 3, 3, 3}, dt), b = rnd({6}, dt);
    const Tensor ref = conv_transpose2d(x, w, b, {2, 2}, {1, 1}, {1, 0}, 2, {1, 1});
    for (const Layouts& l : kLayouts) {
      Tensor y = conv_transpose2d(fmt(x, l.x_cl), fmt(w, l.w_cl), b, {2, 2}, {1, 1}, {1, 0}, 2, {1, 1});
      EXPECT_EQ(y.shape(), ref.shape());
      EXPECT_TRUE(y.is_contiguous(kCL));
      expect_near(values(y), values(ref), tol_for(dt), std::string("conv_transpose2d ") + dtype_name(dt));
    }
  }
}

TEST(ConvChannelsLast, AutogradGivesTheNchwGradients) {
  const ConvGeometry k = kiln::testing::conv_layout_cases()[1];
  Tensor x0 = rnd(k.x_shape()), w0 = rnd(k.w_shape()), b0 = rnd({k.o}), gy = rnd(k.y_shape());
  auto grads = [&](bool cl) {
    Tensor x = fmt(x0, cl).detach().requires_grad_(), w = fmt(w0, cl).detach().requires_grad_(),
           b = b0.detach().requires_grad_();
    Tensor y = conv2d(x, w, b, k.s, k.p, k.d, k.g);
    EXPECT_EQ(y.is_contiguous(kCL), cl);
    sum(y * gy).backward();
    return std::vector<Tensor>{x.grad(), w.grad(), b.grad()};
  };
  const auto ref = grads(false), got = grads(true);
  for (size_t i = 0; i < 3; ++i) {
    ASSERT_EQ(got[i].shape(), ref[i].shape());
    expect_near(values(got[i]), values(ref[i]), 1e-11, "grad " + std::to_string(i));
  }
  EXPECT_TRUE(got[0].is_contiguous(kCL));  // channels-last in, channels-last gradient (as PyTorch)
  // gradcheck through the channels-last path (float64 finite differences)
  kiln::testing::GradcheckOptions opts;
  opts.check_strided = false;
  EXPECT_TRUE(kiln::testing::gradcheck(
      [&](const std::vector<Tensor>& in) {
        return conv2d(in[0].contiguous(kCL), in[1].contiguous(kCL), in[2], k.s, k.p, k.d, k.g);
      },
      {kiln::testing::grad_input({1, 4, 5, 4}), kiln::testing::grad_input({6, 2, 3, 2}),
       kiln::testing::grad_input({6})},
      opts));
  EXPECT_TRUE(kiln::testing::gradcheck(
      [&](const std::vector<Tensor>& in) {
        return conv_transpose2d(in[0].contiguous(kCL), in[1], in[2], {2, 1}, {1, 0}, {1, 0}, 1, {1, 1});
      },
      {kiln::testing::grad_input({1, 3, 3, 4}), kiln::testing::grad_input({3, 2, 3, 2}),
       kiln::testing::grad_input({2})},
      opts));
}

TEST(ConvChannelsLast, FallbackDeviceKeepsTheLayout) {
  kiln::testing::FakeGpuScope scope;
  const ConvGeometry k = kiln::testing::conv_layout_cases()[0];
  Tensor x = rnd(k.x_shape(), DType::Float32), w = rnd(k.w_shape(), DType::Float32);
  // No conv kernel there: staged through the CPU. (Both operands are channels-last
  // already: the fake backend has no Copy kernel to convert them on the device.)
  Tensor y = conv2d(x.to(kCL).to(kiln::testing::kFakeGpu), w.to(kCL).to(kiln::testing::kFakeGpu), Tensor(), k.s,
                    k.p, k.d, k.g);
  EXPECT_EQ(y.device(), kiln::testing::kFakeGpu);
  EXPECT_TRUE(y.is_contiguous(kCL));
  expect_near(values(y.to(kCpu)), kiln::testing::reference_conv2d(k, values(x), values(w), nullptr), 1e-5,
              "staged");
}

// ---------------------------------------------------------------- pooling, batch_norm

TEST(PoolNormChannelsLast, ForwardMatchesNchwAndStaysChannelsLast) {
  for (DType dt : {DType::Float64, DType::Float32}) {
    Tensor x = rnd({2, 3, 7, 6}, dt), xc = x.contiguous(kCL);
    auto check = [&](const Tensor& got, const Tensor& want, const std::string& what) {
      EXPECT_TRUE(got.is_contiguous(kCL)) << what;
      EXPECT_EQ(got.shape(), want.shape()) << what;
      expect_near(values(got), values(want), 1e-12, what);
    };
    check(max_pool2d(xc, {3, 3}, {2, 2}, {1, 1}), max_pool2d(x, {3, 3}, {2, 2}, {1, 1}), "max_pool2d");
    auto [y, idx] = max_pool2d_with_indices(xc, {2, 2});
    auto [y_ref, idx_ref] = max_pool2d_with_indices(x, {2, 2});
    check(y, y_ref, "max_pool2d values");
    EXPECT_EQ(idx.contiguous().to_vector<int64_t>(), idx_ref.to_vector<int64_t>());
    check(avg_pool2d(xc, {2, 3}, {1, 2}, {1, 1}), avg_pool2d(x, {2, 3}, {1, 2}, {1, 1}), "avg_pool2d");
    check(adaptive_avg_pool2d(xc, {3, 2}), adaptive_avg_pool2d(x, {3, 2}), "adaptive_avg_pool2d");
    Tensor w = rnd({3}, dt), b = rnd({3}, dt);
    Tensor rm = zeros({3}, dt), rv = ones({3}, dt), rm2 = zeros({3}, dt), rv2 = ones({3}, dt);
    check(batch_norm(xc, rm, rv, w, b, true, 0.1, 1e-5), batch_norm(x, rm2, rv2, w, b, true, 0.1, 1e-5),
          "batch_norm train");
    expect_near(values(rm), values(rm2), 1e-12, "running_mean");
    expect_near(values(rv), values(rv2), 1e-12, "running_var");
    check(batch_norm(xc, rm, rv, w, b, false, 0.1, 1e-5), batch_norm(x, rm, rv, w, b, false, 0.1, 1e-5),
          "batch_norm eval");
  }
}

// batch_norm(x) by hand per channel, then max_pool2d: gradients through the
// channels-last path equal the NCHW ones.
TEST(PoolNormChannelsLast, BackwardMatchesNchw) {
  Tensor x0 = rnd({2, 3, 6, 5}), w0 = rnd({3}), gy = rnd({2, 3, 2, 2});
  auto grads = [&](bool cl) {
    Tensor x = fmt(x0, cl).detach().requires_grad_(), w = w0.detach().requires_grad_();
    Tensor h = batch_norm(x, Tensor(), Tensor(), w, Tensor(), true, 0.1, 1e-5);
    Tensor y = avg_pool2d(max_pool2d(h, {2, 2}, {1, 1}), {2, 2}, {2, 2});
    EXPECT_EQ(y.is_contiguous(kCL), cl);
    sum(y * gy).backward();
    return std::vector<Tensor>{x.grad(), w.grad()};
  };
  const auto ref = grads(false), got = grads(true);
  for (size_t i = 0; i < 2; ++i) expect_near(values(got[i]), values(ref[i]), 1e-11, "grad " + std::to_string(i));
  EXPECT_TRUE(got[0].is_contiguous(kCL));
  // the pool backward ops alone: channels-last grad_output, channels-last grad_input
  Tensor gp = rnd({2, 3, 3, 2}).to(kCL);
  Tensor g_avg = avg_pool2d_backward(gp, {2, 3, 6, 5}, {2, 2}, {2, 2}, {0, 0}, false, true);
  EXPECT_TRUE(g_avg.is_contiguous(kCL));
  expect_near(values(g_avg), values(avg_pool2d_backward(gp.contiguous(), {2, 3, 6, 5}, {2, 2}, {2, 2}, {0, 0}, false, true)),
              1e-12, "avg_pool2d_backward");
  auto [py, pidx] = max_pool2d_with_indices(x0.to(kCL), {2, 2});
  Tensor g_max = max_pool2d_backward(gp, pidx, x0.shape());
  EXPECT_TRUE(g_max.is_contiguous(kCL));
  expect_near(values(g_max), values(max_pool2d_backward(gp.contiguous(), pidx.contiguous(), x0.shape())), 1e-12,
              "max_pool2d_backward");
  // batch_norm's formula by hand for the first channel's mean: mean of x over N, H, W
  double m = 0;
  const auto vx = values(x0);
  for (int n = 0; n < 2; ++n)
    for (int q = 0; q < 30; ++q) m += vx[size_t(n * 90 + q)];
  auto r = batch_norm_train(x0.contiguous(kCL), Tensor(), Tensor(), 1e-5);
  EXPECT_NEAR(r.batch_mean.at({0}).to_double(), m / 60, 1e-12);
  EXPECT_TRUE(r.output.is_contiguous(kCL));
}

// ---------------------------------------------------------------- elementwise ops

// Results take the layout of the first operand of the result's shape; values by hand.
TEST(ElementwiseChannelsLast, KeepTheLayoutAndTheValues) {
  Tensor x = arange(120, DType::Float32).view({2, 3, 4, 5}) - 60.0;  // x[n,c,h,w] = n*60 + c*20 + h*5 + w - 60
  Tensor xc = x.to(kCL);
  Tensor bias = tensor<float>({1, 2, 3}).view({1, 3, 1, 1});
  auto at = [](int n, int c, int h, int w) { return double(n * 60 + c * 20 + h * 5 + w - 60); };
  auto check = [&](const Tensor& got, bool cl, const std::function<double(double, int)>& f, const char* what) {
    EXPECT_EQ(got.is_contiguous(kCL) && !got.is_contiguous(), cl) << what;
    const auto v = values(got);
    for (int n = 0; n < 2; ++n)
      for (int c = 0; c < 3; ++c)
        for (int h = 0; h < 4; ++h)
          for (int w = 0; w < 5; ++w)
            ASSERT_NEAR(v[size_t(((n * 3 + c) * 4 + h) * 5 + w)], f(at(n, c, h, w), c), 1e-6) << what;
  };
  check(relu(xc), true, [](double v, int) { return v > 0 ? v : 0.0; }, "relu");
  check(xc + bias, true, [](double v, int c) { return v + c + 1; }, "x_cl + bias");
  check(bias + xc, true, [](double v, int c) { return v + c + 1; }, "bias + x_cl");
  check(xc * xc, true, [](double v, int) { return v * v; }, "x_cl * x_cl");
  check(xc - x, true, [](double, int) { return 0.0; }, "x_cl - x");
  check(x - xc, false, [](double, int) { return 0.0; }, "x - x_cl (first operand's layout)");
  check(xc * 2.0, true, [](double v, int) { return 2 * v; }, "x_cl * scalar");
  check(xc.to(DType::Float64), true, [](double v, int) { return v; }, "to(float64)");
  check(where(gt(xc, 0.0), xc, bias), true, [](double v, int c) { return v > 0 ? v : c + 1.0; }, "where");
  // in place: the destination keeps its layout
  Tensor ip = xc.clone();
  ip.add_(bias).mul_(2.0);
  check(ip, true, [](double v, int c) { return 2 * (v + c + 1); }, "add_ mul_");
  ip = xc.clone();
  relu_(ip);
  check(ip, true, [](double v, int) { return v > 0 ? v : 0.0; }, "relu_");
  ip.clamp_(1.0, 30.0);
  check(ip, true, [](double v, int) { return v < 1 ? 1.0 : v > 30 ? 30.0 : v; }, "clamp_");
  // autograd through them: d/dx sum(relu(x) * x) = 2x where x > 0, else 0
  Tensor xg = xc.detach().requires_grad_();
  sum(relu(xg) * xg).backward();
  check(xg.grad(), true, [](double v, int) { return v > 0 ? 2 * v : 0.0; }, "grad");
}

// PyTorch's layout contract: a leaf's .grad has the leaf's strides, whatever layout the
// backward produced.
TEST(MemoryFormat, GradFollowsTheLeafsLayout) {
  const ConvGeometry k = kiln::testing::conv_layout_cases()[0];
  Tensor x = rnd(k.x_shape()), gy = rnd(k.y_shape());
  for (bool w_cl : {false, true}) {
    Tensor w = fmt(rnd(k.w_shape()), w_cl).detach().requires_grad_();
    sum(conv2d(x.to(kCL), w, Tensor(), k.s, k.p, k.d, k.g) * gy).backward();  // runs channels-last
    EXPECT_EQ(w.grad().strides(), w.strides()) << w_cl;
    expect_near(values(w.grad()), values(conv2d_backward_weight(gy, x, w.shape(), k.s, k.p, k.d, k.g).weight), 1e-11,
                "w.grad");
  }
  // a transposed gradient for a row-major leaf: d/dp sum(p^T * c) = c^T, stored row-major
  Tensor p = rnd({3, 4}).requires_grad_(), c = rnd({4, 3});
  sum(p.t() * c).backward();
  EXPECT_TRUE(p.grad().is_contiguous());
  EXPECT_EQ(values(p.grad()), values(c.t()));
}

// cat keeps channels-last when every part is (PyTorch's rule), along every dim.
TEST(CatChannelsLast, KeepsTheLayoutWhenEveryPartHasIt) {
  Tensor a = rnd({2, 3, 4, 5}), b = rnd({2, 3, 4, 5});
  for (int64_t d = 0; d < 4; ++d) {
    Tensor want = cat({a, b}, d);  // NCHW
    Tensor got = cat({a.to(kCL), b.to(kCL)}, d);
    EXPECT_TRUE(got.is_contiguous(kCL)) << d;
    EXPECT_EQ(values(got), values(want)) << d;
    // by hand: the second half along d is b
    const Tensor second = got.narrow(d, a.size(d), b.size(d));
    EXPECT_EQ(values(second), values(b)) << d;
    Tensor mixed = cat({a.to(kCL), b}, d);
    EXPECT_TRUE(mixed.is_contiguous()) << d;
    EXPECT_EQ(values(mixed), values(want)) << d;
  }
}

// ---------------------------------------------------------------- modules

// module.to(channels_last) restrides the conv weight; a training step (conv, batch_norm,
// relu, pool, SGD with momentum) then gives the NCHW model's results, and stays NHWC.
TEST(ModuleChannelsLast, TrainingStepMatchesNchw) {
  nn::Conv2dImpl a(3, 4, 3, 1, 1), b(3, 4, 3, 1, 1);
  nn::BatchNorm2dImpl bn_a(4), bn_b(4);
  {
    NoGradGuard no_grad;
    b.weight.copy_(a.weight);
    b.bias.copy_(a.bias);
  }
  b.to(kCL);
  bn_b.to(kCL);  // nothing 4-d in it: unchanged
  EXPECT_TRUE(b.weight.is_contiguous(kCL) && !b.weight.is_contiguous());
  EXPECT_TRUE(b.bias.is_contiguous());
  EXPECT_EQ(values(b.weight), values(a.weight));
  optim::SGD opt_a(a.parameters(), {.lr = 0.1, .momentum = 0.9}), opt_b(b.parameters(), {.lr = 0.1, .momentum = 0.9});
  Tensor x = rnd({2, 3, 6, 6}, DType::Float32), t = rnd({2, 4, 3, 3}, DType::Float32);
  for (int step = 0; step < 2; ++step) {
    auto run = [&](nn::Conv2dImpl& conv, nn::BatchNorm2dImpl& bn, optim::SGD& opt, const Tensor& in) {
      opt.zero_grad();
      Tensor y = max_pool2d(relu(bn.forward(conv.forward(in))), {2, 2});
      Tensor loss = sum((y - t) * (y - t));
      loss.backward();
      opt.step();
      return y;
    };
    Tensor ya = run(a, bn_a, opt_a, x), yb = run(b, bn_b, opt_b, x.to(kCL));
    EXPECT_TRUE(yb.is_contiguous(kCL));
    expect_near(values(yb), values(ya), 1e-5, "output");
    expect_near(values(b.weight), values(a.weight), 1e-5, "weight after step");
    expect_near(values(b.weight.grad()), values(a.weight.grad()), 1e-4, "weight grad");
  }
  EXPECT_TRUE(b.weight.is_contiguous(kCL));  // the optimizer updated it in place
  b.to(MemoryFormat::Contiguous);
  EXPECT_TRUE(b.weight.is_contiguous());
  expect_near(values(b.weight), values(a.weight), 1e-5, "back to NCHW");
}
