// Dropout: active only in training mode.
#include "kiln/nn/layers.h"
#include "src/nn/layer_utils.h"

namespace kiln::nn {

DropoutImpl::DropoutImpl(const DropoutOptions& o) : options(o), p(o.p()) {
  KILN_CHECK(p >= 0.0 && p <= 1.0, "Dropout", "p must be in [0, 1], got ", p);
}

Tensor DropoutImpl::forward(const Tensor& x) {
  if (!is_training() || p == 0.0) return x;
  if (!options.inplace()) return dropout(x, p, true);
  Tensor y = x;  // in place: x's data takes the dropped-out values
  return y.copy_(dropout(x, p, true));
}

std::string DropoutImpl::extra_repr() const { return detail::cat_str("p=", p); }

}  // namespace kiln::nn
