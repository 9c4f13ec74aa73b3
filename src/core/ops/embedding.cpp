// Front ends of embedding (a row lookup) and its backward (rows summed into the table).
#include "kiln/op_attrs.h"
#include "kiln/ops_nn_backward.h"
#include "src/autograd/record.h"
#include "src/core/ops/nn_helpers.h"

namespace kiln {

Tensor embedding(const Tensor& weight, const Tensor& indices) {
  detail::check_defined("embedding", {&weight, &indices});
  detail::common_device("embedding", {&weight, &indices});
  detail::check_index_dtype("embedding", indices, "indices");
  detail::check_dim("embedding", weight, 2, "weight");
  Shape shape = indices.shape();
  shape.push_back(weight.size(1));
  Tensor out = detail::new_output(shape, weight.dtype(), weight.device());
  if (indices.numel() == 0) return out;
  const Tensor in[] = {weight.contiguous(), indices.reshape({-1}).contiguous()};
  Tensor outs[] = {out.view({indices.numel(), weight.size(1)})};
  dispatch(OpId::Embedding, weight.dtype(), in, outs);
  autograd::record_embedding(out, weight, indices);
  return out;
}

Tensor embedding_backward(const Tensor& grad, const Tensor& indices, int64_t num_weights) {
  detail::check_defined("embedding_backward", {&grad, &indices});
  detail::common_device("embedding_backward", {&grad, &indices});
  detail::check_index_dtype("embedding_backward", indices, "indices");
  detail::check_floating("embedding_backward", grad, "grad");
  KILN_CHECK(num_weights >= 0, "embedding_backward", "num_weights must be non-negative, got ", num_weights);
  Shape expect = indices.shape();
  KILN_CHECK(grad.dim() == indices.dim() + 1 &&
                 Shape(grad.shape().begin(), grad.shape().end() - 1) == expect,
             "embedding_backward", "grad of shape ", shape_str(grad.shape()), " does not match indices of shape ",
             shape_str(indices.shape()), " plus an embedding dim");
  const int64_t d = grad.size(-1);
  Tensor out = detail::new_output({num_weights, d}, grad.dtype(), grad.device());
  const int64_t n = indices.numel();
  const Tensor in[] = {grad.reshape({n, d}).contiguous(), indices.reshape({-1}).contiguous()};
  Tensor outs[] = {out};
  dispatch(OpId::EmbeddingBackward, grad.dtype(), in, outs);
  return out;
}

}  // namespace kiln
