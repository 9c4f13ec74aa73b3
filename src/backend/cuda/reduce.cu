// CUDA reductions: sum, mean, var, amax/amin, max/min over a dim with indices, argmax/argmin.
// The input (contiguous) is viewed as [outer, reduce, inner] (reduce_layout.h):
//  - inner == 1 (rows): a warp (short rows) or a 256-thread block (long rows) per row;
//  - inner > 1 (columns): 32 consecutive columns per block, 8 threads down each column,
//    so every warp load is coalesced.
// Long reductions are split across several blocks (grid.y / grid.z) that write partial
// accumulators to a workspace, combined by a second small kernel. Each op is a policy
// (identity, add an element, combine two partials, store) shared by the three kernels.
// float types accumulate in float (double for float64), integers in int64; var uses
// per-thread shifted sums and Chan's combination.
#include <cfloat>
#include <climits>
#include <cmath>
#include <cstring>

#include "kiln/op_attrs.h"
#include "src/backend/cpu/reduce_layout.h"
#include "src/backend/cuda/kernels.h"
#include "src/backend/cuda/loops.cuh"

namespace kiln::cuda {

namespace {

template <typename T>
constexpr bool is_float_dev = std::is_floating_point_v<T> || std::is_same_v<T, __half> ||
                              std::is_same_v<T, __nv_bfloat16>;

template <typename A>
__device__ __forceinline__ bool isnan_(A v) {
  if constexpr (std::is_floating_point_v<A>) return v != v;
  else return false;
}

// ---- policies ----
template <typename T, bool kMean>
struct SumP {
  using acc_t = std::conditional_t<std::is_same_v<T, double>, double, std::conditional_t<is_float_dev<T>, float, int64_t>>;
  using out_t = std::conditional_t<is_float_dev<T>, T, int64_t>;
  out_t* out;
  __device__ acc_t ident() const { return acc_t(0); }
  __device__ void add(acc_t& a, T x, int64_t) const { a += convert<acc_t>(x); }
  __device__ void combine(acc_t& a, const acc_t& b) const { a += b; }
  __device__ void store(int64_t pos, const acc_t& a, int64_t count) const {
    if constexpr (kMean) out[pos] = convert<out_t>(comp_t<out_t>(double(a) / double(count)));
    else out[pos] = convert<out_t>(a);
  }
};

// Shifted sums: each thread keeps sum(x - k) and sum((x - k)^2) around its first value k
// (two FMAs an element, accurate while k is near the mean); partials combine with Chan's
// formula, after which k is the combined mean and s1 = 0.
template <typename A>
struct ShiftedSums {
  A k, s1, s2, n;
};

template <typename T>
struct VarP {
  using A = std::conditional_t<std::is_same_v<T, double>, double, float>;
  using acc_t = ShiftedSums<A>;
  T* out;
  double correction;
  __device__ acc_t ident() const { return {A(0), A(0), A(0), A(0)}; }
  __device__ void add(acc_t& a, T xs, int64_t) const {
    const A x = convert<A>(xs);
    if (a.n == A(0)) a.k = x;
    const A d = x - a.k;
    a.s1 += d;
    a.s2 += d * d;
    a.n += A(1);
  }
  __device__ void combine(acc_t& a, const acc_t& b) const {
    if (b.n == A(0)) return;
    if (a.n == A(0)) {
      a = b;
      return;
    }
    const A ma = a.k + a.s1 / a.n, mb = b.k + b.s1 / b.n;
    const A m2a = a.s2 - a.s1 * a.s1 / a.n, m2b = b.s2 - b.s1 * b.s1 / b.n;
    const A n = a.n + b.n, d = mb - ma;
    a.k = ma + d * (b.n / n);
    a.s2 = m2a + m2b + d * d * (a.n * b.n / n);
    a.s1 = A(0);
    a.n = n;
  }
  __device__ void store(int64_t pos, const acc_t& a, int64_t count) const {
    const double m2 = a.n > A(0) ? double(a.s2) - double(a.s1) * double(a.s1) / double(a.n) : 0.0;
    const double denom = fmax(0.0, double(count) - correction);
    out[pos] = convert<T>(comp_t<T>(m2 / denom));
  }
};

template <typename T, bool kMax>
struct ExtremeP {
  using acc_t = std::conditional_t<std::is_same_v<T, bool>, bool, comp_t<T>>;
  T* out;
  __device__ acc_t ident() const {
    if constexpr (std::is_same_v<T, bool>) return !kMax;
    else if constexpr (std::is_floating_point_v<acc_t>) return kMax ? acc_t(-INFINITY) : acc_t(INFINITY);
    else if constexpr (sizeof(acc_t) == 8) return kMax ? acc_t(LLONG_MIN) : acc_t(LLONG_MAX);
    else return kMax ? acc_t(INT_MIN) : acc_t(INT_MAX);
  }
  __device__ void combine(acc_t& a, const acc_t& b) const {
    if (isnan_(a)) return;
    if (isnan_(b)) a = b;
    else if constexpr (kMax) a = b > a ? b : a;
    else a = b < a ? b : a;
  }
  __device__ void add(acc_t& a, T x, int64_t) const { combine(a, convert<acc_t>(x)); }
  __device__ void store(int64_t pos, const acc_t& a, int64_t) const { out[pos] = convert<T>(a); }
};

template <typename V>
struct ArgAcc {
  V v;
  int64_t i;  // -1: nothing seen
};

// The first extreme wins; the first NaN beats everything.
template <typename T, bool kMax>
struct ArgP {
  using V = std::conditional_t<std::is_same_v<T, bool>, bool, comp_t<T>>;
  using acc_t = ArgAcc<V>;
  T* values;  // null for argmax/argmin
  int64_t* indices;
  __device__ acc_t ident() const { return {V(0), -1}; }
  __device__ static bool better(const acc_t& b, const acc_t& a) {
    if (b.i < 0) return false;
    if (a.i < 0) return true;
    const bool an = isnan_(a.v), bn = isnan_(b.v);
    if (an || bn) return bn && (!an || b.i < a.i);
    if (b.v == a.v) return b.i < a.i;
    if constexpr (kMax) return b.v > a.v;
    else return b.v < a.v;
  }
  __device__ void combine(acc_t& a, const acc_t& b) const {
    if (better(b, a)) a = b;
  }
  __device__ void add(acc_t& a, T x, int64_t i) const { combine(a, acc_t{convert<V>(x), i}); }
  __device__ void store(int64_t pos, const acc_t& a, int64_t) const {
    if (values) values[pos] = convert<T>(a.v);
    indices[pos] = a.i;
  }
};

// ---- warp and block combination of accumulators ----
// Shuffles field by field (never through memcpy of the whole struct, which would take
// the accumulator's address and keep it in local memory for the whole loop).
struct ShDown {
  int off;
  template <typename X>
  __device__ X operator()(X v) const { return __shfl_down_sync(0xffffffffu, v, off); }
};
struct ShIdx {
  int src;
  template <typename X>
  __device__ X operator()(X v) const { return __shfl_sync(0xffffffffu, v, src); }
};
template <typename S> __device__ __forceinline__ float shfl_any(float v, S s) { return s(v); }
template <typename S> __device__ __forceinline__ double shfl_any(double v, S s) { return s(v); }
template <typename S> __device__ __forceinline__ int32_t shfl_any(int32_t v, S s) { return s(v); }
template <typename S> __device__ __forceinline__ int64_t shfl_any(int64_t v, S s) { return int64_t(s((long long)v)); }
template <typename S> __device__ __forceinline__ bool shfl_any(bool v, S s) { return s(int(v)) != 0; }
template <typename S, typename A>
__device__ __forceinline__ ShiftedSums<A> shfl_any(const ShiftedSums<A>& v, S s) {
  return {shfl_any(v.k, s), shfl_any(v.s1, s), shfl_any(v.s2, s), shfl_any(v.n, s)};
}
template <typename S, typename V>
__device__ __forceinline__ ArgAcc<V> shfl_any(const ArgAcc<V>& v, S s) {
  return {shfl_any(v.v, s), shfl_any(v.i, s)};
}

template <typename A>
__device__ __forceinline__ A shfl_down(const A& v, int offset) {
  return shfl_any(v, ShDown{offset});
}

template <typename P, typename A>
__device__ __forceinline__ A warp_combine(const P& p, A a) {
#pragma unroll
  for (int off = 16; off > 0; off /= 2) {
    const A b = shfl_down(a, off);
    p.combine(a, b);
  }
  return a;
}

constexpr int kBlock = 256;

// Rows: [rows, R] contiguous. tpr threads (32 or 256) per row; grid.y splits each row.
template <typename P, typename T>
__global__ void reduce_rows_kernel(P p, const T* x, int64_t rows, int64_t R, int tpr, int64_t chunk,
                                   typename P::acc_t* ws, bool vec) {
  using A = typename P::acc_t;
  __shared__ char smem_raw[sizeof(A) * (kBlock / 32)];
  A* smem = reinterpret_cast<A*>(smem_raw);
  const int rows_per_block = kBlock / tpr;
  const int64_t row = int64_t(blockIdx.x) * rows_per_block + threadIdx.x / tpr;
  const int lane = threadIdx.x % tpr;
  const int64_t begin = int64_t(blockIdx.y) * chunk, end = min(R, begin + chunk);
  A a = p.ident();
  if (row < rows) {
    const T* xr = x + row * R;
    int64_t k = begin + lane;
    if (vec) {  // 16-byte loads: begin, end and the row start are multiples of V
      constexpr int V = 16 / sizeof(T) > 0 ? int(16 / sizeof(T)) : 1;
      const Vec<T, V>* xv = reinterpret_cast<const Vec<T, V>*>(xr);
      int64_t kv = begin / V + lane;
      const int64_t ev = end / V;
      for (; kv + tpr < ev; kv += 2 * tpr) {
        const Vec<T, V> v0 = xv[kv], v1 = xv[kv + tpr];
#pragma unroll
        for (int j = 0; j < V; ++j) p.add(a, v0.v[j], kv * V + j);
#pragma unroll
        for (int j = 0; j < V; ++j) p.add(a, v1.v[j], (kv + tpr) * V + j);
      }
      for (; kv < ev; kv += tpr) {
        const Vec<T, V> v0 = xv[kv];
#pragma unroll
        for (int j = 0; j < V; ++j) p.add(a, v0.v[j], kv * V + j);
      }
      k = end;  // nothing left
    }
    // Four loads in flight per thread.
    for (; k + 3 * tpr < end; k += 4 * tpr) {
      const T v0 = xr[k], v1 = xr[k + tpr], v2 = xr[k + 2 * tpr], v3 = xr[k + 3 * tpr];
      p.add(a, v0, k);
      p.add(a, v1, k + tpr);
      p.add(a, v2, k + 2 * tpr);
      p.add(a, v3, k + 3 * tpr);
    }
    for (; k < end; k += tpr) p.add(a, xr[k], k);
  }
  a = warp_combine(p, a);
  if (tpr > 32) {
    const int warp = threadIdx.x / 32;
    if (threadIdx.x % 32 == 0) smem[warp] = a;
    __syncthreads();
    if (threadIdx.x < 32) {
      a = threadIdx.x < kBlock / 32 ? smem[threadIdx.x] : p.ident();
      a = warp_combine(p, a);
    }
    if (threadIdx.x != 0) return;
  } else if (lane != 0) {
    return;
  }
  if (row >= rows) return;
  if (gridDim.y == 1) p.store(row, a, R);
  else ws[int64_t(blockIdx.y) * rows + row] = a;
}

// Columns: [outer, R, inner]; block (32 columns) x (8 threads down R); grid.x covers
// outer * ceil(inner / 32), grid.y splits R.
// Columns per thread in the vector path of the column kernel: 16 bytes, at most 4 columns.
template <typename T>
constexpr int col_vec() {
  return 16 / sizeof(T) >= 4 ? 4 : int(16 / sizeof(T));
}

template <typename P, typename T>
__global__ void reduce_cols_kernel(P p, const T* x, int64_t outer, int64_t R, int64_t inner, int64_t chunk,
                                   typename P::acc_t* ws, bool vec) {
  using A = typename P::acc_t;
  __shared__ char smem_raw[sizeof(A) * kBlock];
  A* smem = reinterpret_cast<A*>(smem_raw);
  if (vec) {  // each thread reads kColVec adjacent columns per load (inner % kColVec == 0, aligned)
    constexpr int V = col_vec<T>();
    const int64_t cb = (inner + 32 * V - 1) / (32 * V);
    const int64_t o = int64_t(blockIdx.x) / cb;
    const int64_t j0 = (int64_t(blockIdx.x) % cb) * 32 * V + int64_t(threadIdx.x) * V;
    const int64_t begin = int64_t(blockIdx.y) * chunk, end = min(R, begin + chunk);
    A acc[V];
#pragma unroll
    for (int c = 0; c < V; ++c) acc[c] = p.ident();
    if (j0 < inner) {
      const T* xc = x + o * R * inner + j0;
      int64_t r = begin + threadIdx.y;
      for (; r + 8 < end; r += 16) {
        const Vec<T, V> v0 = *reinterpret_cast<const Vec<T, V>*>(xc + r * inner);
        const Vec<T, V> v1 = *reinterpret_cast<const Vec<T, V>*>(xc + (r + 8) * inner);
#pragma unroll
        for (int c = 0; c < V; ++c) p.add(acc[c], v0.v[c], r);
#pragma unroll
        for (int c = 0; c < V; ++c) p.add(acc[c], v1.v[c], r + 8);
      }
      for (; r < end; r += 8) {
        const Vec<T, V> v0 = *reinterpret_cast<const Vec<T, V>*>(xc + r * inner);
#pragma unroll
        for (int c = 0; c < V; ++c) p.add(acc[c], v0.v[c], r);
      }
    }
#pragma unroll
    for (int c = 0; c < V; ++c) {
      smem[threadIdx.y * 32 + threadIdx.x] = acc[c];
      __syncthreads();
      if (threadIdx.y == 0 && j0 < inner) {
        A a = acc[c];
        for (int k = 1; k < 8; ++k) p.combine(a, smem[k * 32 + threadIdx.x]);
        const int64_t pos = o * inner + j0 + c;
        if (gridDim.y == 1) p.store(pos, a, R);
        else ws[int64_t(blockIdx.y) * outer * inner + pos] = a;
      }
      __syncthreads();
    }
    return;
  }
  const int64_t col_blocks = (inner + 31) / 32;
  const int64_t o = int64_t(blockIdx.x) / col_blocks;
  const int64_t j = (int64_t(blockIdx.x) % col_blocks) * 32 + threadIdx.x;
  const int64_t begin = int64_t(blockIdx.y) * chunk, end = min(R, begin + chunk);
  A a = p.ident();
  if (j < inner) {
    const T* xc = x + o * R * inner + j;
    int64_t r = begin + threadIdx.y;
    for (; r + 24 < end; r += 32) {
      const T v0 = xc[r * inner], v1 = xc[(r + 8) * inner], v2 = xc[(r + 16) * inner], v3 = xc[(r + 24) * inner];
      p.add(a, v0, r);
      p.add(a, v1, r + 8);
      p.add(a, v2, r + 16);
      p.add(a, v3, r + 24);
    }
    for (; r < end; r += 8) p.add(a, xc[r * inner], r);
  }
  smem[threadIdx.y * 32 + threadIdx.x] = a;
  __syncthreads();
  if (threadIdx.y != 0 || j >= inner) return;
  for (int k = 1; k < 8; ++k) p.combine(a, smem[k * 32 + threadIdx.x]);
  const int64_t pos = o * inner + j;
  if (gridDim.y == 1) p.store(pos, a, R);
  else ws[int64_t(blockIdx.y) * outer * inner + pos] = a;
}

template <typename P>
__global__ void reduce_finish_kernel(P p, const typename P::acc_t* ws, int64_t n_out, int splits, int64_t R) {
  for (int64_t pos = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; pos < n_out;
       pos += int64_t(gridDim.x) * blockDim.x) {
    typename P::acc_t a = ws[pos];
    for (int s = 1; s < splits; ++s) p.combine(a, ws[int64_t(s) * n_out + pos]);
    p.store(pos, a, R);
  }
}

// Few outputs (whole-tensor reductions): a block per output combines its partials in
// parallel; one thread walking a thousand partials would wait on each load in turn.
template <typename P>
__global__ void reduce_finish_block_kernel(P p, const typename P::acc_t* ws, int64_t n_out, int splits, int64_t R) {
  using A = typename P::acc_t;
  __shared__ char smem_raw[sizeof(A) * (kBlock / 32)];
  A* smem = reinterpret_cast<A*>(smem_raw);
  const int64_t pos = blockIdx.x;
  A a = p.ident();
  for (int s = threadIdx.x; s < splits; s += kBlock) p.combine(a, ws[int64_t(s) * n_out + pos]);
  a = warp_combine(p, a);
  if (threadIdx.x % 32 == 0) smem[threadIdx.x / 32] = a;
  __syncthreads();
  if (threadIdx.x != 0) return;
  a = smem[0];
  for (int w = 1; w < kBlock / 32; ++w) p.combine(a, smem[w]);
  p.store(pos, a, R);
}

template <typename P>
void finish(const char* op, const P& p, const typename P::acc_t* ws, int64_t n_out, int64_t splits, int64_t R,
            int dev, cudaStream_t stream) {
  if (n_out <= int64_t(sm_count(dev)) * 4)
    reduce_finish_block_kernel<P><<<unsigned(n_out), kBlock, 0, stream>>>(p, ws, n_out, int(splits), R);
  else
    reduce_finish_kernel<P><<<blocks_for(n_out, dev), kThreads, 0, stream>>>(p, ws, n_out, int(splits), R);
  KILN_CUDA_CHECK_LAUNCH(op);
}

template <typename P, typename T>
void run_reduce(const char* op, const P& p, const Tensor& src, int64_t outer, int64_t R, int64_t inner, int dev) {
  using A = typename P::acc_t;
  const int64_t n_out = outer * inner;
  if (n_out == 0) return;
  cudaStream_t stream = current_stream(dev);
  const int64_t target = int64_t(sm_count(dev)) * 8;  // blocks that fill the chip
  const T* x = static_cast<const T*>(src.data_ptr());
  Tensor workspace;
  auto ws_for = [&](int64_t splits) -> A* {
    if (splits <= 1) return nullptr;
    const int64_t bytes = splits * n_out * int64_t(sizeof(A));
    workspace = empty({(bytes + 7) / 8}, TensorOptions(DType::Int64).device(src.device()));
    return static_cast<A*>(workspace.data_ptr());
  };
  int64_t splits = 1;
  if (inner == 1) {
    const int tpr = R >= 1024 ? kBlock : 32;
    const int64_t base = (outer + kBlock / tpr - 1) / (kBlock / tpr);
    splits = std::clamp<int64_t>(target / base, 1, std::max<int64_t>(1, R / (int64_t(tpr) * 16)));
    splits = std::min<int64_t>(splits, 65535);
    constexpr int64_t V = 16 / sizeof(T) > 0 ? int64_t(16 / sizeof(T)) : 1;
    int64_t chunk = (R + splits - 1) / splits;
    chunk = (chunk + V - 1) / V * V;
    splits = std::max<int64_t>(1, (R + chunk - 1) / std::max<int64_t>(chunk, 1));
    const bool vec = V > 1 && R % V == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0;
    A* ws = ws_for(splits);
    reduce_rows_kernel<P, T><<<dim3(unsigned(base), unsigned(splits)), kBlock, 0, stream>>>(
        p, x, outer, R, tpr, std::max<int64_t>(chunk, 1), ws, vec);
    KILN_CUDA_CHECK_LAUNCH(op);
    if (splits > 1) finish(op, p, ws, n_out, splits, R, dev, stream);
  } else {
    constexpr int64_t V = col_vec<T>();
    const bool vec = V > 1 && inner % V == 0 && inner >= 32 * V &&
                     reinterpret_cast<uintptr_t>(x) % (sizeof(T) * size_t(V)) == 0;
    const int64_t base = outer * ((inner + (vec ? 32 * V : 32) - 1) / (vec ? 32 * V : 32));
    KILN_CHECK(base <= INT32_MAX, op, "too many columns for the CUDA reduction kernel");
    splits = std::clamp<int64_t>(target / base, 1, std::max<int64_t>(1, R / 128));
    splits = std::min<int64_t>(splits, 65535);
    const int64_t chunk = (R + splits - 1) / splits;
    splits = std::max<int64_t>(1, (R + chunk - 1) / std::max<int64_t>(chunk, 1));
    A* ws = ws_for(splits);
    reduce_cols_kernel<P, T><<<dim3(unsigned(base), unsigned(splits)), dim3(32, 8), 0, stream>>>(
        p, x, outer, R, inner, std::max<int64_t>(chunk, 1), ws, vec);
    KILN_CUDA_CHECK_LAUNCH(op);
    if (splits > 1) finish(op, p, ws, n_out, splits, R, dev, stream);
  }
}

template <typename Out>
Out* out_ptr(const Tensor& t) {
  return static_cast<Out*>(t.data_ptr());
}

void reduce_kernel(const KernelArgs& a) {
  const auto& attrs = a.attr<ReduceAttrs>();
  const int dev = a.device.index;
  CudaDeviceGuard guard(dev);
  const cpu::ReduceLayout l = cpu::reduce_layout(a.inputs[0], attrs.dims);
  const char* name = op_name(a.op);
  KILN_DISPATCH_DTYPE(l.src.dtype(), name, [&]<typename TK>() {
    using T = dev_t<TK>;
    auto go = [&](const auto& p) { run_reduce<std::decay_t<decltype(p)>, T>(name, p, l.src, l.outer, l.reduce, l.inner, dev); };
    switch (a.op) {
      case OpId::Sum: go(SumP<T, false>{out_ptr<typename SumP<T, false>::out_t>(a.outputs[0])}); break;
      case OpId::Amax: go(ExtremeP<T, true>{out_ptr<T>(a.outputs[0])}); break;
      case OpId::Amin: go(ExtremeP<T, false>{out_ptr<T>(a.outputs[0])}); break;
      case OpId::MaxDim: go(ArgP<T, true>{out_ptr<T>(a.outputs[0]), out_ptr<int64_t>(a.outputs[1])}); break;
      case OpId::MinDim: go(ArgP<T, false>{out_ptr<T>(a.outputs[0]), out_ptr<int64_t>(a.outputs[1])}); break;
      case OpId::Argmax: go(ArgP<T, true>{nullptr, out_ptr<int64_t>(a.outputs[0])}); break;
      case OpId::Argmin: go(ArgP<T, false>{nullptr, out_ptr<int64_t>(a.outputs[0])}); break;
      case OpId::Mean:
      case OpId::Var:
        if constexpr (is_float_dev<T>) {
          if (a.op == OpId::Mean) go(SumP<T, true>{out_ptr<T>(a.outputs[0])});
          else go(VarP<T>{out_ptr<T>(a.outputs[0]), double(attrs.correction)});
          break;
        }
        [[fallthrough]];
      default: KILN_FAIL(name, "not implemented for dtype ", dtype_name(l.src.dtype()), " on cuda");
    }
  });
}

// ---- softmax family over one dim: [outer, n, inner] ----
// Online max and sum in one pass (the running sum rescales when the max grows), then
// one pass that writes; rows of a warp or block, columns one thread each.
template <typename A>
struct MaxSum {
  A m, s;
};

template <typename A>
__device__ __forceinline__ void online_add(MaxSum<A>& a, A x) {
  if (x > a.m) {
    a.s = a.s * exp(a.m - x) + A(1);
    a.m = x;
  } else if (x == x) {
    if (a.m != A(-INFINITY)) a.s += exp(x - a.m);  // -inf with nothing finite yet adds nothing
  } else {
    a.m = x;  // NaN: the whole row becomes NaN
    a.s = x;
  }
}

template <typename S, typename A>
__device__ __forceinline__ MaxSum<A> shfl_any(const MaxSum<A>& v, S s) {
  return {shfl_any(v.m, s), shfl_any(v.s, s)};
}

template <typename A>
struct OnlineCombine {
  __device__ void combine(MaxSum<A>& a, const MaxSum<A>& b) const {
    if (b.m != b.m || a.m != a.m) {
      a.m = a.m != a.m ? a.m : b.m;
      a.s = a.m;
      return;
    }
    if (b.m == A(-INFINITY)) return;
    if (a.m == A(-INFINITY)) {
      a = b;
      return;
    }
    const A m = a.m > b.m ? a.m : b.m;
    a.s = a.s * exp(a.m - m) + b.s * exp(b.m - m);
    a.m = m;
  }
};

template <typename A>
struct SumCombine {
  __device__ void combine(A& a, const A& b) const { a += b; }
};

// Combines within a row group of tpr threads (32 or the whole block) and broadcasts.
template <typename C, typename A>
__device__ __forceinline__ A row_all_combine(const C& c, A a, int tpr, A* smem) {
  a = warp_combine(c, a);
  if (tpr > 32) {
    const int warp = threadIdx.x / 32;
    if (threadIdx.x % 32 == 0) smem[warp] = a;
    __syncthreads();
    a = smem[0];
    for (int k = 1; k < kBlock / 32; ++k) c.combine(a, smem[k]);
    __syncthreads();
    return a;
  }
  return shfl_any(a, ShIdx{0});  // lane 0 of the warp holds the result
}

template <typename T, bool kLog, typename TOut = T>
__global__ void softmax_rows_kernel(const T* x, TOut* y, int64_t rows, int64_t n, int tpr,
                                    std::conditional_t<std::is_same_v<T, double>, double, float>* lse = nullptr) {
  using A = std::conditional_t<std::is_same_v<T, double>, double, float>;
  __shared__ MaxSum<A> smem[kBlock / 32];
  const int64_t row = int64_t(blockIdx.x) * (kBlock / tpr) + threadIdx.x / tpr;
  const int lane = threadIdx.x % tpr;
  const bool active = row < rows;
  const T* xr = x + (active ? row : 0) * n;
  MaxSum<A> a{A(-INFINITY), A(0)};
  if (active)
    for (int64_t k = lane; k < n; k += tpr) online_add(a, convert<A>(xr[k]));
  a = row_all_combine(OnlineCombine<A>{}, a, tpr, smem);
  if (!active) return;
  TOut* yr = y + row * n;
  if (lse && lane == 0) lse[row] = a.m + log(a.s);
  if constexpr (kLog) {
    const A logs = log(a.s);
    for (int64_t k = lane; k < n; k += tpr) yr[k] = convert<TOut>((convert<A>(xr[k]) - a.m) - logs);
  } else {
    const A inv = A(1) / a.s;
    for (int64_t k = lane; k < n; k += tpr) yr[k] = convert<TOut>(exp(convert<A>(xr[k]) - a.m) * inv);
  }
}

// Rows of 1024 .. kSmemRow elements: a block per row keeps the row in shared memory, so
// the input is read once: max, then exp and sum, then the write.
template <typename A>
__device__ __forceinline__ A block_reduce(A v, bool is_max, A* red) {
#pragma unroll
  for (int off = 16; off > 0; off /= 2) {
    const A o = __shfl_down_sync(0xffffffffu, v, off);
    v = is_max ? ((o != o || o > v) ? o : v) : v + o;
  }
  const int warp = threadIdx.x / 32, nw = blockDim.x / 32;
  if (threadIdx.x % 32 == 0) red[warp] = v;
  __syncthreads();
  A r = red[0];
  for (int w = 1; w < nw; ++w) r = is_max ? ((red[w] != red[w] || red[w] > r) ? red[w] : r) : r + red[w];
  __syncthreads();
  return r;
}

template <typename T, bool kLog, typename TOut = T>
__global__ void softmax_rows_smem_kernel(const T* x, TOut* y, int64_t n,
                                         std::conditional_t<std::is_same_v<T, double>, double, float>* lse, bool vec) {
  using A = std::conditional_t<std::is_same_v<T, double>, double, float>;
  extern __shared__ __align__(16) char smem_raw[];
  A* buf = reinterpret_cast<A*>(smem_raw);
  __shared__ A red[32];
  const int64_t row = blockIdx.x;
  const T* xr = x + row * n;
  A m = A(-INFINITY);
  constexpr int V = 16 / sizeof(T) > 0 ? int(16 / sizeof(T)) : 1;
  if (vec) {  // 16-byte loads (n % V == 0, rows aligned)
    const Vec<T, V>* xv = reinterpret_cast<const Vec<T, V>*>(xr);
    for (int64_t kv = threadIdx.x; kv < n / V; kv += blockDim.x) {
      const Vec<T, V> t = xv[kv];
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const A v = convert<A>(t.v[j]);
        buf[kv * V + j] = v;
        m = (v != v || v > m) ? v : m;
      }
    }
  } else {
    for (int64_t k = threadIdx.x; k < n; k += blockDim.x) {
      const A v = convert<A>(xr[k]);
      buf[k] = v;
      m = (v != v || v > m) ? v : m;
    }
  }
  m = block_reduce(m, true, red);
  const A mu = m == A(-INFINITY) ? A(0) : m;  // a row of -inf: exp gives 0, the sum 0, lse -inf
  A sum = 0;
  for (int64_t k = threadIdx.x; k < n; k += blockDim.x) {
    const A e = exp(buf[k] - mu);
    if constexpr (!kLog) buf[k] = e;
    sum += e;
  }
  sum = block_reduce(sum, false, red);
  TOut* yr = y + row * n;
  if (lse && threadIdx.x == 0) lse[row] = mu + log(sum);
  if constexpr (kLog) {
    const A logs = log(sum);
    for (int64_t k = threadIdx.x; k < n; k += blockDim.x) yr[k] = convert<TOut>((buf[k] - mu) - logs);
  } else {
    const A inv = A(1) / sum;
    for (int64_t k = threadIdx.x; k < n; k += blockDim.x) yr[k] = convert<TOut>(buf[k] * inv);
  }
}

constexpr size_t kSmemRow = 48 * 1024;  // bytes of a row kept in shared memory

template <typename T, bool kLog>
__global__ void softmax_cols_kernel(const T* x, T* y, int64_t outer, int64_t n, int64_t inner) {
  using A = std::conditional_t<std::is_same_v<T, double>, double, float>;
  for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < outer * inner;
       c += int64_t(gridDim.x) * blockDim.x) {
    const int64_t o = c / inner, j = c % inner;
    const T* xc = x + o * n * inner + j;
    T* yc = y + o * n * inner + j;
    MaxSum<A> a{A(-INFINITY), A(0)};
    for (int64_t k = 0; k < n; ++k) online_add(a, convert<A>(xc[k * inner]));
    if constexpr (kLog) {
      const A logs = log(a.s);
      for (int64_t k = 0; k < n; ++k) yc[k * inner] = convert<T>((convert<A>(xc[k * inner]) - a.m) - logs);
    } else {
      const A inv = A(1) / a.s;
      for (int64_t k = 0; k < n; ++k) yc[k * inner] = convert<T>(exp(convert<A>(xc[k * inner]) - a.m) * inv);
    }
  }
}

// Backward: softmax: gi = y * (g - sum(g * y)); log_softmax: gi = g - exp(y) * sum(g).
template <typename T, bool kLog>
__global__ void softmax_bw_rows_kernel(const T* g, const T* y, T* gi, int64_t rows, int64_t n, int tpr) {
  using A = std::conditional_t<std::is_same_v<T, double>, double, float>;
  __shared__ A smem[kBlock / 32];
  const int64_t row = int64_t(blockIdx.x) * (kBlock / tpr) + threadIdx.x / tpr;
  const int lane = threadIdx.x % tpr;
  const bool active = row < rows;
  const int64_t base = (active ? row : 0) * n;
  A s = 0;
  if (active)
    for (int64_t k = lane; k < n; k += tpr)
      s += kLog ? convert<A>(g[base + k]) : convert<A>(g[base + k]) * convert<A>(y[base + k]);
  s = row_all_combine(SumCombine<A>{}, s, tpr, smem);
  if (!active) return;
  for (int64_t k = lane; k < n; k += tpr) {
    const A gv = convert<A>(g[base + k]), yv = convert<A>(y[base + k]);
    gi[base + k] = convert<T>(kLog ? gv - exp(yv) * s : yv * (gv - s));
  }
}

template <typename T, bool kLog>
__global__ void softmax_bw_cols_kernel(const T* g, const T* y, T* gi, int64_t outer, int64_t n, int64_t inner) {
  using A = std::conditional_t<std::is_same_v<T, double>, double, float>;
  for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < outer * inner;
       c += int64_t(gridDim.x) * blockDim.x) {
    const int64_t base = (c / inner) * n * inner + c % inner;
    A s = 0;
    for (int64_t k = 0; k < n; ++k) {
      const int64_t i = base + k * inner;
      s += kLog ? convert<A>(g[i]) : convert<A>(g[i]) * convert<A>(y[i]);
    }
    for (int64_t k = 0; k < n; ++k) {
      const int64_t i = base + k * inner;
      const A gv = convert<A>(g[i]), yv = convert<A>(y[i]);
      gi[i] = convert<T>(kLog ? gv - exp(yv) * s : yv * (gv - s));
    }
  }
}

void softmax_kernel(const KernelArgs& a) {
  const int dev = a.device.index;
  CudaDeviceGuard guard(dev);
  const Tensor& x = a.inputs[0];
  const bool backward = a.op == OpId::SoftmaxBackward || a.op == OpId::LogSoftmaxBackward;
  const bool log = a.op == OpId::LogSoftmax || a.op == OpId::LogSoftmaxBackward;
  const cpu::ReduceLayout l = cpu::dim_layout(x, x.dim() == 0 ? 0 : a.attr<DimAttrs>().dim);
  const int64_t outer = l.outer, n = l.reduce, inner = l.inner;
  if (x.numel() == 0) return;
  cudaStream_t stream = current_stream(dev);
  const char* name = op_name(a.op);
  KILN_DISPATCH_FLOATING(x.dtype(), name, [&]<typename TK>() {
    using T = dev_t<TK>;
    using A = std::conditional_t<std::is_same_v<T, double>, double, float>;
    auto in = [&](int i) { return static_cast<const T*>(a.inputs[size_t(i)].data_ptr()); };
    T* out = static_cast<T*>(a.outputs[0].data_ptr());
    const int tpr = n >= 1024 ? kBlock : 32;
    const unsigned row_blocks = unsigned((outer + kBlock / tpr - 1) / (kBlock / tpr));
    auto launch = [&]<bool L>() {
      if (inner == 1) {
        if (backward) softmax_bw_rows_kernel<T, L><<<row_blocks, kBlock, 0, stream>>>(in(0), in(1), out, outer, n, tpr);
        else if (n >= 1024 && size_t(n) * sizeof(A) <= kSmemRow)
          softmax_rows_smem_kernel<T, L><<<unsigned(outer), kBlock, size_t(n) * sizeof(A), stream>>>(
              in(0), out, n, nullptr, n % (16 / sizeof(T)) == 0 && reinterpret_cast<uintptr_t>(in(0)) % 16 == 0);
        else softmax_rows_kernel<T, L><<<row_blocks, kBlock, 0, stream>>>(in(0), out, outer, n, tpr);
      } else {
        if (backward)
          softmax_bw_cols_kernel<T, L><<<blocks_for(outer * inner, dev), kThreads, 0, stream>>>(in(0), in(1), out, outer, n, inner);
        else
          softmax_cols_kernel<T, L><<<blocks_for(outer * inner, dev), kThreads, 0, stream>>>(in(0), out, outer, n, inner);
      }
    };
    if (log) launch.template operator()<true>();
    else launch.template operator()<false>();
    KILN_CUDA_CHECK_LAUNCH(name);
  });
}

}  // namespace

void softmax_rows_with_lse(const Tensor& s, const Tensor& p, const Tensor& lse, int dev) {
  const int64_t n = s.size(s.dim() - 1), rows = s.numel() / std::max<int64_t>(1, n);
  if (rows == 0) return;
  CudaDeviceGuard guard(dev);
  cudaStream_t stream = current_stream(dev);
  const int tpr = n >= 1024 ? kBlock : 32;
  const unsigned blocks = unsigned((rows + kBlock / tpr - 1) / (kBlock / tpr));
  auto go = [&]<typename A>() {
    KILN_DISPATCH_FLOATING(p.dtype(), "scaled_dot_product_attention", [&]<typename TK>() {
      using TO = dev_t<TK>;
      if constexpr (std::is_same_v<A, double> == std::is_same_v<TO, double>) {
        if (n >= 1024 && size_t(n) * sizeof(A) <= kSmemRow)
          softmax_rows_smem_kernel<A, false, TO><<<unsigned(rows), kBlock, size_t(n) * sizeof(A), stream>>>(
              static_cast<const A*>(s.data_ptr()), static_cast<TO*>(p.data_ptr()), n, static_cast<A*>(lse.data_ptr()),
              n % (16 / sizeof(A)) == 0 && reinterpret_cast<uintptr_t>(s.data_ptr()) % 16 == 0);
        else
          softmax_rows_kernel<A, false, TO><<<blocks, kBlock, 0, stream>>>(
              static_cast<const A*>(s.data_ptr()), static_cast<TO*>(p.data_ptr()), rows, n, tpr,
              static_cast<A*>(lse.data_ptr()));
      } else
        KILN_FAIL("scaled_dot_product_attention", "scores and probabilities of mismatched precision");
    });
  };
  if (s.dtype() == DType::Float64) go.template operator()<double>();
  else go.template operator()<float>();
  KILN_CUDA_CHECK_LAUNCH("scaled_dot_product_attention");
}

void register_reduce(KernelRegistry& r) {
  const DeviceType cu = DeviceType::Cuda;
  for (OpId op : {OpId::Sum, OpId::Amax, OpId::Amin, OpId::MaxDim, OpId::MinDim, OpId::Argmax, OpId::Argmin})
    r.add(cu, op, reduce_kernel);
  r.add(cu, OpId::Mean, reduce_kernel);
  r.add(cu, OpId::Var, reduce_kernel);
  for (OpId op : {OpId::Softmax, OpId::LogSoftmax, OpId::SoftmaxBackward, OpId::LogSoftmaxBackward})
    r.add(cu, op, softmax_kernel);
}

}  // namespace kiln::cuda
