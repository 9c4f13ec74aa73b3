// Resize and Upsample. ONNX's interpolation is separable: each output position along an
// axis is a weighted sum of n input positions (nearest 2, linear 2, cubic 4), chosen and
// weighted exactly as ONNX's reference does (neighbours of the mapped coordinate in the
// edge-padded input, ratio 1 for integral coordinates). The taps and weights are computed
// on the host per axis; the data moves through index_select, mul and add only.
#include <algorithm>
#include <cmath>

#include "kiln/ops.h"
#include "src/onnx/op_context.h"

namespace kiln::onnx::detail {

namespace {

using Outs = std::vector<Tensor>;

struct Options {
  std::string mode = "nearest", transform = "half_pixel", nearest_mode = "round_prefer_floor";
  double cubic_a = -0.75, extrapolation = 0.0;
  bool exclude_outside = false;
};

std::vector<double> coefficients(const Options& o, double ratio, bool integral) {
  if (o.mode == "nearest") {
    if (integral) return {0, 1};
    if (o.nearest_mode == "round_prefer_ceil") return {double(ratio < 0.5), double(ratio >= 0.5)};
    if (o.nearest_mode == "floor") return {1, 0};
    if (o.nearest_mode == "ceil") return {0, 1};
    return {double(ratio <= 0.5), double(ratio > 0.5)};
  }
  if (o.mode == "linear") return {1 - ratio, ratio};
  const double a = o.cubic_a, r = ratio, s = 1 - ratio;
  return {((a * (r + 1) - 5 * a) * (r + 1) + 8 * a) * (r + 1) - 4 * a, ((a + 2) * r - (a + 3)) * r * r + 1,
          ((a + 2) * s - (a + 3)) * s * s + 1, ((a * (s + 1) - 5 * a) * (s + 1) + 8 * a) * (s + 1) - 4 * a};
}

// Taps of one axis: for output position i, n (index, weight) pairs; plus whether the
// position lies outside the crop (tf_crop_and_resize) and takes the extrapolation value.
struct Taps {
  size_t n = 0;
  std::vector<std::vector<int64_t>> index;  // [tap][i]
  std::vector<std::vector<double>> weight;
  std::vector<bool> outside;
};

Taps axis_taps(OpContext& c, const Options& o, int64_t in, int64_t out, double scale, double roi_lo, double roi_hi) {
  Taps t;
  const double out_width = scale * double(in);
  for (int64_t i = 0; i < out; ++i) {
    const double x = double(i);
    double xo = 0;
    bool outside = false;
    if (o.transform == "align_corners") xo = out_width == 1 ? 0.0 : x * double(in - 1) / (out_width - 1);
    else if (o.transform == "asymmetric") xo = x / scale;
    else if (o.transform == "tf_crop_and_resize") {
      xo = out_width == 1 ? (roi_hi - roi_lo) * double(in - 1) / 2 : x * (roi_hi - roi_lo) * double(in - 1) / (out_width - 1);
      xo += roi_lo * double(in - 1);
      outside = xo < 0 || xo > double(in - 1);
    } else if (o.transform == "pytorch_half_pixel") xo = out_width == 1 ? -0.5 : (x + 0.5) / scale - 0.5;
    else if (o.transform == "half_pixel") xo = (x + 0.5) / scale - 0.5;
    else if (o.transform == "tf_half_pixel_for_nn" || o.transform == "tf_half_pixel_for_nearest") xo = (x + 0.5) / scale;
    else c.fail("coordinate_transformation_mode '", o.transform, "' is not valid");
    const double fl = std::floor(xo);
    const bool integral = xo == fl;
    auto coeffs = coefficients(o, integral ? 1.0 : xo - fl, integral);
    const int64_t n = int64_t(coeffs.size()), pad = (n + 1) / 2, limit = in + 2 * pad;
    // The n positions of the padded input nearest to xo + pad (ties to the lower), in order.
    std::vector<int64_t> idx(static_cast<size_t>(limit));
    for (int64_t k = 0; k < limit; ++k) idx[size_t(k)] = k;
    const double xp = xo + double(pad);
    std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return std::abs(xp - a) < std::abs(xp - b); });
    idx.resize(size_t(std::min(n, limit)));
    std::sort(idx.begin(), idx.end());
    if (o.exclude_outside) {
      double total = 0;
      for (size_t k = 0; k < idx.size(); ++k) {
        const int64_t orig = idx[k] - pad;
        if (orig < 0 || orig >= in) coeffs[k] = 0;
        total += coeffs[k];
      }
      for (double& w : coeffs) w = total != 0 ? w / total : 0;
    }
    if (t.index.empty()) {
      t.n = idx.size();
      t.index.assign(t.n, {});
      t.weight.assign(t.n, {});
    }
    for (size_t k = 0; k < t.n; ++k) {
      t.index[k].push_back(std::clamp<int64_t>(idx[k] - pad, 0, in - 1));  // edge padding
      t.weight[k].push_back(coeffs[k]);
    }
    t.outside.push_back(outside);
  }
  return t;
}

Tensor resize_axis(OpContext& c, const Tensor& x, int64_t axis, const Taps& t, double extrapolation) {
  Shape wshape(size_t(x.dim()), 1);
  const int64_t out = int64_t(t.outside.size());
  wshape[size_t(axis)] = out;
  const TensorOptions f64 = TensorOptions(DType::Float64).device(x.device());
  Tensor acc;
  for (size_t k = 0; k < t.n; ++k) {
    const Tensor picked = index_select(x, axis, c.make_ints(t.index[k], {out})).to(DType::Float64);
    const Tensor term = mul(picked, tensor<double>(t.weight[k], wshape).to(x.device()));
    acc = acc.defined() ? add(acc, term) : term;
  }
  if (std::any_of(t.outside.begin(), t.outside.end(), [](bool b) { return b; })) {
    std::vector<int64_t> flags(t.outside.begin(), t.outside.end());
    const Tensor mask = ne(c.make_ints(flags, wshape), 0);
    acc = where(mask, full({}, extrapolation, f64), acc);
  }
  return acc.to(x.dtype());
}

Tensor resize(OpContext& c, const Tensor& x, const Options& o, std::vector<double> scales, std::vector<int64_t> sizes,
              const std::vector<double>& roi) {
  const int64_t r = x.dim();
  c.check(!scales.empty() || !sizes.empty(), "one of scales and sizes is required");
  if (!sizes.empty()) {
    c.check(int64_t(sizes.size()) == r, "sizes has ", sizes.size(), " entries for rank ", r);
    scales.clear();
    for (int64_t d = 0; d < r; ++d) {
      c.check(sizes[size_t(d)] >= 0, "sizes must be non-negative");
      scales.push_back(x.size(d) > 0 ? double(sizes[size_t(d)]) / double(x.size(d)) : 1.0);
    }
  } else {
    c.check(int64_t(scales.size()) == r, "scales has ", scales.size(), " entries for rank ", r);
    for (int64_t d = 0; d < r; ++d) {
      c.check(scales[size_t(d)] > 0 && std::isfinite(scales[size_t(d)]), "scales must be positive");
      const double s = std::floor(double(x.size(d)) * scales[size_t(d)]);
      c.check(s < double(int64_t(1) << 40), "output size too large");
      sizes.push_back(int64_t(s));
    }
  }
  c.check(o.transform != "tf_crop_and_resize" || int64_t(roi.size()) == 2 * r, "roi needs ", 2 * r, " entries");
  Tensor y = x;
  for (int64_t d = 0; d < r; ++d) {
    const bool crop = o.transform == "tf_crop_and_resize";
    if (!crop && sizes[size_t(d)] == x.size(d) && scales[size_t(d)] == 1.0) continue;
    c.check(x.size(d) > 0, "cannot resize the empty axis ", d);
    const Taps t = axis_taps(c, o, x.size(d), sizes[size_t(d)], scales[size_t(d)], crop ? roi[size_t(d)] : 0,
                             crop ? roi[size_t(d + r)] : 1);
    y = resize_axis(c, y, d, t, o.extrapolation);
  }
  return y;
}

Outs resize_op(OpContext& c) {
  Options o;
  o.mode = c.attr_string("mode", "nearest");
  c.check(o.mode == "nearest" || o.mode == "linear" || o.mode == "cubic", "mode '", o.mode, "' is not valid");
  std::vector<double> scales, roi;
  std::vector<int64_t> sizes;
  if (c.opset() < 11) {
    o.transform = "asymmetric";
    o.nearest_mode = "floor";
    scales = c.input_doubles(1);
  } else {
    o.transform = c.attr_string("coordinate_transformation_mode", "half_pixel");
    o.nearest_mode = c.attr_string("nearest_mode", "round_prefer_floor");
    o.cubic_a = c.attr_float("cubic_coeff_a", -0.75);
    o.exclude_outside = c.attr_int("exclude_outside", 0) != 0;
    o.extrapolation = c.attr_float("extrapolation_value", 0.0);
    if (c.has_input(1)) roi = c.input_doubles(1);
    if (c.has_input(2)) scales = c.input_doubles(2);
    if (c.has_input(3)) sizes = c.input_ints(3);
    if (!sizes.empty()) scales.clear();
  }
  return {resize(c, c.input(0), o, scales, sizes, roi)};
}

Outs upsample_op(OpContext& c) {
  Options o;
  o.mode = c.attr_string("mode", "nearest");
  c.check(o.mode == "nearest" || o.mode == "linear", "mode '", o.mode, "' is not valid");
  o.transform = "asymmetric";
  o.nearest_mode = "floor";
  std::vector<double> scales = c.opset() >= 9 ? c.input_doubles(1) : c.attr_floats("scales", {});
  return {resize(c, c.input(0), o, scales, {}, {})};
}

}  // namespace

void register_resize_ops() {
  register_op("Resize", resize_op);
  register_op("Upsample", upsample_op);
}

}  // namespace kiln::onnx::detail
