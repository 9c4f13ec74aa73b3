#pragma once
// The expression form of elementwise math. Each op's scalar function is written once
// (pointwise_math.h) as an expression of its operands (x, y), attribute parameters
// (p<0>, p<1>) and literals (KILN_C(0.5)). An expression is a type with no run-time state, so
//  - every backend instantiates the same definition: eval<Lib>(expr, vals) inlines to
//    straight-line code, the backend's Lib supplying the transcendental primitives (the CPU
//    vectorises the loop around it; CUDA runs it per thread);
//  - a backend that compiles kernels from source (OpenCL C, WGSL, MSL) renders it as text
//    (render.h) instead.
// Select evaluates both branches (branch-free code vectorises); keep both finite-safe.
#include <cstdint>
#include <type_traits>

#if defined(__CUDACC__)
#define KILN_PW_FN __host__ __device__ __forceinline__
#else
#define KILN_PW_FN [[gnu::always_inline]] inline
#endif

namespace kiln::pw {

enum class Fn : uint8_t {
  // unary
  Neg, Not, Abs, Exp, Log, Sqrt, Sin, Cos, Tanh, Erf, Erfc, Log1p, Expm1, Floor, Ceil, Round, Trunc, IsNan,
  ToValue,  // a predicate as a value: 1 or 0
  // binary
  Add, Sub, Mul, Div, Pow, Fmod, Atan2, Lt, Le, Gt, Ge, Eq, Ne, And, Or,
  // ternary
  Select,
};

template <int I> struct Arg {};             // operand I (x = 0, y = 1, z = 2)
template <int I> struct Param {};           // attribute parameter I, a run-time scalar
template <uint64_t Bits> struct Lit {         // a literal, by its bits (clang 14 takes no double template arguments)
  static constexpr double value = __builtin_bit_cast(double, Bits);
};
#define KILN_C(v) ::kiln::pw::Lit<__builtin_bit_cast(uint64_t, double(v))>{}
template <Fn F, class... A> struct Node {};  // F applied to sub-expressions

template <class T> struct IsExpr : std::false_type {};
template <int I> struct IsExpr<Arg<I>> : std::true_type {};
template <int I> struct IsExpr<Param<I>> : std::true_type {};
template <uint64_t B> struct IsExpr<Lit<B>> : std::true_type {};
template <Fn F, class... A> struct IsExpr<Node<F, A...>> : std::true_type {};
template <class T> concept Expr = IsExpr<T>::value;

inline constexpr Arg<0> x{};
inline constexpr Arg<1> y{};
inline constexpr Arg<2> z{};
template <int I> inline constexpr Param<I> p{};

// ---- building expressions ----
#define KILN_PW_UNARY(name, fn) \
  template <Expr A> constexpr Node<Fn::fn, A> name(A) { return {}; }
#define KILN_PW_BINARY(name, fn) \
  template <Expr A, Expr B> constexpr Node<Fn::fn, A, B> name(A, B) { return {}; }
KILN_PW_UNARY(operator-, Neg) KILN_PW_UNARY(lnot, Not) KILN_PW_UNARY(abs, Abs) KILN_PW_UNARY(exp, Exp)
KILN_PW_UNARY(log, Log) KILN_PW_UNARY(sqrt, Sqrt) KILN_PW_UNARY(sin, Sin) KILN_PW_UNARY(cos, Cos)
KILN_PW_UNARY(tanh, Tanh) KILN_PW_UNARY(erf, Erf) KILN_PW_UNARY(erfc, Erfc) KILN_PW_UNARY(log1p, Log1p)
KILN_PW_UNARY(expm1, Expm1) KILN_PW_UNARY(floor, Floor) KILN_PW_UNARY(ceil, Ceil) KILN_PW_UNARY(round, Round)
KILN_PW_UNARY(trunc, Trunc) KILN_PW_UNARY(isnan, IsNan) KILN_PW_UNARY(to_value, ToValue)
KILN_PW_BINARY(operator+, Add) KILN_PW_BINARY(operator-, Sub) KILN_PW_BINARY(operator*, Mul)
KILN_PW_BINARY(operator/, Div) KILN_PW_BINARY(pow, Pow) KILN_PW_BINARY(fmod, Fmod) KILN_PW_BINARY(atan2, Atan2)
KILN_PW_BINARY(operator<, Lt) KILN_PW_BINARY(operator<=, Le) KILN_PW_BINARY(operator>, Gt)
KILN_PW_BINARY(operator>=, Ge) KILN_PW_BINARY(operator==, Eq) KILN_PW_BINARY(operator!=, Ne)
KILN_PW_BINARY(land, And) KILN_PW_BINARY(lor, Or)
#undef KILN_PW_UNARY
#undef KILN_PW_BINARY
template <Expr C, Expr A, Expr B> constexpr Node<Fn::Select, C, A, B> select(C, A, B) { return {}; }

// Common shapes, built from the primitives above.
template <Expr A> constexpr auto sigmoid(A a) { return KILN_C(1.0) / (KILN_C(1.0) + exp(-a)); }
template <Expr A, Expr B> constexpr auto max_of(A a, B b) { return select(a > b, a, b); }  // NaN: b
template <Expr A, Expr B> constexpr auto min_of(A a, B b) { return select(a < b, a, b); }

// ---- evaluating an expression in compute type V ----
// Operand and parameter values of one element, all of the compute type V (float or double
// for floating dtypes, the integer type, or bool).
template <class V> struct Vals {
  V x{}, y{}, z{};
  V p0{}, p1{};
};

// Lib supplies the floating primitives: exp log sqrt sin cos tanh erf erfc log1p expm1 floor
// ceil round (half to even) trunc pow fmod atan2, for float and double.
template <class Lib, class V, int I> KILN_PW_FN V eval(Arg<I>, const Vals<V>& v) {
  if constexpr (I == 0) return v.x;
  else if constexpr (I == 1) return v.y;
  else return v.z;
}
template <class Lib, class V, int I> KILN_PW_FN V eval(Param<I>, const Vals<V>& v) {
  if constexpr (I == 0) return v.p0;
  else return v.p1;
}
template <class Lib, class V, uint64_t B> KILN_PW_FN V eval(Lit<B>, const Vals<V>&) { return V(Lit<B>::value); }

// Integer power by squaring; negative exponents give 1, -1 or 0 as in PyTorch.
template <class V> KILN_PW_FN V int_pow(V b, V e) {
  if constexpr (std::is_same_v<V, bool>) {
    return V(b || !e);
  } else {
    if (e < 0) return V(b == 1 ? 1 : (b == -1 ? ((e & 1) ? -1 : 1) : 0));
    V r = 1;
    for (; e > 0; e /= 2) {
      if (e % 2) r = V(r * b);
      b = V(b * b);
    }
    return r;
  }
}

template <class Lib, class V, Fn F, class A> KILN_PW_FN auto eval(Node<F, A>, const Vals<V>& v) {
  const auto a = eval<Lib>(A{}, v);
  constexpr bool floating = std::is_floating_point_v<V>;
  if constexpr (F == Fn::Neg) return V(-a);
  else if constexpr (F == Fn::Not) return !a;
  else if constexpr (F == Fn::IsNan) return a != a;
  else if constexpr (F == Fn::ToValue) return V(a);
  else if constexpr (F == Fn::Abs) {
    if constexpr (std::is_same_v<V, bool>) return a;
    else return a < V(0) ? V(-a) : a;
  } else if constexpr (!floating && (F == Fn::Floor || F == Fn::Ceil || F == Fn::Round || F == Fn::Trunc)) {
    return a;  // integers are whole already
  } else {
    static_assert(floating, "a floating-point primitive instantiated for a non-floating type");
    if constexpr (F == Fn::Exp) return Lib::exp(a);
    else if constexpr (F == Fn::Log) return Lib::log(a);
    else if constexpr (F == Fn::Sqrt) return Lib::sqrt(a);
    else if constexpr (F == Fn::Sin) return Lib::sin(a);
    else if constexpr (F == Fn::Cos) return Lib::cos(a);
    else if constexpr (F == Fn::Tanh) return Lib::tanh(a);
    else if constexpr (F == Fn::Erf) return Lib::erf(a);
    else if constexpr (F == Fn::Erfc) return Lib::erfc(a);
    else if constexpr (F == Fn::Log1p) return Lib::log1p(a);
    else if constexpr (F == Fn::Expm1) return Lib::expm1(a);
    else if constexpr (F == Fn::Floor) return Lib::floor(a);
    else if constexpr (F == Fn::Ceil) return Lib::ceil(a);
    else if constexpr (F == Fn::Round) return Lib::round(a);
    else return Lib::trunc(a);
  }
}

template <class Lib, class V, Fn F, class A, class B> KILN_PW_FN auto eval(Node<F, A, B>, const Vals<V>& v) {
  const auto a = eval<Lib>(A{}, v);
  const auto b = eval<Lib>(B{}, v);
  if constexpr (F == Fn::Add) return V(a + b);
  else if constexpr (F == Fn::Sub) return V(a - b);
  else if constexpr (F == Fn::Mul) return V(a * b);
  else if constexpr (F == Fn::Div) return V(a / b);
  else if constexpr (F == Fn::Lt) return a < b;
  else if constexpr (F == Fn::Le) return a <= b;
  else if constexpr (F == Fn::Gt) return a > b;
  else if constexpr (F == Fn::Ge) return a >= b;
  else if constexpr (F == Fn::Eq) return a == b;
  else if constexpr (F == Fn::Ne) return a != b;
  else if constexpr (F == Fn::And) return bool(a) && bool(b);
  else if constexpr (F == Fn::Or) return bool(a) || bool(b);
  else if constexpr (F == Fn::Pow) {
    if constexpr (std::is_floating_point_v<V>) return Lib::pow(a, b);
    else return int_pow<V>(a, b);
  } else if constexpr (F == Fn::Fmod) {
    return Lib::fmod(a, b);
  } else {
    static_assert(F == Fn::Atan2, "not a binary function");
    return Lib::atan2(a, b);
  }
}

template <class Lib, class V, class C, class A, class B>
KILN_PW_FN V eval(Node<Fn::Select, C, A, B>, const Vals<V>& v) {
  const bool cond = eval<Lib>(C{}, v);
  const V a = eval<Lib>(A{}, v);
  const V b = eval<Lib>(B{}, v);
  return cond ? a : b;
}

}  // namespace kiln::pw
