// Memory-overlap checks for op outputs; see mem_overlap.h.
#include "src/core/mem_overlap.h"

namespace kiln {

MemOverlap has_internal_overlap(const Tensor& t) {
  if (t.numel() == 0) return MemOverlap::No;
  for (int64_t d = 0; d < t.dim(); ++d)
    if (t.strides()[size_t(d)] == 0 && t.shape()[size_t(d)] > 1) return MemOverlap::Yes;
  return t.is_non_overlapping_and_dense() ? MemOverlap::No : MemOverlap::TooHard;
}

namespace {
// The same elements in the same order: strides agree wherever a dim has more than one element.
bool same_layout(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) return a.numel() == 1 && b.numel() == 1;
  for (int64_t d = 0; d < a.dim(); ++d)
    if (a.shape()[size_t(d)] > 1 && a.strides()[size_t(d)] != b.strides()[size_t(d)]) return false;
  return true;
}
}  // namespace

MemOverlapStatus get_overlap_status(const Tensor& a, const Tensor& b) {
  if (a.is_same(b)) return MemOverlapStatus::Full;
  if (a.storage() != b.storage() || a.numel() == 0 || b.numel() == 0) return MemOverlapStatus::No;
  if (!a.is_non_overlapping_and_dense() || !b.is_non_overlapping_and_dense()) return MemOverlapStatus::TooHard;
  const auto* a_begin = static_cast<const char*>(a.data_ptr());
  const auto* b_begin = static_cast<const char*>(b.data_ptr());
  const auto* a_end = a_begin + a.nbytes();
  const auto* b_end = b_begin + b.nbytes();
  if (a_begin == b_begin && a_end == b_end)
    return a.dtype() == b.dtype() && same_layout(a, b) ? MemOverlapStatus::Full : MemOverlapStatus::Partial;
  if (a_begin < b_end && b_begin < a_end) return MemOverlapStatus::Partial;
  return MemOverlapStatus::No;
}

void check_output_overlap(const char* op, std::span<const Tensor> inputs, std::span<const Tensor> outputs) {
  for (const Tensor& out : outputs) {
    KILN_CHECK(has_internal_overlap(out) != MemOverlap::Yes, op,
               "unsupported operation: more than one element of the written-to tensor (shape ",
               shape_str(out.shape()), ", strides ", shape_str(out.strides()),
               ") refers to a single memory location. Please clone() the tensor before performing the operation.");
    for (const Tensor& in : inputs)
      KILN_CHECK(get_overlap_status(out, in) != MemOverlapStatus::Partial, op,
                 "unsupported operation: some elements of the input tensor (shape ", shape_str(in.shape()),
                 ", strides ", shape_str(in.strides()), ") and the written-to tensor (shape ",
                 shape_str(out.shape()), ", strides ", shape_str(out.strides()),
                 ") refer to a single memory location. Please clone() the tensor before performing the operation.");
  }
}

}  // namespace kiln
