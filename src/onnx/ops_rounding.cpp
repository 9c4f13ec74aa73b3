// Floor, Ceil, Round, Mod and Shrink from kiln's existing ops. Truncation is a cast to
// int64 and back for |x| < 2^52 (larger floats are already integers; NaN and infinities
// pass through), floor and ceil correct it by one, Round breaks ties to even.
#include "kiln/ops.h"
#include "src/onnx/op_context.h"

namespace kiln::onnx::detail {

namespace {

using Outs = std::vector<Tensor>;

Tensor trunc_(const Tensor& x) {
  const Tensor t = x.to(DType::Int64).to(x.dtype());
  return where(lt(abs(x), 4503599627370496.0), t, x);  // 2^52
}
Tensor floor_(const Tensor& x) {
  const Tensor t = trunc_(x);
  return sub(t, gt(t, x).to(x.dtype()));
}
Tensor ceil_(const Tensor& x) {
  const Tensor t = trunc_(x);
  return add(t, lt(t, x).to(x.dtype()));
}
Tensor round_even(const Tensor& x) {
  const Tensor f = floor_(x), d = sub(x, f);
  const Tensor odd = eq(sub(f, mul(floor_(mul(f, 0.5)), 2.0)), 1.0);
  const Tensor up = logical_or(gt(d, 0.5), logical_and(eq(d, 0.5), odd));
  return add(f, up.to(x.dtype()));
}

template <Tensor (*F)(const Tensor&)>
Outs rounding(OpContext& c) {
  const Tensor& x = c.input(0);
  c.check(is_floating(x.dtype()), "input must be floating, got ", dtype_name(x.dtype()));
  return {F(x)};
}

// fmod=1: the remainder has the dividend's sign (C's fmod); fmod=0: the divisor's (Python's %).
Outs mod_op(OpContext& c) {
  const Tensor &a = c.input(0), &b = c.input(1);
  const bool fmod = c.attr_int("fmod", 0) != 0;
  c.check(fmod || !is_floating(a.dtype()), "fmod=0 needs integer inputs");
  c.check(is_floating(a.dtype()) || !any_zero(b), "integer modulo by zero");
  const Tensor a64 = a.to(DType::Float64), b64 = b.to(DType::Float64);
  const Tensor q = div(a64, b64);
  return {sub(a64, mul(fmod ? trunc_(q) : floor_(q), b64)).to(promote_types(a.dtype(), b.dtype()))};
}

Outs shrink_op(OpContext& c) {
  const Tensor& x = c.input(0);
  const double lambd = c.attr_float("lambd", 0.5), bias = c.attr_float("bias", 0.0);
  const Tensor zero = zeros({}, TensorOptions(x.dtype()).device(x.device()));
  const Tensor xd = x.to(DType::Float64);
  const Tensor y = where(lt(xd, -lambd), add(xd, bias), where(gt(xd, lambd), sub(xd, bias), zero.to(DType::Float64)));
  return {y.to(x.dtype())};
}

}  // namespace

void register_rounding_ops() {
  register_op("Floor", rounding<floor_>);
  register_op("Ceil", rounding<ceil_>);
  register_op("Round", rounding<round_even>);
  register_op("Mod", mod_op);
  register_op("Shrink", shrink_op);
}

}  // namespace kiln::onnx::detail
