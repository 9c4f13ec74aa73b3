#pragma once
// Forward-with-saved-state and backward functions of the neural-network and indexing ops,
// for autograd (src/autograd). Each is a validated front end over one dispatched op
// (include/kiln/ops.def), so it runs on whatever device its inputs live on. Statistics
// (mean, invstd, rstd, logsumexp) and parameter gradients come in the accumulation dtype:
// float64 for float64 inputs, float32 otherwise.
#include <cstdint>
#include <optional>

#include "kiln/generator.h"
#include "kiln/ops.h"

namespace kiln {

struct Grads3 { Tensor grad_input, grad_weight, grad_bias; };

// grad [N, C, *] and x [N, C, *]; weight [C] or undefined (= ones). training: mean/invstd are
// the batch statistics batch_norm_train returned. Eval: mean = running_mean and
// invstd = 1/sqrt(running_var + eps). grad_weight/grad_bias [C] are always computed.
Grads3 batch_norm_backward(const Tensor& grad, const Tensor& x, const Tensor& weight, const Tensor& mean,
                           const Tensor& invstd, bool training);

// layer_norm that also returns the per-row statistics (mean, rstd of shape x.shape()[:-k]).
struct LayerNormResult { Tensor output, mean, rstd; };
LayerNormResult layer_norm_forward(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = Tensor(),
                                   const Tensor& bias = Tensor(), double eps = 1e-5);
// grad_weight/grad_bias have normalized_shape and are always computed.
Grads3 layer_norm_backward(const Tensor& grad, const Tensor& x, const Shape& normalized_shape, const Tensor& mean,
                           const Tensor& rstd, const Tensor& weight = Tensor());

// scaled_dot_product_attention that also returns what its backward needs. q, k, v (and
// the mask) broadcast over their batch dims; logsumexp has shape [batch..., L].
struct AttentionResult {
  Tensor output, logsumexp;
  uint64_t seed = 0, offset = 0;  // the dropout stream (when dropout_p > 0)
  double scale = 0;               // the scale used
};
AttentionResult scaled_dot_product_attention_forward(const Tensor& q, const Tensor& k, const Tensor& v,
                                                     const Tensor& attn_mask = Tensor(), double dropout_p = 0.0,
                                                     bool is_causal = false, std::optional<double> scale = {},
                                                     Generator* gen = nullptr);
// Gradients for q, k, v, reduced back to their own (pre-broadcast) shapes.
struct AttentionGrads { Tensor grad_q, grad_k, grad_v; };
AttentionGrads scaled_dot_product_attention_backward(const Tensor& grad, const Tensor& q, const Tensor& k,
                                                     const Tensor& v, const AttentionResult& forward,
                                                     const Tensor& attn_mask = Tensor(), double dropout_p = 0.0,
                                                     bool is_causal = false);

// Rows of grad (indices.shape() + [D]) summed into a [num_weights, D] gradient.
Tensor embedding_backward(const Tensor& grad, const Tensor& indices, int64_t num_weights);

// dropout that also returns its keep-mask (bool, true = kept). Not training or p == 0:
// output is x, mask all true.
struct DropoutResult { Tensor output, mask; };
DropoutResult dropout_with_mask(const Tensor& x, double p, Generator* gen = nullptr);
// grad * mask / (1 - p)
Tensor dropout_backward(const Tensor& grad, const Tensor& mask, double p);

// Out-of-place accumulations (new tensors; self is unchanged):
// index_add: out = self; out[.., index[k], ..] += source[.., k, ..] along dim.
Tensor index_add(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& source);
// scatter_add: out = self; out[p with index[p] along dim] += src[p] for p over index's shape.
Tensor scatter_add(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& src);

}  // namespace kiln
