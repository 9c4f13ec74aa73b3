#pragma once
// Adam (Kingma & Ba 2015) and AdamW (Loshchilov & Hutter 2019), as torch.optim:
//   t += 1;  g = grad (+ wd * p for Adam);  p *= 1 - lr * wd (AdamW)
//   m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2   (amsgrad: vmax = max(vmax, v))
//   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// Float32/float64 parameters on a device with an adam_step kernel (the CPU) take one
// fused pass; others run the same arithmetic as dispatched elementwise ops.
#include "kiln/optim/optimizer.h"

namespace kiln::optim {

struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;
  bool amsgrad = false;
  bool fused = true;  // one adam_step kernel per parameter where the device has one
};

class Adam : public Optimizer {
 public:
  Adam(std::vector<Tensor> params, AdamOptions options = {})
      : Adam(std::vector<ParamGroup>{{std::move(params)}}, options) {}
  Adam(std::vector<ParamGroup> groups, AdamOptions options = {});
  std::string type_name() const override { return decoupled_ ? "AdamW" : "Adam"; }
  void step() override;
  AdamOptions options;

 protected:
  Adam(std::vector<ParamGroup> groups, AdamOptions options, bool decoupled);
  bool decoupled_ = false;
};

// Adam with decoupled weight decay; PyTorch's default weight_decay is 1e-2.
struct AdamWOptions : AdamOptions {
  AdamWOptions() { weight_decay = 1e-2; }
};

class AdamW : public Adam {
 public:
  AdamW(std::vector<Tensor> params, AdamWOptions options = {})
      : AdamW(std::vector<ParamGroup>{{std::move(params)}}, options) {}
  AdamW(std::vector<ParamGroup> groups, AdamWOptions options = {}) : Adam(std::move(groups), options, true) {}
};

}  // namespace kiln::optim
