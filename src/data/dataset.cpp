// Dataset defaults, TensorDataset and collate.
#include "kiln/data/dataset.h"

#include <cstring>

namespace kiln::data {

namespace {
constexpr const char* kOp = "data";

Tensor stack_rows(const std::vector<Tensor>& rows, const char* what) {
  const Tensor& first = rows.front();
  for (size_t i = 1; i < rows.size(); ++i)
    KILN_CHECK(rows[i].shape() == first.shape() && rows[i].dtype() == first.dtype(), kOp, "collate: example ", i,
               " has ", what, " ", shape_str(rows[i].shape()), " ", dtype_name(rows[i].dtype()), " but example 0 has ",
               shape_str(first.shape()), " ", dtype_name(first.dtype()));
  Shape shape{int64_t(rows.size())};
  shape.insert(shape.end(), first.shape().begin(), first.shape().end());
  Tensor out = empty(shape, TensorOptions(first.dtype()).device(first.device()));
  for (size_t i = 0; i < rows.size(); ++i) out.select(0, int64_t(i)).copy_(rows[i]);
  return out;
}

// Rows `indices` of t (dim 0), by memcpy when t is a contiguous host tensor.
Tensor gather_rows(const Tensor& t, const std::vector<int64_t>& indices) {
  Shape shape = t.shape();
  shape[0] = int64_t(indices.size());
  if (t.device().is_cpu() && t.is_contiguous()) {
    Tensor out = empty(shape, TensorOptions(t.dtype()).device(kCpu));
    const size_t row = t.numel() == 0 ? 0 : t.nbytes() / size_t(t.size(0));
    const char* src = static_cast<const char*>(t.data_ptr());
    char* dst = static_cast<char*>(out.data_ptr());
    for (size_t i = 0; i < indices.size(); ++i) std::memcpy(dst + i * row, src + size_t(indices[i]) * row, row);
    return out;
  }
  Tensor out = empty(shape, TensorOptions(t.dtype()).device(t.device()));
  for (size_t i = 0; i < indices.size(); ++i) out.select(0, int64_t(i)).copy_(t.select(0, indices[i]));
  return out;
}
}  // namespace

Example Dataset::get_batch(const std::vector<int64_t>& indices) const {
  std::vector<Example> examples;
  examples.reserve(indices.size());
  for (int64_t i : indices) examples.push_back(get(i));
  return collate(examples);
}

Example collate(const std::vector<Example>& examples) {
  KILN_CHECK(!examples.empty(), kOp, "collate: no examples");
  std::vector<Tensor> inputs, targets;
  for (const Example& e : examples) {
    inputs.push_back(e.input);
    targets.push_back(e.target);
  }
  return {stack_rows(inputs, "input"), stack_rows(targets, "target")};
}

TensorDataset::TensorDataset(Tensor inputs, Tensor targets) : inputs_(std::move(inputs)), targets_(std::move(targets)) {
  KILN_CHECK(inputs_.defined() && targets_.defined(), kOp, "TensorDataset: undefined tensor");
  KILN_CHECK(inputs_.dim() >= 1 && targets_.dim() >= 1 && inputs_.size(0) == targets_.size(0), kOp,
             "TensorDataset: inputs ", shape_str(inputs_.shape()), " and targets ", shape_str(targets_.shape()),
             " must have the same size in dim 0");
}

Example TensorDataset::get(int64_t index) const {
  KILN_CHECK(index >= 0 && index < size(), kOp, "TensorDataset: index ", index, " out of range for size ", size());
  return {inputs_.select(0, index), targets_.select(0, index)};
}

Example TensorDataset::get_batch(const std::vector<int64_t>& indices) const {
  for (int64_t i : indices)
    KILN_CHECK(i >= 0 && i < size(), kOp, "TensorDataset: index ", i, " out of range for size ", size());
  KILN_CHECK(!indices.empty(), kOp, "TensorDataset: empty batch");
  return {gather_rows(inputs_, indices), gather_rows(targets_, indices)};
}

}  // namespace kiln::data
