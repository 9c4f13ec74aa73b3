// clip_grad_norm_ from dispatched reductions: stays on the grads' device.
#include "kiln/nn/clip_grad.h"

#include <cmath>

#include "kiln/autograd.h"
#include "kiln/ops.h"

namespace kiln::nn::utils {

Tensor clip_grad_norm_(const std::vector<Tensor>& parameters, double max_norm, double norm_type) {
  const char* op = "clip_grad_norm_";
  KILN_CHECK(max_norm >= 0, op, "max_norm must be non-negative, got ", max_norm);
  KILN_CHECK(norm_type > 0, op, "norm_type must be positive, got ", norm_type);
  NoGradGuard no_grad;
  std::vector<Tensor> grads;
  for (const auto& p : parameters) {
    KILN_CHECK(p.defined(), op, "a parameter is undefined");
    const Tensor g = p.grad();
    if (g.defined()) grads.push_back(g.detach());
  }
  if (grads.empty()) return zeros({}, DType::Float32);
  const Device dev = grads[0].device();
  const bool inf = std::isinf(norm_type);
  Tensor total;
  for (const auto& g : grads) {
    // Per grad on its own device: max |g|, or sum |g|^p; combined on dev, then the p-th root.
    const Tensor a = abs(g.to(DType::Float32));
    const Tensor part = (inf ? amax(a) : norm_type == 2.0 ? sum(a * a) : sum(pow(a, norm_type))).to(dev);
    total = !total.defined() ? part : inf ? maximum(total, part) : total + part;
  }
  if (!inf) total = norm_type == 2.0 ? sqrt(total) : pow(total, 1.0 / norm_type);
  const Tensor coef = clamp(reciprocal(add(total, 1e-6)) * max_norm, {}, 1.0);
  for (auto& g : grads) {
    Tensor scale = coef.to(g.device()).to(g.dtype());
    g.mul_(scale);
  }
  return total;
}

}  // namespace kiln::nn::utils
