// CUDA copy/cast, fill, arange and random-number kernels.
#include <cuda_runtime.h>

#include "kiln/generator.h"
#include "kiln/op_attrs.h"
#include "src/backend/cuda/kernels.h"
#include "src/backend/cuda/loops.cuh"
#include "src/backend/cuda/philox.cuh"

namespace kiln::cuda {

namespace {

template <typename To, typename From>
struct CastF {
  __device__ To operator()(From v) const { return convert<To>(convert<comp_t<From>>(v)); }
};

void copy_kernel(const KernelArgs& a) {
  const Tensor& src = a.inputs[0];
  const Tensor& dst = a.outputs[0];
  if (src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous()) {
    CudaDeviceGuard g(dst.device().index);
    KILN_CUDA_CHECK(cudaMemcpyAsync(dst.data_ptr(), src.data_ptr(), dst.nbytes(), cudaMemcpyDeviceToDevice,
                                    current_stream(dst.device().index)),
                    "copy_");
    return;
  }
  KILN_DISPATCH_DTYPE(dst.dtype(), "copy_", [&]<typename To>() {
    KILN_DISPATCH_DTYPE(src.dtype(), "copy_", [&]<typename From>() {
      launch_map<dev_t<To>, dev_t<From>>("copy_", dst, {&src}, CastF<dev_t<To>, dev_t<From>>{});
    });
  });
}

template <typename T>
struct FillF {
  T value;
  __device__ T operator()() const { return value; }
};

void fill_kernel(const KernelArgs& a) {
  const Tensor& dst = a.outputs[0];
  const Scalar v = a.attr<ScalarAttrs>().value;
  KILN_DISPATCH_DTYPE(dst.dtype(), "fill_", [&]<typename T>() {
    const T host = v.to<T>();
    dev_t<T> value;
    static_assert(sizeof(value) == sizeof(host));
    std::memcpy(static_cast<void*>(&value), &host, sizeof(host));
    launch_map<dev_t<T>>("fill_", dst, {}, FillF<dev_t<T>>{value});
  });
}

template <typename T>
__global__ void arange_kernel_(T* out, int64_t n, double start, double step) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const double v = start + double(i) * step;
    if constexpr (std::is_integral_v<T>) out[i] = T(int64_t(v));  // Scalar(double).to<int>() truncates
    else out[i] = convert<T>(v);
  }
}

void arange_kernel(const KernelArgs& a) {
  const Tensor& out = a.outputs[0];
  const RangeAttrs& r = a.attr<RangeAttrs>();
  const int dev = out.device().index;
  CudaDeviceGuard g(dev);
  KILN_DISPATCH_DTYPE(out.dtype(), "arange", [&]<typename T>() {
    if constexpr (std::is_same_v<T, bool>) {
      KILN_FAIL("arange", "not implemented for bool");
    } else {
      arange_kernel_<dev_t<T>><<<blocks_for(out.numel(), dev), kThreads, 0, current_stream(dev)>>>(
          static_cast<dev_t<T>*>(out.data_ptr()), out.numel(), r.start, r.step);
      KILN_CUDA_CHECK_LAUNCH("arange");
    }
  });
}

// Element i uses counter (offset + i) and the CPU's formulas in double precision.
template <typename T>
__global__ void random_kernel_(T* out, int64_t n, int kind, double lo, double hi, uint64_t seed, uint64_t offset) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    uint32_t w[4];
    philox(seed, offset + uint64_t(i), w);
    double v;
    if (kind == 0) {
      v = lo + (hi - lo) * double(philox_unit(w[0]));
    } else if (kind == 1) {
      const double u1 = (double(w[0]) + 1.0) / 4294967297.0, u2 = double(w[1]) / 4294967296.0;
      v = lo + hi * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
    } else {
      const uint64_t range = uint64_t(hi - lo);
      v = lo + double(((uint64_t(w[0]) << 32) | w[1]) % range);
    }
    if constexpr (std::is_integral_v<T>) out[i] = T(int64_t(v));
    else out[i] = convert<T>(v);
  }
}

void random_kernel(const KernelArgs& a) {
  const Tensor& out = a.outputs[0];
  const RandomAttrs& r = a.attr<RandomAttrs>();
  const int kind = a.op == OpId::RandomUniform ? 0 : a.op == OpId::RandomNormal ? 1 : 2;
  const int dev = out.device().index;
  CudaDeviceGuard g(dev);
  KILN_DISPATCH_DTYPE(out.dtype(), op_name(a.op), [&]<typename T>() {
    if constexpr (std::is_same_v<T, bool>) {
      KILN_FAIL(op_name(a.op), "not implemented for bool");
    } else {
      random_kernel_<dev_t<T>><<<blocks_for(out.numel(), dev), kThreads, 0, current_stream(dev)>>>(
          static_cast<dev_t<T>*>(out.data_ptr()), out.numel(), kind, r.a, r.b, r.seed, r.offset);
      KILN_CUDA_CHECK_LAUNCH(op_name(a.op));
    }
  });
}

}  // namespace

void register_copy(KernelRegistry& r) {
  const DeviceType cu = DeviceType::Cuda;
  r.add(cu, OpId::Copy, copy_kernel);  // every dtype each op declares (ops.def)
  r.add(cu, OpId::Fill, fill_kernel);
  r.add(cu, OpId::Arange, arange_kernel);
  for (OpId op : {OpId::RandomUniform, OpId::RandomNormal, OpId::RandomInt}) r.add(cu, op, random_kernel);
}

}  // namespace kiln::cuda
