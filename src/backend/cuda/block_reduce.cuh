#pragma once
// Block-wide reductions and Welford statistics shared by the normalisation kernels.
#include <cuda_runtime.h>

namespace kiln::cuda {

constexpr int kReduceBlock = 256;  // threads of a block that calls block_all

// Running mean, sum of squared deviations, count (Welford), combinable in any order.
template <typename A>
struct Wf {
  A mean, m2, n;
};

template <typename A>
__device__ __forceinline__ void wf_combine(Wf<A>& a, const Wf<A>& b) {
  if (b.n == A(0)) return;
  if (a.n == A(0)) {
    a = b;
    return;
  }
  const A n = a.n + b.n, d = b.mean - a.mean;
  a.mean += d * (b.n / n);
  a.m2 += b.m2 + d * d * (a.n * b.n / n);
  a.n = n;
}

// Combines one value per thread across a block of kReduceBlock threads; every thread
// gets the result.
template <typename V, typename C>
__device__ V block_all(V v, C combine) {
  __shared__ char raw[sizeof(V) * kReduceBlock];
  V* s = reinterpret_cast<V*>(raw);
  s[threadIdx.x] = v;
  __syncthreads();
  for (int w = kReduceBlock / 2; w > 0; w /= 2) {
    if (threadIdx.x < w) combine(s[threadIdx.x], s[threadIdx.x + w]);
    __syncthreads();
  }
  V r = s[0];
  __syncthreads();
  return r;
}

}  // namespace kiln::cuda
