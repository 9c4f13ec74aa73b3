// ONNX reductions and arg-reductions. Axes come from an attribute, or (ReduceSum from
// opset 13) from an optional input; no axes means every axis unless noop_with_empty_axes.
#include <algorithm>
#include <cmath>
#include <limits>

#include "kiln/ops.h"
#include "src/onnx/op_context.h"

namespace kiln::onnx::detail {

namespace {

using Outs = std::vector<Tensor>;

struct Axes {
  std::vector<int64_t> dims;  // normalised, sorted, unique
  bool noop = false;          // empty axes with noop_with_empty_axes: the input unchanged
};

Axes reduce_axes(OpContext& c, bool axes_from_input) {
  const Tensor& x = c.input(0);
  std::vector<int64_t> raw;
  if (axes_from_input) {
    if (c.has_input(1)) raw = c.input_ints(1);
  } else {
    raw = c.attr_ints("axes", {});
  }
  Axes a;
  if (raw.empty()) {
    if (c.attr_int("noop_with_empty_axes", 0) != 0) {
      a.noop = true;
      return a;
    }
    for (int64_t d = 0; d < x.dim(); ++d) a.dims.push_back(d);
    return a;
  }
  for (int64_t d : raw) a.dims.push_back(norm_axis(c, d, x.dim()));
  std::sort(a.dims.begin(), a.dims.end());
  c.check(std::adjacent_find(a.dims.begin(), a.dims.end()) == a.dims.end(), "axes repeat an axis");
  return a;
}

Tensor sum_(const Tensor& x, const std::vector<int64_t>& d, bool k) { return sum(x, d, k); }
Tensor mean_(const Tensor& x, const std::vector<int64_t>& d, bool k) { return mean(x, d, k); }
Tensor amax_(const Tensor& x, const std::vector<int64_t>& d, bool k) { return amax(x, d, k); }
Tensor amin_(const Tensor& x, const std::vector<int64_t>& d, bool k) { return amin(x, d, k); }
Tensor l1_(const Tensor& x, const std::vector<int64_t>& d, bool k) { return sum(abs(x), d, k); }
Tensor l2_(const Tensor& x, const std::vector<int64_t>& d, bool k) {
  return sqrt(sum(mul(x, x), d, k).to(is_floating(x.dtype()) ? x.dtype() : DType::Float64));
}
Tensor sum_square_(const Tensor& x, const std::vector<int64_t>& d, bool k) { return sum(mul(x, x), d, k); }
Tensor log_sum_(const Tensor& x, const std::vector<int64_t>& d, bool k) { return log(sum(x, d, k)); }
Tensor log_sum_exp_(const Tensor& x, const std::vector<int64_t>& d, bool k) {
  // m + log(sum(exp(x - m))) with m the max: no overflow
  const Tensor m = amax(x, d, true);
  const Tensor finite_m = where(eq(abs(m), std::numeric_limits<double>::infinity()), zeros_like(m), m);
  Tensor r = add(log(sum(exp(sub(x, finite_m)), d, true)), finite_m);
  if (!k) {
    for (auto it = d.rbegin(); it != d.rend(); ++it) r = r.squeeze(*it);
  }
  return r;
}

// f(x, dims, keepdim), with the output cast back to x's type (kiln sums integers to int64).
template <Tensor (*F)(const Tensor&, const std::vector<int64_t>&, bool), bool AxesInputFrom13 = false>
Outs reduce(OpContext& c) {
  const Tensor& x = c.input(0);
  const Axes a = reduce_axes(c, AxesInputFrom13 && c.opset() >= 13);
  if (a.noop) return {x};
  const bool keep = c.attr_int("keepdims", 1) != 0;
  if (x.dim() == 0) return {F(x.reshape({1}), {0}, false).reshape({}).to(x.dtype())};
  return {F(x, a.dims, keep).to(x.dtype())};
}

// ArgMax/ArgMin along one axis; select_last_index picks the last of equal extremes
// (computed on the reversed axis).
template <bool Max>
Outs arg_reduce(OpContext& c) {
  const Tensor& x = c.input(0);
  const int64_t axis = norm_axis(c, c.attr_int("axis", 0), x.dim());
  const bool keep = c.attr_int("keepdims", 1) != 0;
  const bool last = c.attr_int("select_last_index", 0) != 0;
  c.check(x.dim() == 0 || x.size(axis) > 0, "cannot reduce the empty axis ", axis);
  if (!last) return {Max ? argmax(x, axis, keep) : argmin(x, axis, keep)};
  const int64_t n = x.size(axis);
  const Tensor rev_idx = arange(n - 1, -1, -1, TensorOptions(DType::Int64).device(x.device()));
  const Tensor rev = index_select(x, axis, rev_idx);
  const Tensor i = Max ? argmax(rev, axis, keep) : argmin(rev, axis, keep);
  return {sub(full_like(i, n - 1), i)};
}

}  // namespace

void register_reduce_ops() {
  register_op("ReduceSum", reduce<sum_, true>);
  register_op("ReduceMean", reduce<mean_>);
  register_op("ReduceMax", reduce<amax_>);
  register_op("ReduceMin", reduce<amin_>);
  register_op("ReduceL1", reduce<l1_>);
  register_op("ReduceL2", reduce<l2_>);
  register_op("ReduceSumSquare", reduce<sum_square_>);
  register_op("ReduceLogSum", reduce<log_sum_>);
  register_op("ReduceLogSumExp", reduce<log_sum_exp_>);
  register_op("ArgMax", arg_reduce<true>);
  register_op("ArgMin", arg_reduce<false>);
}

}  // namespace kiln::onnx::detail
