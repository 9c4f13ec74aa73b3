// CPU kernels of scaled_dot_product_attention, forward and backward (contract in ops.def).
// Per batch-head, blocks of query rows: scores = scale * q k^T (oneDNN sgemm for float,
// plain loops for double), mask / causal, a stable softmax, optional Philox dropout, then
// @ v. Half types compute in float. The backward recomputes the probabilities from the
// saved log-sum-exp, so no [L, S] matrix is ever kept.
#include <dnnl.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "kiln/generator.h"
#include "kiln/op_attrs.h"
#include "src/backend/cpu/loops.h"
#include "src/backend/cpu/nn_kernels.h"
#include "src/backend/cpu/vec_math.h"

namespace kiln::cpu {

namespace {

constexpr int64_t kQueryBlock = 64;

// exp that vectorises for float (softmax probabilities need ~2 ulp, not libm's 0.5).
inline float exp_acc(float x) { return fast_expf(x); }
inline double exp_acc(double x) { return std::exp(x); }

// Row-major C[m, n] = alpha * op(A) op(B) + beta * C, op = transpose when t*.
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.f ? 0.f : beta * c[i * ldc + j];
    return;
  }
  const dnnl_status_t st = dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  KILN_CHECK(st == dnnl_success, "scaled_dot_product_attention", "dnnl_sgemm failed with status ", int(st));
}
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda,
          const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i) {
    double* ci = c + i * ldc;
    for (int64_t j = 0; j < n; ++j) ci[j] = beta == 0.0 ? 0.0 : beta * ci[j];
    for (int64_t p = 0; p < k; ++p) {
      const double av = alpha * (ta ? a[p * lda + i] : a[i * lda + p]);
      if (av == 0.0) continue;
      if (tb) {
        for (int64_t j = 0; j < n; ++j) ci[j] += av * b[j * ldb + p];
      } else {
        const double* bp = b + p * ldb;
        for (int64_t j = 0; j < n; ++j) ci[j] += av * bp[j];
      }
    }
  }
}

// A tensor's contiguous data in the compute type A (a copy only for half types).
template <typename T, typename A = compute_t<T>>
struct AccView {
  std::vector<A> buf;
  const A* p = nullptr;
  explicit AccView(const Tensor& t) {
    if constexpr (std::is_same_v<T, A>) {
      p = t.data<T>();
    } else {
      const T* s = t.data<T>();
      buf.resize(size_t(t.numel()));
      for (size_t i = 0; i < buf.size(); ++i) buf[i] = A(s[i]);
      p = buf.data();
    }
  }
};

// Where results go in the compute type; copied into a half-type tensor at the end.
template <typename T, typename A = compute_t<T>>
struct AccOut {
  const Tensor& t;
  std::vector<A> buf;
  A* p = nullptr;
  explicit AccOut(const Tensor& out) : t(out) {
    if constexpr (std::is_same_v<T, A>) {
      p = out.data<T>();
    } else {
      buf.assign(size_t(out.numel()), A(0));
      p = buf.data();
    }
  }
  void finish() {
    if constexpr (!std::is_same_v<T, A>) {
      T* d = t.data<T>();
      for (size_t i = 0; i < buf.size(); ++i) d[i] = T(buf[i]);
    }
  }
};

struct Dims {
  int64_t b, l, s, e, ev;
};

// Adds the mask and causal limit to a block of scaled scores [rows, nc] (row stride S) for
// queries i0...; nc < S only under a causal mask, whose later columns are never needed.
template <typename T, typename A>
void mask_scores(A* sc, int64_t rows, int64_t nc, int64_t i0, int64_t b, const Dims& d, const AttentionAttrs& at,
                 const Tensor* mask) {
  const A ninf = -std::numeric_limits<A>::infinity();
  if (at.is_causal) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = i0 + r + 1; j < nc; ++j) sc[r * d.s + j] = ninf;
  }
  if (!mask) return;
  const int64_t s0 = mask->stride(0), s1 = mask->stride(1), s2 = mask->stride(2);
  if (mask->dtype() == DType::Bool) {
    const bool* m = static_cast<const bool*>(mask->data_ptr()) + b * s0;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < nc; ++j)
        if (!m[(i0 + r) * s1 + j * s2]) sc[r * d.s + j] = ninf;
  } else {
    const T* m = static_cast<const T*>(mask->data_ptr()) + b * s0;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < nc; ++j) sc[r * d.s + j] += A(m[(i0 + r) * s1 + j * s2]);
  }
}

// Dropout keep-scale of probability (b, i, j): 0 when dropped, 1/(1-p) when kept.
template <typename A>
A keep_scale(const AttentionAttrs& at, const Dims& d, int64_t b, int64_t i, int64_t j) {
  uint32_t w[4];
  Philox4x32::generate(at.seed, at.offset + uint64_t((b * d.l + i) * d.s + j), w);
  return Philox4x32::to_unit(w[0]) < float(at.dropout_p) ? A(0) : A(1.0 / (1.0 - at.dropout_p));
}

template <typename T>
void attention_forward_typed(const KernelArgs& a) {
  using A = compute_t<T>;
  const AttentionAttrs& at = a.attr<AttentionAttrs>();
  const Tensor &qt = a.inputs[0], &kt = a.inputs[1], &vt = a.inputs[2];
  const Tensor* mask = at.has_mask ? &a.inputs[3] : nullptr;
  const Dims d{qt.size(0), qt.size(1), kt.size(1), qt.size(2), vt.size(2)};
  AccView<T> q(qt), k(kt), v(vt);
  AccOut<T> o(a.outputs[0]);
  A* lse = a.outputs[1].data<A>();
  const A scale = A(at.scale);
  const int64_t nblk = (d.l + kQueryBlock - 1) / kQueryBlock;
  const A ninf = -std::numeric_limits<A>::infinity();
#pragma omp parallel
  {
    std::vector<A> sc(size_t(kQueryBlock * std::max<int64_t>(d.s, 1)));
#pragma omp for schedule(dynamic)
    for (int64_t task = 0; task < d.b * nblk; ++task) {
      const int64_t b = task / nblk, i0 = (task % nblk) * kQueryBlock, rows = std::min(kQueryBlock, d.l - i0);
      const int64_t nc = at.is_causal ? std::min(d.s, i0 + rows) : d.s;  // columns that can be attended
      const A* qb = q.p + (b * d.l + i0) * d.e;
      gemm(false, true, rows, nc, d.e, scale, qb, d.e, k.p + b * d.s * d.e, d.e, A(0), sc.data(), d.s);
      mask_scores<T>(sc.data(), rows, nc, i0, b, d, at, mask);
      for (int64_t r = 0; r < rows; ++r) {
        A* row = sc.data() + r * d.s;
        A mx = ninf;
        for (int64_t j = 0; j < nc; ++j) mx = std::max(mx, row[j]);
        if (mx == ninf) {  // nothing to attend to: output 0
          std::fill(row, row + nc, A(0));
          lse[b * d.l + i0 + r] = ninf;
          continue;
        }
        A sum = 0;
#pragma omp simd reduction(+ : sum)
        for (int64_t j = 0; j < nc; ++j) {
          row[j] = exp_acc(row[j] - mx);
          sum += row[j];
        }
        lse[b * d.l + i0 + r] = mx + std::log(sum);
        const A inv = A(1) / sum;
        for (int64_t j = 0; j < nc; ++j) row[j] *= inv;
        if (at.dropout_p > 0)
          for (int64_t j = 0; j < nc; ++j) row[j] *= keep_scale<A>(at, d, b, i0 + r, j);
      }
      gemm(false, false, rows, d.ev, nc, A(1), sc.data(), d.s, v.p + b * d.s * d.ev, d.ev, A(0),
           o.p + (b * d.l + i0) * d.ev, d.ev);
    }
  }
  o.finish();
}

template <typename T>
void attention_backward_typed(const KernelArgs& a) {
  using A = compute_t<T>;
  const AttentionAttrs& at = a.attr<AttentionAttrs>();
  const Tensor &qt = a.inputs[1], &kt = a.inputs[2], &vt = a.inputs[3];
  const A* lse = a.inputs[4].data<A>();
  const Tensor* mask = at.has_mask ? &a.inputs[6] : nullptr;  // inputs[5] is o, unused here
  const Dims d{qt.size(0), qt.size(1), kt.size(1), qt.size(2), vt.size(2)};
  AccView<T> go(a.inputs[0]), q(qt), k(kt), v(vt);
  AccOut<T> gq(a.outputs[0]), gk(a.outputs[1]), gv(a.outputs[2]);
  const A scale = A(at.scale);
  const A ninf = -std::numeric_limits<A>::infinity();
  // One query block of batch-head b: writes its rows of grad_q and adds into grad_k/grad_v
  // (gkb/gvb: that head's [S, E] / [S, Ev] accumulators).
  auto block = [&](int64_t b, int64_t i0, A* gkb, A* gvb, A* p, A* pd, A* dp) {
    const int64_t rows = std::min(kQueryBlock, d.l - i0);
    const A* kb = k.p + b * d.s * d.e;
    const A* vb = v.p + b * d.s * d.ev;
    const A* qb = q.p + (b * d.l + i0) * d.e;
    const A* gob = go.p + (b * d.l + i0) * d.ev;
    const int64_t nc = at.is_causal ? std::min(d.s, i0 + rows) : d.s;
    // probabilities P from the saved log-sum-exp; Pd = P with dropout applied
    gemm(false, true, rows, nc, d.e, scale, qb, d.e, kb, d.e, A(0), p, d.s);
    mask_scores<T>(p, rows, nc, i0, b, d, at, mask);
    for (int64_t r = 0; r < rows; ++r) {
      const A l = lse[b * d.l + i0 + r];
      A* pr = p + r * d.s;
      A* pdr = pd + r * d.s;
      if (l == ninf) {
        std::fill(pr, pr + nc, A(0));
      } else {
#pragma omp simd
        for (int64_t j = 0; j < nc; ++j) pr[j] = exp_acc(pr[j] - l);
      }
      if (at.dropout_p > 0)
        for (int64_t j = 0; j < nc; ++j) pdr[j] = pr[j] * keep_scale<A>(at, d, b, i0 + r, j);
    }
    const A* pdp = at.dropout_p > 0 ? pd : p;
    gemm(true, false, nc, d.ev, rows, A(1), pdp, d.s, gob, d.ev, A(1), gvb, d.ev);  // gv += Pd^T gO
    gemm(false, true, rows, nc, d.ev, A(1), gob, d.ev, vb, d.ev, A(0), dp, d.s);    // dPd = gO V^T
    for (int64_t r = 0; r < rows; ++r) {
      A* dpr = dp + r * d.s;
      const A* pr = p + r * d.s;
      if (at.dropout_p > 0)
        for (int64_t j = 0; j < nc; ++j) dpr[j] *= keep_scale<A>(at, d, b, i0 + r, j);
      A dot = 0;
#pragma omp simd reduction(+ : dot)
      for (int64_t j = 0; j < nc; ++j) dot += dpr[j] * pr[j];
      for (int64_t j = 0; j < nc; ++j) dpr[j] = pr[j] * (dpr[j] - dot);  // dS
    }
    gemm(false, false, rows, d.e, nc, scale, dp, d.s, kb, d.e, A(0), gq.p + (b * d.l + i0) * d.e, d.e);  // gq = scale dS K
    gemm(true, false, nc, d.e, rows, scale, dp, d.s, qb, d.e, A(1), gkb, d.e);  // gk += scale dS^T Q
  };
  std::fill(gk.p, gk.p + d.b * d.s * d.e, A(0));
  std::fill(gv.p, gv.p + d.b * d.s * d.ev, A(0));
  const int nt = max_threads();
  const int64_t nblk = (d.l + kQueryBlock - 1) / kQueryBlock;
  const size_t blk = size_t(kQueryBlock * std::max<int64_t>(d.s, 1));
  if (d.b >= nt || nblk == 1) {
    // One task per batch-head: it owns that head's grad_k/grad_v, accumulated over query blocks.
#pragma omp parallel
    {
      std::vector<A> p(blk), pd(blk), dp(blk);
#pragma omp for schedule(dynamic)
      for (int64_t b = 0; b < d.b; ++b)
        for (int64_t i0 = 0; i0 < d.l; i0 += kQueryBlock)
          block(b, i0, gk.p + b * d.s * d.e, gv.p + b * d.s * d.ev, p.data(), pd.data(), dp.data());
    }
  } else {
    // Few heads, long queries: query blocks in parallel, grad_k/grad_v in per-thread partials.
    const size_t nk = size_t(d.b * d.s * d.e), nv = size_t(d.b * d.s * d.ev);
    std::vector<A> part_k(size_t(nt) * nk, A(0)), part_v(size_t(nt) * nv, A(0));
#pragma omp parallel
    {
      std::vector<A> p(blk), pd(blk), dp(blk);
      A* my_k = part_k.data() + size_t(omp_id()) * nk;
      A* my_v = part_v.data() + size_t(omp_id()) * nv;
#pragma omp for schedule(dynamic)
      for (int64_t t = 0; t < d.b * nblk; ++t) {
        const int64_t b = t / nblk;
        block(b, (t % nblk) * kQueryBlock, my_k + b * d.s * d.e, my_v + b * d.s * d.ev, p.data(), pd.data(),
              dp.data());
      }
    }
    for (int th = 0; th < nt; ++th) {
      for (size_t i = 0; i < nk; ++i) gk.p[i] += part_k[size_t(th) * nk + i];
      for (size_t i = 0; i < nv; ++i) gv.p[i] += part_v[size_t(th) * nv + i];
    }
  }
  gq.finish();
  gk.finish();
  gv.finish();
}

}  // namespace

void register_nn_attention(KernelRegistry& r) {
  r.add(DeviceType::Cpu, OpId::Attention, [](const KernelArgs& a) {
    KILN_DISPATCH_FLOATING(a.inputs[0].dtype(), "scaled_dot_product_attention",
                           [&]<typename T>() { attention_forward_typed<T>(a); });
  });
  r.add(DeviceType::Cpu, OpId::AttentionBackward, [](const KernelArgs& a) {
    KILN_DISPATCH_FLOATING(a.inputs[1].dtype(), "scaled_dot_product_attention_backward",
                           [&]<typename T>() { attention_backward_typed<T>(a); });
  });
}

}  // namespace kiln::cpu
