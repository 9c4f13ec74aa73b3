// Adam and AdamW. Where the parameter's device has an adam_step kernel for its dtype
// (every floating dtype on the CPU and CUDA; float16/bfloat16 compute in float32 per
// element), one fused kernel does the update; otherwise the same
// arithmetic runs as dispatched elementwise ops (any dtype, any device).
#include "kiln/optim/adam.h"

#include <cmath>

#include "kiln/dispatch.h"
#include "kiln/op_attrs.h"
#include "kiln/ops.h"

namespace kiln::optim {

Adam::Adam(std::vector<ParamGroup> groups, AdamOptions o) : Adam(std::move(groups), o, false) {}

Adam::Adam(std::vector<ParamGroup> groups, AdamOptions o, bool decoupled)
    : Optimizer(std::move(groups), o.lr), options(o), decoupled_(decoupled) {
  check_hyper(o.eps >= 0, "eps", o.eps);
  check_hyper(o.beta1 >= 0 && o.beta1 < 1, "beta1", o.beta1);
  check_hyper(o.beta2 >= 0 && o.beta2 < 1, "beta2", o.beta2);
  check_hyper(o.weight_decay >= 0, "weight_decay", o.weight_decay);
}

namespace {
Tensor& buffer(Optimizer::ParamState& st, const char* name, const Tensor& like) {
  auto it = st.buffers.find(name);
  if (it == st.buffers.end()) it = st.buffers.emplace(name, zeros_like(like)).first;
  return it->second;
}

bool fused_available(const Tensor& p, const Tensor& m, const Tensor& v, const Tensor* vmax) {
  return kernel_registry().supports(p.device().type, OpId::AdamStep, p.dtype()) && p.is_contiguous() &&
         m.is_contiguous() && v.is_contiguous() && (!vmax || vmax->is_contiguous());
}
}  // namespace

void Adam::step() {
  const AdamOptions& o = options;
  for_each_param([&](ParamGroup& group, Tensor& p, const Tensor& grad, ParamState& st) {
    ++st.step;
    Tensor& m = buffer(st, "exp_avg", p);
    Tensor& v = buffer(st, "exp_avg_sq", p);
    Tensor* vmax = o.amsgrad ? &buffer(st, "max_exp_avg_sq", p) : nullptr;
    const double lr = group.lr;
    if (o.fused && fused_available(p, m, v, vmax)) {
      const AdamAttrs attrs{lr, o.beta1, o.beta2, o.eps, o.weight_decay, st.step, decoupled_, o.amsgrad};
      const Tensor in[] = {grad.to(p.dtype()).contiguous()};
      std::vector<Tensor> outs = {p, m, v};
      if (vmax) outs.push_back(*vmax);
      dispatch(OpId::AdamStep, p.dtype(), in, outs, &attrs);
      for (const Tensor& t : outs) t.storage()->bump_version();  // in-place writes, as every op's
      return;
    }
    const double bc1 = 1.0 - std::pow(o.beta1, double(st.step));
    const double bc2 = 1.0 - std::pow(o.beta2, double(st.step));

    Tensor g = grad;
    if (o.weight_decay != 0) {
      if (decoupled_) p.mul_(1.0 - lr * o.weight_decay);
      else g = add(grad, p, o.weight_decay);
    }
    m.mul_(o.beta1).add_(g, 1.0 - o.beta1);
    v.mul_(o.beta2).add_(g * g, 1.0 - o.beta2);
    Tensor second = v;
    if (vmax) {
      vmax->copy_(maximum(*vmax, v));
      second = *vmax;
    }
    const Tensor denom = add(sqrt(second) / std::sqrt(bc2), o.eps);
    p.sub_(m / denom, lr / bc1);
  });
}

}  // namespace kiln::optim
