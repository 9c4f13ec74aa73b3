#pragma once
// Helpers of `kiln train` and `kiln predict` (header-only so the training test uses the
// same code): evaluation on a dataset, and state dicts as safetensors maps.
#include <algorithm>
#include <memory>

#include "kiln/autograd.h"
#include "kiln/data/dataloader.h"
#include "kiln/io/safetensors.h"
#include "kiln/nn.h"

namespace kiln::cli {

struct EvalResult {
  double loss = 0;      // mean cross-entropy
  double accuracy = 0;  // fraction of argmax predictions equal to the target
};

// Index of the largest logit in each row of a [N, C] tensor (computed on the host).
inline std::vector<int64_t> argmax_rows(const Tensor& logits) {
  const int64_t n = logits.size(0), c = logits.size(1);
  const std::vector<float> v = logits.to_vector<float>();
  std::vector<int64_t> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const auto row = v.begin() + i * c;
    out[size_t(i)] = std::max_element(row, row + c) - row;
  }
  return out;
}

// Eval mode, no autograd; restores training mode afterwards.
template <class Model>  // any module with forward(Tensor)
EvalResult evaluate(Model& model, std::shared_ptr<const data::Dataset> dataset, Device device,
                           int64_t batch_size = 1000) {
  const bool was_training = model.is_training();
  model.eval();
  NoGradGuard no_grad;
  data::DataLoader loader(std::move(dataset), {.batch_size = batch_size});
  double loss_sum = 0;
  int64_t correct = 0, count = 0;
  for (const data::Example& b : loader) {
    const Tensor logits = model.forward(b.input.to(device));
    loss_sum += nn::cross_entropy(logits, b.target.to(device), Tensor(), -100, nn::Reduction::Sum).item<double>();
    const std::vector<int64_t> pred = argmax_rows(logits);
    const std::vector<int64_t> truth = b.target.to_vector<int64_t>();
    for (size_t i = 0; i < pred.size(); ++i) correct += pred[i] == truth[i];
    count += int64_t(pred.size());
  }
  model.train(was_training);
  return {count ? loss_sum / double(count) : 0.0, count ? double(correct) / double(count) : 0.0};
}

inline TensorMap state_dict_to_map(const nn::Module& model) { return model.state_dict(); }

// Loads a checkpoint written from state_dict_to_map into the model: strict, shapes
// checked, and the model unchanged on any error.
inline void load_checkpoint(nn::Module& model, const std::string& path) {
  load_safetensors_into(path, model.state_dict().items());
}

}  // namespace kiln::cli
