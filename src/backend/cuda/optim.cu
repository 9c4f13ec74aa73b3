// CUDA fused Adam/AdamW step (adam_step): in (grad); outs (param, exp_avg, exp_avg_sq
// [, max_exp_avg_sq when amsgrad]), updated in place with the CPU kernel's arithmetic in
// the same order. Contiguous tensors; anything else runs the CPU kernel.
#include <cmath>

#include "kiln/op_attrs.h"
#include "src/backend/cuda/kernels.h"
#include "src/backend/cuda/loops.cuh"

namespace kiln::cuda {

namespace {

template <typename C>
struct AdamConsts {
  C b1, b2, one_b1, one_b2, decay, wd, step_size, bc2_sqrt, eps;
  bool l2, decay_p;
};

template <typename T>
__global__ void adam_kernel(const T* g, T* p, T* m, T* v, T* vmax, int64_t n, AdamConsts<T> c) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    T pi = p[i], gi = g[i];
    if (c.decay_p) pi = pi * c.decay;
    if (c.l2) gi = gi + c.wd * pi;
    const T mi = m[i] * c.b1 + gi * c.one_b1;
    const T vi = v[i] * c.b2 + (gi * gi) * c.one_b2;
    T second = vi;
    if (vmax) {
      second = vmax[i] > vi ? vmax[i] : vi;
      vmax[i] = second;
    }
    const T denom = ::sqrt(second) / c.bc2_sqrt + c.eps;
    p[i] = pi - c.step_size * (mi / denom);
    m[i] = mi;
    v[i] = vi;
  }
}

void adam_entry(const KernelArgs& a) {
  const AdamAttrs& at = a.attr<AdamAttrs>();
  bool contiguous = a.inputs[0].is_contiguous();
  for (const Tensor& t : a.outputs) contiguous = contiguous && t.is_contiguous();
  if (!contiguous) return run_on_cpu(a);
  const int dev = a.device.index;
  CudaDeviceGuard guard(dev);
  const int64_t n = a.outputs[0].numel();
  if (n == 0) return;
  const double bc1 = 1.0 - std::pow(at.beta1, double(at.step));
  const double bc2 = 1.0 - std::pow(at.beta2, double(at.step));
  KILN_DISPATCH_FLOATING(a.inputs[0].dtype(), "adam_step", [&]<typename TK>() {
    if constexpr (std::is_same_v<TK, float> || std::is_same_v<TK, double>) {
      using C = TK;
      AdamConsts<C> c{C(at.beta1), C(at.beta2), C(1.0 - at.beta1), C(1.0 - at.beta2), C(1.0 - at.lr * at.weight_decay),
                      C(at.weight_decay), C(at.lr / bc1), C(std::sqrt(bc2)), C(at.eps),
                      !at.decoupled && at.weight_decay != 0, at.decoupled && at.weight_decay != 0};
      auto p = [&](int i) { return static_cast<C*>(a.outputs[size_t(i)].data_ptr()); };
      adam_kernel<C><<<blocks_for(n, dev), kThreads, 0, current_stream(dev)>>>(
          static_cast<const C*>(a.inputs[0].data_ptr()), p(0), p(1), p(2), at.amsgrad ? p(3) : nullptr, n, c);
      KILN_CUDA_CHECK_LAUNCH("adam_step");
    } else {
      run_on_cpu(a);
    }
  });
}

}  // namespace

void register_optim(KernelRegistry& r) {
  r.add(DeviceType::Cuda, OpId::AdamStep, adam_entry, dtypes({DType::Float32, DType::Float64}));
}

}  // namespace kiln::cuda
