#pragma once
// Each elementwise op's math, written once for every backend (expr.h): f is the value;
// ops whose gradient rule is Math (ops.def) also give dx (and dy for binary ops), the
// derivative of f by each operand, from which the backward kernels are generated
// (grad_x = grad * dx). Operands: x (and y); parameters p<0>, p<1> come from the op's
// attributes (params_of below). Compare ops give a predicate (bool result).
#include <limits>

#include "kiln/dispatch.h"
#include "src/backend/pointwise/expr.h"

namespace kiln::pw {

template <OpId Op> struct Math;  // no definition: the op is not elementwise math

#define KILN_MATH(Op, ...) \
  template <> struct Math<OpId::Op> { static constexpr auto f = __VA_ARGS__; };
#define KILN_MATH_GRAD(Op, F, DX) \
  template <> struct Math<OpId::Op> { static constexpr auto f = F; static constexpr auto dx = DX; };
#define KILN_MATH_GRAD2(Op, F, DX, DY) \
  template <> struct Math<OpId::Op> { \
    static constexpr auto f = F; static constexpr auto dx = DX; static constexpr auto dy = DY; };

inline constexpr double kSqrt1_2 = 0.70710678118654752440;   // 1/sqrt(2)
inline constexpr double kInvSqrt2Pi = 0.39894228040143267794;  // 1/sqrt(2 pi)
inline constexpr double k2InvSqrtPi = 1.12837916709551257390;  // 2/sqrt(pi)
inline constexpr double kSqrt2OverPi = 0.79788456080286535588;
inline constexpr auto zero = KILN_C(0.0);
inline constexpr auto one = KILN_C(1.0);

// ---- binary arithmetic (Add/Sub: p0 = alpha) ----
KILN_MATH(Add, x + p<0> * y)
KILN_MATH(Sub, x - p<0> * y)
KILN_MATH(Mul, x * y)
KILN_MATH(Div, x / y)
KILN_MATH(Pow, pow(x, y))
KILN_MATH(Maximum, select(isnan(x), x, select(isnan(y), y, max_of(x, y))))  // NaN propagates
KILN_MATH(Minimum, select(isnan(x), x, select(isnan(y), y, min_of(x, y))))
// ---- comparisons ----
KILN_MATH(Eq, x == y)
KILN_MATH(Ne, x != y)
KILN_MATH(Lt, x < y)
KILN_MATH(Le, x <= y)
KILN_MATH(Gt, x > y)
KILN_MATH(Ge, x >= y)
KILN_MATH(LogicalAnd, land(x, y))
KILN_MATH(LogicalOr, lor(x, y))
// ---- unary ----
KILN_MATH(Neg, -x)
KILN_MATH(Abs, abs(x))
KILN_MATH(Sign, to_value(zero < x) - to_value(x < zero))
KILN_MATH(Relu, select(lor(x > zero, isnan(x)), x, zero))  // NaN propagates
KILN_MATH(LogicalNot, lnot(x))
// Clamp: p0 = min, p1 = max (the lowest/highest value when absent); min > max gives max.
KILN_MATH(Clamp, select(select(x < p<0>, p<0>, x) > p<1>, p<1>, select(x < p<0>, p<0>, x)))
KILN_MATH(Exp, exp(x))
KILN_MATH(Log, log(x))
KILN_MATH(Sqrt, sqrt(x))
KILN_MATH(Rsqrt, one / sqrt(x))
KILN_MATH(Reciprocal, one / x)
KILN_MATH(Sin, sin(x))
KILN_MATH(Cos, cos(x))
KILN_MATH(Tanh, tanh(x))
KILN_MATH(Sigmoid, sigmoid(x))
KILN_MATH(Silu, x * sigmoid(x))
// 0.5 x erfc(-x/sqrt2): accurate in relative terms where 1 + erf(x/sqrt2) would cancel.
KILN_MATH(Gelu, KILN_C(0.5) * x * erfc(x * KILN_C(-kSqrt1_2)))
KILN_MATH(GeluTanh, KILN_C(0.5) * x * (one + tanh(KILN_C(kSqrt2OverPi) * (x + KILN_C(0.044715) * x * x * x))))
// ---- activation backward helpers: x = grad, y = the saved input (sigmoid, tanh: output) ----
KILN_MATH(ReluBackward, select(y > zero, x, zero))
KILN_MATH(SigmoidBackward, x * y * (one - y))
KILN_MATH(TanhBackward, x * (one - y * y))
KILN_MATH(SiluBackward, x * sigmoid(y) * (one + y * (one - sigmoid(y))))
KILN_MATH(GeluBackward, x * (KILN_C(0.5) * erfc(y * KILN_C(-kSqrt1_2)) + y * exp(KILN_C(-0.5) * y * y) * KILN_C(kInvSqrt2Pi)))
KILN_MATH(GeluTanhBackward,
          x * (KILN_C(0.5) * (one + tanh(KILN_C(kSqrt2OverPi) * (y + KILN_C(0.044715) * y * y * y))) +
               KILN_C(0.5) * y * (one - tanh(KILN_C(kSqrt2OverPi) * (y + KILN_C(0.044715) * y * y * y)) *
                                       tanh(KILN_C(kSqrt2OverPi) * (y + KILN_C(0.044715) * y * y * y))) *
                   KILN_C(kSqrt2OverPi) * (one + KILN_C(3 * 0.044715) * y * y)))

#undef KILN_MATH
#undef KILN_MATH_GRAD
#undef KILN_MATH_GRAD2

// The parameters p0, p1 of an op, from its attribute struct, as doubles or Scalars (converted
// to the compute type by the kernel; see param_as).
template <class V> V param_as(double v) {
  if constexpr (std::is_floating_point_v<V>) {
    return V(v);
  } else if constexpr (std::is_same_v<V, bool>) {
    return v != 0;
  } else {  // saturate, so that an absent clamp bound (+-inf) is the type's extreme
    if (!(v > double(std::numeric_limits<V>::lowest()))) return std::numeric_limits<V>::lowest();
    if (!(v < double(std::numeric_limits<V>::max()))) return std::numeric_limits<V>::max();
    return V(v);
  }
}

template <class V> void set_params(Vals<V>& v, const KernelArgs& a) {
  switch (op_schema(a.op).attrs) {
    case AttrsKind::ScalarAttrs: {
      const Scalar s = a.attrs ? a.attr<ScalarAttrs>().value : Scalar(1);
      if constexpr (std::is_same_v<V, bool>) v.p0 = s.to_double() != 0;
      else v.p0 = s.to<V>();
      return;
    }
    case AttrsKind::ClampAttrs: {
      const ClampAttrs& cl = a.attr<ClampAttrs>();
      constexpr double inf = std::numeric_limits<double>::infinity();
      v.p0 = param_as<V>(cl.has_min ? cl.min : -inf);
      v.p1 = param_as<V>(cl.has_max ? cl.max : inf);
      return;
    }
    default: return;
  }
}

}  // namespace kiln::pw
