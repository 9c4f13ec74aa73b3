// RMSprop update from dispatched ops.
#include "kiln/optim/rmsprop.h"

#include "kiln/ops.h"

namespace kiln::optim {

RMSprop::RMSprop(std::vector<ParamGroup> groups, RMSpropOptions o)
    : Optimizer(std::move(groups), o.lr), options(o) {
  check_hyper(o.alpha >= 0, "alpha", o.alpha);
  check_hyper(o.eps >= 0, "eps", o.eps);
  check_hyper(o.momentum >= 0, "momentum", o.momentum);
  check_hyper(o.weight_decay >= 0, "weight_decay", o.weight_decay);
}

namespace {
Tensor& buffer(Optimizer::ParamState& st, const char* name, const Tensor& like) {
  auto it = st.buffers.find(name);
  if (it == st.buffers.end()) it = st.buffers.emplace(name, zeros_like(like)).first;
  return it->second;
}
}  // namespace

void RMSprop::step() {
  const RMSpropOptions& o = options;
  for_each_param([&](ParamGroup& group, Tensor& p, const Tensor& grad, ParamState& st) {
    const Tensor g = o.weight_decay != 0 ? add(grad, p, o.weight_decay) : grad;
    ++st.step;
    Tensor& sq = buffer(st, "square_avg", p);
    sq.mul_(o.alpha).add_(g * g, 1.0 - o.alpha);
    Tensor avg;
    if (o.centered) {
      Tensor& ga = buffer(st, "grad_avg", p);
      ga.mul_(o.alpha).add_(g, 1.0 - o.alpha);
      avg = add(sqrt(sq - ga * ga), o.eps);
    } else {
      avg = add(sqrt(sq), o.eps);
    }
    if (o.momentum > 0) {
      Tensor& buf = buffer(st, "momentum_buffer", p);
      buf.mul_(o.momentum).add_(g / avg);
      p.sub_(buf, group.lr);
    } else {
      p.sub_(g / avg, group.lr);
    }
  });
}

}  // namespace kiln::optim
