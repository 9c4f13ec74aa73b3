#pragma once
// Registration functions of the CPU backend's kernel families, one per source file.
#include "kiln/dispatch.h"

namespace kiln::cpu {
void register_elementwise(KernelRegistry& r);  // elementwise.cpp: copy, fill, arange, random, unary, binary
}  // namespace kiln::cpu
