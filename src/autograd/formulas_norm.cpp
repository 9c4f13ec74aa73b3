// Backward formulas of batch_norm and layer_norm, through their fused backward ops
// (ops_nn_backward.h). Statistics are saved from the forward; weight and bias gradients
// come in the accumulation dtype and are cast back to the parameters' dtype by the engine.
#include "kiln/ops.h"
#include "kiln/ops_nn_backward.h"
#include "src/autograd/record.h"

namespace kiln::autograd {

namespace {
using V = std::vector<Tensor>;
V pick(const BackwardCtx& c, Grads3 g) {
  return V{c.needs(0) ? g.grad_input : Tensor(), c.needs(1) ? g.grad_weight : Tensor(),
           c.needs(2) ? g.grad_bias : Tensor()};
}
}  // namespace

void record_batch_norm(const Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias,
                       const Tensor& mean, const Tensor& invstd_or_var, bool training, double eps) {
  if (!should_record({&x, &weight, &bias})) return;
  record("BatchNormBackward", {out}, {x, weight, bias}, {x, weight, mean, invstd_or_var},
         [training, eps](BackwardCtx& c) {
           // Eval mode saved running_var: invstd = 1 / sqrt(var + eps).
           const Tensor invstd = training ? c.saved[3] : rsqrt(c.saved[3] + eps);
           return pick(c, batch_norm_backward(c.grad(), c.saved[0], c.saved[1], c.saved[2], invstd, training));
         });
}

void record_layer_norm(const Tensor& out, const Tensor& x, const Shape& normalized_shape, const Tensor& weight,
                       const Tensor& bias, const Tensor& mean, const Tensor& rstd) {
  if (!should_record({&x, &weight, &bias})) return;
  record("LayerNormBackward", {out}, {x, weight, bias}, {x, weight, mean, rstd}, [normalized_shape](BackwardCtx& c) {
    return pick(c, layer_norm_backward(c.grad(), c.saved[0], normalized_shape, c.saved[2], c.saved[3], c.saved[1]));
  });
}

}  // namespace kiln::autograd
