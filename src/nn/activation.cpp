// Activation layers: thin wrappers over the elementwise ops.
#include "kiln/nn/layers.h"
#include "src/nn/layer_utils.h"

namespace kiln::nn {

Tensor ReLUImpl::forward(const Tensor& x) {
  if (!options.inplace()) return relu(x);
  Tensor y = x;
  return relu_(y);
}
Tensor SiLUImpl::forward(const Tensor& x) { return silu(x); }

GELUImpl::GELUImpl(const GELUOptions& o) : options(o), approximate(o.approximate()) {
  KILN_CHECK(approximate == "none" || approximate == "tanh", "GELU", "approximate must be 'none' or 'tanh', got '",
             approximate, "'");
}
Tensor GELUImpl::forward(const Tensor& x) { return gelu(x, approximate); }
std::string GELUImpl::extra_repr() const { return "approximate='" + approximate + "'"; }

}  // namespace kiln::nn
