// Front end of dropout: a Philox keep-mask (same seed -> same mask on every device),
// kept elements scaled by 1/(1-p), as PyTorch does.
#include <cmath>

#include "kiln/op_attrs.h"
#include "kiln/ops_nn_backward.h"
#include "src/autograd/record.h"
#include "src/core/ops/nn_helpers.h"

namespace kiln {

namespace {
void check_dropout(const Tensor& x, double p) {
  detail::check_defined("dropout", {&x});
  detail::check_floating("dropout", x);
  KILN_CHECK(p >= 0.0 && p <= 1.0, "dropout", "probability has to be between 0 and 1, but got ", p);
}
}  // namespace

DropoutResult dropout_with_mask(const Tensor& x, double p, Generator* gen) {
  check_dropout(x, p);
  if (p == 0.0 || x.numel() == 0)
    return {x, full(x.shape(), true, TensorOptions(DType::Bool).device(x.device()))};
  Generator& g = gen ? *gen : default_generator();
  DropoutAttrs attrs{p, g.seed(), 0};
  attrs.offset = g.advance(uint64_t(x.numel()));
  DropoutResult r{detail::new_output(x.shape(), x.dtype(), x.device()),
                  detail::new_output(x.shape(), DType::Bool, x.device())};
  const Tensor in[] = {x.contiguous()};
  Tensor outs[] = {r.output, r.mask};
  dispatch(OpId::Dropout, x.dtype(), in, outs, &attrs);
  autograd::record_dropout(r.output, x, r.mask, p);
  return r;
}

Tensor dropout(const Tensor& x, double p, bool training, Generator* gen) {
  check_dropout(x, p);
  if (!training || p == 0.0) return x;  // PyTorch returns the input itself here
  return dropout_with_mask(x, p, gen).output;
}

Tensor dropout_backward(const Tensor& grad, const Tensor& mask, double p) {
  detail::check_defined("dropout_backward", {&grad, &mask});
  detail::common_device("dropout_backward", {&grad, &mask});
  detail::check_floating("dropout_backward", grad, "grad");
  KILN_CHECK(mask.dtype() == DType::Bool, "dropout_backward", "mask must be bool, got ", dtype_name(mask.dtype()));
  KILN_CHECK(grad.shape() == mask.shape(), "dropout_backward", "grad of shape ", shape_str(grad.shape()),
             " does not match mask of shape ", shape_str(mask.shape()));
  KILN_CHECK(p >= 0.0 && p <= 1.0, "dropout_backward", "probability has to be between 0 and 1, but got ", p);
  if (p == 1.0) return zeros_like(grad);
  return mul(grad, mask.to(grad.dtype())) * (1.0 / (1.0 - p));
}

}  // namespace kiln
