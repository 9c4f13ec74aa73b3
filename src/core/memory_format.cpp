// Memory formats: which layout a tensor's strides describe (PyTorch's rules, including
// its tie-breaks for size-1 dims), and the dense strides that "preserve" a layout.
#include "src/core/memory_format.h"

#include <algorithm>
#include <numeric>

namespace kiln {

const char* memory_format_name(MemoryFormat f) {
  switch (f) {
    case MemoryFormat::Contiguous: return "contiguous_format";
    case MemoryFormat::ChannelsLast: return "channels_last";
    case MemoryFormat::Preserve: return "preserve_format";
  }
  return "?";
}

bool Tensor::is_contiguous(MemoryFormat fmt) const {
  switch (fmt) {
    case MemoryFormat::Contiguous: return is_contiguous();
    case MemoryFormat::ChannelsLast: {
      if (dim() != 4) return false;
      // Dims from fastest to slowest in NHWC: C, W, H, N; size-1 dims may have any stride.
      int64_t expected = 1;
      for (int d : {1, 3, 2, 0}) {
        const int64_t s = shape()[size_t(d)];
        if (s == 1) continue;
        if (strides()[size_t(d)] != expected) return false;
        expected *= s;
      }
      return true;
    }
    case MemoryFormat::Preserve: break;
  }
  KILN_FAIL("is_contiguous", "preserve_format is not a layout a tensor can be contiguous in");
}

// PyTorch's is_channels_last_strides_2d: strides non-decreasing in the order C, W, H, N,
// with NCHW winning the ambiguous cases (a stride-0 C, or N sharing C's stride).
MemoryFormat Tensor::suggest_memory_format() const {
  if (dim() != 4 || strides()[1] == 0) return MemoryFormat::Contiguous;
  int64_t min = 0;
  for (int d : {1, 3, 2, 0}) {
    const int64_t s = shape()[size_t(d)], st = strides()[size_t(d)];
    if (s == 0 || st < min) return MemoryFormat::Contiguous;
    // [N, 1, 1, 1] with equal strides (contiguous, or a slice of one): NCHW.
    if (d == 0 && min == strides()[1]) return MemoryFormat::Contiguous;
    // Multiplying by the size tells [N, 1, H, 1] NHWC (H, 1, 1, 1) from NCHW (H, H, 1, 1).
    min = s > 1 ? st * s : st;
  }
  return MemoryFormat::ChannelsLast;
}

bool Tensor::is_non_overlapping_and_dense() const {
  std::vector<size_t> dims;
  for (size_t d = 0; d < shape().size(); ++d)
    if (shape()[d] >= 2) dims.push_back(d);
  std::stable_sort(dims.begin(), dims.end(), [&](size_t a, size_t b) { return strides()[a] < strides()[b]; });
  int64_t expected = 1;
  for (size_t d : dims) {
    if (strides()[d] != expected) return false;
    expected *= shape()[d];
  }
  return true;
}

Strides dense_strides_like(const Shape& shape, const Strides& strides) {
  const size_t n = shape.size();
  // perm[0] is the fastest dim; start from row-major order (last dim fastest).
  std::vector<size_t> perm(n);
  std::iota(perm.rbegin(), perm.rend(), size_t(0));
  // > 0: dim a is slower than dim b. Stride-0 dims compare as ties so that they keep
  // their row-major place; equal strides put the smaller dim first.
  auto order = [&](size_t a, size_t b) -> int {
    if (strides[a] == 0 || strides[b] == 0) return 0;
    if (strides[a] != strides[b]) return strides[a] < strides[b] ? -1 : 1;
    return shape[a] > shape[b] ? 1 : 0;
  };
  // Insertion sort that stops at the first "already in order" (PyTorch's infer_dense_strides).
  for (size_t i = 1; i < n; ++i) {
    size_t cur = i;
    for (size_t j = i; j-- > 0;) {
      const int c = order(perm[j], perm[cur]);
      if (c > 0) {
        std::swap(perm[j], perm[cur]);
        cur = j;
      } else if (c < 0) {
        break;
      }
    }
  }
  Strides out(n);
  int64_t acc = 1;
  for (size_t d : perm) {
    out[d] = acc;
    if (shape[d] > 1) acc *= shape[d];
  }
  return out;
}

Strides preserved_strides(const Tensor& t) {
  if (t.is_non_overlapping_and_dense()) return t.strides();
  return dense_strides_like(t.shape(), t.strides());
}

}  // namespace kiln
