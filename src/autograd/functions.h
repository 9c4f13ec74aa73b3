#pragma once
// Backward helper ops that are not part of the public API: dispatched kernels of
// ops.def (so they run on the forward's device), used by the backward formulas.
#include "kiln/dispatch.h"
#include "kiln/tensor.h"

namespace kiln::autograd {

// grad_x of an activation from (grad, v): v is the input x for Relu/Gelu/GeluTanh/Silu
// backward and the output y for Sigmoid/Tanh backward.
Tensor activation_backward(OpId op, const Tensor& grad, const Tensor& v);

}  // namespace kiln::autograd
