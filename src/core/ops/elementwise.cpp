// Front ends of the elementwise ops: type promotion, broadcasting, output allocation
// (in the layout PyTorch gives: channels-last operands give channels-last results).
#include <string>

#include "kiln/op_attrs.h"
#include "src/autograd/record.h"
#include "src/core/ops/op_helpers.h"

namespace kiln {

namespace {
using detail::check_defined;
using detail::common_device;
using detail::wrap_scalar;

enum class Result { Promote, Float, Bool };  // how the result dtype follows the inputs

bool has_broadcast_dim(const Tensor& t) {
  for (int64_t d = 0; d < t.dim(); ++d)
    if (t.stride(d) == 0 && t.size(d) > 1) return true;
  return false;
}

// The result's layout: that of the first operand with the result's shape that is not
// itself a broadcast (stride-0) view. PyTorch's TensorIterator agrees in the common
// cases: x_cl + bias, relu(x_cl), x_cl * x_cl, ones.expand(...) * x_cl.
MemoryFormat result_format(const Shape& shape, std::initializer_list<const Tensor*> operands) {
  if (shape.size() != 4) return MemoryFormat::Contiguous;
  for (const Tensor* t : operands)
    if (t->shape() == shape && !has_broadcast_dim(*t)) return t->suggest_memory_format();
  return MemoryFormat::Contiguous;
}

// What the kernels get: for a channels-last result, every operand viewed as [N, H, W, C],
// in which the result is contiguous (the kernels' fast path) and the others keep their strides.
Tensor kernel_view(const Tensor& t, MemoryFormat fmt) {
  return fmt == MemoryFormat::ChannelsLast ? t.detach().permute({0, 2, 3, 1}) : t;
}

// t broadcast to shape; t itself when it already has it (no view to build: the common
// case, and most of a small op's host cost).
Tensor broadcast_to(const Tensor& t, const Shape& shape) { return t.shape() == shape ? t : t.expand(shape); }

// In-place ops write a where it is: a dense channels-last destination goes to the
// kernels as its (contiguous) [N, H, W, C] view too.
MemoryFormat inplace_format(const Tensor& a) {
  return a.dim() == 4 && a.suggest_memory_format() == MemoryFormat::ChannelsLast && a.is_non_overlapping_and_dense()
             ? MemoryFormat::ChannelsLast
             : MemoryFormat::Contiguous;
}

DType result_dtype(Result r, DType computed) {
  switch (r) {
    case Result::Promote: return computed;
    case Result::Float: return is_floating(computed) ? computed : DType::Float32;
    case Result::Bool: return DType::Bool;
  }
  return computed;
}

// Add and Sub take alpha (ScalarAttrs, ops.def); the other binary ops no attributes.
void dispatch_binary(OpId op, DType key, std::span<const Tensor> in, std::span<Tensor> out, Scalar alpha) {
  if (op_schema(op).attrs == AttrsKind::ScalarAttrs) {
    const ScalarAttrs attrs{alpha};
    dispatch(op, key, in, out, &attrs);
  } else {
    dispatch(op, key, in, out);
  }
}

// out = op(a, b) with broadcasting; inputs are cast to the computation dtype first.
Tensor binary(OpId op, const Tensor& a, const Tensor& b, Result r, Scalar alpha = 1) {
  const char* name = op_name(op);
  const OpNameScope scope(name);  // allocation and conversion errors name this op
  check_defined(name, {&a, &b});
  const Device dev = common_device(name, {&a, &b});
  const Shape shape = broadcast_shapes(name, a.shape(), b.shape());
  DType compute = promote_types(a.dtype(), b.dtype());
  if (r == Result::Float) compute = result_dtype(Result::Float, compute);
  if (op == OpId::Sub) KILN_CHECK(compute != DType::Bool, name, "subtracting bool tensors is not supported");
  const MemoryFormat fmt = result_format(shape, {&a, &b});
  Tensor out = empty(shape, TensorOptions(result_dtype(r, compute)).device(dev), fmt);
  const Tensor in[] = {kernel_view(broadcast_to(a.to(compute), shape), fmt), kernel_view(broadcast_to(b.to(compute), shape), fmt)};
  Tensor outs[] = {kernel_view(out, fmt)};
  dispatch_binary(op, compute, in, outs, alpha);
  autograd::record_binary(op, out, a, b, alpha);
  return out;
}

// a = op(a, b) in place: b broadcasts to a's shape and is cast to a's dtype.
Tensor& binary_(OpId op, Tensor& a, const Tensor& b, Scalar alpha = 1) {
  const char* name = op_name(op);
  const std::string user_name = std::string(name) + "_";  // errors name add_, not add
  const OpNameScope scope(user_name.c_str());
  check_defined(name, {&a, &b});
  common_device(name, {&a, &b});
  KILN_CHECK(broadcast_shapes(name, a.shape(), b.shape()) == a.shape(), name, "in-place result of shape ",
             shape_str(broadcast_shapes(name, a.shape(), b.shape())), " does not fit the destination of shape ",
             shape_str(a.shape()));
  const DType promoted = promote_types(a.dtype(), b.dtype());
  KILN_CHECK(is_floating(a.dtype()) || !is_floating(promoted), name, "result type ", dtype_name(promoted),
             " can't be cast to the destination dtype ", dtype_name(a.dtype()));
  KILN_CHECK(op != OpId::Div || is_floating(a.dtype()), name, "true division can't write into ",
             dtype_name(a.dtype()), "; the result is floating");
  if (autograd::inplace_through_autograd(name, a, {&b}, [&](const Tensor& old) {
        return binary(op, old, b, op == OpId::Div ? Result::Float : Result::Promote, alpha);
      }, /*needs_old_value=*/op != OpId::Add && op != OpId::Sub))
    return a;
  const MemoryFormat fmt = inplace_format(a);
  const Tensor in[] = {kernel_view(a, fmt), kernel_view(broadcast_to(b.to(a.dtype()), a.shape()), fmt)};
  Tensor outs[] = {kernel_view(a, fmt)};
  dispatch_binary(op, a.dtype(), in, outs, alpha);
  a.storage()->bump_version();
  return a;
}

Tensor unary(OpId op, const Tensor& a, Result r, const ClampAttrs* attrs = nullptr) {
  const char* name = op_name(op);
  const OpNameScope scope(name);
  check_defined(name, {&a});
  const DType compute = result_dtype(r, a.dtype());
  const MemoryFormat fmt = result_format(a.shape(), {&a});
  Tensor out = empty(a.shape(), TensorOptions(compute).device(a.device()), fmt);
  const Tensor in[] = {kernel_view(a.to(compute), fmt)};
  Tensor outs[] = {kernel_view(out, fmt)};
  if (attrs) dispatch(op, compute, in, outs, attrs);
  else dispatch(op, compute, in, outs);
  autograd::record_unary(op, out, a, attrs);
  return out;
}

ClampAttrs clamp_attrs(std::optional<Scalar> lo, std::optional<Scalar> hi) {
  KILN_CHECK(lo || hi, "clamp", "at least one of min and max must be given");
  return ClampAttrs{lo.has_value(), hi.has_value(), lo ? lo->to_double() : 0.0, hi ? hi->to_double() : 0.0};
}

// PyTorch's clamp: the bounds take part in type promotion like Python numbers, so float
// bounds make an integer tensor's result float32 (and an in-place clamp of it an error),
// and each bound must fit the result dtype.
DType clamp_result_dtype(const Tensor& a, std::optional<Scalar> lo, std::optional<Scalar> hi) {
  DType dt = a.dtype();
  for (const auto& b : {lo, hi}) {
    if (!b || is_floating(dt)) continue;
    if (b->is_floating()) dt = DType::Float32;
    else if (b->is_integral() && dt == DType::Bool) dt = DType::Int64;
  }
  for (const auto& b : {lo, hi})
    KILN_CHECK(!b || b->fits(dt), "clamp", "bound ", b->to_double(), " cannot be converted to ", dtype_name(dt),
               " without overflow");
  return dt;
}
}  // namespace

Tensor add(const Tensor& a, const Tensor& b, Scalar alpha) { return binary(OpId::Add, a, b, Result::Promote, alpha); }
Tensor sub(const Tensor& a, const Tensor& b, Scalar alpha) { return binary(OpId::Sub, a, b, Result::Promote, alpha); }
Tensor mul(const Tensor& a, const Tensor& b) { return binary(OpId::Mul, a, b, Result::Promote); }
Tensor div(const Tensor& a, const Tensor& b) { return binary(OpId::Div, a, b, Result::Float); }
Tensor pow(const Tensor& a, const Tensor& b) { return binary(OpId::Pow, a, b, Result::Promote); }
Tensor maximum(const Tensor& a, const Tensor& b) { return binary(OpId::Maximum, a, b, Result::Promote); }
Tensor minimum(const Tensor& a, const Tensor& b) { return binary(OpId::Minimum, a, b, Result::Promote); }
Tensor eq(const Tensor& a, const Tensor& b) { return binary(OpId::Eq, a, b, Result::Bool); }
Tensor ne(const Tensor& a, const Tensor& b) { return binary(OpId::Ne, a, b, Result::Bool); }
Tensor lt(const Tensor& a, const Tensor& b) { return binary(OpId::Lt, a, b, Result::Bool); }
Tensor le(const Tensor& a, const Tensor& b) { return binary(OpId::Le, a, b, Result::Bool); }
Tensor gt(const Tensor& a, const Tensor& b) { return binary(OpId::Gt, a, b, Result::Bool); }
Tensor ge(const Tensor& a, const Tensor& b) { return binary(OpId::Ge, a, b, Result::Bool); }
Tensor logical_and(const Tensor& a, const Tensor& b) { return binary(OpId::LogicalAnd, a, b, Result::Bool); }
Tensor logical_or(const Tensor& a, const Tensor& b) { return binary(OpId::LogicalOr, a, b, Result::Bool); }

Tensor add(const Tensor& a, Scalar b) { return add(a, wrap_scalar(a, b)); }
Tensor sub(const Tensor& a, Scalar b) { return sub(a, wrap_scalar(a, b)); }
Tensor mul(const Tensor& a, Scalar b) { return mul(a, wrap_scalar(a, b)); }
Tensor div(const Tensor& a, Scalar b) { return div(a, wrap_scalar(a, b)); }
Tensor pow(const Tensor& a, Scalar e) {
  KILN_CHECK(is_floating(a.dtype()) || e.is_floating() || e.to_int() >= 0, "pow",
             "Integers to negative integer powers are not allowed (", dtype_name(a.dtype()), " tensor of shape ",
             shape_str(a.shape()), ", exponent ", e.to_int(), ")");
  return pow(a, wrap_scalar(a, e));
}
Tensor eq(const Tensor& a, Scalar b) { return eq(a, wrap_scalar(a, b)); }
Tensor ne(const Tensor& a, Scalar b) { return ne(a, wrap_scalar(a, b)); }
Tensor lt(const Tensor& a, Scalar b) { return lt(a, wrap_scalar(a, b)); }
Tensor le(const Tensor& a, Scalar b) { return le(a, wrap_scalar(a, b)); }
Tensor gt(const Tensor& a, Scalar b) { return gt(a, wrap_scalar(a, b)); }
Tensor ge(const Tensor& a, Scalar b) { return ge(a, wrap_scalar(a, b)); }

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  check_defined("where", {&cond, &a, &b});
  const Device dev = common_device("where", {&cond, &a, &b});
  KILN_CHECK(cond.dtype() == DType::Bool, "where", "condition must be bool, got ", dtype_name(cond.dtype()));
  const Shape shape = broadcast_shapes("where", cond.shape(), broadcast_shapes("where", a.shape(), b.shape()));
  const DType dt = promote_types(a.dtype(), b.dtype());
  const MemoryFormat fmt = result_format(shape, {&cond, &a, &b});
  Tensor out = empty(shape, TensorOptions(dt).device(dev), fmt);
  const Tensor in[] = {kernel_view(broadcast_to(cond, shape), fmt), kernel_view(broadcast_to(a.to(dt), shape), fmt),
                       kernel_view(broadcast_to(b.to(dt), shape), fmt)};
  Tensor outs[] = {kernel_view(out, fmt)};
  dispatch(OpId::Where, dt, in, outs);
  autograd::record_where(out, cond, a, b);
  return out;
}

Tensor neg(const Tensor& a) {
  KILN_CHECK(a.dtype() != DType::Bool, "neg", "negation of a bool tensor is not supported; use logical_not");
  return unary(OpId::Neg, a, Result::Promote);
}
Tensor abs(const Tensor& a) { return unary(OpId::Abs, a, Result::Promote); }
Tensor sign(const Tensor& a) { return unary(OpId::Sign, a, Result::Promote); }
Tensor logical_not(const Tensor& a) { return unary(OpId::LogicalNot, a.to(DType::Bool), Result::Bool); }
Tensor exp(const Tensor& a) { return unary(OpId::Exp, a, Result::Float); }
Tensor log(const Tensor& a) { return unary(OpId::Log, a, Result::Float); }
Tensor sqrt(const Tensor& a) { return unary(OpId::Sqrt, a, Result::Float); }
Tensor rsqrt(const Tensor& a) { return unary(OpId::Rsqrt, a, Result::Float); }
Tensor reciprocal(const Tensor& a) { return unary(OpId::Reciprocal, a, Result::Float); }
Tensor sin(const Tensor& a) { return unary(OpId::Sin, a, Result::Float); }
Tensor cos(const Tensor& a) { return unary(OpId::Cos, a, Result::Float); }
Tensor tanh(const Tensor& a) { return unary(OpId::Tanh, a, Result::Float); }
Tensor sigmoid(const Tensor& a) { return unary(OpId::Sigmoid, a, Result::Float); }
Tensor relu(const Tensor& a) {
  KILN_CHECK(a.dtype() != DType::Bool, "relu", "not supported for bool tensors");
  return unary(OpId::Relu, a, Result::Promote);
}
Tensor silu(const Tensor& a) { return unary(OpId::Silu, a, Result::Float); }
Tensor gelu(const Tensor& a, const std::string& approximate) {
  KILN_CHECK(approximate == "none" || approximate == "tanh", "gelu", "approximate must be 'none' or 'tanh', got '",
             approximate, "'");
  return unary(approximate == "tanh" ? OpId::GeluTanh : OpId::Gelu, a, Result::Float);
}
Tensor clamp(const Tensor& a, std::optional<Scalar> lo, std::optional<Scalar> hi) {
  const ClampAttrs attrs = clamp_attrs(lo, hi);
  const DType dt = clamp_result_dtype(a, lo, hi);
  return unary(OpId::Clamp, dt == a.dtype() ? a : a.to(dt), Result::Promote, &attrs);
}
Tensor square(const Tensor& a) { return mul(a, a); }

Tensor& add_(Tensor& a, const Tensor& b, Scalar alpha) { return binary_(OpId::Add, a, b, alpha); }
Tensor& sub_(Tensor& a, const Tensor& b, Scalar alpha) { return binary_(OpId::Sub, a, b, alpha); }
Tensor& mul_(Tensor& a, const Tensor& b) { return binary_(OpId::Mul, a, b); }
Tensor& div_(Tensor& a, const Tensor& b) { return binary_(OpId::Div, a, b); }
Tensor& add_(Tensor& a, Scalar b) { return add_(a, wrap_scalar(a, b)); }
Tensor& mul_(Tensor& a, Scalar b) { return mul_(a, wrap_scalar(a, b)); }
Tensor& div_(Tensor& a, Scalar b) { return div_(a, wrap_scalar(a, b)); }
Tensor& clamp_(Tensor& a, std::optional<Scalar> lo, std::optional<Scalar> hi) {
  const OpNameScope scope("clamp_");
  const ClampAttrs attrs = clamp_attrs(lo, hi);
  const DType dt = clamp_result_dtype(a, lo, hi);
  KILN_CHECK(dt == a.dtype(), "clamp_", "result type ", dtype_name(dt), " can't be cast to the desired inplace ",
             "output type ", dtype_name(a.dtype()), " (tensor of shape ", shape_str(a.shape()), ")");
  if (autograd::inplace_through_autograd("clamp_", a, {}, [&](const Tensor& old) { return clamp(old, lo, hi); }))
    return a;
  const MemoryFormat fmt = inplace_format(a);
  const Tensor in[] = {kernel_view(a, fmt)};
  Tensor outs[] = {kernel_view(a, fmt)};
  dispatch(OpId::Clamp, a.dtype(), in, outs, &attrs);
  a.storage()->bump_version();
  return a;
}
Tensor& relu_(Tensor& a) {
  const OpNameScope scope("relu_");
  if (autograd::inplace_through_autograd("relu_", a, {}, [](const Tensor& old) { return relu(old); })) return a;
  const MemoryFormat fmt = inplace_format(a);
  const Tensor in[] = {kernel_view(a, fmt)};
  Tensor outs[] = {kernel_view(a, fmt)};
  dispatch(OpId::Relu, a.dtype(), in, outs);
  a.storage()->bump_version();
  return a;
}

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator+(const Tensor& a, Scalar b) { return add(a, b); }
Tensor operator-(const Tensor& a, Scalar b) { return sub(a, b); }
Tensor operator*(const Tensor& a, Scalar b) { return mul(a, b); }
Tensor operator/(const Tensor& a, Scalar b) { return div(a, b); }
Tensor operator*(Scalar a, const Tensor& b) { return mul(b, a); }
Tensor operator-(const Tensor& a) { return neg(a); }

}  // namespace kiln
