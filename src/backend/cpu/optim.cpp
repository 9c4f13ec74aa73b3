// CPU kernels: fused optimizer updates (adam_step): one pass over param, grad and the
// moments instead of a dozen elementwise ops with temporaries. float16/bfloat16 compute
// in float32 per element and store their dtype (the CUDA kernel does the same).
#include <algorithm>
#include <cmath>

#include "kiln/op_attrs.h"
#include "kiln/tensor.h"
#include "src/backend/cpu/kernels.h"
#include "src/backend/cpu/loops.h"

namespace kiln::cpu {

namespace {

// The same arithmetic, in the same order, as the dispatched-op path of optim::Adam.
template <typename T>
void adam_typed(const KernelArgs& a) {
  using C = compute_t<T>;
  const AdamAttrs& at = a.attr<AdamAttrs>();
  const T* g = a.inputs[0].data<T>();
  T* p = a.outputs[0].data<T>();
  T* m = a.outputs[1].data<T>();
  T* v = a.outputs[2].data<T>();
  T* vmax = at.amsgrad ? a.outputs[3].data<T>() : nullptr;
  const int64_t n = a.outputs[0].numel();
  const double bc1 = 1.0 - std::pow(at.beta1, double(at.step));
  const double bc2 = 1.0 - std::pow(at.beta2, double(at.step));
  const C b1 = C(at.beta1), b2 = C(at.beta2), one_b1 = C(1.0 - at.beta1), one_b2 = C(1.0 - at.beta2);
  const C decay = C(1.0 - at.lr * at.weight_decay), wd = C(at.weight_decay);
  const C step_size = C(at.lr / bc1), bc2_sqrt = C(std::sqrt(bc2)), eps = C(at.eps);
  const bool decoupled = at.decoupled, l2 = !at.decoupled && at.weight_decay != 0;
  const bool decay_p = at.decoupled && at.weight_decay != 0;
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) {
    C pi = C(p[i]), gi = C(g[i]);
    if (decay_p) pi = pi * decay;
    if (l2) gi = gi + wd * pi;
    const C mi = C(m[i]) * b1 + gi * one_b1;
    const C vi = C(v[i]) * b2 + (gi * gi) * one_b2;
    C second = vi;
    if (vmax) {
      second = std::max(C(vmax[i]), vi);
      vmax[i] = T(second);
    }
    const C denom = std::sqrt(second) / bc2_sqrt + eps;
    p[i] = T(pi - step_size * (mi / denom));
    m[i] = T(mi);
    v[i] = T(vi);
    (void)decoupled;
  }
}

void adam_step_kernel(const KernelArgs& a) {
  KILN_DISPATCH_FLOATING(a.inputs[0].dtype(), "adam_step", [&]<typename T>() { adam_typed<T>(a); });
}

}  // namespace

void register_optim(KernelRegistry& r) {
  r.add(DeviceType::Cpu, OpId::AdamStep, adam_step_kernel);
}

}  // namespace kiln::cpu
