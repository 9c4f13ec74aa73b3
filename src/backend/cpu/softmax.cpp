// CPU kernels of the softmax family over one dim (attrs: DimAttrs), on contiguous tensors
// viewed as [outer, n, inner]. Rows (inner == 1) run three unit-stride passes; otherwise
// blocks of columns keep per-column max and sum. float uses the vectorised fast_expf;
// float16/bfloat16 compute in float through a row buffer; float64 uses std::exp.
//   softmax_backward(grad, out):     grad_in = out * (grad - sum(grad * out))
//   log_softmax_backward(grad, out): grad_in = grad - exp(out) * sum(grad)
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "kiln/op_attrs.h"
#include "kiln/tensor.h"
#include "src/backend/cpu/kernels.h"
#include "src/backend/cpu/loops.h"
#include "src/backend/cpu/reduce_layout.h"
#include "src/backend/cpu/vec_math.h"

namespace kiln::cpu {

namespace {

constexpr int64_t kCols = 64;  // columns handled together in the strided (inner > 1) case

template <typename A>
inline A exp_of(A v) {
  if constexpr (std::is_same_v<A, float>) return fast_expf(v);
  else return std::exp(v);
}

// Sum of term(k) for k < n: A lanes within blocks of kBlock, double across blocks, so long
// rows stay accurate in float. term may also store (the softmax numerators).
constexpr int64_t kBlock = 1024;
template <typename A, typename F>
inline double block_sum(int64_t n, F term) {
  double total = 0;
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t e = std::min(n, b + kBlock);
    A s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t k = b; k < e; ++k) s += term(k);
    total += double(s);
  }
  return total;
}

// One row of n elements (unit stride), in the compute type A.
template <typename A, bool kLog>
KILN_SIMD_CLONES void softmax_row(const A* x, A* y, int64_t n) {
  A m = -INFINITY;  // a NaN in the row is not seen here but makes the sum, and so every output, NaN
#pragma omp simd reduction(max : m)
  for (int64_t k = 0; k < n; ++k) m = x[k] > m ? x[k] : m;
  if constexpr (kLog) {
    const double s = block_sum<A>(n, [&](int64_t k) { return exp_of<A>(x[k] - m); });
    const A logs = A(std::log(s));  // (x - m) - log(s): m + log(s) would round at m's scale
#pragma omp simd
    for (int64_t k = 0; k < n; ++k) y[k] = (x[k] - m) - logs;
  } else {
    const double s = block_sum<A>(n, [&](int64_t k) { return y[k] = exp_of<A>(x[k] - m); });
    const A inv = A(1.0 / s);
#pragma omp simd
    for (int64_t k = 0; k < n; ++k) y[k] *= inv;
  }
}

// Columns j < nc of [n, stride] starting at x (outputs likewise), in the compute type A.
template <typename A, bool kLog>
KILN_SIMD_CLONES void softmax_cols(const A* x, A* y, int64_t n, int64_t stride, int64_t nc) {
  A m[kCols], f[kCols];
  double s[kCols];  // column sums in double: n rows may be many
  for (int64_t j = 0; j < nc; ++j) m[j] = -INFINITY, s[j] = 0;
  for (int64_t i = 0; i < n; ++i) {
    const A* r = x + i * stride;
#pragma omp simd
    for (int64_t j = 0; j < nc; ++j) m[j] = (r[j] > m[j] || r[j] != r[j]) ? r[j] : m[j];
  }
  for (int64_t i = 0; i < n; ++i) {
    const A* r = x + i * stride;
#pragma omp simd
    for (int64_t j = 0; j < nc; ++j) s[j] += exp_of<A>(r[j] - m[j]);
  }
  for (int64_t j = 0; j < nc; ++j) f[j] = kLog ? A(std::log(s[j])) : A(1.0 / s[j]);
  for (int64_t i = 0; i < n; ++i) {
    const A* r = x + i * stride;
    A* o = y + i * stride;
#pragma omp simd
    for (int64_t j = 0; j < nc; ++j) o[j] = kLog ? (r[j] - m[j]) - f[j] : exp_of<A>(r[j] - m[j]) * f[j];
  }
}

template <typename A, bool kLog>
KILN_SIMD_CLONES void backward_row(const A* g, const A* out, A* gi, int64_t n) {
  const A d = A(kLog ? block_sum<A>(n, [&](int64_t k) { return g[k]; })
                     : block_sum<A>(n, [&](int64_t k) { return g[k] * out[k]; }));
  if constexpr (kLog) {
#pragma omp simd
    for (int64_t k = 0; k < n; ++k) gi[k] = g[k] - exp_of<A>(out[k]) * d;
  } else {
#pragma omp simd
    for (int64_t k = 0; k < n; ++k) gi[k] = out[k] * (g[k] - d);
  }
}

template <typename A, bool kLog>
KILN_SIMD_CLONES void backward_cols(const A* g, const A* out, A* gi, int64_t n, int64_t stride, int64_t nc) {
  double acc[kCols];
  A s[kCols];
  for (int64_t j = 0; j < nc; ++j) acc[j] = 0;
  for (int64_t i = 0; i < n; ++i) {
    const A* gr = g + i * stride;
    const A* orow = out + i * stride;
#pragma omp simd
    for (int64_t j = 0; j < nc; ++j) acc[j] += kLog ? gr[j] : gr[j] * orow[j];
  }
  for (int64_t j = 0; j < nc; ++j) s[j] = A(acc[j]);
  for (int64_t i = 0; i < n; ++i) {
    const A* gr = g + i * stride;
    const A* orow = out + i * stride;
    A* o = gi + i * stride;
#pragma omp simd
    for (int64_t j = 0; j < nc; ++j) o[j] = kLog ? gr[j] - exp_of<A>(orow[j]) * s[j] : orow[j] * (gr[j] - s[j]);
  }
}

// Runs body(unit) over [outer, n, inner] split into rows or column blocks, in parallel.
template <typename Body>
void for_each_unit(int64_t outer, int64_t n, int64_t inner, Body body) {
  const int64_t blocks = inner == 1 ? 1 : (inner + kCols - 1) / kCols;
  const int64_t units = outer * blocks;
  const bool par = max_threads() > 1 && outer * n * inner >= kParallelGrain && units > 1;
#pragma omp parallel for schedule(static) if (par)
  for (int64_t u = 0; u < units; ++u) {
    const int64_t o = u / blocks, j0 = (u % blocks) * kCols;
    body(o, j0, inner == 1 ? 1 : std::min(kCols, inner - j0));
  }
}

// Loads nc columns of an [n, inner] slab as float into buf ([n, nc]); stores back likewise.
template <typename T>
void load(const T* src, int64_t n, int64_t inner, int64_t nc, float* buf) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < nc; ++j) buf[i * nc + j] = float(src[i * inner + j]);
}
template <typename T>
void save(const float* buf, int64_t n, int64_t inner, int64_t nc, T* dst) {
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < nc; ++j) dst[i * inner + j] = T(buf[i * nc + j]);
}

template <bool kLog>
void softmax_kernel(const KernelArgs& args) {
  const Tensor& in = args.inputs[0];
  const ReduceLayout l = dim_layout(in, args.attr<DimAttrs>().dim);
  const int64_t n = l.reduce, inner = l.inner;
  if (in.numel() == 0) return;
  KILN_DISPATCH_FLOATING(in.dtype(), op_name(args.op), [&]<typename T>() {
    const T* x = static_cast<const T*>(in.data_ptr());
    T* y = static_cast<T*>(args.outputs[0].data_ptr());
    for_each_unit(l.outer, n, inner, [&](int64_t o, int64_t j0, int64_t nc) {
      const int64_t off = o * n * inner + j0;
      if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
        if (inner == 1) softmax_row<T, kLog>(x + off, y + off, n);
        else softmax_cols<T, kLog>(x + off, y + off, n, inner, nc);
      } else {
        std::vector<float> buf(size_t(n * nc));
        load(x + off, n, inner, nc, buf.data());
        if (nc == 1) softmax_row<float, kLog>(buf.data(), buf.data(), n);
        else softmax_cols<float, kLog>(buf.data(), buf.data(), n, nc, nc);
        save(buf.data(), n, inner, nc, y + off);
      }
    });
  });
}

template <bool kLog>
void softmax_backward_kernel(const KernelArgs& args) {
  const Tensor& g = args.inputs[0];
  const Tensor& out = args.inputs[1];
  const ReduceLayout l = dim_layout(g, args.attr<DimAttrs>().dim);
  const int64_t n = l.reduce, inner = l.inner;
  if (g.numel() == 0) return;
  KILN_DISPATCH_FLOATING(g.dtype(), op_name(args.op), [&]<typename T>() {
    const T* gp = static_cast<const T*>(g.data_ptr());
    const T* op = static_cast<const T*>(out.data_ptr());
    T* gi = static_cast<T*>(args.outputs[0].data_ptr());
    for_each_unit(l.outer, n, inner, [&](int64_t o, int64_t j0, int64_t nc) {
      const int64_t off = o * n * inner + j0;
      if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
        if (inner == 1) backward_row<T, kLog>(gp + off, op + off, gi + off, n);
        else backward_cols<T, kLog>(gp + off, op + off, gi + off, n, inner, nc);
      } else {
        std::vector<float> bg(size_t(n * nc)), bo(size_t(n * nc));
        load(gp + off, n, inner, nc, bg.data());
        load(op + off, n, inner, nc, bo.data());
        if (nc == 1) backward_row<float, kLog>(bg.data(), bo.data(), bg.data(), n);
        else backward_cols<float, kLog>(bg.data(), bo.data(), bg.data(), n, nc, nc);
        save(bg.data(), n, inner, nc, gi + off);
      }
    });
  });
}

}  // namespace

void register_softmax(KernelRegistry& r) {
  const auto cpu = DeviceType::Cpu;
  r.add(cpu, OpId::Softmax, softmax_kernel<false>);
  r.add(cpu, OpId::LogSoftmax, softmax_kernel<true>);
  r.add(cpu, OpId::SoftmaxBackward, softmax_backward_kernel<false>);
  r.add(cpu, OpId::LogSoftmaxBackward, softmax_backward_kernel<true>);
}

}  // namespace kiln::cpu
