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

// ---- binary, comparisons, activation backward helpers: the same scheme with two operands ----
template <OpId Op, typename Out, typename T>
[[gnu::flatten]] void binary_row(Out* __restrict o, const T* __restrict in0, const T* __restrict in1, int64_t n,
                                 pw::Vals<C<T>> v) {
  for (int64_t i = 0; i < n; ++i) {
    v.x = C<T>(in0[i]);
    v.y = C<T>(in1[i]);
    o[i] = Out(pw::eval<CpuLib>(decltype(pw::Math<Op>::f){}, v));
  }
}

template <OpId Op, typename T>
void binary_math(const KernelArgs& a) {
  using Out = std::conditional_t<OpTraits<Op>::result == ResultRule::Bool, bool, T>;
  pw::Vals<C<T>> vals;
  pw::set_params(vals, a);
  for_each_row<Out, T, T>(a.outputs[0], {&a.inputs[0], &a.inputs[1]},
                          [&](const std::array<char*, 3>& p, const std::array<int64_t, 3>& st, int64_t, int64_t n) {
                            Out* o = reinterpret_cast<Out*>(p[0]);
                            const T* x = reinterpret_cast<const T*>(p[1]);
                            const T* y = reinterpret_cast<const T*>(p[2]);
                            if (st[0] == 1 && st[1] == 1 && st[2] == 1) return binary_row<Op, Out, T>(o, x, y, n, vals);
                            pw::Vals<C<T>> v = vals;
                            for (int64_t i = 0; i < n; ++i) {
                              v.x = C<T>(x[i * st[1]]);
                              v.y = C<T>(y[i * st[2]]);
                              o[i * st[0]] = Out(pw::eval<CpuLib>(decltype(pw::Math<Op>::f){}, v));
                            }
                          });
}

// The op's kernel over the dtypes ops.def declares for it (the key dtype is the inputs').
template <OpId Op>
void binary_kernel(const KernelArgs& a) {
  KILN_DISPATCH_DTYPE(a.inputs[0].dtype(), op_name(Op), [&]<typename T>() {
    if constexpr ((OpTraits<Op>::dtypes & dtype_bit(dtype_of<T>::value)) != 0) binary_math<Op, T>(a);
    else KILN_FAIL(op_name(Op), "does not support dtype ", dtype_name(dtype_of<T>::value));
  });
}

void where_kernel(const KernelArgs& a) {
  const Tensor& out = a.outputs[0];
  KILN_DISPATCH_DTYPE(out.dtype(), "where", [&]<typename T>() {
    cpu_map<T, bool, T, T>(out, {&a.inputs[0], &a.inputs[1], &a.inputs[2]},
                           [](bool c, T p, T q) { return c ? p : q; });
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
  for_each_family_op<OpFamily::Binary>([&]<OpId Op>() { r.add(cpu, Op, binary_kernel<Op>); });
  for_each_family_op<OpFamily::Compare>([&]<OpId Op>() { r.add(cpu, Op, binary_kernel<Op>); });
  r.add(cpu, OpId::Where, where_kernel);
}

}  // namespace kiln::cpu
