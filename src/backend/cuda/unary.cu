// CUDA unary elementwise kernels. float, float16 and bfloat16 get one kernel per op (the
// op is a template argument, so each is straight-line code); float64 and the integer
// types share one kernel per dtype that switches on the op, to keep compile time down.
#include "kiln/op_attrs.h"
#include "src/backend/cuda/kernels.h"
#include "src/backend/cuda/loops.cuh"

namespace kiln::cuda {

namespace {

struct ClampParams {
  bool has_min = false, has_max = false;
  double min = 0, max = 0;
};

// The same formulas as the CPU kernels, in the compute type V (float or double for
// floating types, the integer type otherwise).
template <OpId Op, typename V>
__device__ __forceinline__ V unary_value(V x, const ClampParams& c) {
  if constexpr (Op == OpId::Neg) return V(-x);
  else if constexpr (Op == OpId::Abs) return x < V(0) ? V(-x) : x;
  else if constexpr (Op == OpId::Sign) return V((V(0) < x) - (x < V(0)));
  else if constexpr (Op == OpId::Relu) {
    if constexpr (std::is_floating_point_v<V>) {
      if (x != x) return x;  // NaN propagates, as in PyTorch
    }
    return x > V(0) ? x : V(0);
  }
  else if constexpr (Op == OpId::LogicalNot) return V(!x);
  else if constexpr (Op == OpId::Clamp) {
    if (c.has_min && x < V(c.min)) x = V(c.min);
    if (c.has_max && x > V(c.max)) x = V(c.max);
    return x;
  } else if constexpr (std::is_floating_point_v<V>) {
    if constexpr (Op == OpId::Exp) return exp(x);
    else if constexpr (Op == OpId::Log) return log(x);
    else if constexpr (Op == OpId::Sqrt) return sqrt(x);
    else if constexpr (Op == OpId::Rsqrt) return V(1) / sqrt(x);
    else if constexpr (Op == OpId::Reciprocal) return V(1) / x;
    else if constexpr (Op == OpId::Sin) return sin(x);
    else if constexpr (Op == OpId::Cos) return cos(x);
    else if constexpr (Op == OpId::Tanh) return tanh(x);
    else if constexpr (Op == OpId::Sigmoid) return V(1) / (V(1) + exp(-x));
    else if constexpr (Op == OpId::Silu) return x / (V(1) + exp(-x));
    else if constexpr (Op == OpId::Gelu) return V(0.5) * x * (V(1) + erf(x * V(0.7071067811865476)));
    else if constexpr (Op == OpId::GeluTanh) {
      const V k = V(0.7978845608028654);
      return V(0.5) * x * (V(1) + tanh(k * (x + V(0.044715) * x * x * x)));
    } else {
      return x;
    }
  } else {
    return x;
  }
}

template <typename T, OpId Op>
struct UnaryFixed {
  ClampParams c;
  __device__ T operator()(T x) const { return convert<T>(unary_value<Op>(convert<comp_t<T>>(x), c)); }
};

#define KILN_CUDA_UNARY_OPS(X)                                                                                \
  X(Neg) X(Abs) X(Sign) X(Relu) X(Clamp) X(Exp) X(Log) X(Sqrt) X(Rsqrt) X(Reciprocal) X(Sin) X(Cos) X(Tanh) \
  X(Sigmoid) X(Silu) X(Gelu) X(GeluTanh)

template <typename T>
struct UnarySwitch {
  OpId op;
  ClampParams c;
  __device__ T operator()(T x) const {
    using V = comp_t<T>;
    const V v = convert<V>(x);
    switch (op) {
#define KILN_CASE(id) case OpId::id: return convert<T>(unary_value<OpId::id>(v, c));
      KILN_CUDA_UNARY_OPS(KILN_CASE)
      KILN_CASE(LogicalNot)
#undef KILN_CASE
      default: return x;
    }
  }
};

template <typename T>
void unary_typed(const KernelArgs& a, const ClampParams& c) {
  using D = dev_t<T>;
  const Tensor& out = a.outputs[0];
  const Tensor& in = a.inputs[0];
  const char* name = op_name(a.op);
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) {
    switch (a.op) {
#define KILN_CASE(id) case OpId::id: return launch_map<D, D>(name, out, {&in}, UnaryFixed<D, OpId::id>{c});
      KILN_CUDA_UNARY_OPS(KILN_CASE)
#undef KILN_CASE
      default: KILN_FAIL(name, "is not a unary op");
    }
  } else {
    launch_map<D, D>(name, out, {&in}, UnarySwitch<D>{a.op, c});
  }
}

void unary_kernel(const KernelArgs& a) {
  ClampParams c;
  if (a.op == OpId::Clamp) {
    const ClampAttrs& ca = a.attr<ClampAttrs>();
    c = ClampParams{ca.has_min, ca.has_max, ca.min, ca.max};
  }
  KILN_DISPATCH_DTYPE(a.outputs[0].dtype(), op_name(a.op), [&]<typename T>() { unary_typed<T>(a, c); });
}

}  // namespace

void register_unary(KernelRegistry& r) {
  const DeviceType cu = DeviceType::Cuda;
  for (OpId op : {OpId::Neg, OpId::Abs, OpId::Sign, OpId::Relu, OpId::Clamp, OpId::LogicalNot, OpId::Exp, OpId::Log,
                  OpId::Sqrt, OpId::Rsqrt, OpId::Reciprocal, OpId::Sin, OpId::Cos, OpId::Tanh, OpId::Sigmoid,
                  OpId::Silu, OpId::Gelu, OpId::GeluTanh})
    r.add(cu, op, unary_kernel);  // every dtype the op declares (ops.def)
}

}  // namespace kiln::cuda
