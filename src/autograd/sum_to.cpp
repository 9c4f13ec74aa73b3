// sum_to: the one place gradients of broadcast inputs are reduced back to their shape.
#include "kiln/autograd.h"
#include "kiln/ops.h"

namespace kiln::autograd {

namespace {
// Sum over dim d keeping it as size 1, by pairwise adds of halves (log2(n) dispatched adds).
Tensor sum_dim_keep(Tensor g, int64_t d) {
  Tensor extra;
  int64_t n = g.size(d);
  if (n == 0) {
    Shape s = g.shape();
    s[size_t(d)] = 1;
    return zeros(s, TensorOptions(g.dtype()).device(g.device()));
  }
  while (n > 1) {
    if (n % 2 == 1) {
      Tensor last = g.narrow(d, n - 1, 1);
      extra = extra.defined() ? extra + last : last;
      --n;
    }
    g = g.narrow(d, 0, n / 2) + g.narrow(d, n / 2, n / 2);
    n /= 2;
  }
  return extra.defined() ? g + extra : g;
}
}  // namespace

Tensor sum_to(const Tensor& grad, const Shape& shape) {
  if (grad.shape() == shape) return grad;
  const int64_t lead = grad.dim() - int64_t(shape.size());
  KILN_CHECK(lead >= 0, "sum_to", "can't sum a gradient of shape ", shape_str(grad.shape()), " to shape ",
             shape_str(shape));
  Tensor g = grad;
  for (int64_t d = 0; d < grad.dim(); ++d) {
    const bool reduce = d < lead || (shape[size_t(d - lead)] == 1 && grad.size(d) != 1);
    if (reduce) g = sum_dim_keep(g, d);
  }
  return g.reshape(shape);
}

}  // namespace kiln::autograd
