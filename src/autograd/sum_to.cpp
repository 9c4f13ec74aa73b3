// sum_to: the one place gradients of broadcast inputs are reduced back to their shape.
#include "kiln/autograd.h"
#include "kiln/ops.h"

namespace kiln::autograd {

Tensor sum_to(const Tensor& grad, const Shape& shape) {
  if (grad.shape() == shape) return grad;
  const int64_t lead = grad.dim() - int64_t(shape.size());
  KILN_CHECK(lead >= 0, "sum_to", "can't sum a gradient of shape ", shape_str(grad.shape()), " to shape ",
             shape_str(shape));
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < grad.dim(); ++d)
    if (d < lead || (shape[size_t(d - lead)] == 1 && grad.size(d) != 1)) dims.push_back(d);
  if (dims.empty()) return grad.reshape(shape);
  return sum(grad, dims, /*keepdim=*/true).reshape(shape);
}

}  // namespace kiln::autograd
