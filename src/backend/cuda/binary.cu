// CUDA binary elementwise kernels: arithmetic, comparisons, where, and the activations'
// backward helpers. Arithmetic on float, float16 and bfloat16 gets one kernel per op;
// other dtypes, comparisons and backward helpers switch on the op inside one kernel
// per dtype (cheap next to the memory traffic, and far less to compile).
#include "kiln/op_attrs.h"
#include "src/backend/cuda/kernels.h"
#include "src/backend/cuda/loops.cuh"

namespace kiln::cuda {

namespace {

template <OpId Op, typename V>
__device__ __forceinline__ V binary_value(V x, V y, V alpha) {
  if constexpr (Op == OpId::Add) return V(x + alpha * y);
  else if constexpr (Op == OpId::Sub) return V(x - alpha * y);
  else if constexpr (Op == OpId::Mul) return V(x * y);
  else if constexpr (Op == OpId::Div) return V(x / y);
  else if constexpr (Op == OpId::Maximum || Op == OpId::Minimum) {
    if constexpr (std::is_floating_point_v<V>) {
      if (x != x) return x;
      if (y != y) return y;
    }
    if constexpr (Op == OpId::Maximum) return x > y ? x : y;
    else return x < y ? x : y;
  } else if constexpr (Op == OpId::Pow) {
    if constexpr (std::is_floating_point_v<V>) {
      return pow(x, y);
    } else if constexpr (std::is_same_v<V, bool>) {
      return V(x || !y);
    } else {
      if (y < 0) return V(x == 1 ? 1 : (x == -1 ? ((y & 1) ? -1 : 1) : 0));
      V r = 1, b = x;
      for (V e = y; e > 0; e /= 2) {
        if (e % 2) r = V(r * b);
        b = V(b * b);
      }
      return r;
    }
  } else {
    return x;
  }
}

template <typename T, OpId Op>
struct BinaryFixed {
  comp_t<T> alpha;
  __device__ T operator()(T a, T b) const {
    using V = comp_t<T>;
    return convert<T>(binary_value<Op, V>(convert<V>(a), convert<V>(b), alpha));
  }
};

#define KILN_CUDA_BINARY_OPS(X) X(Add) X(Sub) X(Mul) X(Div) X(Maximum) X(Minimum) X(Pow)

template <typename T>
struct BinarySwitch {
  OpId op;
  comp_t<T> alpha;
  __device__ T operator()(T a, T b) const {
    using V = comp_t<T>;
    const V x = convert<V>(a), y = convert<V>(b);
    switch (op) {
#define KILN_CASE(id) case OpId::id: return convert<T>(binary_value<OpId::id, V>(x, y, alpha));
      KILN_CUDA_BINARY_OPS(KILN_CASE)
#undef KILN_CASE
      default: return a;
    }
  }
};

template <typename T>
void binary_typed(const KernelArgs& a, Scalar alpha_s) {
  using D = dev_t<T>;
  using V = comp_t<D>;
  const Tensor& out = a.outputs[0];
  const Tensor& x = a.inputs[0];
  const Tensor& y = a.inputs[1];
  const char* name = op_name(a.op);
  const V alpha = alpha_s.to<V>();
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>) {
    switch (a.op) {
#define KILN_CASE(id) case OpId::id: return launch_map<D, D, D>(name, out, {&x, &y}, BinaryFixed<D, OpId::id>{alpha});
      KILN_CUDA_BINARY_OPS(KILN_CASE)
#undef KILN_CASE
      default: KILN_FAIL(name, "is not an arithmetic binary op");
    }
  } else {
    launch_map<D, D, D>(name, out, {&x, &y}, BinarySwitch<D>{a.op, alpha});
  }
}

void binary_kernel(const KernelArgs& a) {
  const Scalar alpha = a.attrs ? a.attr<ScalarAttrs>().value : Scalar(1);
  KILN_DISPATCH_DTYPE(a.outputs[0].dtype(), op_name(a.op), [&]<typename T>() { binary_typed<T>(a, alpha); });
}

template <typename T>
struct CompareF {
  OpId op;
  __device__ bool operator()(T p, T q) const {
    using V = comp_t<T>;
    const V x = convert<V>(p), y = convert<V>(q);
    switch (op) {
      case OpId::Eq: return x == y;
      case OpId::Ne: return x != y;
      case OpId::Lt: return x < y;
      case OpId::Le: return x <= y;
      case OpId::Gt: return x > y;
      case OpId::Ge: return x >= y;
      case OpId::LogicalAnd: return bool(x) && bool(y);
      case OpId::LogicalOr: return bool(x) || bool(y);
      default: return false;
    }
  }
};

void compare_kernel(const KernelArgs& a) {
  const Tensor& x = a.inputs[0];
  KILN_DISPATCH_DTYPE(x.dtype(), op_name(a.op), [&]<typename T>() {
    launch_map<bool, dev_t<T>, dev_t<T>>(op_name(a.op), a.outputs[0], {&a.inputs[0], &a.inputs[1]},
                                         CompareF<dev_t<T>>{a.op});
  });
}

template <typename T>
struct WhereF {
  __device__ T operator()(bool c, T p, T q) const { return c ? p : q; }
};

void where_kernel(const KernelArgs& a) {
  KILN_DISPATCH_DTYPE(a.outputs[0].dtype(), "where", [&]<typename T>() {
    launch_map<dev_t<T>, bool, dev_t<T>, dev_t<T>>("where", a.outputs[0], {&a.inputs[0], &a.inputs[1], &a.inputs[2]},
                                                   WhereF<dev_t<T>>{});
  });
}

template <typename T>
struct ActivationGradF {
  OpId op;
  __device__ T operator()(T gs, T vs) const {
    using V = comp_t<T>;
    const V g = convert<V>(gs), v = convert<V>(vs);
    V r;
    switch (op) {
      case OpId::ReluBackward: r = v > V(0) ? g : V(0); break;
      case OpId::SigmoidBackward: r = g * v * (V(1) - v); break;
      case OpId::TanhBackward: r = g * (V(1) - v * v); break;
      case OpId::SiluBackward: {
        const V s = V(1) / (V(1) + exp(-v));
        r = g * s * (V(1) + v * (V(1) - s));
        break;
      }
      case OpId::GeluBackward: {
        const V cdf = V(0.5) * (V(1) + erf(v * V(0.7071067811865476)));
        const V pdf = exp(V(-0.5) * v * v) * V(0.3989422804014327);
        r = g * (cdf + v * pdf);
        break;
      }
      case OpId::GeluTanhBackward: {
        const V k = V(0.7978845608028654), c = V(0.044715);
        const V t = tanh(k * (v + c * v * v * v));
        const V dinner = k * (V(1) + V(3) * c * v * v);
        r = g * (V(0.5) * (V(1) + t) + V(0.5) * v * (V(1) - t * t) * dinner);
        break;
      }
      default: r = g;
    }
    return convert<T>(r);
  }
};

void activation_backward_kernel(const KernelArgs& a) {
  KILN_DISPATCH_FLOATING(a.outputs[0].dtype(), op_name(a.op), [&]<typename T>() {
    launch_map<dev_t<T>, dev_t<T>, dev_t<T>>(op_name(a.op), a.outputs[0], {&a.inputs[0], &a.inputs[1]},
                                             ActivationGradF<dev_t<T>>{a.op});
  });
}

}  // namespace

void register_binary(KernelRegistry& r) {
  const DeviceType cu = DeviceType::Cuda;
  // every dtype each op declares (ops.def)
  for (OpId op : {OpId::Add, OpId::Sub, OpId::Mul, OpId::Div, OpId::Pow, OpId::Maximum, OpId::Minimum})
    r.add(cu, op, binary_kernel);
  for (OpId op : {OpId::Eq, OpId::Ne, OpId::Lt, OpId::Le, OpId::Gt, OpId::Ge, OpId::LogicalAnd, OpId::LogicalOr})
    r.add(cu, op, compare_kernel);
  r.add(cu, OpId::Where, where_kernel);
  for (OpId op : {OpId::ReluBackward, OpId::SigmoidBackward, OpId::TanhBackward, OpId::SiluBackward,
                  OpId::GeluBackward, OpId::GeluTanhBackward})
    r.add(cu, op, activation_backward_kernel);
}

}  // namespace kiln::cuda
