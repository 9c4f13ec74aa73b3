#pragma once
// Strided elementwise loops for CPU kernels.
//
// cpu_map(out, {in...}, f) sets out[i] = f(in0[i], in1[i], ...) over out's shape. Inputs
// have out's shape already (broadcast inputs carry stride 0). Dimensions are coalesced
// first, so contiguous and simply-broadcast tensors run as one flat loop; the inner
// loop has a unit-stride version the compiler vectorises. Work above a grain size is
// split across OpenMP threads.
#include <array>
#include <cstdint>
#include <vector>

#include "kiln/tensor.h"
#include "src/backend/cpu/parallel.h"

namespace kiln::cpu {

inline constexpr int64_t kParallelGrain = 32768;  // elements below which threads cost more than they save

// Shape and per-tensor element strides after merging dims that are contiguous in every tensor.
template <size_t N>
struct LoopLayout {
  Shape shape;
  std::array<Strides, N> strides;
};

template <size_t N>
LoopLayout<N> coalesce(const Shape& shape, const std::array<const Strides*, N>& strides) {
  LoopLayout<N> l;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = !l.shape.empty();
    for (size_t t = 0; t < N && merge; ++t) merge = l.strides[t].back() == (*strides[t])[d] * shape[d];
    if (merge) {
      l.shape.back() *= shape[d];
      for (size_t t = 0; t < N; ++t) l.strides[t].back() = (*strides[t])[d];
    } else {
      l.shape.push_back(shape[d]);
      for (size_t t = 0; t < N; ++t) l.strides[t].push_back((*strides[t])[d]);
    }
  }
  if (l.shape.empty()) {  // a single element
    l.shape.push_back(1);
    for (size_t t = 0; t < N; ++t) l.strides[t].push_back(1);
  }
  return l;
}

// Calls body(ptrs, inner_strides, n) for each innermost row; ptrs[0] is the output.
// T is the element type of every tensor (out first).
template <typename... T, typename Body>
void for_each_row(const Tensor& out, const std::array<const Tensor*, sizeof...(T) - 1>& in, Body body) {
  constexpr size_t N = sizeof...(T);
  std::array<const Strides*, N> st;
  st[0] = &out.strides();
  for (size_t i = 1; i < N; ++i) st[i] = &in[i - 1]->strides();
  const LoopLayout<N> l = coalesce<N>(out.shape(), st);
  std::array<char*, N> base;
  std::array<int64_t, N> esize{int64_t(sizeof(T))...};
  base[0] = static_cast<char*>(out.data_ptr());
  for (size_t i = 1; i < N; ++i) base[i] = static_cast<char*>(in[i - 1]->data_ptr());

  const int64_t nd = int64_t(l.shape.size());
  const int64_t inner = l.shape.back();
  const int64_t rows = numel_of(l.shape) / std::max<int64_t>(inner, 1);
  std::array<int64_t, N> inner_stride;
  for (size_t t = 0; t < N; ++t) inner_stride[t] = l.strides[t].back();

  auto run_rows = [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      std::array<char*, N> p = base;
      int64_t rem = r;
      for (int64_t d = nd - 2; d >= 0; --d) {
        const int64_t idx = rem % l.shape[size_t(d)];
        rem /= l.shape[size_t(d)];
        for (size_t t = 0; t < N; ++t) p[t] += idx * l.strides[t][size_t(d)] * esize[t];
      }
      body(p, inner_stride, int64_t(0), inner);
    }
  };
  const int64_t total = rows * inner;
  if (total < kParallelGrain) {
    run_rows(0, rows);
  } else if (rows == 1) {
    // One long row: split it across threads.
#pragma omp parallel
    {
      const int nt = omp_threads(), id = omp_id();
      const int64_t chunk = (inner + nt - 1) / nt;
      const int64_t s = std::min<int64_t>(inner, id * chunk), e = std::min<int64_t>(inner, s + chunk);
      if (s < e) {
        std::array<char*, N> p = base;
        for (size_t t = 0; t < N; ++t) p[t] += s * inner_stride[t] * esize[t];
        body(p, inner_stride, s, e - s);
      }
    }
  } else {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; ++r) run_rows(r, r + 1);
  }
}

// The unit-stride inner loop, on plain restrict pointers so the compiler vectorises it.
// In-place ops pass out == in; that is safe here because element i only reads index i.
template <typename Out, typename F, typename... In>
void unit_stride_loop(Out* __restrict o, int64_t n, const F& f, const In* __restrict... in) {
  for (int64_t i = 0; i < n; ++i) o[i] = f(in[i]...);
}

// out[i] = f(in[i]...) with every tensor's own element type; f works on the stored types.
template <typename Out, typename... In, typename F>
void cpu_map(const Tensor& out, const std::array<const Tensor*, sizeof...(In)>& in, F f) {
  constexpr size_t N = sizeof...(In) + 1;
  for_each_row<Out, In...>(out, in, [&](const std::array<char*, N>& p, const std::array<int64_t, N>& st,
                                        int64_t /*first*/, int64_t n) {
    bool unit = true;
    for (size_t t = 0; t < N; ++t) unit = unit && st[t] == 1;
    Out* o = reinterpret_cast<Out*>(p[0]);
    [&]<size_t... I>(std::index_sequence<I...>) {
      if (unit) {
        unit_stride_loop<Out>(o, n, f, reinterpret_cast<const In*>(p[I + 1])...);
      } else {
        for (int64_t i = 0; i < n; ++i)
          o[i * st[0]] = f(reinterpret_cast<const In*>(p[I + 1])[i * st[I + 1]]...);
      }
    }(std::index_sequence_for<In...>{});
  });
}

}  // namespace kiln::cpu
