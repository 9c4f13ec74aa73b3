#pragma once
// Gradient clipping (torch.nn.utils.clip_grad_norm_).
#include <limits>
#include <vector>

#include "kiln/tensor.h"

namespace kiln::nn::utils {

inline constexpr double kInfNorm = std::numeric_limits<double>::infinity();

// Scales every grad by min(1, max_norm / (total + 1e-6)), where total is the norm_type
// norm (2 by default, kInfNorm for the max) of all grads taken together; parameters
// without a grad are skipped. Returns the total norm before clipping as a 0-d float32
// tensor on the first grad's device (no host sync: the scaling is always applied).
Tensor clip_grad_norm_(const std::vector<Tensor>& parameters, double max_norm, double norm_type = 2.0);

}  // namespace kiln::nn::utils
