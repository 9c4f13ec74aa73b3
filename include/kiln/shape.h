#pragma once
// Shapes, strides and the index arithmetic every op shares.
#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <string>
#include <vector>

namespace kiln {

using Shape = std::vector<int64_t>;
using Strides = std::vector<int64_t>;

// Size arithmetic is checked: a shape whose element count or strides do not fit int64
// raises kiln::Error naming the shape (labelled with the op the user called, see
// OpNameScope) instead of wrapping.
int64_t numel_of(const Shape& shape);
Strides contiguous_strides(const Shape& shape);
// NHWC strides of a 4-D [N, C, H, W] shape: (H*W*C, 1, W*C, C).
Strides channels_last_strides(const Shape& shape);
// True when a dense tensor of this shape cannot be described: a dim is negative, or the
// element count or a contiguous stride overflows int64.
bool shape_overflows(const Shape& shape);
// Bytes of numel elements of element_size each; raises when that is more than a process
// can address (PTRDIFF_MAX), so no allocation is ever asked for a wrapped size.
size_t checked_nbytes(int64_t numel, size_t element_size, const Shape& shape);
// a * b and a + b for sizes, raising "[op] size arithmetic overflows int64" instead of wrapping.
int64_t checked_mul(const char* op, int64_t a, int64_t b);
int64_t checked_add(const char* op, int64_t a, int64_t b);
std::string shape_str(const Shape& shape);  // "[2, 3]"
// Wraps a possibly negative dim into [0, rank); rank 0 accepts -1 and 0. Throws naming op.
int64_t normalize_dim(const char* op, int64_t dim, int64_t rank);
// PyTorch broadcasting of two shapes; throws kiln::Error naming op and both shapes.
Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b);

}  // namespace kiln
