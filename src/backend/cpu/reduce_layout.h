#pragma once
// Views a contiguous tensor and a set of reduced dims as [outer, reduce, inner] (row-major),
// the one shape reduction and softmax kernels loop over. Reduced dims that are not adjacent
// (e.g. dims 0 and 2 of a 4-d tensor) are first permuted to the end and made contiguous.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "kiln/tensor.h"

namespace kiln::cpu {

struct ReduceLayout {
  Tensor src;  // contiguous data to read (the input, or a permuted copy of it)
  int64_t outer = 1, reduce = 1, inner = 1;
};

// dims: sorted, normalised; empty means every dim.
inline ReduceLayout reduce_layout(const Tensor& in, const std::vector<int64_t>& dims) {
  const int64_t nd = in.dim();
  std::vector<bool> red(size_t(nd), dims.empty());
  for (int64_t d : dims) red[size_t(d)] = true;

  ReduceLayout l;
  l.src = in;
  // Blocks of consecutive same-kind dims, size-1 dims skipped (they don't move memory).
  std::vector<std::pair<bool, int64_t>> blocks;  // (reduced, size)
  for (int64_t d = 0; d < nd; ++d) {
    const int64_t s = in.size(d);
    if (s == 1) continue;
    if (!blocks.empty() && blocks.back().first == red[size_t(d)]) blocks.back().second *= s;
    else blocks.emplace_back(red[size_t(d)], s);
  }
  size_t b = 0;
  if (b < blocks.size() && !blocks[b].first) l.outer = blocks[b++].second;
  if (b < blocks.size() && blocks[b].first) l.reduce = blocks[b++].second;
  if (b < blocks.size() && !blocks[b].first) l.inner = blocks[b++].second;
  if (b == blocks.size()) return l;

  // Interleaved kept and reduced dims: kept dims first, reduced dims last.
  std::vector<int64_t> perm;
  l.outer = l.reduce = 1;
  l.inner = 1;
  for (int64_t d = 0; d < nd; ++d)
    if (!red[size_t(d)]) perm.push_back(d), l.outer *= in.size(d);
  for (int64_t d = 0; d < nd; ++d)
    if (red[size_t(d)]) perm.push_back(d), l.reduce *= in.size(d);
  l.src = in.permute(perm).contiguous();
  return l;
}

// [outer, n, inner] around one dim (softmax).
inline ReduceLayout dim_layout(const Tensor& in, int64_t dim) {
  ReduceLayout l;
  l.src = in;
  for (int64_t d = 0; d < in.dim(); ++d) {
    if (d < dim) l.outer *= in.size(d);
    else if (d == dim) l.reduce = in.size(d);
    else l.inner *= in.size(d);
  }
  return l;
}

}  // namespace kiln::cpu
