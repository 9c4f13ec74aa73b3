// Front ends of the reductions: dims normalisation, keepdim shapes, PyTorch's dtype rules
// (integer and bool sums give int64; mean, var and std need a floating input), and the
// host-side whole-tensor comparisons allclose and equal.
#include <algorithm>
#include <cmath>
#include <string>

#include "kiln/op_attrs.h"
#include "src/autograd/record.h"
#include "src/core/ops/op_helpers.h"

namespace kiln {

namespace {
using detail::check_defined;
using detail::new_output;

std::string dims_str(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

// Sorted, wrapped dims; empty stays empty (every dim). A repeated dim is an error.
std::vector<int64_t> normalize_dims(const char* op, const Tensor& a, const std::vector<int64_t>& dims) {
  std::vector<int64_t> out;
  for (int64_t d : dims) {
    const int64_t n = normalize_dim(op, d, a.dim());
    KILN_CHECK(std::find(out.begin(), out.end(), n) == out.end(), op, "dim ", n, " appears more than once in ",
               dims_str(dims), " for input of shape ", shape_str(a.shape()));
    out.push_back(n);
  }
  std::sort(out.begin(), out.end());
  if (a.dim() == 0) out.clear();  // dim 0 / -1 of a 0-d tensor: its one element
  return out;
}

bool is_reduced(const std::vector<int64_t>& dims, int64_t d) {
  return dims.empty() || std::find(dims.begin(), dims.end(), d) != dims.end();
}

Shape reduced_shape(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
  Shape s;
  for (int64_t d = 0; d < a.dim(); ++d) {
    if (!is_reduced(dims, d)) s.push_back(a.size(d));
    else if (keepdim) s.push_back(1);
  }
  return s;
}

// max/min style reductions have no identity: every reduced dim must be non-empty.
void check_nonempty(const char* op, const Tensor& a, const std::vector<int64_t>& dims) {
  if (dims.empty()) {
    KILN_CHECK(a.numel() > 0, op, "cannot reduce an empty tensor of shape ", shape_str(a.shape()),
               " over every dim (no identity); pass a dim");
    return;
  }
  for (int64_t d : dims)
    KILN_CHECK(a.size(d) > 0, op, "expected reduction dim ", d, " to have non-zero size, input shape ",
               shape_str(a.shape()));
}

// Validates, allocates out (contiguous, keepdim shape) and dispatches op on a's contiguous data.
Tensor reduce(OpId op, const Tensor& a, const std::vector<int64_t>& dims_in, bool keepdim, DType out_dtype,
              int64_t correction = 1, const char* name = nullptr) {
  if (!name) name = op_name(op);
  check_defined(name, {&a});
  ReduceAttrs attrs{normalize_dims(name, a, dims_in), keepdim, correction};
  if (op == OpId::Amax || op == OpId::Amin) check_nonempty(name, a, attrs.dims);
  Tensor out = new_output(reduced_shape(a, attrs.dims, keepdim), out_dtype, a.device());
  const Tensor in[] = {a.contiguous()};
  Tensor outs[] = {out};
  dispatch(op, a.dtype(), in, outs, &attrs);
  autograd::record_reduce(op, out, a, attrs);
  return out;
}

void check_floating_reduce(const char* op, const Tensor& a) {
  check_defined(op, {&a});
  KILN_CHECK(is_floating(a.dtype()), op, "expected a floating input, got ", dtype_name(a.dtype()), " of shape ",
             shape_str(a.shape()), "; convert it with .to(kiln::DType::Float32) first");
}

// max/min over one dim: (values, int64 indices); argmax/argmin: indices only.
std::vector<Tensor> reduce_dim_with_index(OpId op, const Tensor& a, int64_t dim, bool keepdim, bool values) {
  const char* name = op_name(op);
  check_defined(name, {&a});
  ReduceAttrs attrs{normalize_dims(name, a, {dim}), keepdim, 0};
  check_nonempty(name, a, attrs.dims);
  const Shape shape = reduced_shape(a, attrs.dims, keepdim);
  std::vector<Tensor> outs;
  if (values) outs.push_back(new_output(shape, a.dtype(), a.device()));
  outs.push_back(new_output(shape, DType::Int64, a.device()));
  const Tensor in[] = {a.contiguous()};
  dispatch(op, a.dtype(), in, outs, &attrs);
  if (values)
    autograd::record_reduce_with_index(op, outs[0], outs[1], a, attrs.dims.empty() ? 0 : attrs.dims[0], keepdim);
  return outs;
}

Tensor arg_reduce(OpId op, const Tensor& a, std::optional<int64_t> dim, bool keepdim) {
  check_defined(op_name(op), {&a});
  if (dim || a.dim() == 0) return reduce_dim_with_index(op, a, dim.value_or(0), keepdim, false)[0];
  // Over the flattened tensor; keepdim gives every dim size 1.
  Tensor idx = reduce_dim_with_index(op, a.reshape({-1}), 0, keepdim, false)[0];
  return keepdim ? idx.reshape(Shape(size_t(a.dim()), 1)) : idx;
}
}  // namespace

Tensor sum(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
  check_defined("sum", {&a});
  return reduce(OpId::Sum, a, dims, keepdim, is_floating(a.dtype()) ? a.dtype() : DType::Int64);
}

Tensor mean(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
  check_floating_reduce("mean", a);
  return reduce(OpId::Mean, a, dims, keepdim, a.dtype());
}

Tensor amax(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
  check_defined("amax", {&a});
  return reduce(OpId::Amax, a, dims, keepdim, a.dtype());
}

Tensor amin(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
  check_defined("amin", {&a});
  return reduce(OpId::Amin, a, dims, keepdim, a.dtype());
}

Tensor max(const Tensor& a) {
  check_defined("max", {&a});
  KILN_CHECK(a.numel() > 0, "max", "cannot take the max of an empty tensor of shape ", shape_str(a.shape()),
             "; pass a dim");
  return amax(a);
}

Tensor min(const Tensor& a) {
  check_defined("min", {&a});
  KILN_CHECK(a.numel() > 0, "min", "cannot take the min of an empty tensor of shape ", shape_str(a.shape()),
             "; pass a dim");
  return amin(a);
}

std::pair<Tensor, Tensor> max(const Tensor& a, int64_t dim, bool keepdim) {
  auto r = reduce_dim_with_index(OpId::MaxDim, a, dim, keepdim, true);
  return {r[0], r[1]};
}

std::pair<Tensor, Tensor> min(const Tensor& a, int64_t dim, bool keepdim) {
  auto r = reduce_dim_with_index(OpId::MinDim, a, dim, keepdim, true);
  return {r[0], r[1]};
}

Tensor argmax(const Tensor& a, std::optional<int64_t> dim, bool keepdim) {
  return arg_reduce(OpId::Argmax, a, dim, keepdim);
}

Tensor argmin(const Tensor& a, std::optional<int64_t> dim, bool keepdim) {
  return arg_reduce(OpId::Argmin, a, dim, keepdim);
}

Tensor var(const Tensor& a, const std::vector<int64_t>& dims, bool unbiased, bool keepdim) {
  check_floating_reduce("var", a);
  return reduce(OpId::Var, a, dims, keepdim, a.dtype(), unbiased ? 1 : 0);
}

Tensor std(const Tensor& a, const std::vector<int64_t>& dims, bool unbiased, bool keepdim) {
  check_floating_reduce("std", a);
  return sqrt(reduce(OpId::Var, a, dims, keepdim, a.dtype(), unbiased ? 1 : 0, "std"));
}

// ---- whole-tensor comparisons, answered on the host
namespace {
// Both tensors as contiguous CPU tensors of their promoted dtype.
std::pair<Tensor, Tensor> host_pair(const char* op, const Tensor& a, const Tensor& b) {
  check_defined(op, {&a, &b});
  detail::common_device(op, {&a, &b});
  const DType dt = promote_types(a.dtype(), b.dtype());
  return {a.to(kCpu, dt).contiguous(), b.to(kCpu, dt).contiguous()};
}
}  // namespace

bool equal(const Tensor& a, const Tensor& b) {
  check_defined("equal", {&a, &b});
  if (a.shape() != b.shape()) return false;
  // Not a structured binding: clang 14 cannot capture those in the lambda below.
  const std::pair<Tensor, Tensor> xy = host_pair("equal", a, b);
  const Tensor& x = xy.first;
  const Tensor& y = xy.second;
  return KILN_DISPATCH_DTYPE(x.dtype(), "equal", [&]<typename T>() {
    const T* p = static_cast<const T*>(x.data_ptr());
    const T* q = static_cast<const T*>(y.data_ptr());
    for (int64_t i = 0; i < x.numel(); ++i)
      if (!(compute_t<T>(p[i]) == compute_t<T>(q[i]))) return false;
    return true;
  });
}

bool allclose(const Tensor& a, const Tensor& b, double rtol, double atol) {
  check_defined("allclose", {&a, &b});
  KILN_CHECK(rtol >= 0 && atol >= 0, "allclose", "rtol and atol must be non-negative, got ", rtol, " and ", atol);
  const Shape shape = broadcast_shapes("allclose", a.shape(), b.shape());
  auto [x0, y0] = host_pair("allclose", a, b);
  const Tensor x = x0.expand(shape).contiguous(), y = y0.expand(shape).contiguous();
  return KILN_DISPATCH_DTYPE(x.dtype(), "allclose", [&]<typename T>() {
    const T* p = static_cast<const T*>(x.data_ptr());
    const T* q = static_cast<const T*>(y.data_ptr());
    for (int64_t i = 0; i < x.numel(); ++i) {
      const double u = double(compute_t<T>(p[i])), v = double(compute_t<T>(q[i]));
      if (u == v) continue;  // also equal infinities
      if (std::isinf(u) || std::isinf(v)) return false;
      if (!(std::fabs(u - v) <= atol + rtol * std::fabs(v))) return false;  // NaN is never close
    }
    return true;
  });
}

// ---- Tensor methods of this family
Tensor Tensor::sum() const { return kiln::sum(*this); }
Tensor Tensor::sum(const std::vector<int64_t>& dims, bool keepdim) const { return kiln::sum(*this, dims, keepdim); }
Tensor Tensor::mean() const { return kiln::mean(*this); }
Tensor Tensor::mean(const std::vector<int64_t>& dims, bool keepdim) const {
  return kiln::mean(*this, dims, keepdim);
}
Tensor Tensor::max() const { return kiln::max(*this); }
Tensor Tensor::min() const { return kiln::min(*this); }
Tensor Tensor::argmax() const { return kiln::argmax(*this); }
Tensor Tensor::argmax(int64_t dim, bool keepdim) const { return kiln::argmax(*this, dim, keepdim); }

}  // namespace kiln
