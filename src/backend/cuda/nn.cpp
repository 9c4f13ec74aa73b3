// CUDA neural-network ops through cuDNN (filled in by a later slice).
#include "src/backend/cuda/kernels.h"

namespace kiln::cuda {
void register_nn(KernelRegistry&) {}
}  // namespace kiln::cuda
