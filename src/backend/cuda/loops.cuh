#pragma once
// Elementwise launch machinery for CUDA kernels.
//
// launch_map<Out, In...>(op, out, {&in...}, f) sets out[i] = f(in0[i], in1[i], ...) over
// out's shape, f taking and returning the stored device types (__half, __nv_bfloat16,
// float, ...). Inputs already have out's shape (broadcast inputs carry stride 0).
//  - When every tensor is contiguous and 16-byte aligned, each thread moves 16 bytes of
//    each operand per step (vector loads and stores).
//  - Otherwise dims are coalesced (merged where contiguous in every tensor) and each
//    element's offsets come from a compact table of sizes and strides, with 32-bit index
//    arithmetic when the tensor has fewer than 2^32 elements.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "kiln/tensor.h"
#include "src/backend/cuda/cuda_common.h"

namespace kiln::cuda {

// ---- device types ----
template <typename T> struct DeviceTypeOf { using type = T; };
template <> struct DeviceTypeOf<Half> { using type = __half; };
template <> struct DeviceTypeOf<BFloat16> { using type = __nv_bfloat16; };
template <typename T> using dev_t = typename DeviceTypeOf<T>::type;

template <typename T> struct ComputeOf { using type = T; };
template <> struct ComputeOf<__half> { using type = float; };
template <> struct ComputeOf<__nv_bfloat16> { using type = float; };
template <typename T> using comp_t = typename ComputeOf<T>::type;

// Conversion with the CPU's rules: through the compute types, bool is "!= 0".
template <typename To, typename From>
__host__ __device__ __forceinline__ To convert(From v) {
  if constexpr (std::is_same_v<To, From>) {
    return v;
  } else if constexpr (std::is_same_v<From, __half>) {
    return convert<To>(__half2float(v));
  } else if constexpr (std::is_same_v<From, __nv_bfloat16>) {
    return convert<To>(__bfloat162float(v));
  } else if constexpr (std::is_same_v<To, bool>) {
    return v != From(0);
  } else if constexpr (std::is_same_v<To, __half>) {
    return __float2half_rn(float(v));
  } else if constexpr (std::is_same_v<To, __nv_bfloat16>) {
    return __float2bfloat16_rn(float(v));
  } else {
    return To(v);
  }
}

// ---- launch geometry ----
inline constexpr int kThreads = 256;
inline unsigned blocks_for(int64_t work, int device, int per_sm = 16) {
  const int64_t b = (work + kThreads - 1) / kThreads;
  return unsigned(std::max<int64_t>(1, std::min<int64_t>(b, int64_t(sm_count(device)) * per_sm)));
}

// ---- strided offsets ----
inline constexpr int kMaxDims = 12;

template <int N>
struct StridedLayout {
  int ndim = 0;
  int64_t sizes[kMaxDims];       // innermost dim first
  int64_t strides[kMaxDims][N];  // element strides per dim and operand
};

template <int N>
StridedLayout<N> make_layout(const char* op, const Shape& shape, const std::array<const Strides*, N>& st) {
  StridedLayout<N> l;
  // Walk from the innermost dim outward, skipping size-1 dims and merging a dim into the
  // previous group when it continues it in every tensor.
  for (int d = int(shape.size()) - 1; d >= 0; --d) {
    const int64_t size = shape[size_t(d)];
    if (size == 1) continue;
    if (l.ndim > 0) {
      bool merge = true;
      const int g = l.ndim - 1;
      for (int t = 0; t < N; ++t)
        merge = merge && (*st[size_t(t)])[size_t(d)] == l.strides[g][t] * l.sizes[g];
      if (merge) {
        l.sizes[g] *= size;
        continue;
      }
    }
    KILN_CHECK(l.ndim < kMaxDims, op, "too many non-mergeable dims (", shape.size(), ") for the CUDA kernel");
    l.sizes[l.ndim] = size;
    for (int t = 0; t < N; ++t) l.strides[l.ndim][t] = (*st[size_t(t)])[size_t(d)];
    ++l.ndim;
  }
  if (l.ndim == 0) {  // a single element
    l.ndim = 1;
    l.sizes[0] = 1;
    for (int t = 0; t < N; ++t) l.strides[0][t] = 0;
  }
  return l;
}

template <int N, typename I>
__device__ __forceinline__ void offsets_of(const StridedLayout<N>& l, I linear, int64_t (&off)[N]) {
#pragma unroll
  for (int t = 0; t < N; ++t) off[t] = 0;
  for (int d = 0; d < l.ndim; ++d) {
    const I size = I(l.sizes[d]);
    const I idx = linear % size;
    linear /= size;
#pragma unroll
    for (int t = 0; t < N; ++t) off[t] += int64_t(idx) * l.strides[d][t];
  }
}

template <int N>
struct Pointers {
  char* p[N];
};

template <typename T, int V>
struct alignas(sizeof(T) * V) Vec {
  T v[V];
};

template <typename... Ts>
constexpr int vec_width() {
  constexpr size_t biggest = std::max({sizeof(Ts)...});
  return int(16 / biggest) > 0 ? int(16 / biggest) : 1;
}

template <typename Out, typename... In, typename F, size_t... I>
__device__ __forceinline__ void map_one(const F& f, const Pointers<1 + sizeof...(In)>& p, const int64_t* off,
                                        std::index_sequence<I...>) {
  reinterpret_cast<Out*>(p.p[0])[off[0]] = f(reinterpret_cast<const In*>(p.p[I + 1])[off[I + 1]]...);
}

template <typename F, typename Out, typename... In>
__global__ void map_strided_kernel(F f, StridedLayout<1 + sizeof...(In)> l, Pointers<1 + sizeof...(In)> p,
                                   int64_t n) {
  constexpr int N = 1 + sizeof...(In);
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  int64_t off[N];
  if (n <= int64_t(UINT32_MAX)) {
    for (uint32_t i = blockIdx.x * blockDim.x + threadIdx.x; i < uint32_t(n); i += uint32_t(step)) {
      offsets_of<N, uint32_t>(l, i, off);
      map_one<Out, In...>(f, p, off, std::index_sequence_for<In...>{});
    }
  } else {
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step) {
      offsets_of<N, uint64_t>(l, uint64_t(i), off);
      map_one<Out, In...>(f, p, off, std::index_sequence_for<In...>{});
    }
  }
}

template <typename Out, typename... In, typename F, size_t... I>
__device__ __forceinline__ void map_vec(const F& f, const Pointers<1 + sizeof...(In)>& p, int64_t v,
                                        std::index_sequence<I...>) {
  constexpr int V = vec_width<Out, In...>();
  const auto in = std::make_tuple(reinterpret_cast<const Vec<In, V>*>(p.p[I + 1])[v]...);
  Vec<Out, V> o;
#pragma unroll
  for (int k = 0; k < V; ++k) o.v[k] = f(std::get<I>(in).v[k]...);
  reinterpret_cast<Vec<Out, V>*>(p.p[0])[v] = o;
}

template <typename F, typename Out, typename... In>
__global__ void map_contiguous_kernel(F f, Pointers<1 + sizeof...(In)> p, int64_t n) {
  constexpr int V = vec_width<Out, In...>();
  const int64_t nvec = n / V;
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  for (int64_t v = tid; v < nvec; v += step) map_vec<Out, In...>(f, p, v, std::index_sequence_for<In...>{});
  for (int64_t i = nvec * V + tid; i < n; i += step) {
    int64_t off[1 + sizeof...(In)];
    for (auto& o : off) o = i;
    map_one<Out, In...>(f, p, off, std::index_sequence_for<In...>{});
  }
}

// Host side: picks the vector path or the strided one and launches on the device's current stream.
template <typename Out, typename... In, typename F>
void launch_map(const char* op, const Tensor& out, const std::array<const Tensor*, sizeof...(In)>& in, F f) {
  constexpr int N = 1 + sizeof...(In);
  const int64_t n = out.numel();
  if (n == 0) return;
  const int device = out.device().index;
  CudaDeviceGuard guard(device);
  cudaStream_t stream = current_stream(device);
  Pointers<N> p;
  p.p[0] = static_cast<char*>(out.data_ptr());
  for (int t = 1; t < N; ++t) p.p[t] = static_cast<char*>(in[size_t(t - 1)]->data_ptr());

  constexpr int V = vec_width<Out, In...>();
  bool vector = out.is_contiguous();
  for (int t = 1; t < N && vector; ++t) vector = in[size_t(t - 1)]->is_contiguous();
  constexpr size_t sizes[N] = {sizeof(Out), sizeof(In)...};
  for (int t = 0; t < N && vector; ++t) vector = reinterpret_cast<uintptr_t>(p.p[t]) % (sizes[t] * V) == 0;
  if (vector) {
    map_contiguous_kernel<F, Out, In...><<<blocks_for((n + V - 1) / V, device, 64), kThreads, 0, stream>>>(f, p, n);
  } else {
    std::array<const Strides*, N> st;
    st[0] = &out.strides();
    for (int t = 1; t < N; ++t) st[size_t(t)] = &in[size_t(t - 1)]->strides();
    const StridedLayout<N> l = make_layout<N>(op, out.shape(), st);
    map_strided_kernel<F, Out, In...><<<blocks_for(n, device, 32), kThreads, 0, stream>>>(f, l, p, n);
  }
  KILN_CUDA_CHECK_LAUNCH(op);
}

// Calls fn.template operator()<T>() with T the kiln storage type of dtype (like
// KILN_DISPATCH_DTYPE), restricted to the dtypes in the set.
#define KILN_CUDA_DISPATCH(DT, OPNAME, ...) KILN_DISPATCH_DTYPE(DT, OPNAME, __VA_ARGS__)

}  // namespace kiln::cuda
