// Optimizer base: parameter groups, per-parameter state, zero_grad, state_dict.
#include "kiln/optim/optimizer.h"

#include "kiln/autograd.h"

#include <cmath>
#include <sstream>
#include <unordered_set>

namespace kiln::optim {

namespace {
size_t count_params(const std::vector<ParamGroup>& groups) {
  size_t n = 0;
  for (const auto& g : groups) n += g.params.size();
  return n;
}

bool parse_index(const std::string& s, size_t& out) {
  if (s.empty() || s.size() > 9) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  out = size_t(std::stoul(s));
  return true;
}
}  // namespace

Optimizer::Optimizer(std::vector<ParamGroup> groups, double default_lr) : default_lr_(default_lr) {
  KILN_CHECK(std::isfinite(default_lr) && default_lr >= 0, "optimizer", "invalid learning rate ", default_lr);
  KILN_CHECK(!groups.empty(), "optimizer", "got an empty parameter list");
  for (auto& g : groups) add_param_group(std::move(g));
}

void Optimizer::add_param_group(ParamGroup group) {
  const char* op = "add_param_group";
  if (group.lr < 0) group.lr = default_lr_;
  KILN_CHECK(std::isfinite(group.lr), op, "invalid learning rate ", group.lr);
  std::unordered_set<const TensorImpl*> seen;
  for (const auto& g : groups_)
    for (const auto& p : g.params) seen.insert(&p.impl());
  for (const auto& p : group.params) {
    KILN_CHECK(p.defined(), op, "a parameter is undefined");
    KILN_CHECK(is_floating(p.dtype()), op, "parameters must be floating, got ", dtype_name(p.dtype()), " of shape ",
               shape_str(p.shape()));
    KILN_CHECK(seen.insert(&p.impl()).second, op, "a parameter of shape ", shape_str(p.shape()),
               " appears in more than one group (or twice)");
  }
  groups_.push_back(std::move(group));
  state_.resize(count_params(groups_));
}

void Optimizer::check_hyper(bool ok, const std::string& what, double value) const {
  KILN_CHECK(ok, type_name().c_str(), "invalid ", what, ": ", value);
}

Optimizer::ParamState& Optimizer::state(size_t i) {
  KILN_CHECK(i < state_.size(), "optimizer", "parameter index ", i, " out of range for ", state_.size());
  return state_[i];
}

void Optimizer::zero_grad(bool set_to_none) {
  for (auto& g : groups_)
    for (auto& p : g.params) {
      Tensor grad = p.grad();
      if (!grad.defined()) continue;
      if (set_to_none) p.set_grad(Tensor());
      else grad.detach().zero_();
    }
}

void Optimizer::for_each_param(
    const std::function<void(ParamGroup&, Tensor&, const Tensor&, ParamState&)>& fn) {
  NoGradGuard no_grad;
  size_t i = 0;
  for (auto& g : groups_)
    for (auto& p : g.params) {
      ParamState& st = state_[i++];
      const Tensor grad = p.grad();
      if (!grad.defined()) continue;
      KILN_CHECK(grad.shape() == p.shape() && grad.device() == p.device(), type_name().c_str(), "grad ",
                 grad.str(), " does not match its parameter ", p.str());
      Tensor param = p.detach();
      fn(g, param, grad.detach(), st);
    }
}

StateDict Optimizer::state_dict() const {
  StateDict d;
  for (size_t g = 0; g < groups_.size(); ++g)
    d.insert("param_groups." + std::to_string(g) + ".lr", scalar_tensor(groups_[g].lr, DType::Float64));
  for (size_t i = 0; i < state_.size(); ++i) {
    const ParamState& st = state_[i];
    if (st.step == 0 && st.buffers.empty()) continue;
    const std::string prefix = "state." + std::to_string(i) + ".";
    d.insert(prefix + "step", scalar_tensor(st.step, DType::Int64));
    for (const auto& [name, t] : st.buffers) d.insert(prefix + name, t);
  }
  return d;
}

void Optimizer::load_state_dict(const StateDict& dict) {
  const char* op = "Optimizer::load_state_dict";
  std::vector<const Tensor*> params;
  for (const auto& g : groups_)
    for (const auto& p : g.params) params.push_back(&p);

  std::vector<std::string> bad;
  std::vector<double> lrs(groups_.size(), -1);
  std::vector<ParamState> loaded(state_.size());
  for (const auto& [key, t] : dict) {
    const size_t dot1 = key.find('.'), dot2 = key.find('.', dot1 == std::string::npos ? 0 : dot1 + 1);
    size_t idx = 0;
    if (dot1 == std::string::npos || dot2 == std::string::npos ||
        !parse_index(key.substr(dot1 + 1, dot2 - dot1 - 1), idx) || !t.defined()) {
      bad.push_back(key + " (unexpected)");
      continue;
    }
    const std::string kind = key.substr(0, dot1), name = key.substr(dot2 + 1);
    if (kind == "param_groups" && name == "lr" && idx < groups_.size() && t.numel() == 1) {
      lrs[idx] = t.item<double>();
    } else if (kind == "state" && idx < params.size() && name == "step" && t.numel() == 1) {
      loaded[idx].step = t.item<int64_t>();
    } else if (kind == "state" && idx < params.size() && name != "step") {
      const Tensor& p = *params[idx];
      if (t.shape() != p.shape()) {
        bad.push_back(key + " (shape " + shape_str(t.shape()) + ", parameter " + shape_str(p.shape()) + ")");
        continue;
      }
      loaded[idx].buffers[name] = t;
    } else {
      bad.push_back(key + " (unexpected)");
    }
  }
  for (size_t g = 0; g < lrs.size(); ++g)
    if (lrs[g] < 0) bad.push_back("param_groups." + std::to_string(g) + ".lr (missing or negative)");
  if (!bad.empty()) {
    std::ostringstream os;
    os << "cannot load a state_dict into " << type_name() << " with " << groups_.size() << " group(s) and "
       << params.size() << " parameter(s):";
    for (size_t i = 0; i < bad.size(); ++i) os << (i ? ", " : " ") << bad[i];
    KILN_FAIL(op, os.str());
  }
  // Validated: copy buffers onto each parameter's device and dtype, then commit.
  NoGradGuard no_grad;
  for (size_t i = 0; i < loaded.size(); ++i)
    for (auto& [name, t] : loaded[i].buffers) {
      Tensor copy = empty(params[i]->shape(), TensorOptions(params[i]->dtype()).device(params[i]->device()));
      copy.copy_(t.detach());
      t = copy;
    }
  for (size_t g = 0; g < groups_.size(); ++g) groups_[g].lr = lrs[g];
  state_ = std::move(loaded);
}

}  // namespace kiln::optim
