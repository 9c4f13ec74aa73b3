// Per-tensor autograd state and the Tensor methods that read or change it; grad mode;
// saved tensors with their version check.
#include <atomic>

#include "kiln/autograd.h"

namespace kiln {

namespace {
thread_local bool grad_enabled = true;
std::atomic<uint64_t> next_sequence_nr{0};

AutogradMeta& ensure_meta(const Tensor& t) {
  auto& m = t.impl().autograd;
  if (!m) m = std::make_shared<AutogradMeta>();
  return *m;
}
}  // namespace

namespace autograd {
bool is_grad_enabled() { return grad_enabled; }
void set_grad_enabled(bool enabled) { grad_enabled = enabled; }
}  // namespace autograd

TensorGeometry::TensorGeometry(const Tensor& t) {
  if (!t.defined()) return;
  shape = t.shape();
  dtype = t.dtype();
  device = t.device();
  defined = true;
}

Node::Node() : sequence_nr(next_sequence_nr.fetch_add(1, std::memory_order_relaxed)) {}

SavedVariable::SavedVariable(const Tensor& t) {
  if (!t.defined()) return;
  data_ = t.detach();
  saved_version_ = t.version();
  was_defined_ = true;
}

Tensor SavedVariable::unpack(const std::string& node_name) const {
  if (!was_defined_) return Tensor();
  KILN_CHECK(!released_, "backward", "trying to backward through the graph a second time: the tensors saved for ",
             node_name, " were already freed; pass retain_graph=true to the first backward() to keep them");
  KILN_CHECK(data_.version() == saved_version_, "backward", "a tensor saved for ", node_name,
             " was modified in place (version ", data_.version(), ", saved ", saved_version_, ")");
  return data_;
}

bool Tensor::requires_grad() const {
  const AutogradMeta* m = impl().autograd.get();
  return m && (m->requires_grad || m->grad_fn);
}

Tensor& Tensor::requires_grad_(bool required) {
  if (!is_leaf()) {
    KILN_CHECK(required, "requires_grad_",
               "you can only change requires_grad of leaf tensors; use detach() to get a tensor without history "
               "(tensor ", shape_str(shape()), " has grad_fn ", autograd_meta()->grad_fn->name(), ")");
    return *this;
  }
  KILN_CHECK(!required || is_floating(dtype()), "requires_grad_", "only floating tensors can require grad, got ",
             dtype_name(dtype()), " of shape ", shape_str(shape()));
  if (!required && !impl().autograd) return *this;
  ensure_meta(*this).requires_grad = required;
  return *this;
}

Tensor Tensor::grad() const { return impl().autograd ? impl().autograd->grad : Tensor(); }

void Tensor::set_grad(const Tensor& g) {
  if (g.defined()) {
    KILN_CHECK(g.shape() == shape() && g.dtype() == dtype() && g.device() == device(), "set_grad",
               "gradient ", g.str(), " does not match the tensor ", str());
  }
  if (!g.defined() && !impl().autograd) return;
  ensure_meta(*this).grad = g;
}

bool Tensor::is_leaf() const {
  const AutogradMeta* m = impl().autograd.get();
  return !m || !m->grad_fn;
}

void Tensor::retain_grad() const {
  KILN_CHECK(requires_grad(), "retain_grad", "can't retain_grad on a tensor that doesn't require grad (",
             str(), ")");
  if (is_leaf()) return;  // leaves keep their gradient anyway
  AutogradMeta& m = *impl().autograd;
  if (m.retains_grad) return;
  m.retains_grad = true;
  m.grad_fn->retained.emplace_back(m.output_nr, std::weak_ptr<TensorImpl>(impl_ptr()));
}

Tensor Tensor::detach() const {
  auto impl2 = std::make_shared<TensorImpl>();
  impl2->storage = impl().storage;
  impl2->shape = impl().shape;
  impl2->strides = impl().strides;
  impl2->offset = impl().offset;
  impl2->dtype = impl().dtype;
  return Tensor(std::move(impl2));
}

void Tensor::backward(const Tensor& gradient, bool retain_graph) const {
  autograd::backward({*this}, {gradient}, retain_graph);
}

}  // namespace kiln
