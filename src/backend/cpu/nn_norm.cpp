// CPU kernels: norm (filled in by a later slice).
#include "src/backend/cpu/nn_kernels.h"

namespace kiln::cpu {

void register_nn_norm(KernelRegistry& r) { (void)r; }

}  // namespace kiln::cpu
