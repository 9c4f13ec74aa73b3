#pragma once
// CUDA's primitives for the pointwise expressions (src/backend/pointwise/expr.h): the CUDA
// math library, in float for float (and float16/bfloat16, which compute in float) and in
// double for double.
#include <cuda_runtime.h>

namespace kiln::cuda {

struct CudaLib {
#define KILN_CUDA_PRIM(name) \
  static __device__ __forceinline__ float name(float v) { return ::name##f(v); } \
  static __device__ __forceinline__ double name(double v) { return ::name(v); }
#define KILN_CUDA_PRIM2(name) \
  static __device__ __forceinline__ float name(float a, float b) { return ::name##f(a, b); } \
  static __device__ __forceinline__ double name(double a, double b) { return ::name(a, b); }
  KILN_CUDA_PRIM(exp) KILN_CUDA_PRIM(log) KILN_CUDA_PRIM(sqrt) KILN_CUDA_PRIM(sin) KILN_CUDA_PRIM(cos)
  KILN_CUDA_PRIM(tanh) KILN_CUDA_PRIM(erf) KILN_CUDA_PRIM(erfc) KILN_CUDA_PRIM(log1p) KILN_CUDA_PRIM(expm1)
  KILN_CUDA_PRIM(floor) KILN_CUDA_PRIM(ceil) KILN_CUDA_PRIM(trunc)
  KILN_CUDA_PRIM2(pow) KILN_CUDA_PRIM2(fmod) KILN_CUDA_PRIM2(atan2)
  // half to even, as PyTorch
  static __device__ __forceinline__ float round(float v) { return ::rintf(v); }
  static __device__ __forceinline__ double round(double v) { return ::rint(v); }
#undef KILN_CUDA_PRIM
#undef KILN_CUDA_PRIM2
};

}  // namespace kiln::cuda
