// ONNX's loss operators, NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss, on
// gather/index_select/log_softmax: per-element losses weighted by the target's class
// weight, ignore_index excluded, then none/sum/mean (mean divides by the total weight).
#include "kiln/ops.h"
#include "src/onnx/op_context.h"

namespace kiln::onnx::detail {

namespace {

using Outs = std::vector<Tensor>;

Tensor nll(OpContext& c, const Tensor& log_prob, const Tensor& target_in, const Tensor& weight) {
  c.check(log_prob.dim() >= 2, "input must be [N, C, ...], got ", shape_str(log_prob.shape()));
  c.check(target_in.dim() == log_prob.dim() - 1, "target of shape ", shape_str(target_in.shape()),
          " does not match input of shape ", shape_str(log_prob.shape()));
  const std::string reduction = c.attr_string("reduction", "mean");
  c.check(reduction == "none" || reduction == "sum" || reduction == "mean", "reduction '", reduction, "' is not valid");
  const Tensor target = target_in.to(DType::Int64);
  Tensor valid = ones(target.shape(), TensorOptions(DType::Bool).device(target.device()));
  if (c.has_attr("ignore_index")) valid = ne(target, c.attr_int("ignore_index"));
  const Tensor safe = where(valid, target, zeros({}, TensorOptions(DType::Int64).device(target.device())));
  const Tensor picked = gather(log_prob, 1, safe.unsqueeze(1)).squeeze(1);
  Tensor w = weight.defined() ? index_select(weight, 0, safe.reshape({-1})).reshape(target.shape())
                              : ones(target.shape(), TensorOptions(log_prob.dtype()).device(log_prob.device()));
  w = where(valid, w, zeros({}, TensorOptions(w.dtype()).device(w.device())));
  const Tensor loss = mul(neg(picked), w);
  if (reduction == "none") return loss;
  if (reduction == "sum") return sum(loss);
  return div(sum(loss), sum(w));
}

Outs nll_op(OpContext& c) { return {nll(c, c.input(0), c.input(1), c.input_or(2, Tensor()))}; }

Outs sce_op(OpContext& c) {
  const Tensor& scores = c.input(0);
  c.check(scores.dim() >= 2, "scores must be [N, C, ...], got ", shape_str(scores.shape()));
  const Tensor log_prob = log_softmax(scores, 1);
  return {nll(c, log_prob, c.input(1), c.input_or(2, Tensor())), log_prob};
}

}  // namespace

void register_loss_ops() {
  register_op("NegativeLogLikelihoodLoss", nll_op);
  register_op("SoftmaxCrossEntropyLoss", sce_op);
}

}  // namespace kiln::onnx::detail
