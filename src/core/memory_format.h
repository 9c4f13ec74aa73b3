#pragma once
// Internal helpers of the memory formats (the public part is in kiln/tensor.h).
#include "kiln/tensor.h"

namespace kiln {

// Dense strides that keep the order of `strides` (fastest dim first), as PyTorch's
// infer_dense_strides: a transposed view gets transposed dense strides.
Strides dense_strides_like(const Shape& shape, const Strides& strides);
// The strides MemoryFormat::Preserve gives a new tensor shaped like t: t's own when t is
// dense and non-overlapping, else dense_strides_like(t).
Strides preserved_strides(const Tensor& t);

}  // namespace kiln
