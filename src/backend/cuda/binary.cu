// CUDA binary elementwise kernels: arithmetic, comparisons and the activations' backward
// helpers, instantiated per op and dtype from the ops' one math definition
// (src/backend/pointwise/pointwise_math.h); where.
#include "kiln/op_attrs.h"
#include "src/backend/cuda/kernels.h"
#include "src/backend/cuda/loops.cuh"
#include "src/backend/cuda/pointwise_lib.cuh"
#include "src/backend/pointwise/pointwise_math.h"

namespace kiln::cuda {

namespace {

// One op's math (pointwise_math.h, shared with every backend) in the compute type; Out is
// bool for comparisons.
template <typename Out, typename T, OpId Op>
struct BinaryMath {
  pw::Vals<comp_t<T>> vals;
  __device__ Out operator()(T a, T b) const {
    pw::Vals<comp_t<T>> v = vals;
    v.x = convert<comp_t<T>>(a);
    v.y = convert<comp_t<T>>(b);
    return convert<Out>(pw::eval<CudaLib>(decltype(pw::Math<Op>::f){}, v));
  }
};

// The op's kernel over the dtypes ops.def declares for it (one instantiation per op and dtype).
template <OpId Op>
void binary_kernel(const KernelArgs& a) {
  KILN_DISPATCH_DTYPE(a.inputs[0].dtype(), op_name(Op), [&]<typename T>() {
    if constexpr ((OpTraits<Op>::dtypes & dtype_bit(dtype_of<T>::value)) != 0) {
      using D = dev_t<T>;
      using Out = std::conditional_t<OpTraits<Op>::result == ResultRule::Bool, bool, D>;
      BinaryMath<Out, D, Op> f;
      pw::set_params(f.vals, a);
      launch_map<Out, D, D>(op_name(Op), a.outputs[0], {&a.inputs[0], &a.inputs[1]}, f);
    } else {
      KILN_FAIL(op_name(Op), "does not support dtype ", dtype_name(dtype_of<T>::value));
    }
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

}  // namespace

void register_binary(KernelRegistry& r) {
  const DeviceType cu = DeviceType::Cuda;
  // every op of ops.def's Binary and Compare families, every dtype it declares
  for_each_family_op<OpFamily::Binary>([&]<OpId Op>() { r.add(cu, Op, binary_kernel<Op>); });
  for_each_family_op<OpFamily::Compare>([&]<OpId Op>() { r.add(cu, Op, binary_kernel<Op>); });
  r.add(cu, OpId::Where, where_kernel);
}

}  // namespace kiln::cuda
