#pragma once
// The Fashion-MNIST CNN of the main job (`kiln train`), shared by `kiln predict` and the
// training test. Keep exactly this architecture: the same model is timed against PyTorch.
#include <memory>

#include "kiln/nn.h"

namespace kiln::cli {

// Pixel statistics of the Fashion-MNIST training images (scaled to [0, 1]); inputs are
// normalised with them. Saved in the checkpoint's metadata so `predict` uses the same.
inline constexpr double kFashionMean = 0.2860, kFashionStd = 0.3530;

// conv 1->32 (3x3, pad 1) + BN + ReLU + maxpool 2, conv 32->64 (3x3, pad 1) + BN + ReLU +
// maxpool 2, flatten, linear 3136->10. State-dict names match PyTorch's nn.Sequential.
inline nn::Sequential make_fashion_cnn() {
  return nn::Sequential(nn::Conv2d(nn::Conv2dOptions(1, 32, 3).padding(1)), nn::BatchNorm2d(32), nn::ReLU(),
                        nn::MaxPool2d(2), nn::Conv2d(nn::Conv2dOptions(32, 64, 3).padding(1)), nn::BatchNorm2d(64),
                        nn::ReLU(), nn::MaxPool2d(2), nn::Flatten(), nn::Linear(64 * 7 * 7, 10));
}

}  // namespace kiln::cli
