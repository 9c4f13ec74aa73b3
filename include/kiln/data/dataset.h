#pragma once
// Datasets: indexable collections of (input, target) examples, as in torch.utils.data.
#include <cstdint>
#include <memory>
#include <vector>

#include "kiln/tensor.h"

namespace kiln::data {

struct Example {
  Tensor input;
  Tensor target;
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  virtual Example get(int64_t index) const = 0;
  // The examples at `indices` stacked along a new dim 0. The default gets and stacks
  // each one; datasets holding whole tensors override it to gather rows directly.
  // Called from the DataLoader's background thread, so it must not touch shared state.
  virtual Example get_batch(const std::vector<int64_t>& indices) const;
};

// Examples are rows of two tensors of equal size(0): inputs[i], targets[i].
class TensorDataset : public Dataset {
 public:
  TensorDataset(Tensor inputs, Tensor targets);
  int64_t size() const override { return inputs_.size(0); }
  Example get(int64_t index) const override;
  Example get_batch(const std::vector<int64_t>& indices) const override;
  const Tensor& inputs() const { return inputs_; }
  const Tensor& targets() const { return targets_; }

 private:
  Tensor inputs_, targets_;
};

// Stacks examples (all inputs of one shape and dtype, all targets likewise) along a
// new dim 0; kiln::Error naming the first example that differs.
Example collate(const std::vector<Example>& examples);

}  // namespace kiln::data
