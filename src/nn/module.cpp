// nn::Module: registries of parameters, buffers and children; recursive naming,
// placement, mode and checkpoints.
#include "kiln/nn/module.h"

#include "kiln/autograd.h"

#include <cxxabi.h>

#include <cstdlib>
#include <sstream>
#include <typeinfo>
#include <unordered_set>

namespace kiln::nn {

namespace {

void check_name(const char* what, const std::string& name) {
  KILN_CHECK(!name.empty() && name.find('.') == std::string::npos, what, "name '", name,
             "' must be non-empty and contain no '.'");
}

std::string join(const std::string& prefix, const std::string& name) {
  if (prefix.empty()) return name;
  return name.empty() ? prefix : prefix + "." + name;
}

}  // namespace

void replace_data(const Tensor& t, const Tensor& src) {
  TensorImpl& dst = t.impl();
  const TensorImpl& s = src.impl();
  dst.storage = s.storage;
  dst.shape = s.shape;
  dst.strides = s.strides;
  dst.offset = s.offset;
  dst.dtype = s.dtype;
}

std::string detail::demangled_type_name(const char* mangled) {
  int status = 0;
  char* d = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string out = status == 0 && d ? d : mangled;
  std::free(d);
  return out;
}

Tensor Module::forward(const Tensor&) {
  KILN_FAIL("forward", type_name(), " has no one-input forward");
}

std::string Module::type_name() const {
  std::string n = detail::demangled_type_name(typeid(*this).name());
  const size_t colon = n.rfind("::");
  if (colon != std::string::npos) n = n.substr(colon + 2);
  if (n.size() > 4 && n.ends_with("Impl")) n.resize(n.size() - 4);
  return n;
}


Tensor Module::register_parameter(const std::string& name, Tensor t, bool requires_grad) {
  check_name("register_parameter", name);
  for (const auto& p : params_) KILN_CHECK(p.first != name, "register_parameter", "parameter '", name, "' exists");
  if (t.defined()) {
    KILN_CHECK(is_floating(t.dtype()) || !requires_grad, "register_parameter", "parameter '", name,
               "' must be floating to require grad, got ", dtype_name(t.dtype()));
    t.requires_grad_(requires_grad);
  }
  params_.emplace_back(name, t);
  return t;
}

Tensor Module::register_buffer(const std::string& name, Tensor t, bool persistent) {
  check_name("register_buffer", name);
  for (const auto& b : buffers_) KILN_CHECK(b.name != name, "register_buffer", "buffer '", name, "' exists");
  buffers_.push_back({name, t, persistent});
  return t;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> m) {
  check_name("register_module", name);
  KILN_CHECK(m != nullptr, "register_module", "module '", name, "' is null");
  for (const auto& c : children_) KILN_CHECK(c.first != name, "register_module", "module '", name, "' exists");
  children_.emplace_back(name, std::move(m));
}

void Module::set_child(size_t index, std::shared_ptr<Module> m) {
  KILN_CHECK(index < children_.size(), "register_module", "index ", index, " out of range for ", children_.size(),
             " modules");
  KILN_CHECK(m != nullptr, "register_module", "module is null");
  children_[index].second = std::move(m);
}

OrderedDict<std::string, std::shared_ptr<Module>> Module::named_modules(const std::string& prefix,
                                                                         bool include_self) {
  OrderedDict<std::string, std::shared_ptr<Module>> out("module");
  std::shared_ptr<Module> self = weak_from_this().lock();
  if (!self) self = std::shared_ptr<Module>(std::shared_ptr<Module>(), this);  // not owned: no-op alias
  if (include_self) out.insert(prefix, self);
  auto visit = [&](auto&& rec, Module& m, const std::string& pre) -> void {
    for (auto& [name, child] : m.children_) {
      const std::string full = join(pre, name);
      out.insert(full, child);
      rec(rec, *child, full);
    }
  };
  visit(visit, *this, prefix);
  return out;
}

std::vector<std::shared_ptr<Module>> Module::modules(bool include_self) {
  return named_modules("", include_self).values();
}

OrderedDict<std::string, std::shared_ptr<Module>> Module::named_children() const {
  OrderedDict<std::string, std::shared_ptr<Module>> out("module");
  for (const auto& [name, child] : children_) out.insert(name, child);
  return out;
}

void Module::apply(const std::function<void(Module&)>& fn) {
  for (auto& item : named_modules()) fn(*item.second);
}

void Module::apply(const std::function<void(const std::string&, Module&)>& fn, const std::string& prefix) {
  for (auto& item : named_modules(prefix)) fn(item.first, *item.second);
}

void Module::apply(const std::function<void(const std::shared_ptr<Module>&)>& fn) {
  for (auto& item : named_modules()) fn(item.second);
}

OrderedDict<std::string, Tensor> Module::named_parameters(bool recurse) const {
  OrderedDict<std::string, Tensor> out("parameter");
  std::unordered_set<const TensorImpl*> seen;  // a shared (tied) parameter is listed once
  auto visit = [&](auto&& self, const Module& m, const std::string& prefix) -> void {
    for (const auto& [name, t] : m.params_)
      if (t.defined() && seen.insert(&t.impl()).second) out.insert(join(prefix, name), t);
    if (!recurse && &m == this) return;
    for (const auto& [name, child] : m.children_) self(self, *child, join(prefix, name));
  };
  visit(visit, *this, "");
  return out;
}

std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters(recurse)) out.push_back(t);
  return out;
}

OrderedDict<std::string, Tensor> Module::named_buffers(bool recurse) const {
  OrderedDict<std::string, Tensor> out("buffer");
  auto visit = [&](auto&& self, const Module& m, const std::string& prefix) -> void {
    for (const auto& b : m.buffers_)
      if (b.value.defined()) out.insert(join(prefix, b.name), b.value);
    if (!recurse && &m == this) return;
    for (const auto& [name, child] : m.children_) self(self, *child, join(prefix, name));
  };
  visit(visit, *this, "");
  return out;
}

std::vector<Tensor> Module::buffers(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_buffers(recurse)) out.push_back(t);
  return out;
}

std::vector<std::shared_ptr<Module>> Module::children() const {
  std::vector<std::shared_ptr<Module>> out;
  for (const auto& c : children_) out.push_back(c.second);
  return out;
}

int64_t Module::num_parameters(bool trainable_only) const {
  int64_t n = 0;
  for (const auto& [name, t] : named_parameters())
    if (!trainable_only || t.requires_grad()) n += t.numel();
  return n;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& c : children_) c.second->train(on);
}

void Module::apply_to_tensors(const std::function<Tensor(const Tensor&)>& fn) {
  NoGradGuard no_grad;
  for (auto& [prefix, m] : named_modules()) {
    for (auto& [name, p] : m->params_) {
      if (!p.defined()) continue;
      const Tensor moved = fn(p.detach());
      if (moved.impl().storage != p.impl().storage || moved.dtype() != p.dtype()) replace_data(p, moved);
      const Tensor g = p.grad();
      if (g.defined()) p.set_grad(fn(g.detach()));
    }
    for (auto& b : m->buffers_)
      if (b.value.defined()) replace_data(b.value, fn(b.value.detach()));
  }
}

Module& Module::to(Device device) {
  apply_to_tensors([&](const Tensor& t) { return t.to(device); });
  return *this;
}

Module& Module::to(DType dtype) {
  KILN_CHECK(is_floating(dtype), "Module::to", "expected a floating dtype, got ", dtype_name(dtype));
  apply_to_tensors([&](const Tensor& t) { return is_floating(t.dtype()) ? t.to(dtype) : t; });
  return *this;
}

Module& Module::to(MemoryFormat fmt) {
  apply_to_tensors([&](const Tensor& t) { return t.dim() == 4 ? t.to(fmt) : t; });
  return *this;
}

Module& Module::to(Device device, DType dtype) {
  to(device);
  return to(dtype);
}

void Module::zero_grad(bool set_to_none) {
  for (auto& p : parameters()) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    if (set_to_none) p.set_grad(Tensor());
    else g.detach().zero_();
  }
}

void Module::collect_state(const std::string& prefix, StateDict& out) const {
  for (const auto& [name, t] : params_)
    if (t.defined()) out.insert(join(prefix, name), t.detach());
  for (const auto& b : buffers_)
    if (b.value.defined() && b.persistent) out.insert(join(prefix, b.name), b.value.detach());
  for (const auto& [name, child] : children_) child->collect_state(join(prefix, name), out);
}

StateDict Module::state_dict() const {
  StateDict out;
  collect_state("", out);
  return out;
}

void Module::load_state_dict(const StateDict& dict, bool strict) {
  const StateDict own = state_dict();
  std::vector<std::string> missing, unexpected, mismatched;
  for (const auto& [key, t] : own) {
    const Tensor* src = dict.find(key);
    if (!src || !src->defined()) {
      missing.push_back(key);
    } else if (src->shape() != t.shape()) {
      mismatched.push_back(key + " (expected " + shape_str(t.shape()) + ", got " + shape_str(src->shape()) + ")");
    }
  }
  for (const auto& [key, t] : dict)
    if (!own.contains(key)) unexpected.push_back(key);

  const bool fail = !mismatched.empty() || (strict && (!missing.empty() || !unexpected.empty()));
  if (fail) {
    std::ostringstream os;
    os << "error(s) loading state_dict for " << type_name() << ":";
    auto list = [&](const char* what, const std::vector<std::string>& keys) {
      if (keys.empty()) return;
      os << " " << what << ": ";
      for (size_t i = 0; i < keys.size(); ++i) os << (i ? ", " : "") << keys[i];
      os << ";";
    };
    if (strict) list("missing keys", missing);
    if (strict) list("unexpected keys", unexpected);
    list("size mismatch for", mismatched);
    KILN_FAIL("load_state_dict", os.str());
  }
  // Everything is validated: only now write (copy_ casts dtype and crosses devices).
  NoGradGuard no_grad;
  for (const auto& [key, t] : own) {
    const Tensor* src = dict.find(key);
    if (!src || !src->defined()) continue;
    Tensor dst = t;  // a detached handle over the module's data
    dst.copy_(src->detach());
  }
}

void Module::pretty_print(std::ostream& os) const { os << type_name() << "(" << extra_repr() << ")"; }

std::string Module::str() const {
  std::ostringstream os;
  if (children_.empty()) {  // a leaf prints its one line
    pretty_print(os);
    return os.str();
  }
  os << type_name() << "(" << extra_repr();
  {
    os << "\n";
    for (const auto& [name, child] : children_) {
      std::string sub = child->str();
      std::string indented;
      for (char c : sub) indented += c == '\n' ? std::string("\n  ") : std::string(1, c);
      os << "  (" << name << "): " << indented << "\n";
    }
  }
  os << ")";
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Module& m) { return os << m.str(); }

}  // namespace kiln::nn
