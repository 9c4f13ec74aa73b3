// CUDA fused Adam/AdamW step (adam_step): in (grad); outs (param, exp_avg, exp_avg_sq
// [, max_exp_avg_sq when amsgrad]), updated in place with the CPU kernel's arithmetic in
// the same order; float16/bfloat16 compute in float32 per element and store their dtype.
// Contiguous tensors, or dense ones sharing one stride order; anything else runs the CPU kernel.
#include <algorithm>
#include <cmath>
#include <vector>

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

// T is the stored type, C the compute type (float for float16/bfloat16), as the CPU kernel.
template <typename T, typename C>
__global__ void adam_kernel(const T* g, T* p, T* m, T* v, T* vmax, int64_t n, AdamConsts<C> c) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    C pi = convert<C>(p[i]), gi = convert<C>(g[i]);
    if (c.decay_p) pi = pi * c.decay;
    if (c.l2) gi = gi + c.wd * pi;
    const C mi = convert<C>(m[i]) * c.b1 + gi * c.one_b1;
    const C vi = convert<C>(v[i]) * c.b2 + (gi * gi) * c.one_b2;
    C second = vi;
    if (vmax) {
      const C old = convert<C>(vmax[i]);
      second = old < vi ? vi : old;  // std::max's choice
      vmax[i] = convert<T>(second);
    }
    const C denom = ::sqrt(second) / c.bc2_sqrt + c.eps;
    p[i] = convert<T>(pi - c.step_size * (mi / denom));
    m[i] = convert<T>(mi);
    v[i] = convert<T>(vi);
  }
}

// True when every tensor has the shape and strides of the first and those strides cover
// numel consecutive elements (a permutation of a contiguous layout): the update is
// elementwise, so it can then walk the memory as one flat array from data_ptr().
bool dense_same_layout(const KernelArgs& a) {
  const Tensor& t0 = a.outputs[0];
  std::vector<std::pair<int64_t, int64_t>> dims;  // (stride, size) of dims larger than 1
  for (int64_t d = 0; d < t0.dim(); ++d)
    if (t0.size(d) > 1) dims.emplace_back(t0.stride(d), t0.size(d));
  std::sort(dims.begin(), dims.end());
  int64_t expect = 1;
  for (const auto& [stride, size] : dims) {
    if (stride != expect) return false;
    expect *= size;
  }
  auto same = [&](const Tensor& t) {
    if (t.shape() != t0.shape()) return false;
    for (int64_t d = 0; d < t.dim(); ++d)
      if (t.size(d) > 1 && t.stride(d) != t0.stride(d)) return false;
    return true;
  };
  bool ok = same(a.inputs[0]);
  for (const Tensor& t : a.outputs) ok = ok && same(t);
  return ok;
}

void adam_entry(const KernelArgs& a) {
  const AdamAttrs& at = a.attr<AdamAttrs>();
  if (!dense_same_layout(a)) return run_on_cpu(a);
  const int dev = a.device.index;
  CudaDeviceGuard guard(dev);
  const int64_t n = a.outputs[0].numel();
  if (n == 0) return;
  const double bc1 = 1.0 - std::pow(at.beta1, double(at.step));
  const double bc2 = 1.0 - std::pow(at.beta2, double(at.step));
  KILN_DISPATCH_FLOATING(a.inputs[0].dtype(), "adam_step", [&]<typename TK>() {
    using T = dev_t<TK>;
    using C = comp_t<T>;
    AdamConsts<C> c{C(at.beta1), C(at.beta2), C(1.0 - at.beta1), C(1.0 - at.beta2), C(1.0 - at.lr * at.weight_decay),
                    C(at.weight_decay), C(at.lr / bc1), C(std::sqrt(bc2)), C(at.eps),
                    !at.decoupled && at.weight_decay != 0, at.decoupled && at.weight_decay != 0};
    auto p = [&](int i) { return static_cast<T*>(a.outputs[size_t(i)].data_ptr()); };
    adam_kernel<T, C><<<blocks_for(n, dev), kThreads, 0, current_stream(dev)>>>(
        static_cast<const T*>(a.inputs[0].data_ptr()), p(0), p(1), p(2), at.amsgrad ? p(3) : nullptr, n, c);
    KILN_CUDA_CHECK_LAUNCH("adam_step");
  });
}

}  // namespace

void register_optim(KernelRegistry& r) {
  r.add(DeviceType::Cuda, OpId::AdamStep, adam_entry);
}

}  // namespace kiln::cuda
