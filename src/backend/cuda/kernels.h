#pragma once
// Registration functions of the CUDA kernel families, one per file, called by
// cuda_backend.cpp.
#include "kiln/dispatch.h"

namespace kiln::cuda {
void register_copy(KernelRegistry& r);         // copy.cu: copy/cast, fill, arange, random
void register_unary(KernelRegistry& r);        // unary.cu
void register_binary(KernelRegistry& r);       // binary.cu: arithmetic, comparisons, where, activation backward
void register_reduce(KernelRegistry& r);       // reduce.cu
void register_linalg(KernelRegistry& r);       // linalg.cpp (cuBLASLt)
void register_nn(KernelRegistry& r);           // nn.cpp (cuDNN) and nn.cu
}  // namespace kiln::cuda
