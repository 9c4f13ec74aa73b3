// Attention dropout on the GPU (contract in ops.def): probability (b, i, j) of a
// [B, L, S] score matrix is dropped when Philox4x32(seed, offset + (b*L + i)*S + j)'s
// first word, as a unit float, is below p, and scaled by 1/(1 - p) when kept: the same
// stream as the CPU kernel, so both devices drop the same entries.
#include "kiln/dispatch.h"
#include "kiln/tensor.h"
#include "src/backend/cuda/kernels.h"
#include "src/backend/cuda/loops.cuh"
#include "src/backend/cuda/philox.cuh"

namespace kiln::cuda {

namespace {

template <typename T>
__global__ void attention_dropout_kernel(T* x, int64_t n, uint64_t first_counter, float p, double scale,
                                         uint64_t seed) {
  using A = comp_t<T>;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    uint32_t w[4];
    philox(seed, first_counter + uint64_t(i), w);
    x[i] = philox_unit(w[0]) < p ? convert<T>(A(0)) : convert<T>(convert<A>(x[i]) * A(scale));
  }
}

}  // namespace

void apply_attention_dropout(const Tensor& x, int64_t first_batch, const AttentionAttrs& at, int device) {
  KILN_CHECK(x.is_contiguous() && x.dim() == 3, "scaled_dot_product_attention", "dropout needs contiguous [n, L, S]");
  const int64_t n = x.numel();
  if (n == 0) return;
  CudaDeviceGuard guard(device);
  const uint64_t first = at.offset + uint64_t(first_batch * x.size(1) * x.size(2));
  const double scale = at.dropout_p < 1.0 ? 1.0 / (1.0 - at.dropout_p) : 0.0;
  KILN_DISPATCH_FLOATING(x.dtype(), "scaled_dot_product_attention", [&]<typename TK>() {
    using T = dev_t<TK>;
    attention_dropout_kernel<T><<<blocks_for(n, device), kThreads, 0, current_stream(device)>>>(
        static_cast<T*>(x.data_ptr()), n, first, float(at.dropout_p), scale, at.seed);
    KILN_CUDA_CHECK_LAUNCH("scaled_dot_product_attention");
  });
}

}  // namespace kiln::cuda
