// Neural-network ops on the CPU: batch_norm (eval, training, running-stat updates),
// layer_norm, scaled_dot_product_attention (causal, bool and float masks, dropout), dropout,
// and their backward kernels. References are naive double-precision loops written here;
// gradients are checked against central finite differences of those references.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>

#include "kiln/generator.h"
#include "kiln/ops.h"
#include "kiln/ops_nn_backward.h"

using namespace kiln;

namespace {

using Vec = std::vector<double>;
using Fn = std::function<Vec(const Vec&)>;

std::vector<double> vals(const Tensor& t) { return t.to_vector<double>(); }

Tensor from(const Vec& v, const Shape& shape, DType dt = DType::Float64) {
  return tensor<double>(v, shape).to(dt);
}

Vec random_vec(size_t n, uint64_t seed, double lo = -2, double hi = 2) {
  Generator g(seed);
  return vals(rand({int64_t(n)}, DType::Float64, &g) * (hi - lo) + lo);
}

// d/dx of sum(gout * f(x)), by central differences in double.
Vec numeric_grad(const Fn& f, const Vec& x, const Vec& gout, double h = 1e-5) {
  Vec g(x.size());
  Vec xp = x;
  for (size_t i = 0; i < x.size(); ++i) {
    xp[i] = x[i] + h;
    const Vec fp = f(xp);
    xp[i] = x[i] - h;
    const Vec fm = f(xp);
    xp[i] = x[i];
    double s = 0;
    for (size_t j = 0; j < fp.size(); ++j) s += gout[j] * (fp[j] - fm[j]);
    g[i] = s / (2 * h);
  }
  return g;
}

void expect_near(const Vec& got, const Vec& want, double tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], tol * (1 + std::abs(want[i]))) << what << " at " << i;
}

void expect_error(const std::function<void()>& f, const std::string& op, const std::string& also = "") {
  try {
    f();
    FAIL() << "expected kiln::Error from " << op;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("[" + op + "]"), std::string::npos) << msg;
    if (!also.empty()) EXPECT_NE(msg.find(also), std::string::npos) << msg;
  }
}

double tol_for(DType dt) {
  switch (dt) {
    case DType::Float64: return 1e-10;
    case DType::Float32: return 1e-5;
    case DType::Float16: return 5e-3;
    default: return 3e-2;
  }
}

// ---- batch_norm reference, x [N, C, HW]
struct BnRef {
  Vec y, mean, var;  // var biased
};
BnRef bn_ref(const Vec& x, int64_t n, int64_t c, int64_t hw, const Vec& w, const Vec& b, double eps,
             const Vec* rmean = nullptr, const Vec* rvar = nullptr) {
  BnRef r{Vec(x.size()), Vec(size_t(c), 0.0), Vec(size_t(c), 0.0)};
  for (int64_t k = 0; k < c; ++k) {
    if (rmean) {
      r.mean[size_t(k)] = (*rmean)[size_t(k)];
      r.var[size_t(k)] = (*rvar)[size_t(k)];
      continue;
    }
    double s = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < hw; ++j) s += x[size_t((i * c + k) * hw + j)];
    const double m = s / double(n * hw);
    double q = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < hw; ++j) q += std::pow(x[size_t((i * c + k) * hw + j)] - m, 2);
    r.mean[size_t(k)] = m;
    r.var[size_t(k)] = q / double(n * hw);
  }
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < c; ++k)
      for (int64_t j = 0; j < hw; ++j) {
        const size_t p = size_t((i * c + k) * hw + j);
        r.y[p] = (x[p] - r.mean[size_t(k)]) / std::sqrt(r.var[size_t(k)] + eps) * w[size_t(k)] + b[size_t(k)];
      }
  return r;
}

}  // namespace

TEST(BatchNorm, EvalUsesRunningStatsForEveryDtype) {
  const int64_t n = 2, c = 3, hw = 4;
  const Vec x = random_vec(size_t(n * c * hw), 1), w = random_vec(3, 2), b = random_vec(3, 3);
  const Vec rm = {0.5, -0.25, 1.0}, rv = {1.5, 0.5, 2.0};
  const BnRef ref = bn_ref(x, n, c, hw, w, b, 1e-5, &rm, &rv);
  for (DType dt : {DType::Float32, DType::Float64, DType::Float16, DType::BFloat16}) {
    Tensor xt = from(x, {n, c, 2, 2}, dt);
    Tensor y = batch_norm(xt, from(rm, {c}), from(rv, {c}), from(w, {c}), from(b, {c}), false);
    EXPECT_EQ(y.dtype(), dt);
    EXPECT_EQ(y.shape(), (Shape{n, c, 2, 2}));
    // reference from the same rounded inputs
    const BnRef r2 = bn_ref(vals(xt), n, c, hw, w, b, 1e-5, &rm, &rv);
    expect_near(vals(y), r2.y, tol_for(dt) * 4, std::string("eval ") + dtype_name(dt));
  }
  (void)ref;
}

TEST(BatchNorm, TrainingUsesBatchStatsAndUpdatesRunningStats) {
  const int64_t n = 3, c = 2, hw = 5;
  const Vec x = random_vec(size_t(n * c * hw), 4, -1, 3), w = random_vec(2, 5), b = random_vec(2, 6);
  const BnRef ref = bn_ref(x, n, c, hw, w, b, 1e-5);
  Tensor rm = from({0.1, 0.2}, {c}), rv = from({1.0, 2.0}, {c});
  Tensor y = batch_norm(from(x, {n, c, hw}), rm, rv, from(w, {c}), from(b, {c}), true, 0.3, 1e-5);
  expect_near(vals(y), ref.y, 1e-10, "train y");
  const double m = double(n * hw);
  for (int64_t k = 0; k < c; ++k) {
    const double want_rm = 0.7 * (k == 0 ? 0.1 : 0.2) + 0.3 * ref.mean[size_t(k)];
    const double want_rv = 0.7 * (k == 0 ? 1.0 : 2.0) + 0.3 * ref.var[size_t(k)] * m / (m - 1);  // unbiased
    EXPECT_NEAR(vals(rm)[size_t(k)], want_rm, 1e-12);
    EXPECT_NEAR(vals(rv)[size_t(k)], want_rv, 1e-12);
  }
  // float32 input with float32 running stats, no affine parameters
  Tensor rm32 = zeros({c}), rv32 = ones({c});
  Tensor y32 = batch_norm(from(x, {n, c, hw}, DType::Float32), rm32, rv32, Tensor(), Tensor(), true);
  const BnRef ref1 = bn_ref(vals(from(x, {n, c, hw}, DType::Float32)), n, c, hw, {1, 1}, {0, 0}, 1e-5);
  expect_near(vals(y32), ref1.y, 1e-5, "train y f32");
  for (int64_t k = 0; k < c; ++k) EXPECT_NEAR(vals(rm32)[size_t(k)], 0.1 * ref1.mean[size_t(k)], 1e-6);

  BatchNormResult r = batch_norm_train(from(x, {n, c, hw}), from(w, {c}), from(b, {c}), 1e-5);
  expect_near(vals(r.output), ref.y, 1e-10, "batch_norm_train y");
  expect_near(vals(r.batch_mean), ref.mean, 1e-12, "batch mean");
  for (int64_t k = 0; k < c; ++k)
    EXPECT_NEAR(vals(r.batch_invstd)[size_t(k)], 1 / std::sqrt(ref.var[size_t(k)] + 1e-5), 1e-9);
}

TEST(BatchNorm, BackwardMatchesFiniteDifferences) {
  const int64_t n = 2, c = 3, hw = 3;
  const Vec x = random_vec(size_t(n * c * hw), 7), w = random_vec(3, 8), b = random_vec(3, 9);
  const Vec gout = random_vec(x.size(), 10);
  for (bool training : {true, false}) {
    const Vec rm = {0.3, -0.2, 0.1}, rv = {0.7, 1.3, 2.0};
    auto fx = [&](const Vec& xv) { return bn_ref(xv, n, c, hw, w, b, 1e-5, training ? nullptr : &rm, training ? nullptr : &rv).y; };
    auto fw = [&](const Vec& wv) { return bn_ref(x, n, c, hw, wv, b, 1e-5, training ? nullptr : &rm, training ? nullptr : &rv).y; };
    auto fb = [&](const Vec& bv) { return bn_ref(x, n, c, hw, w, bv, 1e-5, training ? nullptr : &rm, training ? nullptr : &rv).y; };
    Tensor xt = from(x, {n, c, hw});
    Tensor mean, invstd;
    if (training) {
      auto r = batch_norm_train(xt, from(w, {c}), from(b, {c}), 1e-5);
      mean = r.batch_mean;
      invstd = r.batch_invstd;
    } else {
      mean = from(rm, {c});
      invstd = from({1 / std::sqrt(0.7 + 1e-5), 1 / std::sqrt(1.3 + 1e-5), 1 / std::sqrt(2.0 + 1e-5)}, {c});
    }
    Grads3 g = batch_norm_backward(from(gout, {n, c, hw}), xt, from(w, {c}), mean, invstd, training);
    const std::string tag = training ? "train " : "eval ";
    expect_near(vals(g.grad_input), numeric_grad(fx, x, gout), 1e-6, tag + "gx");
    expect_near(vals(g.grad_weight), numeric_grad(fw, w, gout), 1e-6, tag + "gw");
    expect_near(vals(g.grad_bias), numeric_grad(fb, b, gout), 1e-6, tag + "gb");
  }
  // float32 and bfloat16 grads stay close to the float64 answer
  Tensor x32 = from(x, {n, c, hw}, DType::Float32);
  auto r = batch_norm_train(x32, from(w, {c}), Tensor(), 1e-5);
  Grads3 g = batch_norm_backward(from(gout, {n, c, hw}, DType::Float32), x32, from(w, {c}), r.batch_mean, r.batch_invstd, true);
  EXPECT_EQ(g.grad_input.dtype(), DType::Float32);
  auto fx = [&](const Vec& xv) { return bn_ref(xv, n, c, hw, w, {0, 0, 0}, 1e-5).y; };
  expect_near(vals(g.grad_input), numeric_grad(fx, vals(x32), gout), 1e-4, "f32 gx");
}

// ---- layer_norm reference: rows of size nn
Vec ln_ref(const Vec& x, int64_t nn, const Vec& w, const Vec& b, double eps) {
  Vec y(x.size());
  for (size_t r = 0; r < x.size() / size_t(nn); ++r) {
    double m = 0, v = 0;
    for (int64_t j = 0; j < nn; ++j) m += x[r * size_t(nn) + size_t(j)];
    m /= double(nn);
    for (int64_t j = 0; j < nn; ++j) v += std::pow(x[r * size_t(nn) + size_t(j)] - m, 2);
    v /= double(nn);
    for (int64_t j = 0; j < nn; ++j)
      y[r * size_t(nn) + size_t(j)] = (x[r * size_t(nn) + size_t(j)] - m) / std::sqrt(v + eps) * w[size_t(j)] + b[size_t(j)];
  }
  return y;
}

TEST(LayerNorm, MatchesReferenceForEveryDtype) {
  const Vec x = random_vec(2 * 3 * 4, 11, -3, 5), w = random_vec(12, 12), b = random_vec(12, 13);
  for (DType dt : {DType::Float32, DType::Float64, DType::Float16, DType::BFloat16}) {
    Tensor xt = from(x, {2, 3, 4}, dt);
    Tensor y = layer_norm(xt, {3, 4}, from(w, {3, 4}), from(b, {3, 4}), 1e-5);
    EXPECT_EQ(y.dtype(), dt);
    expect_near(vals(y), ln_ref(vals(xt), 12, w, b, 1e-5), tol_for(dt) * 8, std::string("ln ") + dtype_name(dt));
  }
  // one normalized dim, no affine, strided input
  Tensor xt = from(x, {4, 6}).t();  // [6, 4]
  Tensor y = layer_norm(xt, {4});
  expect_near(vals(y), ln_ref(vals(xt), 4, Vec(4, 1.0), Vec(4, 0.0), 1e-5), 1e-10, "ln strided");
  LayerNormResult r = layer_norm_forward(from(x, {2, 12}), {12});
  EXPECT_EQ(r.mean.shape(), (Shape{2}));
  EXPECT_NEAR(vals(r.mean)[1], [&] { double s = 0; for (int j = 12; j < 24; ++j) s += x[size_t(j)]; return s / 12; }(), 1e-12);
}

TEST(LayerNorm, BackwardMatchesFiniteDifferences) {
  const int64_t m = 3, nn = 5;
  const Vec x = random_vec(size_t(m * nn), 14), w = random_vec(size_t(nn), 15), b = random_vec(size_t(nn), 16);
  const Vec gout = random_vec(x.size(), 17);
  LayerNormResult r = layer_norm_forward(from(x, {m, nn}), {nn}, from(w, {nn}), from(b, {nn}), 1e-5);
  Grads3 g = layer_norm_backward(from(gout, {m, nn}), from(x, {m, nn}), {nn}, r.mean, r.rstd, from(w, {nn}));
  expect_near(vals(g.grad_input), numeric_grad([&](const Vec& v) { return ln_ref(v, nn, w, b, 1e-5); }, x, gout), 1e-6, "gx");
  expect_near(vals(g.grad_weight), numeric_grad([&](const Vec& v) { return ln_ref(x, nn, v, b, 1e-5); }, w, gout), 1e-6, "gw");
  expect_near(vals(g.grad_bias), numeric_grad([&](const Vec& v) { return ln_ref(x, nn, w, v, 1e-5); }, b, gout), 1e-6, "gb");
  // without weight: gradient of the unscaled normalisation
  LayerNormResult r0 = layer_norm_forward(from(x, {m, nn}, DType::Float32), {nn});
  Grads3 g0 = layer_norm_backward(from(gout, {m, nn}, DType::Float32), from(x, {m, nn}, DType::Float32), {nn}, r0.mean, r0.rstd);
  expect_near(vals(g0.grad_input),
              numeric_grad([&](const Vec& v) { return ln_ref(v, nn, Vec(size_t(nn), 1.0), Vec(size_t(nn), 0.0), 1e-5); },
                           vals(from(x, {m, nn}, DType::Float32)), gout),
              1e-4, "gx f32");
}

TEST(NormErrors, BatchNormNamesOpAndLeavesInputsUnchanged) {
  Tensor x = ones({2, 3, 2});
  Tensor rm = zeros({3}), rv = ones({3});
  expect_error([&] { batch_norm(x, zeros({4}), ones({4})); }, "batch_norm", "running_mean");
  expect_error([&] { batch_norm(x, rm, rv, ones({2})); }, "batch_norm", "weight");
  expect_error([&] { batch_norm(x, rm, rv, Tensor(), zeros({3, 1})); }, "batch_norm", "bias");
  expect_error([&] { batch_norm(ones({3}), rm, rv); }, "batch_norm", "[3]");
  expect_error([&] { batch_norm(ones({2, 3}, DType::Int64), rm, rv); }, "batch_norm", "int64");
  expect_error([&] { batch_norm(x, Tensor(), Tensor(), Tensor(), Tensor(), false); }, "batch_norm", "required");
  expect_error([&] { batch_norm(x, rm, Tensor(), Tensor(), Tensor(), true); }, "batch_norm", "both");
  expect_error([&] { batch_norm(ones({1, 3}), rm, rv, Tensor(), Tensor(), true); }, "batch_norm", "more than 1");
  expect_error([&] { batch_norm(x, rm, rv, Tensor(), Tensor(), true, 0.1, -1.0); }, "batch_norm", "eps");
  expect_error([&] { batch_norm(x, rm, ones({3}, DType::Int32), Tensor(), Tensor(), true); }, "batch_norm", "int32");
  EXPECT_EQ(vals(rm), Vec(3, 0.0));
  EXPECT_EQ(vals(rv), Vec(3, 1.0));
  EXPECT_EQ(vals(x), Vec(12, 1.0));
  expect_error([&] { batch_norm_backward(ones({2, 3}), x, Tensor(), zeros({3}), ones({3}), true); },
               "batch_norm_backward", "grad");
}

TEST(NormErrors, LayerNormShapes) {
  Tensor x = ones({2, 3});
  expect_error([&] { layer_norm(x, {2}); }, "layer_norm", "normalized_shape");
  expect_error([&] { layer_norm(x, {2, 2, 3}); }, "layer_norm", "normalized_shape");
  expect_error([&] { layer_norm(x, {}); }, "layer_norm");
  expect_error([&] { layer_norm(x, {3}, ones({2})); }, "layer_norm", "weight");
  expect_error([&] { layer_norm(x, {3}, Tensor(), ones({3}, DType::Int64)); }, "layer_norm", "bias");
  expect_error([&] { layer_norm(ones({2, 3}, DType::Int32), {3}); }, "layer_norm", "int32");
  expect_error([&] { layer_norm_backward(ones({2, 3}), x, {3}, zeros({3}), ones({2})); }, "layer_norm_backward",
               "statistics");
  EXPECT_EQ(vals(x), Vec(6, 1.0));
}
