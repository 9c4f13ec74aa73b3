// CUDA unary elementwise kernels, instantiated per op and dtype from the op's one math
// definition (src/backend/pointwise/pointwise_math.h) with CUDA's math library.
#include "kiln/op_attrs.h"
#include "src/backend/cuda/kernels.h"
#include "src/backend/cuda/loops.cuh"
#include "src/backend/cuda/pointwise_lib.cuh"
#include "src/backend/pointwise/pointwise_math.h"

namespace kiln::cuda {

namespace {

// One op's math (pointwise_math.h, shared with every backend) in the compute type.
template <typename T, OpId Op>
struct UnaryMath {
  pw::Vals<comp_t<T>> vals;
  __device__ T operator()(T in) const {
    pw::Vals<comp_t<T>> v = vals;
    v.x = convert<comp_t<T>>(in);
    return convert<T>(pw::eval<CudaLib>(decltype(pw::Math<Op>::f){}, v));
  }
};

// The op's kernel over the dtypes ops.def declares for it (one instantiation per op and dtype).
template <OpId Op>
void unary_kernel(const KernelArgs& a) {
  KILN_DISPATCH_DTYPE(a.outputs[0].dtype(), op_name(Op), [&]<typename T>() {
    if constexpr ((OpTraits<Op>::dtypes & dtype_bit(dtype_of<T>::value)) != 0) {
      using D = dev_t<T>;
      UnaryMath<D, Op> f;
      pw::set_params(f.vals, a);
      launch_map<D, D>(op_name(Op), a.outputs[0], {&a.inputs[0]}, f);
    } else {
      KILN_FAIL(op_name(Op), "does not support dtype ", dtype_name(dtype_of<T>::value));
    }
  });
}

}  // namespace

void register_unary(KernelRegistry& r) {
  const DeviceType cu = DeviceType::Cuda;
  // every op of ops.def's Unary family, every dtype it declares
  for_each_family_op<OpFamily::Unary>([&]<OpId Op>() { r.add(cu, Op, unary_kernel<Op>); });
}

}  // namespace kiln::cuda
