#pragma once
// Optimizer: the base of SGD, Adam, AdamW and RMSprop. Parameters come in groups, each
// with its own learning rate (what the LR schedulers change). Each parameter has a
// state: a step count and named buffers (momentum, moments), saved by state_dict() as
// tensors so that a loaded optimizer takes bit-identical next steps.
//
// Updates run on the parameters' device through dispatched ops, under NoGradGuard,
// writing through detached handles of the parameters.
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "kiln/nn/state_dict.h"
#include "kiln/tensor.h"

namespace kiln::optim {

struct ParamGroup {
  std::vector<Tensor> params;
  double lr = -1;  // negative: the optimizer's default learning rate
  ParamGroup(std::vector<Tensor> p, double lr = -1) : params(std::move(p)), lr(lr) {}  // NOLINT
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  virtual std::string type_name() const = 0;
  // One update of every parameter that has a grad (parameters without one are skipped).
  virtual void step() = 0;
  // Sets each parameter's grad to none (default), or zeroes it in place.
  void zero_grad(bool set_to_none = true);

  std::vector<ParamGroup>& param_groups() { return groups_; }
  const std::vector<ParamGroup>& param_groups() const { return groups_; }
  void add_param_group(ParamGroup group);
  double default_lr() const { return default_lr_; }

  // "param_groups.<g>.lr" (float64, 0-d) and "state.<i>.step" (int64, 0-d),
  // "state.<i>.<buffer>" (the buffer itself), i counting parameters over all groups.
  StateDict state_dict() const;
  // Needs the same groups and parameter shapes; raises kiln::Error naming the bad keys
  // and leaves the optimizer unchanged. Buffers are copied onto each parameter's
  // device and dtype.
  void load_state_dict(const StateDict& dict);

  struct ParamState {
    int64_t step = 0;
    std::map<std::string, Tensor> buffers;
  };
  // The state of parameter i (over all groups, in order); created empty on first use.
  ParamState& state(size_t i);

 protected:
  Optimizer(std::vector<ParamGroup> groups, double default_lr);
  // Calls fn(group, param, grad, state) for each parameter with a grad. param and grad
  // are detached handles: writes to param update the model without autograd history.
  void for_each_param(const std::function<void(ParamGroup&, Tensor&, const Tensor&, ParamState&)>& fn);
  void check_hyper(bool ok, const std::string& what, double value) const;

 private:
  std::vector<ParamGroup> groups_;
  std::vector<ParamState> state_;  // one per parameter, in group order
  double default_lr_;
};

}  // namespace kiln::optim
