// CUDA neural-network ops: convolutions through cuDNN (conv.cpp), the rest our own
// kernels (nn.cu). Ops without a CUDA kernel fall back to the CPU through the dispatcher.
#include "src/backend/cuda/kernels.h"

namespace kiln::cuda {
void register_nn(KernelRegistry& r) {
  register_conv(r);
  register_nn_kernels(r);
  register_batch_norm(r);
  register_attention(r);
  register_pool(r);
  register_index(r);
  register_optim(r);
}
}  // namespace kiln::cuda
