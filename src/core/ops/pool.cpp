// Front ends of max_pool2d, avg_pool2d, adaptive_avg_pool2d and their backward ops:
// PyTorch's checks (kernel/stride/padding/dilation, padding at most half the kernel,
// output size at least 1) and output-size formula, with ceil_mode. Unbatched [C, H, W]
// inputs are accepted like PyTorch's. The kernels work on NCHW: a channels-last input is
// made contiguous for them and the outputs are channels-last again (PyTorch's layout;
// FormattedOutput), forward and backward.
#include <optional>
#include <sstream>
#include <string>

#include "kiln/op_attrs.h"
#include "kiln/ops_backward.h"
#include "src/autograd/record.h"
#include "src/core/ops/op_helpers.h"

namespace kiln {

namespace {
using detail::check_defined;

std::string pair_str(Pair p) {
  std::ostringstream os;  // not string operator+: GCC 12 warns (-Wrestrict) on it here
  os << '(' << p[0] << ", " << p[1] << ')';
  return os.str();
}

int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

// PyTorch's pooling_output_shape.
int64_t pooled_size(const char* op, int64_t in, int64_t k, int64_t pad, int64_t stride, int64_t dilation,
                    bool ceil_mode) {
  const int64_t span = checked_add(op, checked_mul(op, dilation, k - 1), 1);
  const int64_t room = checked_add(op, checked_add(op, in, checked_mul(op, 2, pad)), ceil_mode ? stride - 1 : 0);
  int64_t out = floor_div(room - span, stride) + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

Tensor batched(const char* op, const Tensor& x) {
  KILN_CHECK(x.dim() == 3 || x.dim() == 4, op, "expected a 3-d (unbatched) or 4-d input [N, C, H, W], got shape ",
             shape_str(x.shape()));
  return x.dim() == 3 ? x.unsqueeze(0) : x;
}

Shape batched_shape(const char* op, const Shape& s) {
  KILN_CHECK(s.size() == 3 || s.size() == 4, op, "expected a 3-d or 4-d input shape, got ", shape_str(s));
  Shape b = s;
  if (b.size() == 3) b.insert(b.begin(), 1);
  return b;
}

// Validates the pooling parameters for input shape x (4-d) and returns the output shape;
// fills attrs (stride resolved: {0, 0} means the kernel, as in PyTorch).
Shape pool_output_shape(const char* op, const Shape& x, Pair kernel, Pair stride, Pair padding, Pair dilation,
                        bool ceil_mode, Pool2dAttrs& attrs) {
  if (stride[0] == 0 && stride[1] == 0) stride = kernel;
  KILN_CHECK(kernel[0] > 0 && kernel[1] > 0, op, "kernel size must be positive, got ", pair_str(kernel));
  KILN_CHECK(stride[0] > 0 && stride[1] > 0, op, "stride must be positive, got ", pair_str(stride));
  KILN_CHECK(dilation[0] > 0 && dilation[1] > 0, op, "dilation must be positive, got ", pair_str(dilation));
  KILN_CHECK(padding[0] >= 0 && padding[1] >= 0, op, "padding must be non-negative, got ", pair_str(padding));
  KILN_CHECK(padding[0] <= kernel[0] / 2 && padding[1] <= kernel[1] / 2, op,
             "padding should be at most half of the kernel size, got padding ", pair_str(padding), " and kernel ",
             pair_str(kernel));
  KILN_CHECK(x[2] > 0 && x[3] > 0, op, "expected non-empty spatial dims, got input shape ", shape_str(x));
  Shape y{x[0], x[1], 0, 0};
  for (size_t i = 0; i < 2; ++i)
    y[i + 2] = pooled_size(op, x[i + 2], kernel[i], padding[i], stride[i], dilation[i], ceil_mode);
  KILN_CHECK(y[2] > 0 && y[3] > 0, op, "input of shape ", shape_str(x), " gives output size [", y[2], ", ", y[3],
             "] with kernel ", pair_str(kernel), ", stride ", pair_str(stride), ", padding ", pair_str(padding),
             ", dilation ", pair_str(dilation), ": output size is too small");
  attrs.kernel = kernel;
  attrs.stride = stride;
  attrs.padding = padding;
  attrs.dilation = dilation;
  attrs.ceil_mode = ceil_mode;
  return y;
}

Tensor unbatch(const Tensor& y, bool unbatched) { return unbatched ? y.squeeze(0) : y; }

std::pair<Tensor, Tensor> max_pool(const char* op, const Tensor& x, Pair kernel, Pair stride, Pair padding,
                                   Pair dilation, bool ceil_mode, bool with_indices) {
  check_defined(op, {&x});
  const Tensor x4 = batched(op, x);
  detail::check_floating(op, x);
  Pool2dAttrs attrs;
  const Shape y_shape = pool_output_shape(op, x4.shape(), kernel, stride, padding, dilation, ceil_mode, attrs);
  const MemoryFormat fmt = x4.suggest_memory_format();
  detail::FormattedOutput y_out(y_shape, x.dtype(), x.device(), fmt);
  const bool keep_idx = with_indices || autograd::should_record({&x});  // the backward needs the indices
  std::optional<detail::FormattedOutput> idx_out;
  if (keep_idx) idx_out.emplace(y_shape, DType::Int64, x.device(), fmt);
  const Tensor y = y_out.result, idx = keep_idx ? idx_out->result : Tensor();
  if (y.numel() > 0) {
    const Tensor in[] = {x4.contiguous()};
    std::vector<Tensor> outs{y_out.kernel};
    if (keep_idx) outs.push_back(idx_out->kernel);
    dispatch(OpId::MaxPool2d, x.dtype(), in, outs, &attrs);
    y_out.finish();
    if (keep_idx) idx_out->finish();
    autograd::record_max_pool2d(y, idx, x4);
  }
  const bool unb = x.dim() == 3;
  return {unbatch(y, unb), with_indices ? unbatch(idx, unb) : Tensor()};
}

// The shared checks of the backward ops: grad_out [N, C, OH, OW] against the input shape.
void check_backward(const char* op, const Tensor& gy, const Shape& x4, const Shape& y_expected) {
  KILN_CHECK(gy.dim() == 3 || gy.dim() == 4, op, "expected a 3-d or 4-d grad_output, got shape ",
             shape_str(gy.shape()));
  detail::check_floating(op, gy, "grad_output");
  Shape gy4 = gy.shape();
  if (gy4.size() == 3) gy4.insert(gy4.begin(), 1);
  KILN_CHECK(gy4 == y_expected, op, "grad_output of shape ", shape_str(gy.shape()), " does not match the output shape ",
             shape_str(y_expected), " of an input of shape ", shape_str(x4));
}

// grad_input keeps grad_output's layout (channels-last in, channels-last out).
Tensor run_backward(OpId op, std::vector<Tensor> in, const Shape& input_shape, const Pool2dAttrs* attrs) {
  detail::FormattedOutput gx(input_shape, in[0].dtype(), in[0].device(), in[0].suggest_memory_format());
  if (gx.result.numel() == 0) return gx.result;
  if (in[0].numel() == 0) return gx.result.zero_();
  Shape gx4 = input_shape;
  if (gx4.size() == 3) gx4.insert(gx4.begin(), 1);
  for (Tensor& t : in) t = t.contiguous().view({gx4[0], gx4[1], t.shape()[t.dim() - 2], t.shape()[t.dim() - 1]});
  Tensor outs[] = {gx.kernel.view(gx4)};
  if (attrs) dispatch(op, in[0].dtype(), in, outs, attrs);
  else dispatch(op, in[0].dtype(), in, outs);
  gx.finish();
  return gx.result;
}
}  // namespace

Tensor max_pool2d(const Tensor& x, Pair kernel, Pair stride, Pair padding, Pair dilation, bool ceil_mode) {
  return max_pool("max_pool2d", x, kernel, stride, padding, dilation, ceil_mode, false).first;
}

std::pair<Tensor, Tensor> max_pool2d_with_indices(const Tensor& x, Pair kernel, Pair stride, Pair padding,
                                                  Pair dilation, bool ceil_mode) {
  return max_pool("max_pool2d_with_indices", x, kernel, stride, padding, dilation, ceil_mode, true);
}

Tensor avg_pool2d(const Tensor& x, Pair kernel, Pair stride, Pair padding, bool ceil_mode, bool count_include_pad) {
  const char* op = "avg_pool2d";
  check_defined(op, {&x});
  const Tensor x4 = batched(op, x);
  detail::check_floating(op, x);
  Pool2dAttrs attrs;
  attrs.count_include_pad = count_include_pad;
  const Shape y_shape = pool_output_shape(op, x4.shape(), kernel, stride, padding, {1, 1}, ceil_mode, attrs);
  detail::FormattedOutput y_out(y_shape, x.dtype(), x.device(), x4.suggest_memory_format());
  const Tensor y = y_out.result;
  if (y.numel() > 0) {
    const Tensor in[] = {x4.contiguous()};
    Tensor outs[] = {y_out.kernel};
    dispatch(OpId::AvgPool2d, x.dtype(), in, outs, &attrs);
    y_out.finish();
    autograd::record_avg_pool2d(y, x4, kernel, stride, padding, ceil_mode, count_include_pad);
  }
  return unbatch(y, x.dim() == 3);
}

Tensor adaptive_avg_pool2d(const Tensor& x, Pair output_size) {
  const char* op = "adaptive_avg_pool2d";
  check_defined(op, {&x});
  const Tensor x4 = batched(op, x);
  detail::check_floating(op, x);
  KILN_CHECK(output_size[0] >= 0 && output_size[1] >= 0, op, "output size must be non-negative, got ",
             pair_str(output_size));
  KILN_CHECK(x4.shape()[2] > 0 && x4.shape()[3] > 0, op, "expected non-empty spatial dims, got input shape ",
             shape_str(x.shape()));
  detail::FormattedOutput y_out({x4.shape()[0], x4.shape()[1], output_size[0], output_size[1]}, x.dtype(),
                                 x.device(), x4.suggest_memory_format());
  const Tensor y = y_out.result;
  if (y.numel() > 0) {
    const Tensor in[] = {x4.contiguous()};
    Tensor outs[] = {y_out.kernel};
    dispatch(OpId::AdaptiveAvgPool2d, x.dtype(), in, outs);
    y_out.finish();
    autograd::record_adaptive_avg_pool2d(y, x4);
  }
  return unbatch(y, x.dim() == 3);
}

Tensor max_pool2d_backward(const Tensor& grad_out, const Tensor& indices, const Shape& input_shape) {
  const char* op = "max_pool2d_backward";
  check_defined(op, {&grad_out, &indices});
  detail::common_device(op, {&grad_out, &indices});
  const Shape x4 = batched_shape(op, input_shape);
  KILN_CHECK(indices.dtype() == DType::Int64, op, "expected int64 indices, got ", dtype_name(indices.dtype()));
  KILN_CHECK(indices.shape() == grad_out.shape(), op, "indices of shape ", shape_str(indices.shape()),
             " do not match grad_output of shape ", shape_str(grad_out.shape()));
  KILN_CHECK(grad_out.dim() == int64_t(input_shape.size()), op, "grad_output of shape ", shape_str(grad_out.shape()),
             " does not match the input shape ", shape_str(input_shape));
  Shape y4 = grad_out.shape();
  if (y4.size() == 3) y4.insert(y4.begin(), 1);
  check_backward(op, grad_out, x4, {x4[0], x4[1], y4[2], y4[3]});
  return run_backward(OpId::MaxPool2dBackward, {grad_out, indices}, input_shape, nullptr);
}

Tensor avg_pool2d_backward(const Tensor& grad_out, const Shape& input_shape, Pair kernel, Pair stride, Pair padding,
                           bool ceil_mode, bool count_include_pad) {
  const char* op = "avg_pool2d_backward";
  check_defined(op, {&grad_out});
  const Shape x4 = batched_shape(op, input_shape);
  Pool2dAttrs attrs;
  attrs.count_include_pad = count_include_pad;
  const Shape y4 = pool_output_shape(op, x4, kernel, stride, padding, {1, 1}, ceil_mode, attrs);
  check_backward(op, grad_out, x4, y4);
  return run_backward(OpId::AvgPool2dBackward, {grad_out}, input_shape, &attrs);
}

Tensor adaptive_avg_pool2d_backward(const Tensor& grad_out, const Shape& input_shape) {
  const char* op = "adaptive_avg_pool2d_backward";
  check_defined(op, {&grad_out});
  const Shape x4 = batched_shape(op, input_shape);
  KILN_CHECK(grad_out.dim() == int64_t(input_shape.size()), op, "grad_output of shape ", shape_str(grad_out.shape()),
             " does not match the input shape ", shape_str(input_shape));
  Shape y4 = grad_out.shape();
  if (y4.size() == 3) y4.insert(y4.begin(), 1);
  check_backward(op, grad_out, x4, {x4[0], x4[1], y4[2], y4[3]});
  return run_backward(OpId::AdaptiveAvgPool2dBackward, {grad_out}, input_shape, nullptr);
}

}  // namespace kiln
