// Front ends of joining and splitting: cat, stack (one Cat kernel), split and chunk (views).
#include <string>

#include "kiln/op_attrs.h"
#include "src/autograd/record.h"
#include "src/core/ops/op_helpers.h"

namespace kiln {

namespace {
// PyTorch skips legacy 1-D empty tensors ([0]) in cat whatever the other shapes are.
bool skipped_in_cat(const Tensor& t) { return t.dim() == 1 && t.numel() == 0; }
}  // namespace

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  KILN_CHECK(!tensors.empty(), "cat", "expected a non-empty list of tensors");
  for (size_t i = 0; i < tensors.size(); ++i)
    KILN_CHECK(tensors[i].defined(), "cat", "tensor ", i, " is undefined");
  const Device dev = tensors[0].device();
  DType dt = tensors[0].dtype();
  const Tensor* ref = nullptr;  // the first tensor that takes part
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    KILN_CHECK(t.device() == dev, "cat", "expected all tensors on the same device, got ", dev.str(), " (tensor 0) and ",
               t.device().str(), " (tensor ", i, ")");
    dt = promote_types(dt, t.dtype());
    if (!skipped_in_cat(t) && !ref) ref = &t;
  }
  if (!ref) return detail::new_output({0}, dt, dev);
  KILN_CHECK(ref->dim() > 0, "cat", "zero-dimensional tensor cannot be concatenated");
  const int64_t d = normalize_dim("cat", dim, ref->dim());
  Shape out_shape = ref->shape();
  out_shape[size_t(d)] = 0;
  std::vector<Tensor> parts;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    if (skipped_in_cat(t)) continue;
    KILN_CHECK(t.dim() == ref->dim(), "cat", "tensors must have the same rank: ", shape_str(ref->shape()),
               " vs ", shape_str(t.shape()), " (tensor ", i, ")");
    for (int64_t k = 0; k < t.dim(); ++k)
      KILN_CHECK(k == d || t.size(k) == ref->size(k), "cat", "sizes must match except in dim ", d, ": ",
                 shape_str(ref->shape()), " vs ", shape_str(t.shape()), " (tensor ", i, ", dim ", k, ")");
    out_shape[size_t(d)] = checked_add("cat", out_shape[size_t(d)], t.size(d));
  }
  // PyTorch's layout: channels-last when every part suggests it. The kernel then gets
  // [N, H, W, C] views (contiguous there) and the matching dim.
  bool cl = out_shape.size() == 4;
  for (const Tensor& t : tensors)
    if (!skipped_in_cat(t)) cl = cl && t.suggest_memory_format() == MemoryFormat::ChannelsLast;
  const MemoryFormat fmt = cl ? MemoryFormat::ChannelsLast : MemoryFormat::Contiguous;
  auto kernel_view = [&](const Tensor& t) { return cl ? t.detach().permute({0, 2, 3, 1}) : t; };
  Tensor out = empty(out_shape, TensorOptions(dt).device(dev), fmt);
  if (out.numel() == 0) return out;
  for (const Tensor& t : tensors)
    if (!skipped_in_cat(t) && t.numel() > 0) parts.push_back(kernel_view(t.to(dt).contiguous(fmt)));
  constexpr int64_t kNhwcDim[4] = {0, 3, 1, 2};  // where NCHW dim d sits in [N, H, W, C]
  DimAttrs attrs{cl ? kNhwcDim[d] : d};
  Tensor outs[] = {kernel_view(out)};
  dispatch(OpId::Cat, dt, parts, outs, &attrs);
  autograd::record_cat(out, tensors, d);
  return out;
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  KILN_CHECK(!tensors.empty(), "stack", "expected a non-empty list of tensors");
  for (size_t i = 0; i < tensors.size(); ++i) {
    KILN_CHECK(tensors[i].defined(), "stack", "tensor ", i, " is undefined");
    KILN_CHECK(tensors[i].shape() == tensors[0].shape(), "stack", "expects each tensor to be equal size, got ",
               shape_str(tensors[0].shape()), " (tensor 0) and ", shape_str(tensors[i].shape()), " (tensor ", i, ")");
  }
  const int64_t d = normalize_dim("stack", dim, tensors[0].dim() + 1);
  std::vector<Tensor> parts;
  parts.reserve(tensors.size());
  for (const Tensor& t : tensors) parts.push_back(t.unsqueeze(d));
  return cat(parts, d);
}

std::vector<Tensor> split(const Tensor& t, int64_t split_size, int64_t dim) {
  detail::check_defined("split", {&t});
  KILN_CHECK(t.dim() > 0, "split", "cannot split a 0-d tensor");
  const int64_t d = normalize_dim("split", dim, t.dim());
  const int64_t n = t.size(d);
  KILN_CHECK(split_size > 0 || (split_size == 0 && n == 0), "split", "split_size must be positive, got ",
             split_size, " for shape ", shape_str(t.shape()));
  std::vector<Tensor> out;
  if (n == 0) return {t};
  for (int64_t s = 0; s < n; s += split_size) out.push_back(t.narrow(d, s, std::min(split_size, n - s)));
  return out;
}

std::vector<Tensor> split(const Tensor& t, const std::vector<int64_t>& sizes, int64_t dim) {
  detail::check_defined("split", {&t});
  KILN_CHECK(t.dim() > 0, "split", "cannot split a 0-d tensor");
  const int64_t d = normalize_dim("split", dim, t.dim());
  int64_t total = 0;
  for (int64_t s : sizes) {
    KILN_CHECK(s >= 0, "split", "split sizes must be non-negative, got ", shape_str(sizes));
    total = checked_add("split", total, s);
  }
  KILN_CHECK(total == t.size(d), "split", "split sizes ", shape_str(sizes), " sum to ", total, " but dim ", d,
             " of shape ", shape_str(t.shape()), " has size ", t.size(d));
  std::vector<Tensor> out;
  int64_t start = 0;
  for (int64_t s : sizes) {
    out.push_back(t.narrow(d, start, s));
    start += s;
  }
  return out;
}

std::vector<Tensor> chunk(const Tensor& t, int64_t chunks, int64_t dim) {
  detail::check_defined("chunk", {&t});
  KILN_CHECK(chunks > 0, "chunk", "chunks must be positive, got ", chunks);
  KILN_CHECK(t.dim() > 0, "chunk", "cannot chunk a 0-d tensor");
  const int64_t d = normalize_dim("chunk", dim, t.dim());
  const int64_t n = t.size(d);
  const int64_t size = std::max<int64_t>((n + chunks - 1) / chunks, 1);  // PyTorch: ceil, may give fewer chunks
  if (n == 0) {
    std::vector<Tensor> out;
    for (int64_t i = 0; i < chunks; ++i) out.push_back(t.narrow(d, 0, 0));
    return out;
  }
  return split(t, size, d);
}

}  // namespace kiln
