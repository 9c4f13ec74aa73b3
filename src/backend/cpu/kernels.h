#pragma once
// Registration functions of the CPU backend's kernel families, one per source file.
#include "kiln/dispatch.h"

namespace kiln::cpu {
void register_elementwise(KernelRegistry& r);  // elementwise.cpp: copy, fill, arange, random, unary, binary
void register_reduce(KernelRegistry& r);  // reduce.cpp: sum, mean, amax/amin, var, max/min over a dim, argmax/argmin, softmax family
void register_linalg(KernelRegistry& r);  // linalg.cpp: matmul (oneDNN), conv2d + backward, conv_transpose2d, max/avg/adaptive pool2d + backward
void register_nn(KernelRegistry& r);  // nn.cpp: batch_norm, layer_norm, attention, embedding, dropout, cat, index ops, one_hot (+ backward)
void register_optim(KernelRegistry& r);  // optim.cpp: fused optimizer updates (adam_step)
}  // namespace kiln::cpu
