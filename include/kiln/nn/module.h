#pragma once
// nn::Module: the base of every layer (libtorch's shape). A module owns named
// parameters (tensors that require grad), buffers (state that is saved but not
// trained, e.g. BatchNorm's running statistics) and child modules; names nest with
// dots ("0.weight", "encoder.layers.1.bias").
//
// Modules are held by std::shared_ptr (children, Sequential entries). A parameter is a
// Tensor handle shared between the module's member (e.g. Linear::weight), the registry
// here and any optimizer; to(device/dtype) and load_state_dict() change the data behind
// that handle in place, so every holder keeps seeing the same parameter.
#include <cstdint>
#include <functional>
#include <ostream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kiln/nn/module_holder.h"
#include "kiln/nn/state_dict.h"
#include "kiln/ordered_dict.h"
#include "kiln/tensor.h"

namespace kiln::nn {

class Module : public std::enable_shared_from_this<Module> {
 public:
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = default;
  Module& operator=(const Module&) = default;
  Module(Module&&) = default;
  Module& operator=(Module&&) = default;

  // The layer's type name, used in printing and errors ("Linear"). By default the
  // class's name without namespaces and without an "Impl" suffix ("NetImpl" -> "Net").
  virtual std::string type_name() const;
  std::string name() const { return type_name(); }  // libtorch's name
  // One-input forward for callers that hold a Module& (the ONNX exporter); layers
  // override it, the base raises kiln::Error. User modules may declare any forward
  // (libtorch's `Tensor forward(Tensor x)`): containers call it through the concrete
  // type (nn::Sequential), never through this one.
  virtual Tensor forward(const Tensor& x);
  Tensor operator()(const Tensor& x) { return forward(x); }

  // ---- parameters, buffers, children (recursive names are dotted)
  OrderedDict<std::string, Tensor> named_parameters(bool recurse = true) const;
  std::vector<Tensor> parameters(bool recurse = true) const;
  OrderedDict<std::string, Tensor> named_buffers(bool recurse = true) const;
  std::vector<Tensor> buffers(bool recurse = true) const;
  OrderedDict<std::string, std::shared_ptr<Module>> named_children() const;
  std::vector<std::shared_ptr<Module>> children() const;
  // This module (named prefix, when include_self) and every descendant, depth first,
  // with dotted names. A module not owned by a shared_ptr (one on the stack) lists
  // itself through a non-owning pointer.
  OrderedDict<std::string, std::shared_ptr<Module>> named_modules(const std::string& prefix = "",
                                                                   bool include_self = true);
  std::vector<std::shared_ptr<Module>> modules(bool include_self = true);
  int64_t num_parameters(bool trainable_only = false) const;

  // Calls fn on this module and every descendant, parents first (libtorch's apply).
  void apply(const std::function<void(Module&)>& fn);
  void apply(const std::function<void(const std::string&, Module&)>& fn, const std::string& prefix = "");
  void apply(const std::function<void(const std::shared_ptr<Module>&)>& fn);

  // This module as a T (a layer class or a holder such as nn::Linear), or nullptr.
  template <class T>
  auto* as() noexcept {
    if constexpr (IsModuleHolder<T>) return dynamic_cast<typename T::ContainedType*>(this);
    else return dynamic_cast<T*>(this);
  }
  template <class T>
  bool is() noexcept { return as<T>() != nullptr; }

  // ---- mode
  virtual void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // ---- placement: moves parameters, their grads and buffers in place. to(DType)
  // converts floating tensors only (integer buffers such as num_batches_tracked stay).
  Module& to(Device device);
  Module& to(DType dtype);
  Module& to(Device device, DType dtype);
  // Restrides every 4-d parameter, grad and buffer (conv weights) to fmt, as PyTorch's
  // module.to(memory_format=...): a channels-last model runs its convs in NHWC.
  Module& to(MemoryFormat fmt);

  // Sets every parameter's grad to none (default) or to zeros.
  void zero_grad(bool set_to_none = true);

  // ---- checkpoints: parameters and persistent buffers, detached handles sharing data.
  StateDict state_dict() const;
  // Copies values into the existing tensors (casting dtype, crossing devices). Raises
  // kiln::Error naming every missing key, unexpected key (both only when strict) and
  // shape mismatch (always), and then leaves the module unchanged.
  void load_state_dict(const StateDict& dict, bool strict = true);

  // A one-line-per-module description, like PyTorch's repr.
  std::string str() const;
  virtual std::string extra_repr() const { return ""; }
  // The first line of this module's description: "Linear(in_features=3, ...)".
  virtual void pretty_print(std::ostream& os) const;

  // ---- registration (public, as in libtorch)
  // Registers t as parameter `name` (an undefined t registers an absent parameter, e.g.
  // bias=false) and returns the handle to keep as a member. t is made to require grad.
  Tensor register_parameter(const std::string& name, Tensor t, bool requires_grad = true);
  Tensor register_buffer(const std::string& name, Tensor t, bool persistent = true);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    add_child(name, m);
    return m;
  }
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, ModuleHolder<M> holder) {
    return register_module(name, holder.ptr());
  }

 protected:
  void add_child(const std::string& name, std::shared_ptr<Module> m);
  // Replaces a registered child (Sequential/ModuleList indexing helpers use it).
  void set_child(size_t index, std::shared_ptr<Module> m);

 private:
  struct Buffer {
    std::string name;
    Tensor value;
    bool persistent = true;
  };
  void collect_state(const std::string& prefix, StateDict& out) const;
  void apply_to_tensors(const std::function<Tensor(const Tensor&)>& fn);

  std::vector<std::pair<std::string, Tensor>> params_;
  std::vector<Buffer> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;

 protected:
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& child_list() const { return children_; }
};

std::ostream& operator<<(std::ostream& os, const Module& m);

// Replaces the data behind t's handle (storage, shape, strides, dtype) with src's,
// keeping t's autograd state: every copy of the handle sees the new data.
void replace_data(const Tensor& t, const Tensor& src);

}  // namespace kiln::nn
