#include "src/profiler/op_cost.h"

#include "kiln/tensor.h"

namespace kiln::profiler {

namespace {
// 2 x (output elements) x (multiply-adds per output element).
double product_flops(const Tensor& out, int64_t macs_per_output) {
  return 2.0 * double(out.numel()) * double(macs_per_output);
}

// A convolution's multiply-adds per output element: the weight's elements per output channel.
int64_t per_channel(const Tensor& w) { return w.dim() >= 1 && w.size(0) > 0 ? w.numel() / w.size(0) : 0; }
}  // namespace

OpCost op_cost(OpId op, std::span<const Tensor> inputs, std::span<const Tensor> outputs) {
  OpCost c;
  for (const Tensor& t : inputs)
    if (t.defined()) c.bytes += int64_t(t.nbytes());
  for (const Tensor& t : outputs)
    if (t.defined()) c.bytes += int64_t(t.nbytes());
  switch (op) {
    case OpId::Matmul:
      // a is [.., M, K] or (transposed) [.., K, M]; out is [.., M, N].
      if (inputs.size() >= 2 && !outputs.empty() && inputs[0].dim() >= 2 && outputs[0].dim() >= 2) {
        const Tensor& a = inputs[0];
        const int64_t m = outputs[0].size(-2);
        const int64_t k = a.size(-2) == m ? a.size(-1) : a.size(-2);
        c.flops = product_flops(outputs[0], k);
      }
      break;
    case OpId::Conv2d:               // {x, w[, bias]} -> y
    case OpId::Conv2dBackwardInput:  // {grad_y, w} -> grad_x: as many products as the forward
      if (inputs.size() >= 2 && !outputs.empty())
        c.flops = product_flops(op == OpId::Conv2d ? outputs[0] : inputs[0], per_channel(inputs[1]));
      break;
    case OpId::Conv2dBackwardWeight:  // {grad_y, x} -> grad_w
      if (!inputs.empty() && !outputs.empty()) c.flops = product_flops(inputs[0], per_channel(outputs[0]));
      break;
    default:
      break;
  }
  return c;
}

}  // namespace kiln::profiler
