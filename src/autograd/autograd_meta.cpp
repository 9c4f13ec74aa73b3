// Placeholder autograd state until the engine lands (issue 4): requires_grad flags and
// .grad storage work; backward() raises.
#include "kiln/tensor.h"

namespace kiln {

struct AutogradMeta {
  bool requires_grad = false;
  Tensor grad;
};

bool Tensor::requires_grad() const { return impl().autograd && impl().autograd->requires_grad; }

Tensor& Tensor::requires_grad_(bool required) {
  KILN_CHECK(!required || is_floating(dtype()), "requires_grad_", "only floating tensors can require grad, got ",
             dtype_name(dtype()));
  if (!impl().autograd) impl().autograd = std::make_shared<AutogradMeta>();
  impl().autograd->requires_grad = required;
  return *this;
}

Tensor Tensor::grad() const { return impl().autograd ? impl().autograd->grad : Tensor(); }

void Tensor::set_grad(const Tensor& g) {
  if (!impl().autograd) impl().autograd = std::make_shared<AutogradMeta>();
  impl().autograd->grad = g;
}

void Tensor::backward(const Tensor&, bool) const { KILN_FAIL("backward", "the autograd engine is not built yet"); }
void Tensor::retain_grad() const {}
bool Tensor::is_leaf() const { return true; }

Tensor Tensor::detach() const {
  auto impl2 = std::make_shared<TensorImpl>(impl());
  impl2->autograd.reset();
  return Tensor(std::move(impl2));
}

}  // namespace kiln
