// Dropout: active only in training mode.
#include "kiln/nn/layers.h"
#include "src/nn/layer_utils.h"

namespace kiln::nn {

Dropout::Dropout(double p) : p(p) {
  KILN_CHECK(p >= 0.0 && p <= 1.0, "Dropout", "p must be in [0, 1], got ", p);
}

Tensor Dropout::forward(const Tensor& x) {
  if (!is_training() || p == 0.0) return x;
  return dropout(x, p, true);
}

std::string Dropout::extra_repr() const { return detail::cat_str("p=", p); }

}  // namespace kiln::nn
