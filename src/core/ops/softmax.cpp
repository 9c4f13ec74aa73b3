// Front ends of softmax and log_softmax over one dim, and their backward helpers (used by
// autograd): floating inputs only, as in PyTorch.
#include "kiln/op_attrs.h"
#include "src/autograd/record.h"
#include "src/core/ops/op_helpers.h"

namespace kiln {

namespace {
using detail::check_defined;
using detail::new_output;

Tensor softmax_forward(OpId op, const Tensor& a, int64_t dim) {
  const char* name = op_name(op);
  check_defined(name, {&a});
  detail::check_floating(name, a);
  const DimAttrs attrs{a.dim() == 0 ? (normalize_dim(name, dim, 0), 0) : normalize_dim(name, dim, a.dim())};
  Tensor out = new_output(a.shape(), a.dtype(), a.device());
  const Tensor in[] = {a.contiguous()};
  Tensor outs[] = {out};
  dispatch(op, a.dtype(), in, outs, &attrs);
  autograd::record_softmax(op, out, a, attrs.dim);
  return out;
}

Tensor softmax_backward_impl(OpId op, const Tensor& grad, const Tensor& out, int64_t dim) {
  const char* name = op_name(op);
  check_defined(name, {&grad, &out});
  detail::common_device(name, {&grad, &out});
  detail::check_floating(name, grad, "grad");
  KILN_CHECK(grad.shape() == out.shape() && grad.dtype() == out.dtype(), name, "grad ", shape_str(grad.shape()), " ",
             dtype_name(grad.dtype()), " and output ", shape_str(out.shape()), " ", dtype_name(out.dtype()),
             " must have the same shape and dtype");
  const DimAttrs attrs{grad.dim() == 0 ? (normalize_dim(name, dim, 0), 0) : normalize_dim(name, dim, grad.dim())};
  Tensor gi = new_output(grad.shape(), grad.dtype(), grad.device());
  const Tensor in[] = {grad.contiguous(), out.contiguous()};
  Tensor outs[] = {gi};
  dispatch(op, grad.dtype(), in, outs, &attrs);
  return gi;
}
}  // namespace

Tensor softmax(const Tensor& a, int64_t dim) { return softmax_forward(OpId::Softmax, a, dim); }
Tensor log_softmax(const Tensor& a, int64_t dim) { return softmax_forward(OpId::LogSoftmax, a, dim); }

Tensor softmax_backward(const Tensor& grad, const Tensor& out, int64_t dim) {
  return softmax_backward_impl(OpId::SoftmaxBackward, grad, out, dim);
}
Tensor log_softmax_backward(const Tensor& grad, const Tensor& out, int64_t dim) {
  return softmax_backward_impl(OpId::LogSoftmaxBackward, grad, out, dim);
}

Tensor Tensor::softmax(int64_t dim) const { return kiln::softmax(*this, dim); }
Tensor Tensor::log_softmax(int64_t dim) const { return kiln::log_softmax(*this, dim); }

}  // namespace kiln
