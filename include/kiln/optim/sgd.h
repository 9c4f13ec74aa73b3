#pragma once
// Stochastic gradient descent with momentum, dampening, Nesterov momentum and L2
// weight decay, as torch.optim.SGD:
//   g = grad + wd * p
//   buf = g (first step), else momentum * buf + (1 - dampening) * g
//   g = nesterov ? g + momentum * buf : buf;   p -= lr * g
#include "kiln/optim/optimizer.h"

namespace kiln::optim {

struct SGDOptions {
  double lr = 1e-3;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
};

class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor> params, SGDOptions options = {}) : SGD(std::vector<ParamGroup>{{std::move(params)}}, options) {}
  SGD(std::vector<ParamGroup> groups, SGDOptions options = {});
  std::string type_name() const override { return "SGD"; }
  void step() override;
  SGDOptions options;
};

}  // namespace kiln::optim
