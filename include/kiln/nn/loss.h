#pragma once
// Loss functions (torch.nn.functional names and semantics). Each is built from
// dispatched kiln ops, so autograd differentiates it and it runs on the inputs' device.
#include <cstdint>

#include "kiln/tensor.h"

namespace kiln::nn {

enum class Reduction { None, Mean, Sum };

// (input - target)^2 and |input - target|, target broadcast to input.
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::Mean);
Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::Mean);

// Negative log likelihood of class indices: input log-probabilities [N, C, d...] (or [C]),
// target int64 [N, d...] (or 0-d). weight [C] rescales classes; targets equal to
// ignore_index contribute nothing. Mean divides by the sum of the targets' weights.
Tensor nll_loss(const Tensor& input, const Tensor& target, const Tensor& weight = Tensor(),
                int64_t ignore_index = -100, Reduction reduction = Reduction::Mean);

// log_softmax over dim 1 followed by nll_loss, for integer class-index targets; or, for
// a floating target of input's shape, class probabilities: -sum_c w_c p_c log q_c (mean
// over the N * d... positions). label_smoothing e mixes the target with the uniform
// distribution: (1 - e) * target + e / C.
Tensor cross_entropy(const Tensor& input, const Tensor& target, const Tensor& weight = Tensor(),
                     int64_t ignore_index = -100, Reduction reduction = Reduction::Mean,
                     double label_smoothing = 0.0);

// -[p y log s(x) + (1 - y) log(1 - s(x))] computed stably as
// (1 - y) x + (1 + (p - 1) y) log(1 + exp(-x)) (overflow-free); weight scales each
// element, pos_weight p (broadcast over the last dim, one per class) weights positives.
Tensor binary_cross_entropy_with_logits(const Tensor& input, const Tensor& target, const Tensor& weight = Tensor(),
                                        Reduction reduction = Reduction::Mean, const Tensor& pos_weight = Tensor());

}  // namespace kiln::nn

namespace kiln {
// libtorch's spellings: kiln::Reduction::Sum, and kiln::kSum / kMean / kNone in options.
using nn::Reduction;
inline constexpr Reduction kNone = Reduction::None, kMean = Reduction::Mean, kSum = Reduction::Sum;
}  // namespace kiln
