// Backward formulas of joining and indexing: cat (stack and split are views and cat),
// index_select, gather, embedding. Their gradients scatter or slice the output gradient.
#include "kiln/ops.h"
#include "kiln/ops_nn_backward.h"
#include "src/autograd/record.h"

namespace kiln::autograd {

namespace {
using V = std::vector<Tensor>;
Tensor zeros_for(const Shape& shape, const Tensor& like) {
  return zeros(shape, TensorOptions(like.dtype()).device(like.device()));
}
}  // namespace

void record_cat(const Tensor& out, const std::vector<Tensor>& tensors, int64_t dim) {
  if (!is_floating(out.dtype()) || !should_record(tensors)) return;
  // Each input's gradient is its slab of the output gradient; legacy empty [0] inputs took no part.
  std::vector<int64_t> starts, sizes;
  int64_t at = 0;
  for (const Tensor& t : tensors) {
    const bool skipped = t.dim() == 1 && t.numel() == 0;
    const int64_t n = skipped ? -1 : t.size(dim);
    starts.push_back(at);
    sizes.push_back(n);
    if (n > 0) at += n;
  }
  record("CatBackward", {out}, tensors, {}, [=](BackwardCtx& c) {
    V grads(sizes.size());
    for (size_t i = 0; i < sizes.size(); ++i)
      if (c.needs(i) && sizes[i] >= 0) grads[i] = c.grad().narrow(dim, starts[i], sizes[i]);
    return grads;
  });
}

void record_index_select(const Tensor& out, const Tensor& t, int64_t dim, const Tensor& index) {
  if (!should_record({&t})) return;
  const Shape shape = t.shape();
  record("IndexSelectBackward", {out}, {t, index}, {index}, [=](BackwardCtx& c) {
    const Tensor& g = c.grad();
    if (shape.empty()) return V{g.reshape({})};
    return V{index_add(zeros_for(shape, g), dim, c.saved[0], g)};
  });
}

void record_gather(const Tensor& out, const Tensor& t, int64_t dim, const Tensor& index) {
  if (!should_record({&t})) return;
  const Shape shape = t.shape();
  record("GatherBackward", {out}, {t, index}, {index}, [=](BackwardCtx& c) {
    return V{scatter_add(zeros_for(shape, c.grad()), dim, c.saved[0], c.grad())};
  });
}

void record_embedding(const Tensor& out, const Tensor& weight, const Tensor& indices) {
  if (!should_record({&weight})) return;
  const int64_t num_weights = weight.size(0);
  record("EmbeddingBackward", {out}, {weight, indices}, {indices}, [=](BackwardCtx& c) {
    return V{embedding_backward(c.grad(), c.saved[0], num_weights)};
  });
}

void record_index_add(const Tensor& out, const Tensor& self, int64_t dim, const Tensor& index, const Tensor& source) {
  if (!should_record({&self, &source})) return;
  const Shape source_shape = source.shape();
  const bool scalar = self.dim() == 0;
  record("IndexAddBackward", {out}, {self, index, source}, {index}, [=](BackwardCtx& c) {
    const Tensor& g = c.grad();
    Tensor gs;
    if (c.needs(2)) gs = scalar ? g.reshape(source_shape) : index_select(g, dim, c.saved[0]);
    return V{c.needs(0) ? g : Tensor(), Tensor(), gs};
  });
}

void record_scatter_add(const Tensor& out, const Tensor& self, int64_t dim, const Tensor& index, const Tensor& src) {
  if (!should_record({&self, &src})) return;
  const Shape src_shape = src.shape();
  record("ScatterAddBackward", {out}, {self, index, src}, {index}, [=](BackwardCtx& c) {
    const Tensor& g = c.grad();
    Tensor gs;
    if (c.needs(2)) {
      const Tensor& idx = c.saved[0];
      gs = gather(g, dim, idx);
      if (gs.shape() != src_shape) {  // src elements the index does not cover get no gradient
        Tensor full = zeros_for(src_shape, g);
        Tensor region = full;
        for (int64_t k = 0; k < idx.dim(); ++k) region = region.narrow(k, 0, idx.size(k));
        region.copy_(gs.reshape(region.shape()));
        gs = full;
      }
    }
    return V{c.needs(0) ? g : Tensor(), Tensor(), gs};
  });
}

}  // namespace kiln::autograd
