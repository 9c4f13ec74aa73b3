// CPU elementwise kernels: copy/cast, fill, ranges, random numbers, unary and binary
// math, where, and the activations' backward helpers.
#include <cmath>
#include <cstring>

#include "kiln/generator.h"
#include "kiln/op_attrs.h"
#include "src/backend/cpu/kernels.h"
#include "src/backend/cpu/loops.h"
#include "src/backend/cpu/pointwise_lib.h"
#include "src/backend/pointwise/pointwise_math.h"

namespace kiln::cpu {

namespace {

template <typename T> using C = compute_t<T>;

// ---- copy (with cast) ----
template <typename To, typename From>
To cast_value(From v) {
  if constexpr (std::is_same_v<To, bool>) return static_cast<C<From>>(v) != C<From>(0);
  else if constexpr (std::is_integral_v<To> && std::is_floating_point_v<C<From>>)
    return float_to_int<To>(static_cast<C<From>>(v));  // defined for NaN and out-of-range values
  else return To(static_cast<C<To>>(static_cast<C<From>>(v)));
}

void copy_kernel(const KernelArgs& a) {
  const Tensor& src = a.inputs[0];
  const Tensor& dst = a.outputs[0];
  if (src.dtype() == dst.dtype() && src.is_contiguous() && dst.is_contiguous()) {
    std::memcpy(dst.data_ptr(), src.data_ptr(), dst.nbytes());
    return;
  }
  KILN_DISPATCH_DTYPE(dst.dtype(), "copy_", [&]<typename To>() {
    KILN_DISPATCH_DTYPE(src.dtype(), "copy_", [&]<typename From>() {
      cpu_map<To, From>(dst, {&src}, [](From v) { return cast_value<To>(v); });
    });
  });
}

void fill_kernel(const KernelArgs& a) {
  const Tensor& dst = a.outputs[0];
  const Scalar v = a.attr<ScalarAttrs>().value;
  KILN_DISPATCH_DTYPE(dst.dtype(), "fill_", [&]<typename T>() {
    const T value = v.to<T>();
    cpu_map<T>(dst, {}, [value]() { return value; });
  });
}

template <typename T>
void arange_typed(const Tensor& out, const RangeAttrs& r) {
  T* p = out.data<T>();
  const int64_t n = out.numel();
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) p[i] = Scalar(r.start + double(i) * r.step).to<T>();
}

void arange_kernel(const KernelArgs& a) {
  const Tensor& out = a.outputs[0];
  KILN_DISPATCH_DTYPE(out.dtype(), "arange", [&]<typename T>() { arange_typed<T>(out, a.attr<RangeAttrs>()); });
}

// Random numbers: element i uses Philox counter (offset + i), so results do not depend
// on threading or device.
template <typename T>
void random_typed(OpId op, const Tensor& out, const RandomAttrs& r) {
  T* p = out.data<T>();
  const int64_t n = out.numel();
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) {
    uint32_t w[4];
    Philox4x32::generate(r.seed, r.offset + uint64_t(i), w);
    double v;
    if (op == OpId::RandomUniform) {
      v = r.a + (r.b - r.a) * double(Philox4x32::to_unit(w[0]));
    } else if (op == OpId::RandomNormal) {  // Box-Muller
      const double u1 = (double(w[0]) + 1.0) / 4294967297.0, u2 = double(w[1]) / 4294967296.0;
      v = r.a + r.b * std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
    } else {
      const uint64_t range = uint64_t(r.b - r.a);
      v = r.a + double(((uint64_t(w[0]) << 32) | w[1]) % range);
    }
    p[i] = Scalar(v).to<T>();
  }
}

void random_kernel(const KernelArgs& a) {
  const Tensor& out = a.outputs[0];
  KILN_DISPATCH_DTYPE(out.dtype(), op_name(a.op),
                      [&]<typename T>() { random_typed<T>(a.op, out, a.attr<RandomAttrs>()); });
}

// ---- unary: each op's math from pointwise_math.h, one kernel per op ----
// The loop over one contiguous row, with every call inlined (flatten) so that it
// vectorises: libmvec supplies the vector transcendental functions (pointwise_lib.h).
template <OpId Op, typename T>
[[gnu::flatten]] void unary_row(T* __restrict o, const T* __restrict in, int64_t n, pw::Vals<C<T>> v) {
  for (int64_t i = 0; i < n; ++i) {
    v.x = C<T>(in[i]);
    o[i] = T(pw::eval<CpuLib>(decltype(pw::Math<Op>::f){}, v));
  }
}

template <OpId Op, typename T>
void unary_math(const KernelArgs& a) {
  pw::Vals<C<T>> vals;
  pw::set_params(vals, a);
  const Tensor& out = a.outputs[0];
  for_each_row<T, T>(out, {&a.inputs[0]}, [&](const std::array<char*, 2>& p, const std::array<int64_t, 2>& st,
                                               int64_t /*first*/, int64_t n) {
    T* o = reinterpret_cast<T*>(p[0]);
    const T* in = reinterpret_cast<const T*>(p[1]);
    if (st[0] == 1 && st[1] == 1) return unary_row<Op, T>(o, in, n, vals);
    pw::Vals<C<T>> v = vals;
    for (int64_t i = 0; i < n; ++i) {
      v.x = C<T>(in[i * st[1]]);
      o[i * st[0]] = T(pw::eval<CpuLib>(decltype(pw::Math<Op>::f){}, v));
    }
  });
}

// The op's kernel over the dtypes ops.def declares for it.
template <OpId Op>
void unary_kernel(const KernelArgs& a) {
  KILN_DISPATCH_DTYPE(a.outputs[0].dtype(), op_name(Op), [&]<typename T>() {
    if constexpr ((OpTraits<Op>::dtypes & dtype_bit(dtype_of<T>::value)) != 0) unary_math<Op, T>(a);
    else KILN_FAIL(op_name(Op), "does not support dtype ", dtype_name(dtype_of<T>::value));
  });
}

// ---- binary ----
template <OpId Op, typename V>
[[gnu::always_inline]] inline V binary_value(V x, V y, V alpha) {
  if constexpr (Op == OpId::Add) return V(x + alpha * y);
  else if constexpr (Op == OpId::Sub) return V(x - alpha * y);
  else if constexpr (Op == OpId::Mul) return V(x * y);
  else if constexpr (Op == OpId::Div) return V(x / y);
  else if constexpr (Op == OpId::Maximum || Op == OpId::Minimum) {
    if constexpr (std::is_floating_point_v<V>) {  // NaN propagates, as in PyTorch
      if (x != x) return x;
      if (y != y) return y;
    }
    return Op == OpId::Maximum ? (x > y ? x : y) : (x < y ? x : y);
  } else if constexpr (Op == OpId::Pow) {
    if constexpr (std::is_floating_point_v<V>) {
      return std::pow(x, y);
    } else {
      if constexpr (!std::is_same_v<V, bool>) {
        if (y < 0) return V(x == 1 ? 1 : (x == -1 ? ((y & 1) ? -1 : 1) : 0));
      }
      V r = 1, b = x;
      for (auto e = y; e > 0; e /= 2) {
        if (e % 2) r = V(r * b);
        b = V(b * b);
      }
      return r;
    }
  } else {
    static_assert(Op == OpId::Add, "not an arithmetic binary op");
  }
}

template <typename V>
bool compare_value(OpId op, V x, V y) {
  switch (op) {
    case OpId::Eq: return x == y;
    case OpId::Ne: return x != y;
    case OpId::Lt: return x < y;
    case OpId::Le: return x <= y;
    case OpId::Gt: return x > y;
    case OpId::Ge: return x >= y;
    case OpId::LogicalAnd: return bool(x) && bool(y);
    case OpId::LogicalOr: return bool(x) || bool(y);
    default: break;
  }
  KILN_FAIL(op_name(op), "is not a comparison");
}

template <typename T, OpId Op>
void binary_fixed(const Tensor& out, const Tensor& x, const Tensor& y, C<T> alpha) {
  cpu_map<T, T, T>(out, {&x, &y}, [alpha](T a, T b) { return T(binary_value<Op, C<T>>(C<T>(a), C<T>(b), alpha)); });
}

template <typename T>
void binary_typed(OpId op, const Tensor& out, const Tensor& x, const Tensor& y, Scalar alpha) {
  const C<T> al = alpha.to<C<T>>();
  switch (op) {
#define KILN_BINARY_CASE(id) case OpId::id: return binary_fixed<T, OpId::id>(out, x, y, al);
    KILN_BINARY_CASE(Add) KILN_BINARY_CASE(Sub) KILN_BINARY_CASE(Mul) KILN_BINARY_CASE(Div)
    KILN_BINARY_CASE(Maximum) KILN_BINARY_CASE(Minimum) KILN_BINARY_CASE(Pow)
#undef KILN_BINARY_CASE
    default: KILN_FAIL(op_name(op), "is not an arithmetic binary op");
  }
}

void binary_kernel(const KernelArgs& a) {
  const Scalar alpha = a.attrs ? a.attr<ScalarAttrs>().value : Scalar(1);
  KILN_DISPATCH_DTYPE(a.outputs[0].dtype(), op_name(a.op), [&]<typename T>() {
    binary_typed<T>(a.op, a.outputs[0], a.inputs[0], a.inputs[1], alpha);
  });
}

void compare_kernel(const KernelArgs& a) {
  const Tensor& out = a.outputs[0];
  const Tensor& x = a.inputs[0];
  const Tensor& y = a.inputs[1];
  KILN_DISPATCH_DTYPE(x.dtype(), op_name(a.op), [&]<typename T>() {
    const OpId op = a.op;
    cpu_map<bool, T, T>(out, {&x, &y}, [op](T p, T q) { return compare_value<C<T>>(op, C<T>(p), C<T>(q)); });
  });
}

void where_kernel(const KernelArgs& a) {
  const Tensor& out = a.outputs[0];
  KILN_DISPATCH_DTYPE(out.dtype(), "where", [&]<typename T>() {
    cpu_map<T, bool, T, T>(out, {&a.inputs[0], &a.inputs[1], &a.inputs[2]},
                           [](bool c, T p, T q) { return c ? p : q; });
  });
}

// ---- activation backward helpers: inputs (grad, x-or-y) ----
template <typename V>
[[gnu::always_inline]] inline V activation_grad(OpId op, V g, V v) {
  switch (op) {
    case OpId::ReluBackward: return v > V(0) ? g : V(0);
    case OpId::SigmoidBackward: return g * v * (V(1) - v);  // v = sigmoid(x)
    case OpId::TanhBackward: return g * (V(1) - v * v);     // v = tanh(x)
    case OpId::SiluBackward: {
      const V s = V(1) / (V(1) + std::exp(-v));
      return g * s * (V(1) + v * (V(1) - s));
    }
    case OpId::GeluBackward: {
      const V cdf = V(0.5) * (V(1) + std::erf(v * V(0.7071067811865476)));
      const V pdf = std::exp(V(-0.5) * v * v) * V(0.3989422804014327);
      return g * (cdf + v * pdf);
    }
    case OpId::GeluTanhBackward: {
      const V k = V(0.7978845608028654), c = V(0.044715);
      const V inner = k * (v + c * v * v * v);
      const V t = std::tanh(inner);
      const V dinner = k * (V(1) + V(3) * c * v * v);
      return g * (V(0.5) * (V(1) + t) + V(0.5) * v * (V(1) - t * t) * dinner);
    }
    default: break;
  }
  KILN_FAIL(op_name(op), "is not an activation backward op");
}

// The op is a template argument so the loop body is chosen once, not per element.
template <typename T, OpId Op>
void activation_backward_fixed(const Tensor& out, const Tensor& g, const Tensor& v) {
  cpu_map<T, T, T>(out, {&g, &v}, [](T gi, T vi) { return T(activation_grad<C<T>>(Op, C<T>(gi), C<T>(vi))); });
}

template <typename T>
void activation_backward_typed(OpId op, const Tensor& out, const Tensor& g, const Tensor& v) {
  switch (op) {
#define KILN_ACT_CASE(id) case OpId::id: return activation_backward_fixed<T, OpId::id>(out, g, v);
    KILN_ACT_CASE(ReluBackward) KILN_ACT_CASE(SigmoidBackward) KILN_ACT_CASE(TanhBackward)
    KILN_ACT_CASE(SiluBackward) KILN_ACT_CASE(GeluBackward) KILN_ACT_CASE(GeluTanhBackward)
#undef KILN_ACT_CASE
    default: KILN_FAIL(op_name(op), "is not an activation backward op");
  }
}

void activation_backward_kernel(const KernelArgs& a) {
  KILN_DISPATCH_FLOATING(a.outputs[0].dtype(), op_name(a.op), [&]<typename T>() {
    activation_backward_typed<T>(a.op, a.outputs[0], a.inputs[0], a.inputs[1]);
  });
}

}  // namespace

// Each kernel covers every dtype its op declares in ops.def.
void register_elementwise(KernelRegistry& r) {
  const DeviceType cpu = DeviceType::Cpu;
  r.add(cpu, OpId::Copy, copy_kernel);
  r.add(cpu, OpId::Fill, fill_kernel);
  r.add(cpu, OpId::Arange, arange_kernel);
  for (OpId op : {OpId::RandomUniform, OpId::RandomNormal, OpId::RandomInt}) r.add(cpu, op, random_kernel);
  for_each_family_op<OpFamily::Unary>([&]<OpId Op>() { r.add(cpu, Op, unary_kernel<Op>); });
  for (OpId op : {OpId::Add, OpId::Sub, OpId::Mul, OpId::Div, OpId::Pow, OpId::Maximum, OpId::Minimum})
    r.add(cpu, op, binary_kernel);
  for (OpId op : {OpId::Eq, OpId::Ne, OpId::Lt, OpId::Le, OpId::Gt, OpId::Ge, OpId::LogicalAnd, OpId::LogicalOr})
    r.add(cpu, op, compare_kernel);
  r.add(cpu, OpId::Where, where_kernel);
  for (OpId op : {OpId::ReluBackward, OpId::SigmoidBackward, OpId::TanhBackward, OpId::SiluBackward,
                  OpId::GeluBackward, OpId::GeluTanhBackward})
    r.add(cpu, op, activation_backward_kernel);
}

}  // namespace kiln::cpu
