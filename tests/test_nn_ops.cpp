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
#include "tests/support/expect_error.h"

using kiln::testing::expect_error;

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

// ---- scaled_dot_product_attention reference: q [B, L, E], k [B, S, E], v [B, S, Ev] flat,
// mask [B, L, S] (kind 0 none, 1 bool as 0/1, 2 additive); dropout keep-scales per element.
namespace {
struct AttnCase {
  int64_t b, l, s, e, ev;
  int mask_kind = 0;
  bool causal = false;
  double scale = 0;  // 0: 1/sqrt(E)
};

Vec attn_ref(const AttnCase& c, const Vec& q, const Vec& k, const Vec& v, const Vec& mask,
             const std::function<double(int64_t, int64_t, int64_t)>& keep = {}) {
  const double sc = c.scale != 0 ? c.scale : 1 / std::sqrt(double(c.e));
  Vec out(size_t(c.b * c.l * c.ev), 0.0);
  for (int64_t b = 0; b < c.b; ++b)
    for (int64_t i = 0; i < c.l; ++i) {
      Vec s(size_t(c.s));
      double mx = -INFINITY;
      for (int64_t j = 0; j < c.s; ++j) {
        double x = 0;
        for (int64_t t = 0; t < c.e; ++t) x += q[size_t((b * c.l + i) * c.e + t)] * k[size_t((b * c.s + j) * c.e + t)];
        x *= sc;
        const double m = c.mask_kind ? mask[size_t((b * c.l + i) * c.s + j)] : 0.0;
        if (c.mask_kind == 1 && m == 0) x = -INFINITY;
        if (c.mask_kind == 2) x += m;
        if (c.causal && j > i) x = -INFINITY;
        s[size_t(j)] = x;
        mx = std::max(mx, x);
      }
      if (mx == -INFINITY) continue;  // fully masked: 0
      double z = 0;
      for (double& x : s) z += (x = std::exp(x - mx));
      for (int64_t j = 0; j < c.s; ++j) {
        const double p = s[size_t(j)] / z * (keep ? keep(b, i, j) : 1.0);
        for (int64_t t = 0; t < c.ev; ++t) out[size_t((b * c.l + i) * c.ev + t)] += p * v[size_t((b * c.s + j) * c.ev + t)];
      }
    }
  return out;
}

Tensor mask_tensor(const AttnCase& c, const Vec& m) {
  if (c.mask_kind == 0) return Tensor();
  Tensor t = from(m, {c.b, c.l, c.s});
  return c.mask_kind == 1 ? ne(t, 0.0) : t;
}

Vec make_mask(const AttnCase& c, uint64_t seed) {
  Vec m = random_vec(size_t(c.b * c.l * c.s), seed, 0, 1);
  for (size_t i = 0; i < m.size(); ++i) {
    if (c.mask_kind == 1) m[i] = m[i] < 0.3 ? 0.0 : 1.0;
    else m[i] = m[i] < 0.2 ? -INFINITY : m[i] - 0.5;
  }
  if (c.mask_kind == 1 && c.l > 0 && c.s > 0)
    for (int64_t j = 0; j < c.s; ++j) m[size_t(j)] = 0.0;  // query 0 of batch 0 sees nothing -> output 0
  return m;
}
}  // namespace

TEST(Attention, MatchesReferenceWithCausalAndBothMaskKinds) {
  const std::vector<AttnCase> cases = {
      {2, 5, 7, 4, 3}, {1, 6, 4, 8, 8, 0, true}, {2, 4, 6, 3, 5, 1}, {2, 5, 5, 4, 2, 2}, {1, 3, 3, 2, 2, 0, false, 0.7},
      {1, 70, 9, 3, 2, 0, true}};  // more than one 64-row query block
  for (const AttnCase& c : cases) {
    const Vec q = random_vec(size_t(c.b * c.l * c.e), 20), k = random_vec(size_t(c.b * c.s * c.e), 21),
              v = random_vec(size_t(c.b * c.s * c.ev), 22), m = c.mask_kind ? make_mask(c, 23) : Vec{};
    for (DType dt : {DType::Float64, DType::Float32, DType::BFloat16}) {
      Tensor qt = from(q, {c.b, c.l, c.e}, dt), kt = from(k, {c.b, c.s, c.e}, dt), vt = from(v, {c.b, c.s, c.ev}, dt);
      Tensor mt = mask_tensor(c, m);
      if (mt.defined() && mt.dtype() != DType::Bool) mt = mt.to(dt);
      Tensor o = scaled_dot_product_attention(qt, kt, vt, mt, 0.0, c.causal,
                                              c.scale != 0 ? std::optional<double>(c.scale) : std::nullopt);
      EXPECT_EQ(o.shape(), (Shape{c.b, c.l, c.ev}));
      const Vec want = attn_ref(c, vals(qt), vals(kt), vals(vt), mt.defined() ? vals(mt) : Vec{});
      expect_near(vals(o), want, dt == DType::BFloat16 ? 3e-2 : tol_for(dt) * 10,
                  std::string("attention ") + dtype_name(dt) + " L" + std::to_string(c.l));
    }
  }
}

TEST(Attention, BatchDimsAndMaskBroadcast) {
  // q [2, 3, L, E], k/v [3, S, E] (broadcast over the first dim), mask [L, S] for every head
  const int64_t L = 4, S = 5, E = 3;
  const Vec q = random_vec(size_t(2 * 3 * L * E), 30), k = random_vec(size_t(3 * S * E), 31),
            v = random_vec(size_t(3 * S * E), 32), m = random_vec(size_t(L * S), 33);
  Tensor o = scaled_dot_product_attention(from(q, {2, 3, L, E}), from(k, {3, S, E}), from(v, {3, S, E}), from(m, {L, S}));
  ASSERT_EQ(o.shape(), (Shape{2, 3, L, E}));
  const Vec got = vals(o);
  for (int64_t a = 0; a < 2; ++a)
    for (int64_t h = 0; h < 3; ++h) {
      AttnCase c{1, L, S, E, E, 2};
      const Vec qh(q.begin() + (a * 3 + h) * L * E, q.begin() + (a * 3 + h + 1) * L * E);
      const Vec kh(k.begin() + h * S * E, k.begin() + (h + 1) * S * E), vh(v.begin() + h * S * E, v.begin() + (h + 1) * S * E);
      const Vec want = attn_ref(c, qh, kh, vh, m);
      const Vec part(got.begin() + (a * 3 + h) * L * E, got.begin() + (a * 3 + h + 1) * L * E);
      expect_near(part, want, 1e-10, "broadcast head");
    }
}

TEST(Attention, DropoutIsSeededAndFollowsThePhiloxContract) {
  AttnCase c{2, 4, 6, 3, 3};
  const Vec q = random_vec(24, 40), k = random_vec(36, 41), v = random_vec(36, 42);
  Generator g1(1234), g2(1234);
  AttentionResult r1 = scaled_dot_product_attention_forward(from(q, {2, 4, 3}), from(k, {2, 6, 3}), from(v, {2, 6, 3}),
                                                            Tensor(), 0.4, false, {}, &g1);
  AttentionResult r2 = scaled_dot_product_attention_forward(from(q, {2, 4, 3}), from(k, {2, 6, 3}), from(v, {2, 6, 3}),
                                                            Tensor(), 0.4, false, {}, &g2);
  EXPECT_EQ(vals(r1.output), vals(r2.output));
  EXPECT_EQ(r1.seed, 1234u);
  EXPECT_EQ(g1.offset(), uint64_t(2 * 4 * 6));
  auto keep = [&](int64_t b, int64_t i, int64_t j) {
    uint32_t w[4];
    Philox4x32::generate(1234, uint64_t((b * 4 + i) * 6 + j), w);
    return Philox4x32::to_unit(w[0]) < 0.4f ? 0.0 : 1 / 0.6;
  };
  expect_near(vals(r1.output), attn_ref(c, q, k, v, {}, keep), 1e-10, "dropout attention");
}

TEST(Attention, BackwardMatchesFiniteDifferences) {
  struct Case { AttnCase c; double p; };
  const std::vector<Case> cases = {{{2, 3, 4, 3, 2}, 0.0}, {{1, 4, 4, 2, 3, 0, true}, 0.0}, {{2, 3, 5, 2, 2, 1}, 0.0},
                                   {{1, 3, 4, 2, 2, 2}, 0.0}, {{2, 3, 4, 2, 3}, 0.3},
                                   {{1, 70, 68, 2, 2, 0, true}, 0.0}};  // two query blocks, causal column limit
  for (const auto& [c, p] : cases) {
    const Vec q = random_vec(size_t(c.b * c.l * c.e), 50), k = random_vec(size_t(c.b * c.s * c.e), 51),
              v = random_vec(size_t(c.b * c.s * c.ev), 52), m = c.mask_kind ? make_mask(c, 53) : Vec{};
    const Vec gout = random_vec(size_t(c.b * c.l * c.ev), 54);
    Tensor mt = mask_tensor(c, m);
    Generator gen(99);
    AttentionResult fwd = scaled_dot_product_attention_forward(from(q, {c.b, c.l, c.e}), from(k, {c.b, c.s, c.e}),
                                                               from(v, {c.b, c.s, c.ev}), mt, p, c.causal, {}, &gen);
    auto keep = [&](int64_t b, int64_t i, int64_t j) {
      uint32_t w[4];
      Philox4x32::generate(99, uint64_t((b * c.l + i) * c.s + j), w);
      return Philox4x32::to_unit(w[0]) < float(p) ? 0.0 : 1 / (1 - p);
    };
    std::function<double(int64_t, int64_t, int64_t)> kf;
    if (p > 0) kf = keep;
    expect_near(vals(fwd.output), attn_ref(c, q, k, v, m, kf), 1e-10, "fwd");
    AttentionGrads g = scaled_dot_product_attention_backward(from(gout, {c.b, c.l, c.ev}), from(q, {c.b, c.l, c.e}),
                                                             from(k, {c.b, c.s, c.e}), from(v, {c.b, c.s, c.ev}), fwd,
                                                             mt, p, c.causal);
    expect_near(vals(g.grad_q), numeric_grad([&](const Vec& x) { return attn_ref(c, x, k, v, m, kf); }, q, gout), 1e-6, "gq");
    expect_near(vals(g.grad_k), numeric_grad([&](const Vec& x) { return attn_ref(c, q, x, v, m, kf); }, k, gout), 1e-6, "gk");
    expect_near(vals(g.grad_v), numeric_grad([&](const Vec& x) { return attn_ref(c, q, k, x, m, kf); }, v, gout), 1e-6, "gv");
  }
}

TEST(Attention, BackwardSumsOverBroadcastBatchDims) {
  // k and v shared by 2 heads: their grads are the sums of the per-head grads.
  const int64_t L = 3, S = 4, E = 2;
  const Vec q = random_vec(size_t(2 * L * E), 60), k = random_vec(size_t(S * E), 61), v = random_vec(size_t(S * E), 62);
  const Vec gout = random_vec(size_t(2 * L * E), 63);
  AttentionResult fwd = scaled_dot_product_attention_forward(from(q, {2, L, E}), from(k, {1, S, E}), from(v, {S, E}));
  AttentionGrads g = scaled_dot_product_attention_backward(from(gout, {2, L, E}), from(q, {2, L, E}),
                                                           from(k, {1, S, E}), from(v, {S, E}), fwd);
  EXPECT_EQ(g.grad_k.shape(), (Shape{1, S, E}));
  EXPECT_EQ(g.grad_v.shape(), (Shape{S, E}));
  AttnCase c{2, L, S, E, E};
  auto expand2 = [](const Vec& x) { Vec y = x; y.insert(y.end(), x.begin(), x.end()); return y; };
  expect_near(vals(g.grad_k), numeric_grad([&](const Vec& x) { return attn_ref(c, q, expand2(x), expand2(v), {}); }, k, gout),
              1e-6, "gk broadcast");
  expect_near(vals(g.grad_v), numeric_grad([&](const Vec& x) { return attn_ref(c, q, expand2(k), expand2(x), {}); }, v, gout),
              1e-6, "gv broadcast");
}

TEST(Dropout, SeededMaskFractionAndScale) {
  Tensor x = ones({4000}, DType::Float32) * 2.0;
  Generator g1(7), g2(7), g3(8);
  DropoutResult a = dropout_with_mask(x, 0.3, &g1);
  Tensor b = dropout(x, 0.3, true, &g2);
  Tensor c = dropout(x, 0.3, true, &g3);
  EXPECT_EQ(a.output.to_vector<float>(), b.to_vector<float>());  // same seed, same mask
  EXPECT_NE(a.output.to_vector<float>(), c.to_vector<float>());
  const auto y = a.output.to_vector<float>();
  const auto keep = a.mask.to_vector<bool>();
  int kept = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    uint32_t w[4];
    Philox4x32::generate(7, uint64_t(i), w);
    EXPECT_EQ(keep[i], Philox4x32::to_unit(w[0]) >= 0.3f);
    EXPECT_FLOAT_EQ(y[i], keep[i] ? 2.0f / 0.7f : 0.0f);
    kept += keep[i];
  }
  EXPECT_NEAR(kept / 4000.0, 0.7, 0.03);
  // the generator advanced: the next call draws a fresh mask
  EXPECT_EQ(g1.offset(), 4000u);
  // eval and p = 0 return the input; p = 1 gives zeros
  EXPECT_TRUE(dropout(x, 0.5, false).is_same(x));
  EXPECT_EQ(dropout(x, 1.0, true, &g1).to_vector<float>(), std::vector<float>(4000, 0.0f));
  for (DType dt : {DType::Float64, DType::Float16, DType::BFloat16}) {
    Generator g(7);
    Tensor yd = dropout(x.to(dt), 0.3, true, &g);
    EXPECT_EQ(yd.dtype(), dt);
    const auto v = vals(yd);
    for (size_t i = 0; i < 50; ++i) EXPECT_NEAR(v[i], keep[i] ? 2 / 0.7 : 0.0, 1e-2) << dt;
  }
  Tensor gx = dropout_backward(ones({4000}, DType::Float32), a.mask, 0.3);
  const auto gv = gx.to_vector<float>();
  for (size_t i = 0; i < gv.size(); ++i) EXPECT_FLOAT_EQ(gv[i], keep[i] ? 1.0f / 0.7f : 0.0f);
}

TEST(NnErrors, AttentionAndDropout) {
  Tensor q = ones({2, 3, 4}), k = ones({2, 5, 4}), v = ones({2, 5, 6});
  const char* op = "scaled_dot_product_attention";
  expect_error([&] { scaled_dot_product_attention(q, ones({2, 5, 3}), v); }, op, "embedding size");
  expect_error([&] { scaled_dot_product_attention(q, k, ones({2, 4, 6})); }, op, "sequence length");
  expect_error([&] { scaled_dot_product_attention(q, k, v.to(DType::Float64)); }, op, "dtype");
  expect_error([&] { scaled_dot_product_attention(q, ones({3, 5, 4}), ones({3, 5, 6})); }, op, "broadcast");
  expect_error([&] { scaled_dot_product_attention(ones({4}), k, v); }, op, "[4]");
  expect_error([&] { scaled_dot_product_attention(q, k, v, ones({3, 4})); }, op, "attn_mask");
  expect_error([&] { scaled_dot_product_attention(q, k, v, ones({3, 5}, DType::Int64)); }, op, "int64");
  expect_error([&] { scaled_dot_product_attention(q, k, v, ones({3, 5}), 0.0, true); }, op, "is_causal");
  expect_error([&] { scaled_dot_product_attention(q, k, v, Tensor(), 1.5); }, op, "dropout_p");
  expect_error([&] { scaled_dot_product_attention(q.to(DType::Int32), k, v); }, op, "int32");
  EXPECT_EQ(vals(q), Vec(24, 1.0));
  Tensor x = ones({5});
  expect_error([&] { dropout(x, 1.5); }, "dropout", "1.5");
  expect_error([&] { dropout(x, -0.1); }, "dropout");
  expect_error([&] { dropout(ones({5}, DType::Int64), 0.5); }, "dropout", "int64");
  expect_error([&] { dropout_backward(x, ones({4}, DType::Bool), 0.5); }, "dropout_backward", "[4]");
  EXPECT_EQ(vals(x), Vec(5, 1.0));
}
