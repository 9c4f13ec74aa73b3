// ONNX neural-network operators: products, convolutions, pooling, normalisations and
// dropout. 1-D convolutions and pools run as 2-D ones over a height of 1; padding kiln's
// ops cannot express (asymmetric, auto_pad, larger than half a window) is applied to the
// input explicitly first.
#include <algorithm>
#include <cmath>
#include <limits>

#include "kiln/ops.h"
#include "src/onnx/op_context.h"

namespace kiln::onnx::detail {

namespace {

using Outs = std::vector<Tensor>;

Outs matmul_op(OpContext& c) { return {matmul(c.input(0), c.input(1))}; }

Outs gemm_op(OpContext& c) {
  Tensor a = c.input(0), b = c.input(1);
  c.check(a.dim() == 2 && b.dim() == 2, "A and B must be 2-D, got ", shape_str(a.shape()), " and ", shape_str(b.shape()));
  if (c.attr_int("transA", 0)) a = a.t();
  if (c.attr_int("transB", 0)) b = b.t();
  const double alpha = c.attr_float("alpha", 1.0), beta = c.attr_float("beta", 1.0);
  Tensor y = matmul(a, b);
  if (alpha != 1.0) y = mul(y, alpha);
  if (c.has_input(2) && beta != 0.0) y = add(y, beta == 1.0 ? c.input(2) : mul(c.input(2), beta));
  return {y.to(c.input(0).dtype())};
}

// Kernel, strides, dilations and per-side pads of a convolution or pool, resolved from
// the attributes (auto_pad included) for the input's spatial sizes.
struct Window {
  std::vector<int64_t> kernel, stride, dilation, begin, end;
  bool symmetric() const { return begin == end; }
};

Window window(OpContext& c, const Shape& spatial, const std::vector<int64_t>& kernel) {
  const size_t n = spatial.size();
  Window w;
  w.kernel = kernel;
  w.stride = c.attr_ints("strides", std::vector<int64_t>(n, 1));
  w.dilation = c.attr_ints("dilations", std::vector<int64_t>(n, 1));
  c.check(w.kernel.size() == n && w.stride.size() == n && w.dilation.size() == n, "kernel_shape, strides and dilations need ",
          n, " entries each");
  for (size_t i = 0; i < n; ++i) {
    c.check(w.kernel[i] > 0 && w.stride[i] > 0 && w.dilation[i] > 0, "kernel, strides and dilations must be positive");
  }
  const std::string auto_pad = c.attr_string("auto_pad", "NOTSET");
  if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    for (size_t i = 0; i < n; ++i) {
      const int64_t out = (spatial[i] + w.stride[i] - 1) / w.stride[i];
      const int64_t total = std::max<int64_t>((out - 1) * w.stride[i] + (w.kernel[i] - 1) * w.dilation[i] + 1 - spatial[i], 0);
      const int64_t small = total / 2;
      w.begin.push_back(auto_pad == "SAME_UPPER" ? small : total - small);
      w.end.push_back(auto_pad == "SAME_UPPER" ? total - small : small);
    }
    return w;
  }
  c.check(auto_pad == "NOTSET" || auto_pad == "VALID", "auto_pad '", auto_pad, "' is not valid");
  std::vector<int64_t> pads = auto_pad == "VALID" ? std::vector<int64_t>(2 * n, 0)
                                                  : c.attr_ints("pads", std::vector<int64_t>(2 * n, 0));
  c.check(pads.size() == 2 * n, "pads needs ", 2 * n, " entries, got ", pads.size());
  for (int64_t p : pads) c.check(p >= 0, "pads must be non-negative");
  w.begin.assign(pads.begin(), pads.begin() + long(n));
  w.end.assign(pads.begin() + long(n), pads.end());
  return w;
}

// Pads dims 2.. of x by begin/end with value.
Tensor pad_spatial(const Tensor& x, const std::vector<int64_t>& begin, const std::vector<int64_t>& end, double value) {
  Tensor r = x;
  for (size_t i = 0; i < begin.size(); ++i) {
    const int64_t d = int64_t(i) + 2;
    auto block = [&](int64_t len) {
      Shape s = r.shape();
      s[size_t(d)] = len;
      return full(s, value, TensorOptions(r.dtype()).device(r.device()));
    };
    if (begin[i] > 0 || end[i] > 0) r = cat({block(begin[i]), r, block(end[i])}, d);
  }
  return r;
}

// 1-D as 2-D: [N, C, L] -> [N, C, 1, L], window entries get a leading 1 (or 0 for pads).
void lift_1d(Tensor& x, Window& w) {
  x = x.unsqueeze(2);
  w.kernel.insert(w.kernel.begin(), 1);
  w.stride.insert(w.stride.begin(), 1);
  w.dilation.insert(w.dilation.begin(), 1);
  w.begin.insert(w.begin.begin(), 0);
  w.end.insert(w.end.begin(), 0);
}

void check_spatial_rank(OpContext& c, const Tensor& x) {
  c.check(x.dim() == 3 || x.dim() == 4, "kiln runs 1-D and 2-D ", c.node().op_type, " (input [N, C, L] or [N, C, H, W]); got shape ",
          shape_str(x.shape()));
}

Outs conv_op(OpContext& c) {
  Tensor x = c.input(0), w = c.input(1);
  check_spatial_rank(c, x);
  c.check(w.dim() == x.dim(), "weight of shape ", shape_str(w.shape()), " does not match input of shape ", shape_str(x.shape()));
  const Shape spatial(x.shape().begin() + 2, x.shape().end());
  const std::vector<int64_t> kernel(w.shape().begin() + 2, w.shape().end());
  if (c.has_attr("kernel_shape")) c.check(c.attr_ints("kernel_shape") == kernel, "kernel_shape disagrees with the weight");
  Window win = window(c, spatial, kernel);
  const bool one_d = x.dim() == 3;
  if (one_d) {
    lift_1d(x, win);
    w = w.unsqueeze(2);
  }
  Pair pad{0, 0};
  if (win.symmetric()) {
    pad = {win.begin[0], win.begin[1]};
  } else {
    x = pad_spatial(x, win.begin, win.end, 0.0);
  }
  Tensor y = conv2d(x, w, c.input_or(2, Tensor()), {win.stride[0], win.stride[1]}, pad,
                    {win.dilation[0], win.dilation[1]}, c.attr_int("group", 1));
  return {one_d ? y.squeeze(2) : y};
}

Outs conv_transpose_op(OpContext& c) {
  Tensor x = c.input(0), w = c.input(1);
  check_spatial_rank(c, x);
  c.check(w.dim() == x.dim(), "weight of shape ", shape_str(w.shape()), " does not match input of shape ", shape_str(x.shape()));
  const size_t n = size_t(x.dim() - 2);
  const int64_t group = c.attr_int("group", 1);
  const std::vector<int64_t> kernel(w.shape().begin() + 2, w.shape().end());
  const auto stride = c.attr_ints("strides", std::vector<int64_t>(n, 1));
  const auto dilation = c.attr_ints("dilations", std::vector<int64_t>(n, 1));
  const auto out_pad = c.attr_ints("output_padding", std::vector<int64_t>(n, 0));
  c.check(stride.size() == n && dilation.size() == n && out_pad.size() == n, "strides, dilations and output_padding need ",
          n, " entries each");
  std::vector<int64_t> full_size(n), begin(n), out(n);
  const std::string auto_pad = c.attr_string("auto_pad", "NOTSET");
  const auto output_shape = c.attr_ints_opt("output_shape");
  auto pads = c.attr_ints("pads", std::vector<int64_t>(2 * n, 0));
  c.check(pads.size() == 2 * n, "pads needs ", 2 * n, " entries");
  for (size_t i = 0; i < n; ++i) {
    const int64_t in = x.size(int64_t(i) + 2);
    full_size[i] = stride[i] * (in - 1) + (kernel[i] - 1) * dilation[i] + 1;
    const int64_t produced = full_size[i] + out_pad[i];
    if (output_shape || auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      const auto& os = output_shape ? *output_shape : std::vector<int64_t>{};
      c.check(!output_shape || os.size() >= n, "output_shape needs ", n, " spatial entries");
      out[i] = output_shape ? os[os.size() - n + i] : in * stride[i];
      // Negative total padding (an output larger than produced) extends it with zeros.
      const int64_t total = produced - out[i];
      const int64_t half = total >= 0 ? total / 2 : -((-total + 1) / 2);  // floor(total / 2)
      begin[i] = auto_pad == "SAME_UPPER" ? half : total - half;
    } else {
      begin[i] = auto_pad == "VALID" ? 0 : pads[i];
      out[i] = produced - begin[i] - (auto_pad == "VALID" ? 0 : pads[i + n]);
      c.check(out[i] > 0, "pads leave an empty output");
    }
  }
  const bool one_d = n == 1;
  if (one_d) {
    x = x.unsqueeze(2);
    w = w.unsqueeze(2);
  }
  const Pair s2 = one_d ? Pair{1, stride[0]} : Pair{stride[0], stride[1]};
  const Pair d2 = one_d ? Pair{1, dilation[0]} : Pair{dilation[0], dilation[1]};
  Tensor y = conv_transpose2d(x, w, Tensor(), s2, {0, 0}, {0, 0}, group, d2);
  if (one_d) y = y.squeeze(2);
  // The output is the full result's window [begin, begin + out); positions outside the
  // full result (output_padding, negative padding) are zeros.
  for (size_t i = 0; i < n; ++i) {
    const int64_t d = int64_t(i) + 2;
    const int64_t lo = std::max<int64_t>(begin[i], 0), hi = std::min(begin[i] + out[i], full_size[i]);
    y = y.narrow(d, lo, std::max<int64_t>(hi - lo, 0));
    auto zero_block = [&](int64_t len) {
      Shape s = y.shape();
      s[size_t(d)] = len;
      return zeros(s, TensorOptions(y.dtype()).device(y.device()));
    };
    const int64_t before = lo - begin[i], after = begin[i] + out[i] - std::max(hi, lo);
    if (before > 0 || after > 0) y = cat({zero_block(before), y, zero_block(after)}, d);
  }
  if (c.has_input(2)) {
    Shape bs(size_t(y.dim()), 1);
    bs[1] = y.size(1);
    y = add(y, c.input(2).reshape(bs));
  }
  return {y};
}

// Pools: window with kiln's symmetric padding when it can, explicit padding otherwise.
struct PoolSetup {
  Tensor x;
  Window win;
  bool one_d = false;
  bool explicit_pad = false;
};

PoolSetup pool_setup(OpContext& c, double pad_value) {
  PoolSetup p;
  p.x = c.input(0);
  check_spatial_rank(c, p.x);
  const Shape spatial(p.x.shape().begin() + 2, p.x.shape().end());
  p.win = window(c, spatial, c.attr_ints("kernel_shape"));
  p.one_d = p.x.dim() == 3;
  if (p.one_d) lift_1d(p.x, p.win);
  bool fits = p.win.symmetric();
  for (size_t i = 0; i < 2; ++i) fits = fits && p.win.begin[i] <= p.win.kernel[i] / 2;
  if (!fits) {
    p.x = pad_spatial(p.x, p.win.begin, p.win.end, pad_value);
    p.explicit_pad = true;
    p.win.begin = p.win.end = {0, 0};
  }
  return p;
}

Outs max_pool_op(OpContext& c) {
  PoolSetup p = pool_setup(c, -std::numeric_limits<double>::infinity());
  const bool ceil_mode = c.attr_int("ceil_mode", 0) != 0;
  const Pair k{p.win.kernel[0], p.win.kernel[1]}, s{p.win.stride[0], p.win.stride[1]},
      pad{p.win.begin[0], p.win.begin[1]}, d{p.win.dilation[0], p.win.dilation[1]};
  if (!c.output_wanted(1)) {
    Tensor y = max_pool2d(p.x, k, s, pad, d, ceil_mode);
    return {p.one_d ? y.squeeze(2) : y};
  }
  c.check(!p.explicit_pad, "the Indices output with asymmetric or large padding is not supported");
  auto [y, idx] = max_pool2d_with_indices(p.x, k, s, pad, d, ceil_mode);
  // kiln's indices are h * W + w within a plane; ONNX's are flat over the whole tensor,
  // row-major (storage_order 0) or column-major within the plane (1).
  const int64_t H = p.x.size(2), W = p.x.size(3);
  if (c.attr_int("storage_order", 0) != 0) {
    const Tensor h = div(idx.to(DType::Float64), double(W)).to(DType::Int64);  // floor: idx >= 0
    const Tensor w = sub(idx, mul(h, W));
    idx = add(mul(w, H), h);
  }
  const int64_t planes = p.x.size(0) * p.x.size(1);
  const Tensor base = mul(arange(planes, TensorOptions(DType::Int64).device(idx.device())), H * W)
                          .reshape({p.x.size(0), p.x.size(1), 1, 1});
  idx = add(idx, base);
  if (p.one_d) return {y.squeeze(2), idx.squeeze(2)};
  return {y, idx};
}

Outs avg_pool_op(OpContext& c) {
  const bool include_pad = c.attr_int("count_include_pad", 0) != 0;
  PoolSetup p = pool_setup(c, 0.0);
  const bool ceil_mode = c.attr_int("ceil_mode", 0) != 0;
  const Pair k{p.win.kernel[0], p.win.kernel[1]}, s{p.win.stride[0], p.win.stride[1]},
      pad{p.win.begin[0], p.win.begin[1]};
  c.check(p.win.dilation[0] == 1 && p.win.dilation[1] == 1, "dilations are not supported");
  Tensor y = avg_pool2d(p.x, k, s, pad, ceil_mode, include_pad);
  if (p.explicit_pad && !include_pad) {
    // The mean over the real elements only: pool the padded input and a padded mask.
    const Window& w0 = window(c, Shape(c.input(0).shape().begin() + 2, c.input(0).shape().end()), c.attr_ints("kernel_shape"));
    Tensor ones_in = ones(c.input(0).shape(), TensorOptions(p.x.dtype()).device(p.x.device()));
    if (p.one_d) ones_in = ones_in.unsqueeze(2);
    std::vector<int64_t> b = w0.begin, e = w0.end;
    if (p.one_d) {
      b.insert(b.begin(), 0);
      e.insert(e.begin(), 0);
    }
    const Tensor mask = pad_spatial(ones_in, b, e, 0.0);
    y = div(y, avg_pool2d(mask, k, s, {0, 0}, ceil_mode, true));
  }
  return {p.one_d ? y.squeeze(2) : y};
}

std::vector<int64_t> spatial_dims(const Tensor& x) {
  std::vector<int64_t> d;
  for (int64_t i = 2; i < x.dim(); ++i) d.push_back(i);
  return d;
}
Outs global_avg_pool_op(OpContext& c) { return {mean(c.input(0), spatial_dims(c.input(0)), true)}; }
Outs global_max_pool_op(OpContext& c) { return {amax(c.input(0), spatial_dims(c.input(0)), true)}; }

// [C] -> broadcastable over [N, C, *]
Tensor per_channel(const Tensor& t, int64_t rank) {
  Shape s(size_t(rank), 1);
  s[1] = t.numel();
  return t.reshape(s);
}

Outs batch_norm_op(OpContext& c) {
  const Tensor &x = c.input(0), &scale = c.input(1), &bias = c.input(2), &mean_in = c.input(3), &var_in = c.input(4);
  c.check(x.dim() >= 2, "input must be [N, C, ...], got ", shape_str(x.shape()));
  const double eps = c.attr_float("epsilon", 1e-5), momentum = c.attr_float("momentum", 0.9);
  const bool training = c.opset() >= 14 && c.attr_int("training_mode", 0) != 0;
  if (!training) return {batch_norm(x, mean_in, var_in, scale, bias, false, 0.1, eps)};
  // Batch statistics (biased variance), and ONNX's running update r * momentum + s * (1 - momentum).
  std::vector<int64_t> dims{0};
  for (int64_t i = 2; i < x.dim(); ++i) dims.push_back(i);
  const Tensor m = mean(x, dims), v = var(x, dims, false);
  const Tensor y = add(mul(mul(sub(x, per_channel(m, x.dim())), rsqrt(add(per_channel(v, x.dim()), eps))),
                           per_channel(scale, x.dim())),
                       per_channel(bias, x.dim()));
  return {y, add(mul(mean_in, momentum), mul(m, 1.0 - momentum)), add(mul(var_in, momentum), mul(v, 1.0 - momentum))};
}

Outs instance_norm_op(OpContext& c) {
  const Tensor &x = c.input(0), &scale = c.input(1), &bias = c.input(2);
  c.check(x.dim() >= 3, "input must be [N, C, D1, ...], got ", shape_str(x.shape()));
  const double eps = c.attr_float("epsilon", 1e-5);
  const auto dims = spatial_dims(x);
  const Tensor m = mean(x, dims, true), v = var(x, dims, false, true);
  return {add(mul(mul(sub(x, m), rsqrt(add(v, eps))), per_channel(scale, x.dim())), per_channel(bias, x.dim()))};
}

Outs layer_norm_op(OpContext& c) {
  const Tensor& x = c.input(0);
  const int64_t axis = norm_axis(c, c.attr_int("axis", -1), x.dim());
  const double eps = c.attr_float("epsilon", 1e-5);
  std::vector<int64_t> dims;
  for (int64_t d = axis; d < x.dim(); ++d) dims.push_back(d);
  const Tensor m = mean(x, dims, true);
  const Tensor centered = sub(x, m);
  const Tensor inv = rsqrt(add(mean(mul(centered, centered), dims, true), eps));
  Tensor y = mul(mul(centered, inv), c.input(1));
  if (c.has_input(2)) y = add(y, c.input(2));
  return {y, m, inv};
}

Outs mvn_op(OpContext& c) {
  const Tensor& x = c.input(0);
  std::vector<int64_t> dims;
  for (int64_t a : c.attr_ints("axes", {0, 2, 3})) dims.push_back(norm_axis(c, a, x.dim()));
  const Tensor centered = sub(x, mean(x, dims, true));
  return {div(centered, add(sqrt(mean(mul(centered, centered), dims, true)), 1e-9))};
}

Outs lrn_op(OpContext& c) {
  const Tensor& x = c.input(0);
  c.check(x.dim() >= 3, "input must be [N, C, D1, ...], got ", shape_str(x.shape()));
  const int64_t size = c.attr_int("size");
  c.check(size > 0, "size must be positive");
  const double alpha = c.attr_float("alpha", 1e-4), beta = c.attr_float("beta", 0.75), bias = c.attr_float("bias", 1.0);
  // Sum of squares over a window of channels [c - floor((size-1)/2), c + ceil((size-1)/2)].
  const int64_t n = x.size(0), ch = x.size(1), rest = x.numel() / std::max<int64_t>(n * ch, 1);
  const Tensor sq = mul(x, x).reshape({n, 1, ch, rest});
  const Tensor padded = pad_spatial(sq, {(size - 1) / 2, 0}, {size - 1 - (size - 1) / 2, 0}, 0.0);
  const Tensor sums = mul(avg_pool2d(padded, {size, 1}, {1, 1}, {0, 0}, false, true), double(size)).reshape(x.shape());
  return {div(x, pow(add(mul(sums, alpha / double(size)), bias), beta))};
}

Outs dropout_op(OpContext& c) {
  const Tensor& x = c.input(0);
  double ratio = 0.5;
  bool training = false;
  if (c.opset() >= 12) {
    if (c.has_input(1)) ratio = c.input(1).item<double>();
    if (c.has_input(2)) training = c.input(2).item<bool>();
  } else {
    ratio = c.attr_float("ratio", 0.5);
  }
  c.check(ratio >= 0 && ratio < 1, "ratio must be in [0, 1), got ", ratio);
  if (!training || ratio == 0) return {x, ones(x.shape(), TensorOptions(DType::Bool).device(x.device()))};
  const Tensor mask = ge(rand(x.shape(), TensorOptions(x.dtype()).device(x.device())), ratio);
  const Tensor y = div(mul(x, mask.to(x.dtype())), 1.0 - ratio);
  return {y, mask};
}

}  // namespace

void register_nn_ops() {
  register_op("MatMul", matmul_op);
  register_op("Gemm", gemm_op);
  register_op("Conv", conv_op);
  register_op("ConvTranspose", conv_transpose_op);
  register_op("MaxPool", max_pool_op);
  register_op("AveragePool", avg_pool_op);
  register_op("GlobalAveragePool", global_avg_pool_op);
  register_op("GlobalMaxPool", global_max_pool_op);
  register_op("BatchNormalization", batch_norm_op);
  register_op("InstanceNormalization", instance_norm_op);
  register_op("LayerNormalization", layer_norm_op);
  register_op("MeanVarianceNormalization", mvn_op);
  register_op("LRN", lrn_op);
  register_op("Dropout", dropout_op);
}

}  // namespace kiln::onnx::detail
