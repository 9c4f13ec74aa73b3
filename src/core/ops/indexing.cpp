// Front ends of the indexing ops: index_select, gather, one_hot, and the accumulations that
// are their backward (index_add, scatter_add). Index values are range-checked by the
// kernels before they write anything (the tensors may live on a device).
#include <algorithm>

#include "kiln/op_attrs.h"
#include "kiln/ops_nn_backward.h"
#include "src/autograd/record.h"
#include "src/core/ops/nn_helpers.h"

namespace kiln {

namespace {
using detail::check_index_dtype;

// t with an index along dim checked for index_select / index_add.
int64_t check_index_vector(const char* op, const Tensor& t, int64_t dim, const Tensor& index) {
  detail::check_defined(op, {&t, &index});
  detail::common_device(op, {&t, &index});
  check_index_dtype(op, index);
  KILN_CHECK(index.dim() <= 1, op, "index must be 0-d or 1-d, got shape ", shape_str(index.shape()));
  const int64_t d = normalize_dim(op, dim, t.dim());
  KILN_CHECK(t.dim() > 0 || index.numel() == 1, op, "a 0-d input takes exactly one index, got ", index.numel());
  return d;
}

// Shapes for gather / scatter_add: same rank, index no larger than t except along dim.
int64_t check_gather_shapes(const char* op, const Tensor& t, int64_t dim, const Tensor& index) {
  detail::check_defined(op, {&t, &index});
  detail::common_device(op, {&t, &index});
  check_index_dtype(op, index);
  const int64_t d = normalize_dim(op, dim, t.dim());
  KILN_CHECK(std::max<int64_t>(index.dim(), 1) == std::max<int64_t>(t.dim(), 1), op,
             "index must have the same number of dimensions as the input: ", shape_str(index.shape()), " vs ",
             shape_str(t.shape()));
  for (int64_t k = 0; k < index.dim(); ++k)
    KILN_CHECK(k == d || index.size(k) <= t.size(k), op, "index ", shape_str(index.shape()),
               " is larger than the input ", shape_str(t.shape()), " in dim ", k);
  return d;
}
}  // namespace

Tensor index_select(const Tensor& t, int64_t dim, const Tensor& index) {
  const int64_t d = check_index_vector("index_select", t, dim, index);
  Shape shape = t.shape();
  if (t.dim() > 0) shape[size_t(d)] = index.numel();
  Tensor out = detail::new_output(shape, t.dtype(), t.device());
  if (index.numel() == 0) return out;
  const Tensor in[] = {t.dim() == 0 ? t.reshape({1}) : t.contiguous(), index.reshape({-1}).contiguous()};
  Tensor outs[] = {t.dim() == 0 ? out.view({1}) : out};
  DimAttrs attrs{d};
  dispatch(OpId::IndexSelect, t.dtype(), in, outs, &attrs);
  autograd::record_index_select(out, t, d, index);
  return out;
}

Tensor index_add(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& source) {
  const int64_t d = check_index_vector("index_add", self, dim, index);
  detail::check_defined("index_add", {&source});
  detail::common_device("index_add", {&self, &source});
  Shape expect = self.shape();
  if (self.dim() > 0) expect[size_t(d)] = index.numel();
  KILN_CHECK(source.shape() == expect || (self.dim() == 0 && source.numel() == index.numel()), "index_add",
             "source of shape ", shape_str(source.shape()), " must have shape ", shape_str(expect), " for input ",
             shape_str(self.shape()), " and ", index.numel(), " indices along dim ", d);
  Tensor out = self.contiguous().clone();
  if (index.numel() == 0) return out;
  const Tensor in[] = {index.reshape({-1}).contiguous(),
                       self.dim() == 0 ? source.reshape({1}).to(self.dtype()) : source.to(self.dtype()).contiguous()};
  Tensor outs[] = {self.dim() == 0 ? out.view({1}) : out};
  DimAttrs attrs{d};
  dispatch(OpId::IndexAdd, self.dtype(), in, outs, &attrs);
  autograd::record_index_add(out, self, d, index, source);
  return out;
}

Tensor gather(const Tensor& t, int64_t dim, const Tensor& index) {
  const int64_t d = check_gather_shapes("gather", t, dim, index);
  Tensor out = detail::new_output(index.shape(), t.dtype(), t.device());
  if (out.numel() == 0) return out;
  KILN_CHECK(t.numel() > 0, "gather", "cannot gather from an empty input of shape ", shape_str(t.shape()));
  const bool scalar = t.dim() == 0;
  const Tensor in[] = {scalar ? t.reshape({1}) : t.contiguous(), scalar ? index.reshape({1}) : index.contiguous()};
  Tensor outs[] = {scalar ? out.view({1}) : out};
  DimAttrs attrs{d};
  dispatch(OpId::Gather, t.dtype(), in, outs, &attrs);
  autograd::record_gather(out, t, d, index);
  return out;
}

Tensor scatter_add(const Tensor& self, int64_t dim, const Tensor& index, const Tensor& src) {
  const int64_t d = check_gather_shapes("scatter_add", self, dim, index);
  detail::check_defined("scatter_add", {&src});
  detail::common_device("scatter_add", {&self, &src});
  KILN_CHECK(std::max<int64_t>(src.dim(), 1) == std::max<int64_t>(index.dim(), 1), "scatter_add",
             "src ", shape_str(src.shape()), " and index ", shape_str(index.shape()), " differ in rank");
  for (int64_t k = 0; k < index.dim(); ++k)
    KILN_CHECK(index.size(k) <= src.size(k), "scatter_add", "index ", shape_str(index.shape()),
               " is larger than src ", shape_str(src.shape()), " in dim ", k);
  Tensor out = self.contiguous().clone();
  if (index.numel() == 0) return out;
  const bool scalar = self.dim() == 0;
  Tensor s = src;  // only the part of src that index covers takes part
  for (int64_t k = 0; k < index.dim(); ++k) s = s.narrow(k, 0, index.size(k));
  const Tensor in[] = {scalar ? index.reshape({1}) : index.contiguous(),
                       scalar ? s.reshape({1}).to(self.dtype()) : s.to(self.dtype()).contiguous()};
  Tensor outs[] = {scalar ? out.view({1}) : out};
  DimAttrs attrs{d};
  dispatch(OpId::ScatterAdd, self.dtype(), in, outs, &attrs);
  autograd::record_scatter_add(out, self, d, index, src);
  return out;
}

Tensor one_hot(const Tensor& indices, int64_t num_classes) {
  const OpNameScope scope("one_hot");
  detail::check_defined("one_hot", {&indices});
  check_index_dtype("one_hot", indices, "indices");
  KILN_CHECK(num_classes == -1 || num_classes >= 0, "one_hot", "num_classes must be -1 or non-negative, got ",
             num_classes);
  if (num_classes == -1) {
    KILN_CHECK(indices.numel() > 0, "one_hot", "cannot infer the number of classes from an empty tensor of shape ",
               shape_str(indices.shape()), "; pass num_classes");
    // The class count decides the output's shape, so it is read on the host.
    const std::vector<int64_t> v = indices.to_vector<int64_t>();
    const int64_t lo = *std::min_element(v.begin(), v.end());
    KILN_CHECK(lo >= 0, "one_hot", "class values must be non-negative, got ", lo);
    num_classes = checked_add("one_hot", *std::max_element(v.begin(), v.end()), 1);
  }
  Shape shape = indices.shape();
  shape.push_back(num_classes);
  Tensor out = detail::new_output(shape, DType::Int64, indices.device());
  if (indices.numel() == 0) return out;
  KILN_CHECK(num_classes > 0, "one_hot", "num_classes is 0 but indices of shape ", shape_str(indices.shape()),
             " are not empty");
  const Tensor in[] = {indices.reshape({-1}).contiguous()};
  Tensor outs[] = {out};
  OneHotAttrs attrs{num_classes};
  dispatch(OpId::OneHot, indices.dtype(), in, outs, &attrs);
  return out;
}

}  // namespace kiln
