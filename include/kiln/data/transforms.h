#pragma once
// Image transforms on float32 tensors whose last three dims are (C, H, W): one image
// [C, H, W] or a batch [N, C, H, W]. Random transforms draw once per image from a
// counter-based stream keyed by their seed, so a run is reproducible.
#include <cstdint>
#include <memory>
#include <vector>

#include "kiln/data/dataset.h"

namespace kiln::data {

class Transform {
 public:
  virtual ~Transform() = default;
  virtual Tensor operator()(const Tensor& images) = 0;
};

// (x - mean[c]) / std[c]; one value applies to every channel.
class Normalize : public Transform {
 public:
  Normalize(std::vector<double> mean, std::vector<double> std);
  Tensor operator()(const Tensor& images) override;

 private:
  std::vector<double> mean_, std_;
};

// Mirrors each image left-right with probability p.
class RandomHorizontalFlip : public Transform {
 public:
  explicit RandomHorizontalFlip(double p = 0.5, uint64_t seed = 0);
  Tensor operator()(const Tensor& images) override;

 private:
  double p_;
  uint64_t seed_, counter_ = 0;
};

// Pads each image with `padding` zeros on every side, then cuts a size x size window
// at a uniformly random position.
class RandomCrop : public Transform {
 public:
  RandomCrop(int64_t size, int64_t padding = 0, uint64_t seed = 0);
  RandomCrop(int64_t height, int64_t width, int64_t padding, uint64_t seed);
  Tensor operator()(const Tensor& images) override;

 private:
  int64_t height_, width_, padding_;
  uint64_t seed_, counter_ = 0;
};

// Applies transforms in order.
class Compose : public Transform {
 public:
  explicit Compose(std::vector<std::shared_ptr<Transform>> transforms) : transforms_(std::move(transforms)) {}
  Tensor operator()(const Tensor& images) override;

 private:
  std::vector<std::shared_ptr<Transform>> transforms_;
};

// A DataLoaderOptions::batch_transform that applies `t` to the inputs of each batch.
std::function<Example(Example)> transform_inputs(std::shared_ptr<Transform> t);

}  // namespace kiln::data
