// CUDA scaled_dot_product_attention: the fused cuDNN path (float16/bfloat16, head dims
// that are multiples of 8) and the unfused one, forward and backward, against naive
// double-precision loops: plain, causal (L < S and L > S), a bool mask with a query that
// sees nothing, a float mask shared by the batch, Philox dropout. Skips without CUDA.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kiln/device_manager.h"
#include "kiln/generator.h"
#include "kiln/ops.h"
#include "kiln/ops_nn_backward.h"
#include "kiln/tensor.h"
#include "tests/support/cuda_test.h"

using namespace kiln;
using kiln::testing::kGpu;

namespace {

struct Case {
  int64_t B, L, S, E, Ev;
  bool causal;
  int mask;  // 0 none, 1 bool [L, S] with query 1 masked out entirely, 2 float [L, S]
  double dropout = 0;
};

// The contract's dropout factor of probability (b, i, j): 0 or 1/(1 - p) (ops.def).
double keep_scale(const Case& c, uint64_t seed, uint64_t offset, int64_t b, int64_t i, int64_t j) {
  if (c.dropout == 0) return 1;
  uint32_t w[4];
  Philox4x32::generate(seed, offset + uint64_t((b * c.L + i) * c.S + j), w);
  return Philox4x32::to_unit(w[0]) < float(c.dropout) ? 0.0 : 1.0 / (1.0 - c.dropout);
}

// Naive attention and its gradients in double for one problem (inputs as doubles,
// already rounded to the tested dtype).
struct Reference {
  std::vector<double> o, lse, dq, dk, dv;
};

Reference reference(const Case& c, const std::vector<double>& q, const std::vector<double>& k,
                    const std::vector<double>& v, const std::vector<double>& mask, const std::vector<double>& go,
                    uint64_t seed, uint64_t offset) {
  const double scale = 1.0 / std::sqrt(double(c.E));
  Reference r;
  r.o.assign(size_t(c.B * c.L * c.Ev), 0.0);
  r.lse.assign(size_t(c.B * c.L), -INFINITY);
  r.dq.assign(q.size(), 0.0);
  r.dk.assign(k.size(), 0.0);
  r.dv.assign(v.size(), 0.0);
  std::vector<double> p(size_t(c.S)), dp(size_t(c.S));
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t i = 0; i < c.L; ++i) {
      double m = -INFINITY;
      for (int64_t j = 0; j < c.S; ++j) {
        double s = 0;
        for (int64_t e = 0; e < c.E; ++e) s += q[size_t((b * c.L + i) * c.E + e)] * k[size_t((b * c.S + j) * c.E + e)];
        s *= scale;
        if (c.mask == 1 && mask[size_t(i * c.S + j)] == 0) s = -INFINITY;
        if (c.mask == 2) s += mask[size_t(i * c.S + j)];
        if (c.causal && j > i) s = -INFINITY;
        p[size_t(j)] = s;
        m = std::max(m, s);
      }
      if (m == -INFINITY) continue;  // a query that sees nothing: output 0, no gradient
      double sum = 0;
      for (int64_t j = 0; j < c.S; ++j) sum += std::exp(p[size_t(j)] - m);
      r.lse[size_t(b * c.L + i)] = m + std::log(sum);
      for (int64_t j = 0; j < c.S; ++j) p[size_t(j)] = std::exp(p[size_t(j)] - m) / sum;
      double row_dot = 0;
      for (int64_t j = 0; j < c.S; ++j) {
        const double m = keep_scale(c, seed, offset, b, i, j);
        double d = 0;
        for (int64_t e = 0; e < c.Ev; ++e) {
          const double vj = v[size_t((b * c.S + j) * c.Ev + e)], g = go[size_t((b * c.L + i) * c.Ev + e)];
          r.o[size_t((b * c.L + i) * c.Ev + e)] += p[size_t(j)] * m * vj;
          r.dv[size_t((b * c.S + j) * c.Ev + e)] += p[size_t(j)] * m * g;
          d += g * vj;
        }
        dp[size_t(j)] = d * m;
        row_dot += p[size_t(j)] * dp[size_t(j)];
      }
      for (int64_t j = 0; j < c.S; ++j) {
        const double ds = p[size_t(j)] * (dp[size_t(j)] - row_dot) * scale;
        for (int64_t e = 0; e < c.E; ++e) {
          r.dq[size_t((b * c.L + i) * c.E + e)] += ds * k[size_t((b * c.S + j) * c.E + e)];
          r.dk[size_t((b * c.S + j) * c.E + e)] += ds * q[size_t((b * c.L + i) * c.E + e)];
        }
      }
    }
  return r;
}

// ||got - want|| / ||want||, with NaN failing.
double rel_error(const std::vector<double>& got, const std::vector<double>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(got[i])) return INFINITY;
    num += (got[i] - want[i]) * (got[i] - want[i]);
    den += want[i] * want[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

void run_case(const Case& c, DType dt, double tol) {
  SCOPED_TRACE(::testing::Message() << dtype_name(dt) << " B" << c.B << " L" << c.L << " S" << c.S << " E" << c.E
                                    << " Ev" << c.Ev << " causal " << c.causal << " mask " << c.mask);
  Generator g(uint64_t(c.L * 131 + c.S * 7 + c.mask));
  const TensorOptions cpu = TensorOptions(dt);
  // Inputs rounded to dt once: the reference sees exactly what the kernel sees.
  Tensor q = randn({c.B, c.L, c.E}, cpu, &g), k = randn({c.B, c.S, c.E}, cpu, &g), v = randn({c.B, c.S, c.Ev}, cpu, &g);
  Tensor go = randn({c.B, c.L, c.Ev}, cpu, &g);
  Tensor mask;
  std::vector<double> mask_values;
  if (c.mask == 1) {
    mask = gt(randn({c.L, c.S}, TensorOptions(DType::Float32), &g), -0.3);
    mask.select(0, std::min<int64_t>(1, c.L - 1)).fill_(false);
    mask_values = mask.to_vector<double>();
  } else if (c.mask == 2) {
    mask = randn({c.L, c.S}, cpu, &g);
    mask_values = mask.to_vector<double>();
  }
  Tensor qg = q.to(kGpu).requires_grad_(), kg = k.to(kGpu).requires_grad_(), vg = v.to(kGpu).requires_grad_();
  const Tensor mask_gpu = mask.defined() ? mask.to(kGpu) : mask;
  Generator dropout_gen(17);
  const AttentionResult fwd = scaled_dot_product_attention_forward(qg.detach(), kg.detach(), vg.detach(), mask_gpu,
                                                                   c.dropout, c.causal, {}, &dropout_gen);
  const Reference ref = reference(c, q.to_vector<double>(), k.to_vector<double>(), v.to_vector<double>(), mask_values,
                                  go.to_vector<double>(), fwd.seed, fwd.offset);
  EXPECT_LT(rel_error(fwd.output.to(kCpu).to_vector<double>(), ref.o), tol) << "output";
  const std::vector<double> lse = fwd.logsumexp.to(kCpu).to_vector<double>();
  for (size_t i = 0; i < lse.size(); ++i) {
    if (std::isinf(ref.lse[i])) EXPECT_EQ(lse[i], -INFINITY) << "lse row " << i;
    else EXPECT_NEAR(lse[i], ref.lse[i], 1e-3 * (1 + std::abs(ref.lse[i]))) << "lse row " << i;
  }

  Tensor gq, gk, gv;
  if (c.dropout > 0) {  // the backward op with the forward's dropout stream
    const AttentionGrads g = scaled_dot_product_attention_backward(go.to(kGpu), qg.detach(), kg.detach(), vg.detach(),
                                                                   fwd, mask_gpu, c.dropout, c.causal);
    gq = g.grad_q, gk = g.grad_k, gv = g.grad_v;
  } else {  // through autograd
    Tensor out = scaled_dot_product_attention(qg, kg, vg, mask_gpu, 0.0, c.causal);
    out.backward(go.to(kGpu));
    gq = qg.grad(), gk = kg.grad(), gv = vg.grad();
  }
  EXPECT_LT(rel_error(gq.to(kCpu).to_vector<double>(), ref.dq), tol * 2) << "grad q";
  EXPECT_LT(rel_error(gk.to(kCpu).to_vector<double>(), ref.dk), tol * 2) << "grad k";
  EXPECT_LT(rel_error(gv.to(kCpu).to_vector<double>(), ref.dv), tol * 2) << "grad v";
}

const std::vector<Case> kCases = {
    {3, 77, 93, 64, 64, false, 0},  {2, 64, 200, 128, 64, true, 0}, {2, 90, 40, 64, 64, true, 0},
    {3, 33, 48, 64, 32, false, 1}, {2, 40, 56, 32, 32, false, 2}, {1, 128, 128, 128, 128, false, 0},
    {2, 5, 7, 12, 4, false, 1}, {2, 6, 9, 12, 4, true, 0},  // head dims cuDNN does not take: unfused
    {3, 37, 45, 64, 32, false, 0, 0.3}, {2, 40, 40, 16, 16, true, 0, 0.5},  // dropout: unfused, on the GPU
};

}  // namespace

TEST(CudaAttention, BFloat16MatchesNaiveLoops) {
  REQUIRE_CUDA();
  for (const Case& c : kCases) run_case(c, DType::BFloat16, 2e-2);
}

TEST(CudaAttention, Float16MatchesNaiveLoops) {
  REQUIRE_CUDA();
  for (const Case& c : kCases) run_case(c, DType::Float16, 4e-3);
}

TEST(CudaAttention, Float32MatchesNaiveLoops) {
  REQUIRE_CUDA();
  for (const Case& c : kCases) run_case(c, DType::Float32, 1e-4);
}
