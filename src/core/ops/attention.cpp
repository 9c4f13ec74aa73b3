// Front end of scaled_dot_product_attention (PyTorch semantics) and its backward: batch
// dims of q, k, v and the mask broadcast, and are flattened into one [B, L, E] batch for
// the kernels. Gradients are summed back over broadcast dims.
#include <cmath>

#include "kiln/op_attrs.h"
#include "kiln/ops_nn_backward.h"
#include "src/autograd/record.h"
#include "src/core/ops/nn_helpers.h"

namespace kiln {

namespace {

struct AttnPlan {
  Shape batch;                    // broadcast batch dims
  int64_t b = 1, l = 0, s = 0, e = 0, ev = 0;
  Tensor q, k, v, mask;           // [B, L, E], [B, S, E], [B, S, Ev], [B, L, S] (mask may be undefined)
  AttentionAttrs attrs;
};

Shape batch_of(const Tensor& t) { return Shape(t.shape().begin(), t.shape().end() - 2); }
Shape with(Shape batch, int64_t a, int64_t b) {
  batch.push_back(a);
  batch.push_back(b);
  return batch;
}

bool broadcasts_to(const Shape& s, const Shape& target) {
  if (s.size() > target.size()) return false;
  const size_t lead = target.size() - s.size();
  for (size_t d = 0; d < s.size(); ++d)
    if (s[d] != 1 && s[d] != target[lead + d]) return false;
  return true;
}

AttnPlan plan_attention(const char* op, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
                        double dropout_p, bool is_causal, std::optional<double> scale) {
  detail::check_defined(op, {&q, &k, &v});
  detail::common_device(op, {&q, &k, &v, &mask});
  detail::check_floating(op, q, "query");
  KILN_CHECK(k.dtype() == q.dtype() && v.dtype() == q.dtype(), op, "expected query, key and value of one dtype, got ",
             dtype_name(q.dtype()), ", ", dtype_name(k.dtype()), " and ", dtype_name(v.dtype()));
  KILN_CHECK(q.dim() >= 2 && k.dim() >= 2 && v.dim() >= 2, op,
             "expected query [..., L, E], key [..., S, E] and value [..., S, Ev], got ", shape_str(q.shape()), ", ",
             shape_str(k.shape()), " and ", shape_str(v.shape()));
  KILN_CHECK(q.size(-1) == k.size(-1), op, "query ", shape_str(q.shape()), " and key ", shape_str(k.shape()),
             " differ in embedding size");
  KILN_CHECK(k.size(-2) == v.size(-2), op, "key ", shape_str(k.shape()), " and value ", shape_str(v.shape()),
             " differ in sequence length");
  KILN_CHECK(dropout_p >= 0.0 && dropout_p <= 1.0, op, "dropout_p must be in [0, 1], got ", dropout_p);
  KILN_CHECK(!(is_causal && mask.defined()), op, "an explicit attn_mask should not be set when is_causal is true");
  KILN_CHECK(!scale || std::isfinite(*scale), op, "scale must be finite");
  AttnPlan p;
  p.batch = broadcast_shapes(op, broadcast_shapes(op, batch_of(q), batch_of(k)), batch_of(v));
  p.l = q.size(-2);
  p.s = k.size(-2);
  p.e = q.size(-1);
  p.ev = v.size(-1);
  p.b = numel_of(p.batch);
  if (mask.defined()) {
    KILN_CHECK(mask.dtype() == DType::Bool || is_floating(mask.dtype()), op,
               "attn_mask must be bool or floating, got ", dtype_name(mask.dtype()));
    const Shape full_shape = with(p.batch, p.l, p.s);
    KILN_CHECK(broadcasts_to(mask.shape(), full_shape), op, "attn_mask of shape ", shape_str(mask.shape()), " does not broadcast to ", shape_str(full_shape));
  }
  p.attrs.is_causal = is_causal;
  p.attrs.has_mask = mask.defined();
  p.attrs.scale = scale ? *scale : 1.0 / std::sqrt(double(std::max<int64_t>(p.e, 1)));
  p.attrs.dropout_p = dropout_p;
  p.q = q.expand(with(p.batch, p.l, p.e)).reshape({p.b, p.l, p.e}).contiguous();
  p.k = k.expand(with(p.batch, p.s, p.e)).reshape({p.b, p.s, p.e}).contiguous();
  p.v = v.expand(with(p.batch, p.s, p.ev)).reshape({p.b, p.s, p.ev}).contiguous();
  if (mask.defined()) {
    // Broadcast dims keep stride 0 where the reshape can stay a view; the kernel reads strides.
    const Tensor m = mask.dtype() == DType::Bool ? mask : mask.to(q.dtype());
    p.mask = m.expand(with(p.batch, p.l, p.s)).reshape({p.b, p.l, p.s});
  }
  return p;
}

// g summed over the dims along which shape was broadcast to g's shape.
Tensor sum_to(const Tensor& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  const int64_t lead = g.dim() - int64_t(shape.size());
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < lead; ++d) dims.push_back(d);
  for (int64_t d = 0; d < int64_t(shape.size()); ++d)
    if (shape[size_t(d)] == 1 && g.size(lead + d) != 1) dims.push_back(lead + d);
  return sum(g, dims, true).reshape(shape);
}

}  // namespace

AttentionResult scaled_dot_product_attention_forward(const Tensor& q, const Tensor& k, const Tensor& v,
                                                     const Tensor& attn_mask, double dropout_p, bool is_causal,
                                                     std::optional<double> scale, Generator* gen) {
  const char* op = "scaled_dot_product_attention";
  AttnPlan p = plan_attention(op, q, k, v, attn_mask, dropout_p, is_causal, scale);
  const Device dev = q.device();
  AttentionResult r;
  r.scale = p.attrs.scale;
  r.output = detail::new_output(with(p.batch, p.l, p.ev), q.dtype(), dev);
  Shape lse_shape = p.batch;
  lse_shape.push_back(p.l);
  r.logsumexp = detail::new_output(lse_shape, detail::acc_dtype(q.dtype()), dev);
  if (dropout_p > 0 && p.b * p.l * p.s > 0) {
    Generator& g = gen ? *gen : default_generator();
    r.seed = p.attrs.seed = g.seed();
    r.offset = p.attrs.offset = g.advance(uint64_t(p.b * p.l * p.s));
  }
  if (r.output.numel() == 0 && r.logsumexp.numel() == 0) return r;
  std::vector<Tensor> in{p.q, p.k, p.v};
  if (p.mask.defined()) in.push_back(p.mask);
  Tensor outs[] = {r.output.view({p.b, p.l, p.ev}), r.logsumexp.view({p.b, p.l})};
  dispatch(OpId::Attention, q.dtype(), in, outs, &p.attrs);
  autograd::record_attention(r, q, k, v, attn_mask, dropout_p, is_causal);
  return r;
}

Tensor scaled_dot_product_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& attn_mask,
                                    double dropout_p, bool is_causal, std::optional<double> scale) {
  return scaled_dot_product_attention_forward(q, k, v, attn_mask, dropout_p, is_causal, scale).output;
}

AttentionGrads scaled_dot_product_attention_backward(const Tensor& grad, const Tensor& q, const Tensor& k,
                                                     const Tensor& v, const AttentionResult& fwd,
                                                     const Tensor& attn_mask, double dropout_p, bool is_causal) {
  const char* op = "scaled_dot_product_attention_backward";
  AttnPlan p = plan_attention(op, q, k, v, attn_mask, dropout_p, is_causal, fwd.scale);
  detail::check_defined(op, {&grad, &fwd.logsumexp, &fwd.output});
  detail::common_device(op, {&q, &grad, &fwd.logsumexp, &fwd.output});
  KILN_CHECK(grad.shape() == with(p.batch, p.l, p.ev), op, "grad of shape ", shape_str(grad.shape()),
             " does not match the output shape ", shape_str(with(p.batch, p.l, p.ev)));
  KILN_CHECK(fwd.logsumexp.numel() == p.b * p.l && is_floating(fwd.logsumexp.dtype()), op, "logsumexp of shape ",
             shape_str(fwd.logsumexp.shape()), " does not match ", p.b * p.l, " query rows");
  p.attrs.seed = fwd.seed;
  p.attrs.offset = fwd.offset;
  const Device dev = q.device();
  Tensor gq = detail::new_output({p.b, p.l, p.e}, q.dtype(), dev);
  Tensor gk = detail::new_output({p.b, p.s, p.e}, q.dtype(), dev);
  Tensor gv = detail::new_output({p.b, p.s, p.ev}, q.dtype(), dev);
  if (p.b > 0 && (p.l > 0 || p.s > 0)) {
    std::vector<Tensor> in{grad.to(q.dtype()).reshape({p.b, p.l, p.ev}).contiguous(), p.q, p.k, p.v,
                           fwd.logsumexp.to(detail::acc_dtype(q.dtype())).reshape({p.b, p.l}).contiguous(),
                           fwd.output.to(q.dtype()).reshape({p.b, p.l, p.ev}).contiguous()};
    if (p.mask.defined()) in.push_back(p.mask);
    Tensor outs[] = {gq, gk, gv};
    dispatch(OpId::AttentionBackward, q.dtype(), in, outs, &p.attrs);
  }
  return {sum_to(gq.view(with(p.batch, p.l, p.e)), q.shape()), sum_to(gk.view(with(p.batch, p.s, p.e)), k.shape()),
          sum_to(gv.view(with(p.batch, p.s, p.ev)), v.shape())};
}

}  // namespace kiln
