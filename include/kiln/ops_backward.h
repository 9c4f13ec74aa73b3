#pragma once
// Backward ops that autograd's formulas call (they dispatch like every op, so the
// backward pass runs on the device the forward ran on). Shapes follow the forward op:
// grad_out has the forward output's shape; the result has the forward input's shape.
#include <utility>

#include "kiln/ops.h"

namespace kiln {

// ---- conv2d (x [N, C, H, W], w [O, C/groups, kh, kw], y [N, O, OH, OW])
// The layout a convolution of a and b runs in and gives its result in (PyTorch's rule):
// ChannelsLast when either 4-d operand suggests it, else Contiguous; float64 on CUDA is
// always Contiguous.
MemoryFormat conv_memory_format(const Tensor& a, const Tensor& b);
// grad_x from grad_y and w; input_shape is x's shape.
Tensor conv2d_backward_input(const Tensor& grad_out, const Tensor& w, const Shape& input_shape, Pair stride = {1, 1},
                             Pair padding = {0, 0}, Pair dilation = {1, 1}, int64_t groups = 1);
struct Conv2dWeightGrads {
  Tensor weight;  // [O, C/groups, kh, kw]
  Tensor bias;    // [O] = grad_out summed over N, OH, OW; undefined unless asked for
};
// grad_w (and grad_bias) from grad_y and x; weight_shape is w's shape.
Conv2dWeightGrads conv2d_backward_weight(const Tensor& grad_out, const Tensor& x, const Shape& weight_shape,
                                         Pair stride = {1, 1}, Pair padding = {0, 0}, Pair dilation = {1, 1},
                                         int64_t groups = 1, bool bias_grad = false);

// ---- conv_transpose2d (x [N, Cin, H, W], w [Cin, Cout/groups, kh, kw], y [N, Cout, OH, OW]).
// conv_transpose2d is the adjoint of conv2d with the same weight, so its gradients are:
//   grad_x = conv2d(grad_y, w, {}, stride, padding, dilation, groups)
//   grad_w = conv2d_backward_weight(x, grad_y, w.shape(), stride, padding, dilation, groups).weight
//   grad_bias = grad_y summed over N, OH, OW
// (the two functions below do exactly that).
Tensor conv_transpose2d_backward_input(const Tensor& grad_out, const Tensor& w, Pair stride = {1, 1},
                                       Pair padding = {0, 0}, int64_t groups = 1, Pair dilation = {1, 1});
Tensor conv_transpose2d_backward_weight(const Tensor& grad_out, const Tensor& x, const Shape& weight_shape,
                                        Pair stride = {1, 1}, Pair padding = {0, 0}, int64_t groups = 1,
                                        Pair dilation = {1, 1});

// ---- pools (x [N, C, H, W] or [C, H, W]); grad_out has the pooled shape
// indices: the int64 flat (h * W + w) positions max_pool2d_with_indices returned.
Tensor max_pool2d_backward(const Tensor& grad_out, const Tensor& indices, const Shape& input_shape);
Tensor avg_pool2d_backward(const Tensor& grad_out, const Shape& input_shape, Pair kernel, Pair stride = {0, 0},
                           Pair padding = {0, 0}, bool ceil_mode = false, bool count_include_pad = true);
Tensor adaptive_avg_pool2d_backward(const Tensor& grad_out, const Shape& input_shape);

}  // namespace kiln
