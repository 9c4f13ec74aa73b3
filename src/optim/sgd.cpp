// SGD update from dispatched in-place ops.
#include "kiln/optim/sgd.h"

#include "kiln/ops.h"

namespace kiln::optim {

SGD::SGD(std::vector<ParamGroup> groups, SGDOptions o) : Optimizer(std::move(groups), o.lr), options(o) {
  check_hyper(o.momentum >= 0, "momentum", o.momentum);
  check_hyper(o.weight_decay >= 0, "weight_decay", o.weight_decay);
  KILN_CHECK(!o.nesterov || (o.momentum > 0 && o.dampening == 0), "SGD",
             "nesterov momentum needs momentum > 0 and dampening = 0, got momentum=", o.momentum,
             ", dampening=", o.dampening);
}

void SGD::step() {
  const SGDOptions& o = options;
  for_each_param([&](ParamGroup& group, Tensor& p, const Tensor& grad, ParamState& st) {
    Tensor d = o.weight_decay != 0 ? add(grad, p, o.weight_decay) : grad;
    if (o.momentum != 0) {
      auto it = st.buffers.find("momentum_buffer");
      if (it == st.buffers.end()) {
        it = st.buffers.emplace("momentum_buffer", d.clone()).first;
      } else {
        it->second.mul_(o.momentum).add_(d, 1.0 - o.dampening);
      }
      d = o.nesterov ? add(d, it->second, o.momentum) : it->second;
    }
    ++st.step;
    p.sub_(d, group.lr);
  });
}

}  // namespace kiln::optim
