// conv2d, its backward ops, conv_transpose2d and the pools against naive double loops
// written from the definitions; every error path names the op and leaves inputs unchanged.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "kiln/generator.h"
#include "kiln/ops.h"
#include "kiln/ops_backward.h"
#include "kiln/nn/init.h"
#include "kiln/optim.h"
#include "tests/support/conv_reference.h"
#include "tests/support/fake_backend.h"
#include "tests/support/expect_error.h"

using kiln::testing::expect_error;

using namespace kiln;

namespace {

std::vector<double> values(const Tensor& t) { return t.to(DType::Float64).contiguous().to_vector<double>(); }

Tensor rnd(const Shape& s, DType dt = DType::Float64) {
  static Generator gen(4321);
  return randn(s, TensorOptions(DType::Float64).device(kCpu), &gen).to(dt);
}

void expect_near(const std::vector<double>& got, const std::vector<double>& want, double tol,
                 const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], tol * (1 + std::abs(want[i]))) << what << " at " << i;
}


using ConvCase = kiln::testing::ConvGeometry;

// The shared naive reference (tests/support/conv_reference.h); oh and ow as the caller
// computed them, which must agree with the geometry's.
std::vector<double> ref_conv(const ConvCase& k, const std::vector<double>& x, const std::vector<double>& w,
                             const std::vector<double>* b, int64_t oh, int64_t ow) {
  EXPECT_EQ(oh, k.oh());
  EXPECT_EQ(ow, k.ow());
  return kiln::testing::reference_conv2d(k, x, w, b);
}

int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) { return (in + 2 * p - d * (k - 1) - 1) / s + 1; }

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

const std::vector<ConvCase> kConvCases = {
    {2, 3, 7, 6, 4, 3, 3, 1, {1, 1}, {1, 1}, {1, 1}},
    {1, 4, 9, 8, 6, 3, 2, 2, {2, 1}, {1, 0}, {1, 2}},
    {2, 4, 8, 8, 4, 3, 3, 4, {2, 2}, {2, 1}, {2, 1}},  // depthwise
    {1, 2, 5, 5, 3, 1, 1, 1, {1, 1}, {0, 0}, {1, 1}},
};

}  // namespace

TEST(Conv2d, ForwardMatchesDefinition) {
  for (DType dt : {DType::Float64, DType::Float32, DType::BFloat16, DType::Float16}) {
    for (const ConvCase& k : kConvCases) {
      Tensor x = rnd({k.n, k.c, k.h, k.w}, dt), w = rnd({k.o, k.c / k.g, k.kh, k.kw}, dt), b = rnd({k.o}, dt);
      const int64_t oh = out_size(k.h, k.kh, k.s[0], k.p[0], k.d[0]), ow = out_size(k.w, k.kw, k.s[1], k.p[1], k.d[1]);
      Tensor y = conv2d(x, w, b, k.s, k.p, k.d, k.g);
      ASSERT_EQ(y.shape(), (Shape{k.n, k.o, oh, ow}));
      EXPECT_EQ(y.dtype(), dt);
      const auto vb = values(b);
      const double tol = dt == DType::Float64 ? 1e-12 : dt == DType::Float32 ? 1e-5 : dt == DType::Float16 ? 4e-3 : 3e-2;
      expect_near(values(y), ref_conv(k, values(x), values(w), &vb, oh, ow), tol, std::string("conv2d ") + dtype_name(dt));
      Tensor y0 = conv2d(x, w, Tensor(), k.s, k.p, k.d, k.g);
      expect_near(values(y0), ref_conv(k, values(x), values(w), nullptr, oh, ow), tol, "conv2d no bias");
    }
  }
}

// The CPU keeps conv weights reordered into oneDNN's layout across calls, keyed on the
// storage's version counter: every way a weight changes in place (in-place ops, copy_,
// the fused Adam step, nn::init) must show in the next convolution.
TEST(Conv2d, ReorderedWeightsFollowInPlaceUpdates) {
  const ConvCase k{2, 16, 10, 10, 32, 3, 3, 1, {1, 1}, {1, 1}, {1, 1}};
  Tensor x = rnd({k.n, k.c, k.h, k.w}, DType::Float32);
  Tensor w = rnd({k.o, k.c, k.kh, k.kw}, DType::Float32);
  auto check = [&](const char* after) {
    expect_near(values(conv2d(x, w, Tensor(), k.s, k.p)), ref_conv(k, values(x), values(w), nullptr, 10, 10), 1e-4,
                after);
    // conv_transpose2d reads the same weight through the backward-data layout
    Tensor gy = rnd({k.n, k.o, 10, 10}, DType::Float32);
    Tensor gx = conv2d_backward_input(gy, w, x.shape(), k.s, k.p, k.d, k.g);
    double lhs = 0, rhs = 0;  // <conv(x, w), gy> = <x, dX(gy)>
    const auto vy = ref_conv(k, values(x), values(w), nullptr, 10, 10), vgy = values(gy), vx = values(x),
               vgx = values(gx);
    for (size_t i = 0; i < vy.size(); ++i) lhs += vy[i] * vgy[i];
    for (size_t i = 0; i < vx.size(); ++i) rhs += vx[i] * vgx[i];
    EXPECT_NEAR(lhs, rhs, 1e-4 * (1 + std::abs(lhs))) << after;
  };
  check("first call");
  w.mul_(-0.5);
  check("mul_");
  w.copy_(rnd(w.shape(), DType::Float32));
  check("copy_");
  w.requires_grad_(true);
  optim::Adam opt({w}, {.lr = 0.5});
  conv2d(x, w, Tensor(), k.s, k.p).sum().backward();
  opt.step();
  w.requires_grad_(false);
  check("fused Adam step");
  nn::init::normal_(w, 0, 2);
  check("nn::init::normal_");
}

TEST(Conv2d, UnbatchedAndStridedInput) {
  Tensor x = rnd({3, 6, 6}), w = rnd({2, 3, 3, 3});
  Tensor y = conv2d(x, w, Tensor(), {1, 1}, {1, 1});
  ASSERT_EQ(y.shape(), (Shape{2, 6, 6}));
  ConvCase k{1, 3, 6, 6, 2, 3, 3, 1, {1, 1}, {1, 1}, {1, 1}};
  expect_near(values(y), ref_conv(k, values(x), values(w), nullptr, 6, 6), 1e-12, "unbatched");
  Tensor xs = rnd({1, 3, 12, 6}).slice(2, 0, 12, 2);  // non-contiguous input
  expect_near(values(conv2d(xs, w, Tensor(), {1, 1}, {1, 1})), ref_conv(k, values(xs), values(w), nullptr, 6, 6),
              1e-12, "strided");
}

// The backward ops against the definition of the adjoint: <conv(x, w), gy> = <x, dX(gy)>
// = <w, dW(gy)> for every x, w, gy; and grad_bias = sum of gy per channel.
TEST(Conv2d, BackwardOpsAreTheAdjoints) {
  for (DType dt : {DType::Float64, DType::Float32, DType::BFloat16}) {
    for (const ConvCase& k : kConvCases) {
      const int64_t oh = out_size(k.h, k.kh, k.s[0], k.p[0], k.d[0]), ow = out_size(k.w, k.kw, k.s[1], k.p[1], k.d[1]);
      Tensor x = rnd({k.n, k.c, k.h, k.w}, dt), w = rnd({k.o, k.c / k.g, k.kh, k.kw}, dt),
             gy = rnd({k.n, k.o, oh, ow}, dt);
      const auto vx = values(x), vw = values(w), vgy = values(gy);
      const double lhs = dot(ref_conv(k, vx, vw, nullptr, oh, ow), vgy);
      const double tol = dt == DType::Float64 ? 1e-10 : dt == DType::Float32 ? 1e-4 : 5e-2;
      Tensor gx = conv2d_backward_input(gy, w, x.shape(), k.s, k.p, k.d, k.g);
      ASSERT_EQ(gx.shape(), x.shape());
      EXPECT_NEAR(dot(vx, values(gx)), lhs, tol * (1 + std::abs(lhs))) << dtype_name(dt);
      Conv2dWeightGrads gw = conv2d_backward_weight(gy, x, w.shape(), k.s, k.p, k.d, k.g, true);
      ASSERT_EQ(gw.weight.shape(), w.shape());
      EXPECT_NEAR(dot(vw, values(gw.weight)), lhs, tol * (1 + std::abs(lhs))) << dtype_name(dt);
      ASSERT_EQ(gw.bias.shape(), (Shape{k.o}));
      const auto vgb = values(gw.bias);
      for (int64_t o = 0; o < k.o; ++o) {
        double s = 0;
        for (int64_t n = 0; n < k.n; ++n)
          for (int64_t q = 0; q < oh * ow; ++q) s += vgy[size_t((n * k.o + o) * oh * ow + q)];
        EXPECT_NEAR(vgb[size_t(o)], s, tol * (1 + std::abs(s)) * 4);
      }
      // each element of grad_x directly: dX[n,c,h,w] = sum over outputs that read x[n,c,h,w]
      if (dt == DType::Float64) {
        std::vector<double> ref(vx.size(), 0.0);
        const int64_t cg = k.c / k.g, og = k.o / k.g;
        for (int64_t n = 0; n < k.n; ++n)
          for (int64_t o = 0; o < k.o; ++o)
            for (int64_t i = 0; i < oh; ++i)
              for (int64_t j = 0; j < ow; ++j)
                for (int64_t c = 0; c < cg; ++c)
                  for (int64_t u = 0; u < k.kh; ++u)
                    for (int64_t v = 0; v < k.kw; ++v) {
                      const int64_t ih = i * k.s[0] - k.p[0] + u * k.d[0], iw = j * k.s[1] - k.p[1] + v * k.d[1];
                      if (ih < 0 || ih >= k.h || iw < 0 || iw >= k.w) continue;
                      ref[size_t(((n * k.c + (o / og) * cg + c) * k.h + ih) * k.w + iw)] +=
                          vgy[size_t(((n * k.o + o) * oh + i) * ow + j)] * vw[size_t(((o * cg + c) * k.kh + u) * k.kw + v)];
                    }
        expect_near(values(gx), ref, 1e-12, "grad_x elementwise");
      }
    }
  }
}

// y[n, co, i*s - p + u*d, j*s - p + v*d] += x[n, ci, i, j] * w[ci, co % cog, u, v] over ci in co's group
TEST(ConvTranspose2d, MatchesScatterDefinition) {
  struct Case { int64_t n, cin, h, w, cog, kh, kw, g; Pair s, p, op, d; };
  const std::vector<Case> cases = {
      {2, 3, 4, 5, 2, 3, 3, 1, {2, 2}, {1, 1}, {1, 0}, {1, 1}},
      {1, 4, 3, 3, 3, 2, 3, 2, {3, 2}, {0, 1}, {2, 1}, {1, 2}},
      {1, 2, 5, 4, 1, 3, 3, 1, {1, 1}, {0, 0}, {0, 0}, {2, 2}},
  };
  for (DType dt : {DType::Float64, DType::Float32, DType::BFloat16}) {
    for (const Case& k : cases) {
      Tensor x = rnd({k.n, k.cin, k.h, k.w}, dt), w = rnd({k.cin, k.cog, k.kh, k.kw}, dt), b = rnd({k.cog * k.g}, dt);
      const int64_t cout = k.cog * k.g;
      const int64_t oh = (k.h - 1) * k.s[0] - 2 * k.p[0] + k.d[0] * (k.kh - 1) + k.op[0] + 1;
      const int64_t ow = (k.w - 1) * k.s[1] - 2 * k.p[1] + k.d[1] * (k.kw - 1) + k.op[1] + 1;
      Tensor y = conv_transpose2d(x, w, b, k.s, k.p, k.op, k.g, k.d);
      ASSERT_EQ(y.shape(), (Shape{k.n, cout, oh, ow}));
      const auto vx = values(x), vw = values(w), vb = values(b);
      std::vector<double> ref(size_t(k.n * cout * oh * ow));
      for (int64_t n = 0; n < k.n; ++n)
        for (int64_t co = 0; co < cout; ++co)
          for (int64_t q = 0; q < oh * ow; ++q) ref[size_t((n * cout + co) * oh * ow + q)] = vb[size_t(co)];
      const int64_t cig = k.cin / k.g;
      for (int64_t n = 0; n < k.n; ++n)
        for (int64_t ci = 0; ci < k.cin; ++ci)
          for (int64_t i = 0; i < k.h; ++i)
            for (int64_t j = 0; j < k.w; ++j)
              for (int64_t col = 0; col < k.cog; ++col)
                for (int64_t u = 0; u < k.kh; ++u)
                  for (int64_t v = 0; v < k.kw; ++v) {
                    const int64_t yh = i * k.s[0] - k.p[0] + u * k.d[0], yw = j * k.s[1] - k.p[1] + v * k.d[1];
                    if (yh < 0 || yh >= oh || yw < 0 || yw >= ow) continue;
                    const int64_t co = (ci / cig) * k.cog + col;
                    ref[size_t(((n * cout + co) * oh + yh) * ow + yw)] +=
                        vx[size_t(((n * k.cin + ci) * k.h + i) * k.w + j)] * vw[size_t(((ci * k.cog + col) * k.kh + u) * k.kw + v)];
                  }
      const double tol = dt == DType::Float64 ? 1e-12 : dt == DType::Float32 ? 1e-5 : 3e-2;
      expect_near(values(y), ref, tol, std::string("conv_transpose2d ") + dtype_name(dt));

      // its backward helpers are adjoints too: <y0(x, w), gy> = <x, dX(gy)> = <w, dW(gy)>
      if (dt == DType::Float64) {
        Tensor y0 = conv_transpose2d(x, w, Tensor(), k.s, k.p, k.op, k.g, k.d);
        Tensor gy = rnd(y0.shape());
        const double lhs = dot(values(y0), values(gy));
        EXPECT_NEAR(dot(vx, values(conv_transpose2d_backward_input(gy, w, k.s, k.p, k.g, k.d))), lhs, 1e-9);
        EXPECT_NEAR(dot(vw, values(conv_transpose2d_backward_weight(gy, x, w.shape(), k.s, k.p, k.g, k.d))), lhs, 1e-9);
      }
    }
  }
}

TEST(ConvErrors, EveryPathNamesOpAndLeavesInputs) {
  Tensor x = rnd({1, 4, 5, 5}, DType::Float32), w = rnd({6, 4, 3, 3}, DType::Float32), b = rnd({6}, DType::Float32);
  const auto vx = values(x), vw = values(w);
  expect_error([&] { conv2d(rnd({4, 5}, DType::Float32), w); }, "conv2d", "4-d input");
  expect_error([&] { conv2d(x, rnd({6, 4, 3}, DType::Float32)); }, "conv2d", "4-d weight");
  expect_error([&] { conv2d(x, rnd({6, 3, 3, 3}, DType::Float32)); }, "conv2d", "channels");
  expect_error([&] { conv2d(x, rnd({6, 2, 3, 3}, DType::Float32), Tensor(), {1, 1}, {0, 0}, {1, 1}, 3); }, "conv2d",
               "channels");
  expect_error([&] { conv2d(rnd({1, 6, 5, 5}, DType::Float32), rnd({4, 2, 3, 3}, DType::Float32), Tensor(), {1, 1}, {0, 0}, {1, 1}, 3); },
               "conv2d", "divisible by groups");
  expect_error([&] { conv2d(x, w, Tensor(), {0, 1}); }, "conv2d", "stride");
  expect_error([&] { conv2d(x, w, Tensor(), {-1, 1}); }, "conv2d", "stride");
  expect_error([&] { conv2d(x, w, Tensor(), {1, 1}, {-1, 0}); }, "conv2d", "padding");
  expect_error([&] { conv2d(x, w, Tensor(), {1, 1}, {0, 0}, {0, 1}); }, "conv2d", "dilation");
  expect_error([&] { conv2d(x, w, Tensor(), {1, 1}, {0, 0}, {1, 1}, 0); }, "conv2d", "groups");
  expect_error([&] { conv2d(x, rnd({6, 4, 7, 3}, DType::Float32)); }, "conv2d", "larger than the padded input");
  expect_error([&] { conv2d(x, w, Tensor(), {1, 1}, {0, 0}, {3, 1}); }, "conv2d", "larger than the padded input");
  expect_error([&] { conv2d(x, w, rnd({5}, DType::Float32)); }, "conv2d", "bias");
  expect_error([&] { conv2d(x, w.to(DType::Float64)); }, "conv2d", "dtype");
  expect_error([&] { conv2d(x, w, b.to(DType::Float64)); }, "conv2d", "dtype");
  expect_error([&] { conv2d(x.to(DType::Int64), w.to(DType::Int64)); }, "conv2d", "floating");
  expect_error([&] { conv2d(Tensor(), w); }, "conv2d", "undefined");

  Tensor wt = rnd({4, 3, 3, 3}, DType::Float32);
  expect_error([&] { conv_transpose2d(x, rnd({3, 3, 3, 3}, DType::Float32)); }, "conv_transpose2d", "channels");
  expect_error([&] { conv_transpose2d(x, wt, Tensor(), {1, 1}, {0, 0}, {1, 0}); }, "conv_transpose2d", "output_padding");
  expect_error([&] { conv_transpose2d(x, wt, Tensor(), {2, 2}, {0, 0}, {-1, 0}); }, "conv_transpose2d", "output_padding");
  expect_error([&] { conv_transpose2d(x, wt, Tensor(), {1, 1}, {0, 0}, {0, 0}, 3); }, "conv_transpose2d", "divisible");
  expect_error([&] { conv_transpose2d(x, wt, Tensor(), {1, 1}, {5, 5}); }, "conv_transpose2d", "not positive");
  expect_error([&] { conv_transpose2d(x, wt, rnd({4}, DType::Float32)); }, "conv_transpose2d", "bias");
  expect_error([&] { conv_transpose2d(x, wt, Tensor(), {0, 1}); }, "conv_transpose2d", "stride");
  expect_error([&] { conv_transpose2d(rnd({5}, DType::Float32), wt); }, "conv_transpose2d", "4-d input");

  Tensor gy = rnd({1, 6, 3, 3}, DType::Float32);
  expect_error([&] { conv2d_backward_input(gy, w, {1, 4, 6, 6}); }, "conv2d_backward_input", "does not match");
  expect_error([&] { conv2d_backward_input(gy, w, {1, 4, 5}); }, "conv2d_backward_input", "4-d");
  expect_error([&] { conv2d_backward_input(rnd({6, 3, 3}, DType::Float32), w, {1, 4, 5, 5}); }, "conv2d_backward_input", "4-d");
  expect_error([&] { conv2d_backward_weight(gy, x, {6, 4, 2, 2}); }, "conv2d_backward_weight", "does not match");
  expect_error([&] { conv2d_backward_weight(gy, x.to(DType::Float64), w.shape()); }, "conv2d_backward_weight", "dtype");
  EXPECT_EQ(values(x), vx);
  EXPECT_EQ(values(w), vw);
}

// ------------------------------------------------------------------ pools

namespace {

struct PoolCase {
  int64_t n, c, h, w;
  Pair k, s, p, d;
  bool ceil;
};

int64_t pool_out(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, bool ceil) {
  const double span = double(in + 2 * p - d * (k - 1) - 1) / double(s);
  int64_t o = int64_t(ceil ? std::ceil(span) : std::floor(span)) + 1;
  if (ceil && (o - 1) * s >= in + p) --o;  // the last window must start inside the input or left padding
  return o;
}

// max over each window's in-input positions; first maximum wins, a NaN beats every number
// (PyTorch propagates NaN); index = h * W + w
void ref_max_pool(const PoolCase& q, const std::vector<double>& x, int64_t oh, int64_t ow, std::vector<double>& y,
                  std::vector<int64_t>& idx) {
  y.assign(size_t(q.n * q.c * oh * ow), 0);
  idx.assign(y.size(), -1);
  for (int64_t pl = 0; pl < q.n * q.c; ++pl)
    for (int64_t i = 0; i < oh; ++i)
      for (int64_t j = 0; j < ow; ++j) {
        double best = -INFINITY;
        int64_t arg = -1;
        for (int64_t u = 0; u < q.k[0]; ++u)
          for (int64_t v = 0; v < q.k[1]; ++v) {
            const int64_t r = i * q.s[0] - q.p[0] + u * q.d[0], c = j * q.s[1] - q.p[1] + v * q.d[1];
            if (r < 0 || r >= q.h || c < 0 || c >= q.w) continue;
            const double val = x[size_t(pl * q.h * q.w + r * q.w + c)];
            if (arg < 0 || val > best || (std::isnan(val) && !std::isnan(best))) best = val, arg = r * q.w + c;
          }
        y[size_t((pl * oh + i) * ow + j)] = best;
        idx[size_t((pl * oh + i) * ow + j)] = arg;
      }
}

// PyTorch's average: window clipped to the padded input for the divisor (count_include_pad),
// to the input for the sum and for the divisor otherwise
std::vector<double> ref_avg_pool(const PoolCase& q, const std::vector<double>& x, int64_t oh, int64_t ow, bool incl) {
  std::vector<double> y(size_t(q.n * q.c * oh * ow));
  for (int64_t pl = 0; pl < q.n * q.c; ++pl)
    for (int64_t i = 0; i < oh; ++i)
      for (int64_t j = 0; j < ow; ++j) {
        const int64_t r0 = i * q.s[0] - q.p[0], c0 = j * q.s[1] - q.p[1];
        const int64_t r1 = std::min(r0 + q.k[0], q.h + q.p[0]), c1 = std::min(c0 + q.k[1], q.w + q.p[1]);
        double s = 0;
        int64_t inside = 0;
        for (int64_t r = r0; r < r1; ++r)
          for (int64_t c = c0; c < c1; ++c)
            if (r >= 0 && r < q.h && c >= 0 && c < q.w) s += x[size_t(pl * q.h * q.w + r * q.w + c)], ++inside;
        y[size_t((pl * oh + i) * ow + j)] = s / double(incl ? (r1 - r0) * (c1 - c0) : inside);
      }
  return y;
}

const std::vector<PoolCase> kPoolCases = {
    {2, 3, 6, 6, {3, 3}, {2, 2}, {1, 1}, {1, 1}, true},   // ceil: the last window passes the padding
    {2, 3, 6, 6, {3, 3}, {2, 2}, {1, 1}, {1, 1}, false},
    {1, 2, 7, 9, {2, 3}, {2, 1}, {0, 1}, {1, 1}, false},
    {1, 2, 9, 8, {3, 2}, {1, 2}, {1, 1}, {2, 1}, true},   // dilation (max only)
    {1, 1, 5, 5, {2, 2}, {2, 2}, {0, 0}, {1, 1}, true},
    {1, 2, 6, 9, {2, 2}, {2, 2}, {0, 0}, {1, 1}, false},  // MaxPool2d(2): float32's own training kernel
};

}  // namespace

TEST(MaxPool2d, ValuesAndIndicesMatchDefinition) {
  for (DType dt : {DType::Float64, DType::Float32, DType::BFloat16, DType::Float16}) {
    for (const PoolCase& q : kPoolCases) {
      Tensor x = rnd({q.n, q.c, q.h, q.w}, dt);
      const int64_t oh = pool_out(q.h, q.k[0], q.s[0], q.p[0], q.d[0], q.ceil);
      const int64_t ow = pool_out(q.w, q.k[1], q.s[1], q.p[1], q.d[1], q.ceil);
      std::vector<double> ry;
      std::vector<int64_t> ridx;
      ref_max_pool(q, values(x), oh, ow, ry, ridx);
      auto [y, idx] = max_pool2d_with_indices(x, q.k, q.s, q.p, q.d, q.ceil);
      ASSERT_EQ(y.shape(), (Shape{q.n, q.c, oh, ow}));
      EXPECT_EQ(idx.dtype(), DType::Int64);
      expect_near(values(y), ry, 0, "max_pool2d values");
      EXPECT_EQ(idx.to_vector<int64_t>(), ridx);
      expect_near(values(max_pool2d(x, q.k, q.s, q.p, q.d, q.ceil)), ry, 0, "max_pool2d (oneDNN path)");

      // backward: each grad goes to its window's argmax (summed where windows share one)
      Tensor gy = rnd(y.shape(), dt);
      const auto vgy = values(gy);
      std::vector<double> want(size_t(q.n * q.c * q.h * q.w), 0.0);
      for (int64_t pl = 0; pl < q.n * q.c; ++pl)
        for (int64_t o = 0; o < oh * ow; ++o)
          want[size_t(pl * q.h * q.w + ridx[size_t(pl * oh * ow + o)])] += vgy[size_t(pl * oh * ow + o)];
      Tensor gx = max_pool2d_backward(gy, idx, x.shape());
      ASSERT_EQ(gx.shape(), x.shape());
      expect_near(values(gx), want, dt == DType::Float64 ? 1e-12 : 2e-2, "max_pool2d_backward");
    }
  }
}

TEST(MaxPool2d, DefaultStrideUnbatchedAndNaN) {
  Tensor x = rnd({2, 4, 4});
  Tensor y = max_pool2d(x, {2, 2});  // stride = kernel
  ASSERT_EQ(y.shape(), (Shape{2, 2, 2}));
  const auto vx = values(x), vy = values(y);
  for (int64_t c = 0; c < 2; ++c)
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t j = 0; j < 2; ++j) {
        double m = -INFINITY;
        for (int64_t u = 0; u < 2; ++u)
          for (int64_t v = 0; v < 2; ++v) m = std::max(m, vx[size_t(c * 16 + (2 * i + u) * 4 + 2 * j + v)]);
        EXPECT_EQ(vy[size_t(c * 4 + i * 2 + j)], m);
      }
  Tensor n = tensor<double>({1, std::nan(""), 3, 4}, {1, 1, 2, 2});
  auto [ny, ni] = max_pool2d_with_indices(n, {2, 2});
  EXPECT_TRUE(std::isnan(ny.item<double>()));  // NaN propagates, as in PyTorch
  EXPECT_EQ(ni.item<int64_t>(), 1);
}

// oneDNN's max pooling (the path without indices for float32/bfloat16) drops NaN; kiln must
// not: every window holding a NaN gives NaN, with and without indices, in every dtype.
TEST(MaxPool2d, NaNInAWindowGivesNaN) {
  for (DType dt : {DType::Float32, DType::BFloat16, DType::Float64, DType::Float16}) {
    for (const PoolCase& q : kPoolCases) {
      std::vector<double> vx = values(rnd({q.n, q.c, q.h, q.w}));
      const int64_t plane = q.h * q.w;
      vx[0] = NAN;                                         // a corner (first tap of a window)
      if (q.n * q.c > 1) vx[size_t(plane + (q.h / 2) * q.w + q.w / 2)] = NAN;  // the middle of the second plane
      vx.back() = NAN;                                     // the last element (a window's last tap)
      Tensor x = tensor<double>(vx, {q.n, q.c, q.h, q.w}).to(dt);
      const int64_t oh = pool_out(q.h, q.k[0], q.s[0], q.p[0], q.d[0], q.ceil);
      const int64_t ow = pool_out(q.w, q.k[1], q.s[1], q.p[1], q.d[1], q.ceil);
      std::vector<double> ry;
      std::vector<int64_t> ridx;
      ref_max_pool(q, values(x), oh, ow, ry, ridx);
      const auto y = values(max_pool2d(x, q.k, q.s, q.p, q.d, q.ceil));
      auto [yi, idx] = max_pool2d_with_indices(x, q.k, q.s, q.p, q.d, q.ceil);
      const auto vyi = values(yi), vxr = values(x);
      const auto vidx = idx.to_vector<int64_t>();
      ASSERT_EQ(y.size(), ry.size());
      int64_t nan_outputs = 0;
      for (size_t o = 0; o < ry.size(); ++o) {
        if (std::isnan(ry[o])) {
          ++nan_outputs;
          EXPECT_TRUE(std::isnan(y[o])) << dtype_name(dt) << " output " << o << " got " << y[o];
          EXPECT_TRUE(std::isnan(vyi[o])) << dtype_name(dt) << " (with indices) output " << o;
          EXPECT_TRUE(std::isnan(vxr[size_t(int64_t(o) / (oh * ow) * plane + vidx[o])])) << "index of output " << o;
        } else {
          EXPECT_EQ(y[o], ry[o]) << dtype_name(dt) << " output " << o;
          EXPECT_EQ(vyi[o], ry[o]) << dtype_name(dt) << " (with indices) output " << o;
        }
      }
      EXPECT_GE(nan_outputs, 2);  // the corner and the last element are in some window
    }
  }
}

// The training path (indices) runs oneDNN's pooling on finite inputs and reads its
// workspace; at network sizes (where its vectorised kernels run) ties must go to the first
// maximum in the window as in PyTorch (ReLU outputs are full of zeros), and a window of
// -inf must still give -inf at an in-input index.
TEST(MaxPool2d, TiesAndInfinitiesAtNetworkSizes) {
  const std::vector<PoolCase> cases = {
      {2, 32, 28, 28, {2, 2}, {2, 2}, {0, 0}, {1, 1}, false},
      {2, 16, 15, 15, {3, 3}, {2, 2}, {1, 1}, {1, 1}, true},
      {1, 19, 14, 13, {3, 2}, {1, 2}, {1, 0}, {2, 1}, false},
  };
  for (DType dt : {DType::Float32, DType::BFloat16}) {
    for (bool with_inf : {false, true}) {
      for (const PoolCase& q : cases) {
        std::vector<double> vx(size_t(q.n * q.c * q.h * q.w));
        for (size_t i = 0; i < vx.size(); ++i) vx[i] = double((i * 2654435761u >> 7) % 4 == 3);  // mostly 0: ties
        if (with_inf) {  // a whole 3x3 corner of the first plane, and scattered ones
          for (int64_t r = 0; r < 3; ++r)
            for (int64_t c = 0; c < 3; ++c) vx[size_t(r * q.w + c)] = -INFINITY;
          for (size_t i = 5; i < vx.size(); i += 97) vx[i] = (i % 2) ? -INFINITY : INFINITY;
        }
        Tensor x = tensor<double>(vx, {q.n, q.c, q.h, q.w}).to(dt);
        const int64_t oh = pool_out(q.h, q.k[0], q.s[0], q.p[0], q.d[0], q.ceil);
        const int64_t ow = pool_out(q.w, q.k[1], q.s[1], q.p[1], q.d[1], q.ceil);
        std::vector<double> ry;
        std::vector<int64_t> ridx;
        ref_max_pool(q, vx, oh, ow, ry, ridx);
        auto [y, idx] = max_pool2d_with_indices(x, q.k, q.s, q.p, q.d, q.ceil);
        EXPECT_EQ(values(y), ry) << dtype_name(dt) << " inf " << with_inf;
        EXPECT_EQ(idx.to_vector<int64_t>(), ridx) << dtype_name(dt) << " inf " << with_inf;
        EXPECT_EQ(values(max_pool2d(x, q.k, q.s, q.p, q.d, q.ceil)), ry) << dtype_name(dt) << " inf " << with_inf;
      }
    }
  }
}

TEST(AvgPool2d, MatchesDefinitionWithCeilAndPadding) {
  for (DType dt : {DType::Float64, DType::Float32, DType::BFloat16}) {
    for (const PoolCase& q0 : kPoolCases) {
      PoolCase q = q0;
      q.d = {1, 1};
      for (bool incl : {true, false}) {
        Tensor x = rnd({q.n, q.c, q.h, q.w}, dt);
        const int64_t oh = pool_out(q.h, q.k[0], q.s[0], q.p[0], 1, q.ceil);
        const int64_t ow = pool_out(q.w, q.k[1], q.s[1], q.p[1], 1, q.ceil);
        Tensor y = avg_pool2d(x, q.k, q.s, q.p, q.ceil, incl);
        ASSERT_EQ(y.shape(), (Shape{q.n, q.c, oh, ow}));
        const double tol = dt == DType::Float64 ? 1e-12 : dt == DType::Float32 ? 1e-6 : 1e-2;
        expect_near(values(y), ref_avg_pool(q, values(x), oh, ow, incl), tol, "avg_pool2d");
        // backward is the adjoint: <avg(x), gy> = <x, avg_backward(gy)>
        if (dt == DType::Float64) {
          Tensor gy = rnd(y.shape());
          Tensor gx = avg_pool2d_backward(gy, x.shape(), q.k, q.s, q.p, q.ceil, incl);
          ASSERT_EQ(gx.shape(), x.shape());
          const double lhs = dot(ref_avg_pool(q, values(x), oh, ow, incl), values(gy));
          EXPECT_NEAR(dot(values(x), values(gx)), lhs, 1e-10);
          // and elementwise on a basis vector: d avg / d x[0] per output
          Tensor e = zeros(x.shape(), DType::Float64);
          e.view({-1}).narrow(0, 0, 1).fill_(1.0);
          const auto col = ref_avg_pool(q, values(e), oh, ow, incl);  // column 0 of the operator
          EXPECT_NEAR(values(gx)[0], dot(col, values(gy)), 1e-12);
        }
      }
    }
  }
}

TEST(AdaptiveAvgPool2d, NonDivisibleSizes) {
  for (DType dt : {DType::Float64, DType::Float32, DType::BFloat16}) {
    for (auto [h, w, oh, ow] : std::vector<std::array<int64_t, 4>>{{7, 5, 3, 2}, {6, 6, 3, 3}, {5, 4, 1, 1}, {3, 4, 5, 6}}) {
      Tensor x = rnd({2, 3, h, w}, dt);
      Tensor y = adaptive_avg_pool2d(x, {oh, ow});
      ASSERT_EQ(y.shape(), (Shape{2, 3, oh, ow}));
      const auto vx = values(x);
      std::vector<double> want(size_t(6 * oh * ow));
      for (int64_t pl = 0; pl < 6; ++pl)
        for (int64_t i = 0; i < oh; ++i)
          for (int64_t j = 0; j < ow; ++j) {
            const int64_t r0 = int64_t(std::floor(double(i * h) / double(oh))), r1 = int64_t(std::ceil(double((i + 1) * h) / double(oh)));
            const int64_t c0 = int64_t(std::floor(double(j * w) / double(ow))), c1 = int64_t(std::ceil(double((j + 1) * w) / double(ow)));
            double s = 0;
            for (int64_t r = r0; r < r1; ++r)
              for (int64_t c = c0; c < c1; ++c) s += vx[size_t(pl * h * w + r * w + c)];
            want[size_t((pl * oh + i) * ow + j)] = s / double((r1 - r0) * (c1 - c0));
          }
      expect_near(values(y), want, dt == DType::Float64 ? 1e-12 : dt == DType::Float32 ? 1e-6 : 1e-2, "adaptive");
      if (dt == DType::Float64) {
        Tensor gy = rnd(y.shape());
        Tensor gx = adaptive_avg_pool2d_backward(gy, x.shape());
        EXPECT_NEAR(dot(values(x), values(gx)), dot(want, values(gy)), 1e-10);
      }
    }
  }
  EXPECT_EQ(adaptive_avg_pool2d(rnd({3, 5, 5}), {2, 2}).shape(), (Shape{3, 2, 2}));
}

TEST(PoolErrors, EveryPathNamesOpAndLeavesInputs) {
  Tensor x = rnd({1, 2, 6, 6}, DType::Float32);
  const auto vx = values(x);
  expect_error([&] { max_pool2d(rnd({6, 6}, DType::Float32), {2, 2}); }, "max_pool2d", "4-d input");
  expect_error([&] { max_pool2d(x, {0, 2}); }, "max_pool2d", "kernel");
  expect_error([&] { max_pool2d(x, {2, 2}, {-1, 1}); }, "max_pool2d", "stride");
  expect_error([&] { max_pool2d(x, {2, 2}, {0, 1}); }, "max_pool2d", "stride");
  expect_error([&] { max_pool2d(x, {2, 2}, {1, 1}, {-1, 0}); }, "max_pool2d", "padding");
  expect_error([&] { max_pool2d(x, {2, 2}, {1, 1}, {2, 0}); }, "max_pool2d", "half of the kernel");
  expect_error([&] { max_pool2d(x, {2, 2}, {1, 1}, {0, 0}, {0, 1}); }, "max_pool2d", "dilation");
  expect_error([&] { max_pool2d(x, {7, 2}); }, "max_pool2d", "too small");
  expect_error([&] { max_pool2d(x, {3, 3}, {1, 1}, {0, 0}, {3, 3}); }, "max_pool2d", "too small");
  expect_error([&] { max_pool2d(x.to(DType::Int64), {2, 2}); }, "max_pool2d", "floating");
  expect_error([&] { max_pool2d_with_indices(x, {2, 2}, {1, 1}, {3, 3}); }, "max_pool2d_with_indices", "half");
  expect_error([&] { avg_pool2d(x, {3, 3}, {1, 1}, {2, 2}); }, "avg_pool2d", "half of the kernel");
  expect_error([&] { avg_pool2d(x, {2, 2}, {0, -2}); }, "avg_pool2d", "stride");
  expect_error([&] { avg_pool2d(rnd({2, 3}, DType::Float32), {2, 2}); }, "avg_pool2d", "4-d input");
  expect_error([&] { avg_pool2d(x, {8, 8}); }, "avg_pool2d", "too small");
  expect_error([&] { adaptive_avg_pool2d(x, {-1, 2}); }, "adaptive_avg_pool2d", "non-negative");
  expect_error([&] { adaptive_avg_pool2d(rnd({6}, DType::Float32), {2, 2}); }, "adaptive_avg_pool2d", "4-d input");
  expect_error([&] { adaptive_avg_pool2d(rnd({1, 2, 0, 3}, DType::Float32), {2, 2}); }, "adaptive_avg_pool2d", "non-empty");

  auto [y, idx] = max_pool2d_with_indices(x, {2, 2});
  expect_error([&] { max_pool2d_backward(y, idx.to(DType::Int32), x.shape()); }, "max_pool2d_backward", "int64");
  expect_error([&] { max_pool2d_backward(y, idx.narrow(3, 0, 2), x.shape()); }, "max_pool2d_backward", "indices");
  expect_error([&] { max_pool2d_backward(y, idx, {1, 3, 6, 6}); }, "max_pool2d_backward", "does not match");
  expect_error([&] { avg_pool2d_backward(y, x.shape(), {3, 3}); }, "avg_pool2d_backward", "does not match");
  expect_error([&] { avg_pool2d_backward(y, {6, 6}, {2, 2}); }, "avg_pool2d_backward", "3-d or 4-d");
  expect_error([&] { adaptive_avg_pool2d_backward(y, {1, 2, 6}); }, "adaptive_avg_pool2d_backward", "does not match");
  expect_error([&] { adaptive_avg_pool2d_backward(y, {6, 6}); }, "adaptive_avg_pool2d_backward", "3-d or 4-d");
  expect_error([&] { adaptive_avg_pool2d_backward(y.to(DType::Int64), x.shape()); }, "adaptive_avg_pool2d_backward", "floating");
  EXPECT_EQ(values(x), vx);
}

TEST(ConvPoolDevices, MismatchAndCpuFallback) {
  kiln::testing::FakeGpuScope scope;
  const Device gpu = kiln::testing::kFakeGpu;
  {
    Tensor x = rnd({1, 2, 5, 5}, DType::Float32), w = rnd({3, 2, 3, 3}, DType::Float32), b = rnd({3}, DType::Float32);
    Tensor gx = x.to(gpu), gw = w.to(gpu), gb = b.to(gpu);
    Tensor gy = conv2d(gx, gw, gb, {1, 1}, {1, 1});  // no kernel on the fake GPU: runs on the CPU
    EXPECT_EQ(gy.device(), gpu);
    const auto vb = values(b);
    ConvCase k{1, 2, 5, 5, 3, 3, 3, 1, {1, 1}, {1, 1}, {1, 1}};
    expect_near(values(gy.to(kCpu)), ref_conv(k, values(x), values(w), &vb, 5, 5), 1e-5, "fallback");
    expect_error([&] { conv2d(x, gw); }, "conv2d", "metal:0");
    expect_error([&] { conv2d(x, w, gb); }, "conv2d", "metal:0");
    expect_error([&] { conv_transpose2d(gx, w.transpose(0, 1).contiguous()); }, "conv_transpose2d", "metal:0");
    expect_error([&] { conv2d_backward_input(gy, w, x.shape(), {1, 1}, {1, 1}); }, "conv2d_backward_input", "metal:0");
    expect_error([&] { conv2d_backward_weight(gy, x, w.shape(), {1, 1}, {1, 1}); }, "conv2d_backward_weight", "metal:0");
    auto [py, pidx] = max_pool2d_with_indices(gx, {2, 2});
    EXPECT_EQ(pidx.device(), gpu);
    expect_error([&] { max_pool2d_backward(py, pidx.to(kCpu), gx.shape()); }, "max_pool2d_backward", "metal:0");
  }
}
