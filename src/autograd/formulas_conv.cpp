// Backward formulas of the convolutions, through their backward ops (ops_backward.h).
// Front ends record on the 4-d (batched) tensors; the unbatched squeeze/unsqueeze around
// them are views with their own formulas. A channels-last forward gets a channels-last
// backward (grad_output is brought into the forward's layout, as PyTorch does), so the
// gradients come out channels-last too.
#include "kiln/ops.h"
#include "kiln/ops_backward.h"
#include "src/autograd/record.h"

namespace kiln::autograd {

namespace {
using V = std::vector<Tensor>;

Tensor in_format(const Tensor& g, MemoryFormat fmt) { return g.dim() == 4 ? g.contiguous(fmt) : g; }
}  // namespace

void record_conv2d(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor& bias, Pair stride, Pair padding,
                   Pair dilation, int64_t groups) {
  if (!should_record({&x, &w, &bias})) return;
  const Shape x_shape = x.shape(), w_shape = w.shape();
  const MemoryFormat fmt = conv_memory_format(x, w);
  record("Conv2dBackward", {y}, {x, w, bias}, {w.requires_grad() ? x : Tensor(), w},
         [=](BackwardCtx& c) {
           const Tensor g = in_format(c.grad(), fmt);
           V grads(3);
           if (c.needs(0)) grads[0] = conv2d_backward_input(g, c.saved[1], x_shape, stride, padding, dilation, groups);
           if (c.needs(1) || c.needs(2)) {
             if (c.needs(1)) {
               Conv2dWeightGrads gw =
                   conv2d_backward_weight(g, c.saved[0], w_shape, stride, padding, dilation, groups, c.needs(2));
               grads[1] = gw.weight;
               grads[2] = gw.bias;
             } else {
               grads[2] = sum(g, {0, 2, 3});
             }
           }
           return grads;
         });
}

void record_conv_transpose2d(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor& bias, Pair stride,
                             Pair padding, Pair dilation, int64_t groups) {
  if (!should_record({&x, &w, &bias})) return;
  const Shape w_shape = w.shape();
  const MemoryFormat fmt = conv_memory_format(x, w);
  record("ConvTranspose2dBackward", {y}, {x, w, bias}, {w.requires_grad() ? x : Tensor(), w}, [=](BackwardCtx& c) {
    const Tensor g = in_format(c.grad(), fmt);
    V grads(3);
    if (c.needs(0)) grads[0] = conv_transpose2d_backward_input(g, c.saved[1], stride, padding, groups, dilation);
    if (c.needs(1))
      grads[1] = conv_transpose2d_backward_weight(g, c.saved[0], w_shape, stride, padding, groups, dilation);
    if (c.needs(2)) grads[2] = sum(g, {0, 2, 3});
    return grads;
  });
}

}  // namespace kiln::autograd
