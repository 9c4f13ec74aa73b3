#include "kiln/shape.h"

#include <algorithm>
#include <sstream>

#include "kiln/error.h"

namespace kiln {

namespace {
// The label for size errors raised outside any OpNameScope.
constexpr const char* kSizeOp = "shape";

[[noreturn]] void size_overflow(const Shape& shape, const char* what) {
  KILN_FAIL(kSizeOp, "shape ", shape_str(shape), ": ", what, " overflows int64 (the tensor cannot exist)");
}
}  // namespace

int64_t checked_mul(const char* op, int64_t a, int64_t b) {
  int64_t r;
  KILN_CHECK(!__builtin_mul_overflow(a, b, &r), op, "size arithmetic overflows int64: ", a, " * ", b);
  return r;
}

int64_t checked_add(const char* op, int64_t a, int64_t b) {
  int64_t r;
  KILN_CHECK(!__builtin_add_overflow(a, b, &r), op, "size arithmetic overflows int64: ", a, " + ", b);
  return r;
}

int64_t numel_of(const Shape& shape) {
  int64_t n = 1;
  for (int64_t s : shape)
    if (__builtin_mul_overflow(n, s, &n)) {
      for (int64_t z : shape)  // a zero dim makes any product 0, whatever came before it
        if (z == 0) return 0;
      size_overflow(shape, "the element count");
    }
  return n;
}

bool shape_overflows(const Shape& shape) {
  int64_t stride = 1, numel = 1;
  bool zero = false, numel_overflows = false;
  for (size_t i = shape.size(); i-- > 0;) {
    if (shape[i] < 0) return true;
    zero |= shape[i] == 0;
    numel_overflows |= __builtin_mul_overflow(numel, shape[i], &numel);
    // The stride of dim i - 1 is the product of the dims after it (size-0 dims count as 1).
    if (i > 0 && __builtin_mul_overflow(stride, std::max<int64_t>(shape[i], 1), &stride)) return true;
  }
  return numel_overflows && !zero;
}

Strides contiguous_strides(const Shape& shape) {
  Strides st(shape.size());
  int64_t acc = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    st[i] = acc;
    if (__builtin_mul_overflow(acc, std::max<int64_t>(shape[i], 1), &acc) && i > 0)
      size_overflow(shape, "a contiguous stride");
  }
  return st;
}

Strides channels_last_strides(const Shape& shape) {
  KILN_CHECK(shape.size() == 4, "channels_last", "required rank 4 tensor to use channels_last format, got shape ",
             shape_str(shape));
  Strides st(4);
  st[1] = 1;
  st[3] = shape[1];
  if (__builtin_mul_overflow(st[3], shape[3], &st[2]) || __builtin_mul_overflow(st[2], shape[2], &st[0]))
    size_overflow(shape, "a channels-last stride");
  return st;
}

size_t checked_nbytes(int64_t numel, size_t element_size, const Shape& shape) {
  int64_t bytes;
  if (numel < 0 || __builtin_mul_overflow(numel, int64_t(element_size), &bytes))
    KILN_FAIL(kSizeOp, "shape ", shape_str(shape), " of ", numel, " elements of ", element_size,
              " bytes needs more memory than a process can address");
  return size_t(bytes);
}

std::string shape_str(const Shape& shape) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << ']';
  return os.str();
}

int64_t normalize_dim(const char* op, int64_t dim, int64_t rank) {
  const int64_t r = std::max<int64_t>(rank, 1);
  KILN_CHECK(dim >= -r && dim < r, op, "dim ", dim, " out of range for a tensor of rank ", rank,
             " (expected in [", -r, ", ", r - 1, "])");
  return dim < 0 ? dim + r : dim;
}

Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    KILN_CHECK(da == db || da == 1 || db == 1, op, "shapes ", shape_str(a), " and ", shape_str(b),
               " cannot be broadcast together (dim ", i, ": ", da, " vs ", db, ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

}  // namespace kiln
