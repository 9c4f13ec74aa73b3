// Embedding: a trainable lookup table.
#include "kiln/nn/layers.h"
#include "src/nn/layer_utils.h"

namespace kiln::nn {

Embedding::Embedding(int64_t num, int64_t dim, std::optional<int64_t> pad, TensorOptions opts)
    : num_embeddings(num), embedding_dim(dim) {
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

void Embedding::reset_parameters() {
  init::normal_(weight);
  if (padding_idx) weight.detach().select(0, *padding_idx).fill_(0);
}

Tensor Embedding::forward(const Tensor& indices) { return embedding(weight, indices); }

std::string Embedding::extra_repr() const {
  std::string s = detail::cat_str(num_embeddings, ", ", embedding_dim);
  if (padding_idx) s += detail::cat_str(", padding_idx=", *padding_idx);
  return s;
}

}  // namespace kiln::nn
