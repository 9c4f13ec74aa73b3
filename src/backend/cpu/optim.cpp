// CPU kernels: fused optimizer updates (adam_step).
#include "src/backend/cpu/kernels.h"

namespace kiln::cpu {

void register_optim(KernelRegistry& r) { (void)r; }

}  // namespace kiln::cpu
