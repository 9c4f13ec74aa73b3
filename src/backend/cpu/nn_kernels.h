#pragma once
// The parts of the CPU nn family (register_nn in nn.cpp), one file each, and helpers they share.
#include <cstdint>

#include "kiln/dispatch.h"
#include "kiln/tensor.h"

namespace kiln::cpu {

void register_nn_index(KernelRegistry& r);      // nn_index.cpp: cat, index_select/add, gather, scatter_add, one_hot, embedding
void register_nn_norm(KernelRegistry& r);       // nn_norm.cpp: batch_norm, layer_norm (+ backward)
void register_nn_attention(KernelRegistry& r);  // nn_attention.cpp: scaled_dot_product_attention (+ backward)
void register_nn_dropout(KernelRegistry& r);    // nn_dropout.cpp: dropout

// Reads element i of an int32 or int64 index tensor's contiguous data.
struct IndexReader {
  const void* p;
  bool is64;
  explicit IndexReader(const Tensor& t) : p(t.data_ptr()), is64(t.dtype() == DType::Int64) {}
  int64_t operator[](int64_t i) const {
    return is64 ? static_cast<const int64_t*>(p)[i] : int64_t(static_cast<const int32_t*>(p)[i]);
  }
};

// Raises kiln::Error naming op when any of the n indices is outside [0, bound). Runs
// before a kernel writes anything, so a bad index leaves every tensor unchanged.
void check_index_range(const char* op, const IndexReader& idx, int64_t n, int64_t bound, int64_t dim,
                       const Shape& indexed_shape);

}  // namespace kiln::cpu
