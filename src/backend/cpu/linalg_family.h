#pragma once
// The kernel files of the CPU linalg family; register_linalg (linalg.cpp) calls each.
#include "kiln/dispatch.h"

namespace kiln::cpu {
void register_conv_kernels(KernelRegistry& r);  // conv.cpp: conv2d + backward, conv_transpose2d (oneDNN)
void register_pool_kernels(KernelRegistry& r);  // pool.cpp: max/avg/adaptive pool2d + backward
}  // namespace kiln::cpu
