// CPU kernels: dropout (filled in by a later slice).
#include "src/backend/cpu/nn_kernels.h"

namespace kiln::cpu {

void register_nn_dropout(KernelRegistry& r) { (void)r; }

}  // namespace kiln::cpu
