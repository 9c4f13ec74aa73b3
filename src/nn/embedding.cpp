// Embedding: a trainable lookup table.
#include "kiln/nn/layers.h"
#include "src/nn/layer_utils.h"

namespace kiln::nn {

EmbeddingImpl::EmbeddingImpl(const EmbeddingOptions& o, TensorOptions opts)
    : options(o), num_embeddings(o.num_embeddings()), embedding_dim(o.embedding_dim()) {
  const int64_t num = num_embeddings, dim = embedding_dim;
  const std::optional<int64_t> pad = o.padding_idx();
  detail::check_positive("Embedding", "num_embeddings", num);
  detail::check_positive("Embedding", "embedding_dim", dim);
  if (pad) {
    KILN_CHECK(*pad >= -num && *pad < num, "Embedding", "padding_idx ", *pad, " out of range for ", num,
               " embeddings");
    padding_idx = *pad < 0 ? *pad + num : *pad;
  }
  weight = register_parameter("weight", empty({num, dim}, opts.requires_grad(false)));
  reset_parameters();
}

void EmbeddingImpl::reset_parameters() {
  init::normal_(weight);
  if (padding_idx) weight.detach().select(0, *padding_idx).fill_(0);
}

Tensor EmbeddingImpl::forward(const Tensor& indices) { return embedding(weight, indices); }

std::string EmbeddingImpl::extra_repr() const {
  std::string s = detail::cat_str(num_embeddings, ", ", embedding_dim);
  if (padding_idx) s += detail::cat_str(", padding_idx=", *padding_idx);
  return s;
}

}  // namespace kiln::nn
