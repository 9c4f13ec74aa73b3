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

int64_t numel_of(const Shape& shape);
Strides contiguous_strides(const Shape& shape);
// NHWC strides of a 4-D [N, C, H, W] shape: (H*W*C, 1, W*C, C).
Strides channels_last_strides(const Shape& shape);
std::string shape_str(const Shape& shape);  // "[2, 3]"
// Wraps a possibly negative dim into [0, rank); rank 0 accepts -1 and 0. Throws naming op.
int64_t normalize_dim(const char* op, int64_t dim, int64_t rank);
// PyTorch broadcasting of two shapes; throws kiln::Error naming op and both shapes.
Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b);

}  // namespace kiln
