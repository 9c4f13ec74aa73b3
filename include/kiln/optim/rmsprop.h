#pragma once
// RMSprop (Hinton's lecture 6e; torch.optim.RMSprop):
//   g = grad + wd * p;   sq = alpha sq + (1 - alpha) g^2
//   centered: ga = alpha ga + (1 - alpha) g;  avg = sqrt(sq - ga^2) + eps;  else avg = sqrt(sq) + eps
//   momentum > 0: buf = momentum buf + g / avg;  p -= lr buf;   else p -= lr g / avg
#include "kiln/optim/optimizer.h"

namespace kiln::optim {

struct RMSpropOptions {
  double lr = 1e-2;
  double alpha = 0.99;
  double eps = 1e-8;
  double weight_decay = 0.0;
  double momentum = 0.0;
  bool centered = false;
};

class RMSprop : public Optimizer {
 public:
  RMSprop(std::vector<Tensor> params, RMSpropOptions options = {})
      : RMSprop(std::vector<ParamGroup>{{std::move(params)}}, options) {}
  RMSprop(std::vector<ParamGroup> groups, RMSpropOptions options = {});
  std::string type_name() const override { return "RMSprop"; }
  void step() override;
  RMSpropOptions options;
};

}  // namespace kiln::optim
