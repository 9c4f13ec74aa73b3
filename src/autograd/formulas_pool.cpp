// Backward formulas of the pools, through their backward ops (ops_backward.h), recorded
// on the 4-d (batched) tensors.
#include "kiln/ops.h"
#include "kiln/ops_backward.h"
#include "src/autograd/record.h"

namespace kiln::autograd {

namespace {
using V = std::vector<Tensor>;
}  // namespace

void record_max_pool2d(const Tensor& y, const Tensor& indices, const Tensor& x) {
  if (!should_record({&x})) return;
  const Shape x_shape = x.shape();
  record("MaxPool2dBackward", {y}, {x}, {indices},
         [x_shape](BackwardCtx& c) { return V{max_pool2d_backward(c.grad(), c.saved[0], x_shape)}; });
}

void record_avg_pool2d(const Tensor& y, const Tensor& x, Pair kernel, Pair stride, Pair padding, bool ceil_mode,
                       bool count_include_pad) {
  if (!should_record({&x})) return;
  const Shape x_shape = x.shape();
  record("AvgPool2dBackward", {y}, {x}, {}, [=](BackwardCtx& c) {
    return V{avg_pool2d_backward(c.grad(), x_shape, kernel, stride, padding, ceil_mode, count_include_pad)};
  });
}

void record_adaptive_avg_pool2d(const Tensor& y, const Tensor& x) {
  if (!should_record({&x})) return;
  const Shape x_shape = x.shape();
  record("AdaptiveAvgPool2dBackward", {y}, {x}, {},
         [x_shape](BackwardCtx& c) { return V{adaptive_avg_pool2d_backward(c.grad(), x_shape)}; });
}

}  // namespace kiln::autograd
