// Backward formulas of the view ops and copies (tensor.cpp, tensor_copy.cpp). A view's
// gradient is the incoming gradient laid back into the input's shape: reshaped,
// permuted back, summed over expanded dims, or scattered into zeros for slices.
#include <algorithm>
#include <numeric>

#include "kiln/ops.h"
#include "src/autograd/record.h"

namespace kiln::autograd {

namespace {
using V = std::vector<Tensor>;

// Records a view node and remembers the view's base (for the in-place checks).
Tensor record_view(const char* name, const Tensor& out, const Tensor& in, Formula f) {
  if (!should_record({&in})) return out;
  if (!record(name, {out}, {in}, {}, std::move(f))) return out;
  const AutogradMeta* im = in.autograd_meta();
  out.impl().autograd->view_base = im && im->view_base.defined() ? im->view_base : in;
  out.impl().autograd->view_version = out.version();
  return out;
}

Tensor zeros_of(const Shape& shape, const Tensor& like) {
  return zeros(shape, TensorOptions(like.dtype()).device(like.device()));
}

// Whether a strided layout addresses each memory element at most once.
bool non_overlapping(const Shape& shape, const Strides& strides) {
  std::vector<size_t> order(shape.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return strides[a] < strides[b]; });
  int64_t extent = 0;  // one past the largest offset reached by the dims seen so far
  for (size_t i : order) {
    if (shape[i] <= 1) continue;
    if (strides[i] <= extent) return false;
    extent += (shape[i] - 1) * strides[i];
  }
  return true;
}
}  // namespace

Tensor record_reshape(const Tensor& out, const Tensor& in) {
  const Shape shape = in.shape();
  return record_view("ViewBackward", out, in, [shape](BackwardCtx& c) { return V{c.grad().reshape(shape)}; });
}

Tensor record_permute(const Tensor& out, const Tensor& in, const std::vector<int64_t>& dims) {
  std::vector<int64_t> inverse(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) inverse[size_t(normalize_dim("permute", dims[i], in.dim()))] = int64_t(i);
  return record_view("PermuteBackward", out, in, [inverse](BackwardCtx& c) { return V{c.grad().permute(inverse)}; });
}

Tensor record_transpose(const Tensor& out, const Tensor& in, int64_t d0, int64_t d1) {
  return record_view("TransposeBackward", out, in, [d0, d1](BackwardCtx& c) { return V{c.grad().transpose(d0, d1)}; });
}

Tensor record_slice(const Tensor& out, const Tensor& in, int64_t dim, int64_t start, int64_t end, int64_t step) {
  const Shape shape = in.shape();
  return record_view("SliceBackward", out, in, [=](BackwardCtx& c) {
    Tensor g = zeros_of(shape, c.grad());
    g.slice(dim, start, end, step).copy_(c.grad());
    return V{g};
  });
}

Tensor record_select(const Tensor& out, const Tensor& in, int64_t dim, int64_t index) {
  const Shape shape = in.shape();
  return record_view("SelectBackward", out, in, [=](BackwardCtx& c) {
    Tensor g = zeros_of(shape, c.grad());
    g.select(dim, index).copy_(c.grad());
    return V{g};
  });
}

Tensor record_expand(const Tensor& out, const Tensor& in) {
  const Shape shape = in.shape();
  return record_view("ExpandBackward", out, in, [shape](BackwardCtx& c) { return V{sum_to(c.grad(), shape)}; });
}

Tensor record_as_strided(const Tensor& out, const Tensor& in) {
  if (!should_record({&in})) return out;
  // Lay the gradient into a buffer shaped like the storage, then read the input's layout back.
  KILN_CHECK(non_overlapping(out.shape(), out.strides()) && non_overlapping(in.shape(), in.strides()), "as_strided",
             "backward through an as_strided view whose elements overlap is not supported (input ", in.str(),
             ", output ", shape_str(out.shape()), " with strides ", shape_str(out.strides()), ")");
  const int64_t extent = int64_t(in.storage()->nbytes() / in.element_size());
  const Shape out_shape = out.shape(), in_shape = in.shape();
  const Strides out_strides = out.strides(), in_strides = in.strides();
  const int64_t out_offset = out.offset(), in_offset = in.offset();
  return record_view("AsStridedBackward", out, in, [=](BackwardCtx& c) {
    Tensor buf = zeros_of({extent}, c.grad());
    buf.as_strided(out_shape, out_strides, out_offset).copy_(c.grad());
    return V{buf.as_strided(in_shape, in_strides, in_offset).clone()};
  });
}

Tensor record_copy(const Tensor& out, const Tensor& in) {
  if (!should_record({&in})) return out;
  record("CopyBackward", {out}, {in}, {}, [](BackwardCtx& c) { return V{c.grad()}; });  // the engine casts and moves
  return out;
}

}  // namespace kiln::autograd
