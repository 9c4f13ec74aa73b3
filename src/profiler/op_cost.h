#pragma once
// What an op costs, from its tensors alone: the bytes its inputs and outputs occupy and,
// for the products (matmul, convolutions), the floating-point operations.
#include <cstdint>
#include <span>

#include "kiln/dispatch.h"

namespace kiln {
class Tensor;
}

namespace kiln::profiler {

struct OpCost {
  int64_t bytes = 0;
  double flops = 0;  // 0: not known for this op
};

OpCost op_cost(OpId op, std::span<const Tensor> inputs, std::span<const Tensor> outputs);

}  // namespace kiln::profiler
