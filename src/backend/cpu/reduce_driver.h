#pragma once
// The parallel loop shared by every CPU reduction. A reduction is a policy P:
//   using in_t, acc_t;
//   acc_t init() const;
//   void row(const in_t* x, int64_t n, int64_t i0, acc_t& a, int64_t pos) const;
//        folds x[0..n) (reduced indices i0..i0+n) into a, the accumulator of output pos
//   void col(const in_t* x, int64_t n, int64_t i, acc_t* a, int64_t pos0) const;
//        folds x[j] into a[j] for j < n (reduced index i, outputs pos0..pos0+n)
//   void combine(acc_t& a, const acc_t& later) const;  // later covers higher indices
//   optional: void cols(const in_t* x, int64_t stride, int64_t r0, int64_t r1, int64_t n, acc_t* a) const;
//        folds rows r0..r1 of the column block at x (row i at x + i * stride) into a[0..n)
//   void store(int64_t pos, const acc_t& a, int64_t count) const;
// run_reduce walks a contiguous [outer, reduce, inner] input: rows (inner == 1) fold with
// row(), otherwise blocks of columns fold with col(), so both inner loops are unit-stride.
// Work is split over outputs, and over the reduced range when there are too few outputs.
#include <algorithm>
#include <cstdint>
#include <memory>

#include "src/backend/cpu/loops.h"
#include "src/backend/cpu/parallel.h"

namespace kiln::cpu {

inline constexpr int64_t kColumnBlock = 8192;  // widest column block: accumulators stay in L2, rows stream whole

template <class P>
void reduce_rows(const P& p, const typename P::in_t* x, int64_t outer, int64_t R, bool par, int nt) {
  using acc_t = typename P::acc_t;
  if (!par || outer >= 4 * nt) {
#pragma omp parallel for schedule(static) if (par)
    for (int64_t o = 0; o < outer; ++o) {
      acc_t a = p.init();
      p.row(x + o * R, R, 0, a, o);
      p.store(o, a, R);
    }
    return;
  }
  // Few long rows: each row is split across the threads, partials combined in order.
  std::unique_ptr<acc_t[]> part(new acc_t[size_t(nt)]);  // not std::vector: acc_t may be bool
  for (int64_t o = 0; o < outer; ++o) {
    const typename P::in_t* row = x + o * R;
    std::fill(part.get(), part.get() + nt, p.init());
#pragma omp parallel num_threads(nt)
    {
      const int n = omp_threads(), id = omp_id();
      const int64_t chunk = (R + n - 1) / n;
      const int64_t s = std::min<int64_t>(R, id * chunk), e = std::min<int64_t>(R, s + chunk);
      if (s < e) p.row(row + s, e - s, s, part[size_t(id)], o);
    }
    acc_t a = part[0];
    for (int k = 1; k < nt; ++k) p.combine(a, part[size_t(k)]);
    p.store(o, a, R);
  }
}

template <class P>
void reduce_cols(const P& p, const typename P::in_t* x, int64_t outer, int64_t R, int64_t inner, bool par,
                 int nt) {
  using acc_t = typename P::acc_t;
  const int64_t cb = std::min(inner, kColumnBlock);
  const int64_t blocks = (inner + cb - 1) / cb;
  const int64_t units = outer * blocks;
  // Too few column blocks for the threads: split the reduced range too.
  const int64_t parts = (par && units < nt) ? std::min<int64_t>(R, (nt + units - 1) / units) : 1;
  const int64_t rchunk = parts > 1 ? (R + parts - 1) / parts : R;
  std::unique_ptr<acc_t[]> partial(parts > 1 ? new acc_t[size_t(units * parts * cb)] : nullptr);

#pragma omp parallel if (par)
  {
    std::unique_ptr<acc_t[]> local(parts > 1 ? nullptr : new acc_t[size_t(cb)]);
#pragma omp for schedule(static)
    for (int64_t u = 0; u < units * parts; ++u) {
      const int64_t unit = u / parts, part = u % parts;
      const int64_t o = unit / blocks, j0 = (unit % blocks) * cb;
      const int64_t n = std::min(cb, inner - j0);
      const int64_t pos0 = o * inner + j0;
      acc_t* a = parts > 1 ? &partial[size_t(u * cb)] : local.get();
      for (int64_t j = 0; j < n; ++j) a[j] = p.init();
      const int64_t r0 = part * rchunk, r1 = std::min(R, r0 + rchunk);
      const typename P::in_t* base = x + o * R * inner + j0;
      if constexpr (requires { p.cols(base, inner, r0, r1, n, a); }) {
        p.cols(base, inner, r0, r1, n, a);  // the policy runs the whole block itself
      } else {
        for (int64_t i = r0; i < r1; ++i) p.col(base + i * inner, n, i, a, pos0);
      }
      if (parts == 1)
        for (int64_t j = 0; j < n; ++j) p.store(pos0 + j, a[j], R);
    }
  }
  if (parts == 1) return;
  for (int64_t unit = 0; unit < units; ++unit) {
    const int64_t o = unit / blocks, j0 = (unit % blocks) * cb;
    const int64_t n = std::min(cb, inner - j0);
    acc_t* a = &partial[size_t(unit * parts * cb)];
    for (int64_t k = 1; k < parts; ++k)
      for (int64_t j = 0; j < n; ++j) p.combine(a[j], a[k * cb + j]);
    for (int64_t j = 0; j < n; ++j) p.store(o * inner + j0 + j, a[j], R);
  }
}

// Reduces contiguous x viewed as [outer, R, inner] into outer * inner outputs.
template <class P>
void run_reduce(const P& p, const typename P::in_t* x, int64_t outer, int64_t R, int64_t inner) {
  if (outer * inner == 0) return;
  const int nt = max_threads();
  const bool par = nt > 1 && outer * R * inner >= kParallelGrain;
  if (R == 0) {  // empty reduction: every output is the identity
    for (int64_t o = 0; o < outer * inner; ++o) p.store(o, p.init(), 0);
  } else if (inner == 1) {
    reduce_rows(p, x, outer, R, par, nt);
  } else {
    reduce_cols(p, x, outer, R, inner, par, nt);
  }
}

}  // namespace kiln::cpu
