// Dispatch of the backward helper kernels (see functions.h).
#include "src/autograd/functions.h"

#include "kiln/ops.h"

namespace kiln::autograd {

Tensor activation_backward(OpId op, const Tensor& grad, const Tensor& v) {
  KILN_CHECK(grad.shape() == v.shape(), op_name(op), "gradient of shape ", shape_str(grad.shape()),
             " does not match the saved tensor of shape ", shape_str(v.shape()));
  const DType dt = promote_types(grad.dtype(), v.dtype());
  Tensor out = empty(v.shape(), TensorOptions(dt).device(v.device()));
  const Tensor in[] = {grad.to(dt), v.to(dt)};
  Tensor outs[] = {out};
  dispatch(op, dt, in, outs);
  return out;
}

}  // namespace kiln::autograd
