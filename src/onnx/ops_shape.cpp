// ONNX shape, indexing and tensor-making operators: views where kiln has them
// (reshape, permute, slice, expand), index_select/gather/cat otherwise.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "kiln/ops.h"
#include "src/onnx/op_context.h"
#include "src/onnx/tensor_proto.h"

namespace kiln::onnx::detail {

namespace {

using Outs = std::vector<Tensor>;

TensorOptions int64_on(Device d) { return TensorOptions(DType::Int64).device(d); }

// Negative indices count from the end (Gather, GatherElements, OneHot).
Tensor wrap_negative(const Tensor& idx, int64_t n) {
  const Tensor i = idx.to(DType::Int64);
  return where(lt(i, 0), add(i, n), i);
}

Outs reshape_op(OpContext& c) {
  const Tensor& x = c.input(0);
  std::vector<int64_t> shape = c.input_ints(1);
  const bool allowzero = c.attr_int("allowzero", 0) != 0;
  int64_t infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 0 && !allowzero) {
      c.check(int64_t(i) < x.dim(), "shape entry ", i, " is 0 (copy) but the input has rank ", x.dim());
      shape[i] = x.size(int64_t(i));
    } else if (shape[i] == -1) {
      c.check(infer < 0, "shape ", shape_str(shape), " has more than one -1");
      infer = int64_t(i);
    } else {
      c.check(shape[i] >= 0, "shape ", shape_str(shape), " has a negative size");
    }
  }
  return {x.reshape(shape)};
}

Outs flatten_op(OpContext& c) {
  const Tensor& x = c.input(0);
  const int64_t r = x.dim();
  int64_t axis = c.attr_int("axis", 1);
  c.check(axis >= -r && axis <= r, "axis ", axis, " is out of range for rank ", r);
  if (axis < 0) axis += r;
  const int64_t outer = numel_of(Shape(x.shape().begin(), x.shape().begin() + axis));
  const int64_t inner = numel_of(Shape(x.shape().begin() + axis, x.shape().end()));
  return {x.reshape({outer, inner})};
}

std::vector<int64_t> axes_attr_or_input(OpContext& c, size_t input, int64_t from_opset) {
  if (c.opset() >= from_opset) return c.has_input(input) ? c.input_ints(input) : std::vector<int64_t>{};
  return c.attr_ints("axes", {});
}

Outs squeeze_op(OpContext& c) {
  const Tensor& x = c.input(0);
  const auto axes = axes_attr_or_input(c, 1, 13);
  if (axes.empty()) return {x.squeeze()};
  std::vector<int64_t> dims;
  for (int64_t a : axes) dims.push_back(norm_axis(c, a, x.dim()));
  std::sort(dims.rbegin(), dims.rend());
  Tensor r = x;
  for (int64_t d : dims) {
    c.check(x.size(d) == 1, "cannot squeeze axis ", d, " of size ", x.size(d), " (shape ", shape_str(x.shape()), ")");
    r = r.squeeze(d);
  }
  return {r};
}

Outs unsqueeze_op(OpContext& c) {
  const Tensor& x = c.input(0);
  const auto axes = c.opset() >= 13 ? c.input_ints(1) : c.attr_ints("axes");
  const int64_t out_rank = x.dim() + int64_t(axes.size());
  std::vector<int64_t> dims;
  for (int64_t a : axes) dims.push_back(norm_axis(c, a, out_rank));
  std::sort(dims.begin(), dims.end());
  c.check(std::adjacent_find(dims.begin(), dims.end()) == dims.end(), "axes repeat an axis");
  Tensor r = x;
  for (int64_t d : dims) r = r.unsqueeze(d);
  return {r};
}

Outs transpose_op(OpContext& c) {
  const Tensor& x = c.input(0);
  std::vector<int64_t> perm(size_t(x.dim()));
  std::iota(perm.rbegin(), perm.rend(), 0);
  perm = c.attr_ints("perm", perm);
  c.check(int64_t(perm.size()) == x.dim(), "perm has ", perm.size(), " entries for rank ", x.dim());
  return {x.permute(perm)};
}

Outs concat_op(OpContext& c) {
  c.check(c.num_inputs() >= 1, "needs at least one input");
  const int64_t axis = norm_axis(c, c.attr_int("axis"), c.input(0).dim());
  std::vector<Tensor> parts;
  for (size_t i = 0; i < c.num_inputs(); ++i) parts.push_back(c.input(i));
  return {cat(parts, axis)};
}

Outs split_op(OpContext& c) {
  const Tensor& x = c.input(0);
  const int64_t axis = norm_axis(c, c.attr_int("axis", 0), x.dim());
  std::vector<int64_t> sizes = c.opset() >= 13 ? (c.has_input(1) ? c.input_ints(1) : std::vector<int64_t>{})
                                               : c.attr_ints("split", {});
  const int64_t n = int64_t(c.num_outputs());
  if (sizes.empty()) {
    c.check(x.size(axis) % n == 0, "axis ", axis, " of size ", x.size(axis), " does not split into ", n,
            " equal parts");
    sizes.assign(size_t(n), x.size(axis) / n);
  }
  c.check(int64_t(sizes.size()) == n, "split has ", sizes.size(), " sizes for ", n, " outputs");
  return split(x, sizes, axis);
}

// Elements start, start+step, ... before end along one axis (ONNX's clamping rules).
Tensor slice_axis(OpContext& c, const Tensor& x, int64_t axis, int64_t start, int64_t end, int64_t step) {
  c.check(step != 0, "step must be nonzero");
  const int64_t n = x.size(axis);
  if (start < 0) start += n;
  if (end < 0) end += n;
  if (step > 0) {
    start = std::clamp<int64_t>(start, 0, n);
    end = std::clamp<int64_t>(end, 0, n);
    if (end <= start) return x.narrow(axis, 0, 0);
    return x.slice(axis, start, end, step);
  }
  start = std::clamp<int64_t>(start, 0, n - 1);
  end = std::clamp<int64_t>(end, -1, n - 1);
  if (start <= end) return x.narrow(axis, 0, 0);
  const int64_t count = (start - end + (-step) - 1) / (-step);
  const Tensor idx = add(mul(arange(count, int64_on(x.device())), step), start);
  return index_select(x, axis, idx);
}

Outs slice_op(OpContext& c) {
  const Tensor& x = c.input(0);
  std::vector<int64_t> starts, ends, axes, steps;
  if (c.opset() < 10) {
    starts = c.attr_ints("starts");
    ends = c.attr_ints("ends");
    axes = c.attr_ints("axes", {});
  } else {
    starts = c.input_ints(1);
    ends = c.input_ints(2);
    if (c.has_input(3)) axes = c.input_ints(3);
    if (c.has_input(4)) steps = c.input_ints(4);
  }
  c.check(starts.size() == ends.size(), "starts and ends differ in length");
  if (axes.empty()) {
    axes.resize(starts.size());
    std::iota(axes.begin(), axes.end(), 0);
  }
  if (steps.empty()) steps.assign(starts.size(), 1);
  c.check(axes.size() == starts.size() && steps.size() == starts.size(), "starts, ends, axes and steps differ in length");
  Tensor r = x;
  for (size_t i = 0; i < axes.size(); ++i) {
    r = slice_axis(c, r, norm_axis(c, axes[i], x.dim()), starts[i], ends[i], steps[i]);
  }
  return {r};
}

Outs gather_op(OpContext& c) {
  const Tensor &x = c.input(0), &indices = c.input(1);
  const int64_t axis = norm_axis(c, c.attr_int("axis", 0), x.dim());
  const Tensor idx = wrap_negative(indices, x.size(axis)).reshape({-1});
  Shape out(x.shape().begin(), x.shape().begin() + axis);
  out.insert(out.end(), indices.shape().begin(), indices.shape().end());
  out.insert(out.end(), x.shape().begin() + axis + 1, x.shape().end());
  return {index_select(x, axis, idx).reshape(out)};
}

Outs gather_elements_op(OpContext& c) {
  const Tensor &x = c.input(0), &indices = c.input(1);
  const int64_t axis = norm_axis(c, c.attr_int("axis", 0), x.dim());
  return {gather(x, axis, wrap_negative(indices, x.size(axis)))};
}

Outs expand_op(OpContext& c) {
  const Tensor& x = c.input(0);
  const auto shape = c.input_ints(1);
  const Shape out = broadcast_shapes("Expand", x.shape(), shape);
  return {x.expand(out)};
}

Outs tile_op(OpContext& c) {
  const Tensor& x = c.input(0);
  const auto repeats = c.input_ints(1);
  c.check(int64_t(repeats.size()) == x.dim(), "repeats has ", repeats.size(), " entries for rank ", x.dim());
  Shape inter, expanded, out;
  for (int64_t d = 0; d < x.dim(); ++d) {
    c.check(repeats[size_t(d)] >= 0, "repeats must be non-negative");
    inter.insert(inter.end(), {1, x.size(d)});
    expanded.insert(expanded.end(), {repeats[size_t(d)], x.size(d)});
    out.push_back(repeats[size_t(d)] * x.size(d));
  }
  return {x.reshape(inter).expand(expanded).reshape(out)};
}

Outs shape_op(OpContext& c) {
  const Tensor& x = c.input(0);
  const int64_t r = x.dim();
  int64_t start = c.attr_int("start", 0), end = c.attr_int("end", r);
  if (start < 0) start += r;
  if (end < 0) end += r;
  start = std::clamp<int64_t>(start, 0, r);
  end = std::clamp<int64_t>(end, 0, r);
  std::vector<int64_t> dims;
  for (int64_t d = start; d < end; ++d) dims.push_back(x.size(d));
  return {c.make_ints(dims, {int64_t(dims.size())})};
}

Outs size_op(OpContext& c) { return {scalar_tensor(c.input(0).numel(), int64_on(c.device()))}; }

Outs constant_of_shape_op(OpContext& c) {
  const auto shape = c.input_ints(0);
  for (int64_t d : shape) c.check(d >= 0, "shape ", shape_str(shape), " has a negative size");
  Tensor value = c.has_attr("value") ? c.attr_tensor("value") : zeros({1});
  c.check(value.numel() == 1, "value must hold one element, got ", value.numel());
  return {full(shape, value.item(), TensorOptions(value.dtype()).device(c.device()))};
}

Outs range_op(OpContext& c) {
  const Tensor &s = c.input(0), &l = c.input(1), &d = c.input(2);
  const DType t = s.dtype();
  const double start = s.item<double>(), limit = l.item<double>(), delta = d.item<double>();
  c.check(delta != 0, "delta must be nonzero");
  const double count = std::ceil((limit - start) / delta);
  c.check(std::isfinite(count) && count < double(int64_t(1) << 40), "range of ", count, " elements is too large");
  const int64_t n = std::max<int64_t>(int64_t(count), 0);
  const Tensor steps = arange(n, TensorOptions(DType::Float64).device(c.device()));
  return {add(mul(steps, delta), start).to(t)};
}

// Pads one axis by before/after (negative: crop) in constant, reflect or edge mode.
Tensor pad_axis(OpContext& c, const Tensor& x, int64_t axis, int64_t before, int64_t after, const std::string& mode,
                const Tensor& value) {
  Tensor r = x;
  if (before < 0 || after < 0) {
    const int64_t b = std::max<int64_t>(-before, 0), a = std::max<int64_t>(-after, 0);
    c.check(b + a <= r.size(axis), "pads crop more than axis ", axis, " holds");
    r = r.narrow(axis, b, r.size(axis) - b - a);
    before = std::max<int64_t>(before, 0);
    after = std::max<int64_t>(after, 0);
  }
  if (before == 0 && after == 0) return r;
  const int64_t n = r.size(axis);
  if (mode == "constant") {
    auto block = [&](int64_t len) {
      Shape s = r.shape();
      s[size_t(axis)] = len;
      return value.to(r.dtype()).reshape({}).expand(s);
    };
    return cat({block(before), r, block(after)}, axis);
  }
  c.check(n > 0, mode, " padding of an empty axis ", axis);
  c.check(mode != "reflect" || (before < n && after < n), "reflect padding of ", before, "/", after,
          " needs more than ", n, " elements on axis ", axis);
  std::vector<int64_t> idx;
  for (int64_t i = -before; i < n + after; ++i) {
    int64_t j = i;
    if (mode == "edge") j = std::clamp<int64_t>(i, 0, n - 1);
    else if (i < 0) j = -i;
    else if (i >= n) j = 2 * (n - 1) - i;
    idx.push_back(j);
  }
  return index_select(r, axis, c.make_ints(idx, {int64_t(idx.size())}));
}

Outs pad_op(OpContext& c) {
  const Tensor& x = c.input(0);
  const std::string mode = c.attr_string("mode", "constant");
  c.check(mode == "constant" || mode == "reflect" || mode == "edge", "mode '", mode, "' is not supported");
  std::vector<int64_t> pads;
  Tensor value;
  if (c.opset() < 11) {
    pads = c.attr_ints("pads");
    value = c.scalar_like(c.attr_float("value", 0.0), x);
  } else {
    pads = c.input_ints(1);
    value = c.has_input(2) ? c.input(2) : zeros({}, TensorOptions(x.dtype()).device(x.device()));
  }
  c.check(int64_t(pads.size()) == 2 * x.dim(), "pads has ", pads.size(), " entries for rank ", x.dim());
  Tensor r = x;
  for (int64_t d = 0; d < x.dim(); ++d) r = pad_axis(c, r, d, pads[size_t(d)], pads[size_t(d + x.dim())], mode, value);
  return {r};
}

Outs one_hot_op(OpContext& c) {
  const Tensor &indices = c.input(0), &values = c.input(2);
  const Tensor& depth_t = c.input(1);
  c.check(depth_t.numel() == 1, "depth must be a scalar");
  const int64_t depth = int64_t(depth_t.item<double>());
  c.check(depth > 0, "depth must be positive, got ", depth);
  c.check(values.numel() == 2, "values must hold [off, on], got shape ", shape_str(values.shape()));
  const int64_t out_rank = indices.dim() + 1;
  const int64_t axis = norm_axis(c, c.attr_int("axis", -1), out_rank);
  const Tensor idx = wrap_negative(indices.to(DType::Float64).to(DType::Int64), depth).unsqueeze(axis);
  Shape class_shape(size_t(out_rank), 1);
  class_shape[size_t(axis)] = depth;
  const Tensor classes = arange(depth, int64_on(c.device())).reshape(class_shape);
  const Tensor v = values.reshape({2});
  return {where(eq(idx, classes), v.select(0, 1), v.select(0, 0))};
}

Outs eye_like_op(OpContext& c) {
  const Tensor& x = c.input(0);
  c.check(x.dim() == 2, "input must be 2-D, got shape ", shape_str(x.shape()));
  DType t = x.dtype();
  if (c.has_attr("dtype")) {
    const auto d = dtype_from_onnx(int32_t(c.attr_int("dtype")));
    c.check(d.has_value(), "dtype ", onnx_type_name(int32_t(c.attr_int("dtype"))), " is not supported by kiln");
    t = *d;
  }
  const int64_t k = c.attr_int("k", 0);
  const Tensor rows = add(arange(x.size(0), int64_on(c.device())), k).unsqueeze(1);
  const Tensor cols = arange(x.size(1), int64_on(c.device())).unsqueeze(0);
  return {eq(rows, cols).to(t)};
}

Outs trilu_op(OpContext& c) {
  const Tensor& x = c.input(0);
  c.check(x.dim() >= 2, "input must have rank >= 2, got ", shape_str(x.shape()));
  const int64_t k = c.has_input(1) ? c.input_ints(1).at(0) : 0;
  const bool upper = c.attr_int("upper", 1) != 0;
  const Tensor rows = arange(x.size(-2), int64_on(c.device())).unsqueeze(1);
  const Tensor cols = arange(x.size(-1), int64_on(c.device())).unsqueeze(0);
  const Tensor diff = sub(cols, rows);  // j - i
  const Tensor keep = upper ? ge(diff, k) : le(diff, k);
  return {where(keep, x, zeros({}, TensorOptions(x.dtype()).device(x.device())))};
}

Outs depth_to_space_op(OpContext& c) {
  const Tensor& x = c.input(0);
  c.check(x.dim() == 4, "input must be 4-D, got ", shape_str(x.shape()));
  const int64_t b = c.attr_int("blocksize");
  c.check(b > 0 && x.size(1) % (b * b) == 0, "channels ", x.size(1), " are not divisible by blocksize^2 (", b, ")");
  const int64_t n = x.size(0), ch = x.size(1) / (b * b), h = x.size(2), w = x.size(3);
  const bool crd = c.attr_string("mode", "DCR") == "CRD";
  const Tensor t = crd ? x.reshape({n, ch, b, b, h, w}).permute({0, 1, 4, 2, 5, 3})
                       : x.reshape({n, b, b, ch, h, w}).permute({0, 3, 4, 1, 5, 2});
  return {t.reshape({n, ch, h * b, w * b})};
}

Outs space_to_depth_op(OpContext& c) {
  const Tensor& x = c.input(0);
  c.check(x.dim() == 4, "input must be 4-D, got ", shape_str(x.shape()));
  const int64_t b = c.attr_int("blocksize");
  c.check(b > 0 && x.size(2) % b == 0 && x.size(3) % b == 0, "spatial size ", shape_str(x.shape()),
          " is not divisible by blocksize ", b);
  const int64_t n = x.size(0), ch = x.size(1), h = x.size(2) / b, w = x.size(3) / b;
  return {x.reshape({n, ch, h, b, w, b}).permute({0, 3, 5, 1, 2, 4}).reshape({n, ch * b * b, h, w})};
}

}  // namespace

void register_shape_ops() {
  register_op("Reshape", reshape_op, 5);
  register_op("Flatten", flatten_op);
  register_op("Squeeze", squeeze_op);
  register_op("Unsqueeze", unsqueeze_op);
  register_op("Transpose", transpose_op);
  register_op("Concat", concat_op);
  register_op("Split", split_op);
  register_op("Slice", slice_op);
  register_op("Gather", gather_op);
  register_op("GatherElements", gather_elements_op);
  register_op("Expand", expand_op);
  register_op("Tile", tile_op, 6);
  register_op("Shape", shape_op);
  register_op("Size", size_op);
  register_op("ConstantOfShape", constant_of_shape_op);
  register_op("Range", range_op);
  register_op("Pad", pad_op);
  register_op("OneHot", one_hot_op);
  register_op("EyeLike", eye_like_op);
  register_op("Trilu", trilu_op);
  register_op("DepthToSpace", depth_to_space_op);
  register_op("SpaceToDepth", space_to_depth_op);
}

}  // namespace kiln::onnx::detail
