// Front ends of conv2d, conv_transpose2d and the conv backward ops: validation naming
// the op and shapes, PyTorch's output-size formulas, and the memory format: kernels get
// every 4-d tensor either NCHW-contiguous or, when an operand is channels-last (PyTorch's
// rule, conv_memory_format), NHWC-contiguous, with the output allocated the same way.
#include <sstream>
#include <string>

#include "kiln/op_attrs.h"
#include "kiln/ops_backward.h"
#include "src/autograd/record.h"
#include "src/core/ops/op_helpers.h"

namespace kiln {

namespace {
using detail::check_defined;
using detail::common_device;

std::string pair_str(Pair p) {
  std::ostringstream os;  // not string operator+: GCC 12 warns (-Wrestrict) on it here
  os << '(' << p[0] << ", " << p[1] << ')';
  return os.str();
}

Conv2dAttrs conv_attrs(const char* op, Pair stride, Pair padding, Pair dilation, int64_t groups,
                       Pair output_padding = {0, 0}) {
  KILN_CHECK(stride[0] > 0 && stride[1] > 0, op, "stride must be positive, got ", pair_str(stride));
  KILN_CHECK(padding[0] >= 0 && padding[1] >= 0, op, "padding must be non-negative, got ", pair_str(padding));
  KILN_CHECK(dilation[0] > 0 && dilation[1] > 0, op, "dilation must be positive, got ", pair_str(dilation));
  KILN_CHECK(groups > 0, op, "groups must be positive, got ", groups);
  KILN_CHECK(output_padding[0] >= 0 && output_padding[1] >= 0, op, "output_padding must be non-negative, got ",
             pair_str(output_padding));
  Conv2dAttrs a;
  a.stride = stride;
  a.padding = padding;
  a.dilation = dilation;
  a.output_padding = output_padding;
  a.groups = groups;
  return a;
}

void check_same_dtype(const char* op, const Tensor& ref, const Tensor& t, const char* what) {
  if (!t.defined()) return;
  KILN_CHECK(t.dtype() == ref.dtype(), op, what, " dtype ", dtype_name(t.dtype()), " (shape ", shape_str(t.shape()),
             ") differs from input dtype ", dtype_name(ref.dtype()), " (shape ", shape_str(ref.shape()), ")");
}

// Validates the convolution x * w (x [N, C, H, W], w [O, C/groups, kh, kw]) and returns
// y's shape; every message names both shapes.
Shape conv_output_shape(const char* op, const Shape& x, const Shape& w, const Conv2dAttrs& a) {
  const std::string shapes = " (input " + shape_str(x) + ", weight " + shape_str(w) + ")";
  KILN_CHECK(w[1] * a.groups == x[1], op, "expected input with ", w[1] * a.groups, " channels (weight.size(1) * groups = ",
             w[1], " * ", a.groups, "), got ", x[1], shapes);
  KILN_CHECK(w[0] % a.groups == 0, op, "out channels ", w[0], " must be divisible by groups ", a.groups, shapes);
  KILN_CHECK(w[2] > 0 && w[3] > 0, op, "kernel size must be positive", shapes);
  Shape y{x[0], w[0], 0, 0};
  for (size_t i = 0; i < 2; ++i) {
    const int64_t ext = checked_add(op, checked_mul(op, a.dilation[i], w[i + 2] - 1), 1);
    const int64_t padded = checked_add(op, x[i + 2], checked_mul(op, 2, a.padding[i]));
    KILN_CHECK(padded >= ext, op, "kernel size (dilated) ", ext, " is larger than the padded input size ", padded,
               " in dim ", i + 2, "; the output would be empty", shapes);
    y[i + 2] = (padded - ext) / a.stride[i] + 1;
  }
  return y;
}

void check_4d(const char* op, const Tensor& t, const char* what) {
  KILN_CHECK(t.dim() == 4, op, "expected a 4-d ", what, ", got shape ", shape_str(t.shape()));
}

// x as 4-D: unbatched [C, H, W] inputs get a batch of one.
Tensor batched(const char* op, const Tensor& x) {
  KILN_CHECK(x.dim() == 3 || x.dim() == 4, op, "expected a 3-d (unbatched) or 4-d input [N, C, H, W], got shape ",
             shape_str(x.shape()));
  return x.dim() == 3 ? x.unsqueeze(0) : x;
}

void check_bias(const char* op, const Tensor& bias, int64_t channels, const Tensor& w) {
  if (!bias.defined()) return;
  KILN_CHECK(bias.dim() == 1 && bias.shape()[0] == channels, op, "expected bias of shape [", channels,
             "], got ", shape_str(bias.shape()), " (weight ", shape_str(w.shape()), ")");
}

// Runs a conv op (in: two 4-d tensors) whose result might be empty or have no input
// channels to sum over.
Tensor run(OpId op, std::vector<Tensor> in, const Shape& out_shape, const Tensor& bias, Conv2dAttrs attrs,
           int64_t reduce_size) {
  const MemoryFormat fmt = conv_memory_format(in[0], in[1]);
  Tensor y = empty(out_shape, TensorOptions(in[0].dtype()).device(in[0].device()), fmt);
  if (y.numel() == 0) return y;
  if (reduce_size == 0) {  // nothing to sum: bias only
    y.zero_();
    if (bias.defined()) add_(y, bias.view({-1, 1, 1}));
    return y;
  }
  attrs.has_bias = bias.defined();
  attrs.channels_last = fmt == MemoryFormat::ChannelsLast;
  for (Tensor& t : in) t = t.contiguous(fmt);
  if (bias.defined()) in.push_back(bias.contiguous());
  Tensor outs[] = {y};
  dispatch(op, in[0].dtype(), in, outs, &attrs);
  return y;
}
}  // namespace

MemoryFormat conv_memory_format(const Tensor& a, const Tensor& b) {
  // PyTorch keeps float64 convolutions on CUDA in NCHW (cuDNN has few NHWC double kernels).
  if (a.device().type == DeviceType::Cuda && a.dtype() == DType::Float64) return MemoryFormat::Contiguous;
  const bool cl = a.suggest_memory_format() == MemoryFormat::ChannelsLast ||
                  (b.defined() && b.suggest_memory_format() == MemoryFormat::ChannelsLast);
  return cl ? MemoryFormat::ChannelsLast : MemoryFormat::Contiguous;
}

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, Pair stride, Pair padding, Pair dilation,
              int64_t groups) {
  const char* op = "conv2d";
  const OpNameScope scope(op);
  check_defined(op, {&x, &w});
  common_device(op, {&x, &w, &bias});
  const Tensor x4 = batched(op, x);
  check_4d(op, w, "weight [out, in/groups, kh, kw]");
  detail::check_floating(op, x);
  check_same_dtype(op, x, w, "weight");
  check_same_dtype(op, x, bias, "bias");
  const Conv2dAttrs attrs = conv_attrs(op, stride, padding, dilation, groups);
  const Shape y_shape = conv_output_shape(op, x4.shape(), w.shape(), attrs);
  check_bias(op, bias, w.shape()[0], w);
  Tensor y = run(OpId::Conv2d, {x4, w}, y_shape, bias, attrs, x4.shape()[1] / groups);
  autograd::record_conv2d(y, x4, w, bias, stride, padding, dilation, groups);
  return x.dim() == 3 ? y.squeeze(0) : y;
}

Tensor conv_transpose2d(const Tensor& x, const Tensor& w, const Tensor& bias, Pair stride, Pair padding,
                        Pair output_padding, int64_t groups, Pair dilation) {
  const char* op = "conv_transpose2d";
  const OpNameScope scope(op);
  check_defined(op, {&x, &w});
  common_device(op, {&x, &w, &bias});
  const Tensor x4 = batched(op, x);
  check_4d(op, w, "weight [in, out/groups, kh, kw]");
  detail::check_floating(op, x);
  check_same_dtype(op, x, w, "weight");
  check_same_dtype(op, x, bias, "bias");
  const Conv2dAttrs attrs = conv_attrs(op, stride, padding, dilation, groups, output_padding);
  const std::string shapes = " (input " + shape_str(x.shape()) + ", weight " + shape_str(w.shape()) + ")";
  const Shape& xs = x4.shape();
  const Shape& ws = w.shape();
  KILN_CHECK(ws[0] == xs[1], op, "expected input with ", ws[0], " channels (weight.size(0)), got ", xs[1], shapes);
  KILN_CHECK(xs[1] % groups == 0, op, "input channels ", xs[1], " must be divisible by groups ", groups, shapes);
  KILN_CHECK(ws[2] > 0 && ws[3] > 0, op, "kernel size must be positive", shapes);
  Shape y_shape{xs[0], ws[1] * groups, 0, 0};
  for (size_t i = 0; i < 2; ++i) {
    KILN_CHECK(output_padding[i] < stride[i] || output_padding[i] < dilation[i], op, "output_padding ",
               pair_str(output_padding), " must be smaller than either stride ", pair_str(stride), " or dilation ",
               pair_str(dilation));
    const int64_t spread = checked_mul(op, xs[i + 2] - 1, stride[i]);
    const int64_t kernel = checked_add(op, checked_mul(op, dilation[i], ws[i + 2] - 1), output_padding[i] + 1);
    y_shape[i + 2] = checked_add(op, checked_add(op, spread, -checked_mul(op, 2, padding[i])), kernel);
    KILN_CHECK(y_shape[i + 2] > 0, op, "the output size ", y_shape[i + 2], " in dim ", i + 2,
               " is not positive", shapes);
  }
  check_bias(op, bias, y_shape[1], w);
  Tensor y = run(OpId::ConvTranspose2d, {x4, w}, y_shape, bias, attrs, xs[1] / groups);
  autograd::record_conv_transpose2d(y, x4, w, bias, stride, padding, dilation, groups);
  return x.dim() == 3 ? y.squeeze(0) : y;
}

Tensor conv2d_backward_input(const Tensor& grad_out, const Tensor& w, const Shape& input_shape, Pair stride,
                             Pair padding, Pair dilation, int64_t groups) {
  const char* op = "conv2d_backward_input";
  check_defined(op, {&grad_out, &w});
  common_device(op, {&grad_out, &w});
  check_4d(op, grad_out, "grad_output");
  check_4d(op, w, "weight");
  KILN_CHECK(input_shape.size() == 4, op, "expected a 4-d input shape, got ", shape_str(input_shape));
  detail::check_floating(op, grad_out, "grad_output");
  check_same_dtype(op, grad_out, w, "weight");
  const Conv2dAttrs attrs = conv_attrs(op, stride, padding, dilation, groups);
  const Shape y_shape = conv_output_shape(op, input_shape, w.shape(), attrs);
  KILN_CHECK(y_shape == grad_out.shape(), op, "grad_output of shape ", shape_str(grad_out.shape()),
             " does not match the convolution's output shape ", shape_str(y_shape));
  return run(OpId::Conv2dBackwardInput, {grad_out, w}, input_shape, Tensor(), attrs, w.shape()[0] / groups);
}

Conv2dWeightGrads conv2d_backward_weight(const Tensor& grad_out, const Tensor& x, const Shape& weight_shape,
                                         Pair stride, Pair padding, Pair dilation, int64_t groups, bool bias_grad) {
  const char* op = "conv2d_backward_weight";
  check_defined(op, {&grad_out, &x});
  common_device(op, {&grad_out, &x});
  check_4d(op, grad_out, "grad_output");
  check_4d(op, x, "input");
  KILN_CHECK(weight_shape.size() == 4, op, "expected a 4-d weight shape, got ", shape_str(weight_shape));
  detail::check_floating(op, grad_out, "grad_output");
  check_same_dtype(op, grad_out, x, "input");
  Conv2dAttrs attrs = conv_attrs(op, stride, padding, dilation, groups);
  const Shape y_shape = conv_output_shape(op, x.shape(), weight_shape, attrs);
  KILN_CHECK(y_shape == grad_out.shape(), op, "grad_output of shape ", shape_str(grad_out.shape()),
             " does not match the convolution's output shape ", shape_str(y_shape));
  const TensorOptions opts = TensorOptions(x.dtype()).device(x.device());
  const MemoryFormat fmt = conv_memory_format(grad_out, x);
  Conv2dWeightGrads g{empty(weight_shape, opts, fmt), bias_grad ? empty({weight_shape[0]}, opts) : Tensor()};
  if (g.weight.numel() == 0 && !bias_grad) return g;
  if (grad_out.numel() == 0) {  // nothing to sum
    g.weight.zero_();
    if (bias_grad) g.bias.zero_();
    return g;
  }
  attrs.has_bias = bias_grad;
  attrs.channels_last = fmt == MemoryFormat::ChannelsLast;
  const Tensor in[] = {grad_out.contiguous(fmt), x.contiguous(fmt)};
  std::vector<Tensor> outs{g.weight};
  if (bias_grad) outs.push_back(g.bias);
  dispatch(OpId::Conv2dBackwardWeight, x.dtype(), in, outs, &attrs);
  return g;
}

Tensor conv_transpose2d_backward_input(const Tensor& grad_out, const Tensor& w, Pair stride, Pair padding,
                                       int64_t groups, Pair dilation) {
  return conv2d(grad_out, w, Tensor(), stride, padding, dilation, groups);
}

Tensor conv_transpose2d_backward_weight(const Tensor& grad_out, const Tensor& x, const Shape& weight_shape,
                                        Pair stride, Pair padding, int64_t groups, Pair dilation) {
  return conv2d_backward_weight(x, grad_out, weight_shape, stride, padding, dilation, groups).weight;
}

}  // namespace kiln
