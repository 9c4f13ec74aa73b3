// Backward formulas of the fused neural-network ops: scaled_dot_product_attention and
// dropout, through their backward ops (ops_nn_backward.h).
#include "kiln/ops.h"
#include "kiln/ops_nn_backward.h"
#include "src/autograd/record.h"

namespace kiln::autograd {

void record_attention(const AttentionResult& r, const Tensor& q, const Tensor& k, const Tensor& v,
                      const Tensor& attn_mask, double dropout_p, bool is_causal) {
  if (!should_record({&q, &k, &v})) return;
  // The mask is not differentiated (PyTorch does for float masks; nothing here needs it).
  const uint64_t seed = r.seed, offset = r.offset;
  const double scale = r.scale;
  // The output is saved too: fused backward kernels need rowsum(grad_o * o).
  record("ScaledDotProductAttentionBackward", {r.output}, {q, k, v}, {q, k, v, attn_mask, r.logsumexp, r.output},
         [=](BackwardCtx& c) {
           AttentionResult fwd;
           fwd.logsumexp = c.saved[4];
           fwd.output = c.saved[5];
           fwd.seed = seed;
           fwd.offset = offset;
           fwd.scale = scale;
           AttentionGrads g = scaled_dot_product_attention_backward(c.grad(), c.saved[0], c.saved[1], c.saved[2], fwd,
                                                                    c.saved[3], dropout_p, is_causal);
           return std::vector<Tensor>{g.grad_q, g.grad_k, g.grad_v};
         });
}

void record_dropout(const Tensor& out, const Tensor& x, const Tensor& mask, double p) {
  if (!should_record({&x})) return;
  record("DropoutBackward", {out}, {x}, {mask},
         [p](BackwardCtx& c) { return std::vector<Tensor>{dropout_backward(c.grad(), c.saved[0], p)}; });
}

}  // namespace kiln::autograd
