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

template <typename F>
void expect_error(F&& f, const std::string& op, const std::string& fragment = "") {
  try {
    f();
    FAIL() << "expected kiln::Error from " << op;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("[" + op + "]"), std::string::npos) << msg;
    if (!fragment.empty()) EXPECT_NE(msg.find(fragment), std::string::npos) << msg;
  }
}

struct ConvCase {
  int64_t n, c, h, w, o, kh, kw, g;
  Pair s, p, d;
};

// y[n,o,i,j] = b[o] + sum_{c,u,v} x[n, g*cg + c, i*s - p + u*d, j*s - p + v*d] * w[o, c, u, v]
std::vector<double> ref_conv(const ConvCase& k, const std::vector<double>& x, const std::vector<double>& w,
                             const std::vector<double>* b, int64_t oh, int64_t ow) {
  const int64_t cg = k.c / k.g, og = k.o / k.g;
  std::vector<double> y(size_t(k.n * k.o * oh * ow));
  for (int64_t n = 0; n < k.n; ++n)
    for (int64_t o = 0; o < k.o; ++o)
      for (int64_t i = 0; i < oh; ++i)
        for (int64_t j = 0; j < ow; ++j) {
          double acc = b ? (*b)[size_t(o)] : 0.0;
          for (int64_t c = 0; c < cg; ++c)
            for (int64_t u = 0; u < k.kh; ++u)
              for (int64_t v = 0; v < k.kw; ++v) {
                const int64_t ih = i * k.s[0] - k.p[0] + u * k.d[0], iw = j * k.s[1] - k.p[1] + v * k.d[1];
                if (ih < 0 || ih >= k.h || iw < 0 || iw >= k.w) continue;
                acc += x[size_t(((n * k.c + (o / og) * cg + c) * k.h + ih) * k.w + iw)] *
                       w[size_t(((o * cg + c) * k.kh + u) * k.kw + v)];
              }
          y[size_t(((n * k.o + o) * oh + i) * ow + j)] = acc;
        }
  return y;
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
