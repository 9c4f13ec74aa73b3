#pragma once
// Convolution weights reordered into a primitive's blocked layout, kept across calls: a
// network's weights change once per optimizer step (never in inference) while the
// convolution runs forward and backward, or every batch, on the same layout.
#include <dnnl.hpp>

#include "kiln/tensor.h"
#include "src/backend/cpu/dnnl_utils.h"

namespace kiln::cpu::dnnl_utils {

// Memory holding w (described by `user`) reordered into `prim` by `reorder`. The last
// reorder of the same storage and offset into the same layout is reused while that
// storage is alive and its version counter (bumped by every in-place write) unchanged.
// The result holds its buffer: valid however the cache changes meanwhile.
TempMemory reordered_weights(const Tensor& w, const dnnl::memory::desc& user, const dnnl::memory::desc& prim,
                             const dnnl::reorder& reorder);

// Entries held now (for tests); clear_weight_cache() drops them all.
size_t weight_cache_size();
void clear_weight_cache();

}  // namespace kiln::cpu::dnnl_utils
