// Linear: an affine map.
#include "kiln/nn/layers.h"
#include "src/nn/layer_utils.h"

namespace kiln::nn {

LinearImpl::LinearImpl(const LinearOptions& o, TensorOptions opts)
    : options(o), in_features(o.in_features()), out_features(o.out_features()) {
  const int64_t in = in_features, out = out_features;
  const bool with_bias = o.bias();
  KILN_CHECK(in >= 0 && out >= 0, "Linear", "sizes must be non-negative, got in_features=", in,
             ", out_features=", out);
  opts = opts.requires_grad(false);
  weight = register_parameter("weight", empty({out, in}, opts));
  bias = register_parameter("bias", with_bias ? empty({out}, opts) : Tensor());
  reset_parameters();
}

void LinearImpl::reset_parameters() { detail::reset_affine(weight, bias); }

Tensor LinearImpl::forward(const Tensor& x) { return linear(x, weight, bias); }

std::string LinearImpl::extra_repr() const {
  return detail::cat_str("in_features=", in_features, ", out_features=", out_features,
                         ", bias=", bias.defined() ? "true" : "false");
}

}  // namespace kiln::nn
