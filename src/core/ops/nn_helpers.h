#pragma once
// Checks shared by the neural-network and indexing front ends (norm, attention,
// embedding, dropout, indexing).
#include "src/core/ops/op_helpers.h"

namespace kiln::detail {

inline void check_index_dtype(const char* op, const Tensor& index, const char* what = "index") {
  KILN_CHECK(index.dtype() == DType::Int64 || index.dtype() == DType::Int32, op, what,
             " must be an int32 or int64 tensor, got ", dtype_name(index.dtype()), " of shape ",
             shape_str(index.shape()));
}

// The dtype statistics and parameter gradients are kept in: float64 for float64, else float32.
inline DType acc_dtype(DType t) { return t == DType::Float64 ? DType::Float64 : DType::Float32; }

}  // namespace kiln::detail
