// MultiheadAttention: packed q/k/v input projection, scaled_dot_product_attention per
// head, output projection.
#include "kiln/nn/layers.h"
#include "src/nn/layer_utils.h"

namespace kiln::nn {

MultiheadAttentionImpl::MultiheadAttentionImpl(int64_t e, int64_t h, double drop, bool with_bias, bool bf, TensorOptions opts)
    : embed_dim(e), num_heads(h), head_dim(h > 0 ? e / h : 0), dropout(drop), batch_first(bf) {
  detail::check_positive("MultiheadAttention", "embed_dim", e);
  detail::check_positive("MultiheadAttention", "num_heads", h);
  KILN_CHECK(e % h == 0, "MultiheadAttention", "embed_dim (", e, ") must be divisible by num_heads (", h, ")");
  KILN_CHECK(drop >= 0 && drop <= 1, "MultiheadAttention", "dropout must be in [0, 1], got ", drop);
  opts = opts.requires_grad(false);
  in_proj_weight = register_parameter("in_proj_weight", empty({3 * e, e}, opts));
  in_proj_bias = register_parameter("in_proj_bias", with_bias ? empty({3 * e}, opts) : Tensor());
  out_proj = register_module("out_proj", Linear(e, e, with_bias, opts));
  reset_parameters();
}

void MultiheadAttentionImpl::reset_parameters() {
  init::xavier_uniform_(in_proj_weight);
  if (in_proj_bias.defined()) init::zeros_(in_proj_bias);
  if (out_proj->bias.defined()) init::zeros_(out_proj->bias);
}

Tensor MultiheadAttentionImpl::forward(const Tensor& query, const Tensor& key, const Tensor& value,
                                   const Tensor& attn_mask, bool is_causal) {
  const char* op = "MultiheadAttention";
  KILN_CHECK(query.defined() && key.defined() && value.defined(), op, "query, key and value must be defined");
  const bool batched = query.dim() == 3;
  KILN_CHECK((query.dim() == 3 || query.dim() == 2) && key.dim() == query.dim() && value.dim() == query.dim(), op,
             "expected 3-d (batched) or 2-d inputs, got query ", shape_str(query.shape()), ", key ",
             shape_str(key.shape()), ", value ", shape_str(value.shape()));
  // Work in [N, L, E].
  auto to_nle = [&](const Tensor& t) {
    if (!batched) return t.unsqueeze(0);
    return batch_first ? t : t.transpose(0, 1);
  };
  const Tensor q_in = to_nle(query), k_in = to_nle(key), v_in = to_nle(value);
  KILN_CHECK(q_in.size(2) == embed_dim && k_in.size(2) == embed_dim && v_in.size(2) == embed_dim, op,
             "expected embedding dim ", embed_dim, ", got query ", shape_str(query.shape()), ", key ",
             shape_str(key.shape()), ", value ", shape_str(value.shape()));
  KILN_CHECK(k_in.size(0) == q_in.size(0) && v_in.size(0) == q_in.size(0) && k_in.size(1) == v_in.size(1), op,
             "batch or source lengths differ: query ", shape_str(query.shape()), ", key ", shape_str(key.shape()),
             ", value ", shape_str(value.shape()));
  const int64_t n = q_in.size(0), l = q_in.size(1), s = k_in.size(1), e = embed_dim;

  auto project = [&](const Tensor& x, int64_t i, int64_t len) {
    const Tensor w = in_proj_weight.narrow(0, i * e, e);
    const Tensor b = in_proj_bias.defined() ? in_proj_bias.narrow(0, i * e, e) : Tensor();
    return linear(x, w, b).view({n, len, num_heads, head_dim}).transpose(1, 2);  // [N, H, len, D]
  };
  const Tensor q = project(q_in, 0, l), k = project(k_in, 1, s), v = project(v_in, 2, s);
  const Tensor attn = scaled_dot_product_attention(q, k, v, attn_mask, is_training() ? dropout : 0.0, is_causal);
  Tensor out = out_proj->forward(attn.transpose(1, 2).reshape({n, l, e}));
  if (!batched) return out.squeeze(0);
  return batch_first ? out : out.transpose(0, 1);
}

std::string MultiheadAttentionImpl::extra_repr() const {
  return detail::cat_str("embed_dim=", embed_dim, ", num_heads=", num_heads, ", batch_first=", batch_first);
}

}  // namespace kiln::nn
