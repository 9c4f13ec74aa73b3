#pragma once
// PyTorch's memory-overlap rules for what an op writes (aten/src/ATen/MemoryOverlap):
// an output in which several elements share one memory location (an expanded tensor)
// cannot be written, and an output may share memory with an input only exactly (the
// same elements in the same layout, as in a.add_(b) with a itself as input) or not at
// all; a partial overlap (a.add_(a.t()), x[1:].copy_(x[:-1])) would read elements the
// op has already overwritten. Layouts too irregular to decide are allowed, as in PyTorch.
#include <span>

#include "kiln/tensor.h"

namespace kiln {

enum class MemOverlap { No, Yes, TooHard };
enum class MemOverlapStatus { Full, Partial, TooHard, No };

// Yes when some element of t shares its memory with another (a stride-0 dim of size > 1).
MemOverlap has_internal_overlap(const Tensor& t);
// How the memory of a and b overlaps (same storage only; both dense, else TooHard).
MemOverlapStatus get_overlap_status(const Tensor& a, const Tensor& b);

// Raises kiln::Error "[op] unsupported operation: ..." when an output has internal
// overlap or partially overlaps an input. The dispatcher calls it for every op before any
// kernel runs, so a rejected op leaves every tensor unchanged.
void check_output_overlap(const char* op, std::span<const Tensor> inputs, std::span<const Tensor> outputs);

}  // namespace kiln
