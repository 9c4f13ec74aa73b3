// BatchNorm2d and LayerNorm.
#include "kiln/nn/layers.h"
#include "src/nn/layer_utils.h"

namespace kiln::nn {

BatchNorm2dImpl::BatchNorm2dImpl(const BatchNormOptions& o, TensorOptions opts)
    : options(o), num_features(o.num_features()), eps(o.eps()), momentum(o.momentum()), affine(o.affine()),
      track_running_stats(o.track_running_stats()) {
  const int64_t n = num_features;
  const bool track = track_running_stats;
  detail::check_positive("BatchNorm2d", "num_features", n);
  KILN_CHECK(eps > 0, "BatchNorm2d", "eps must be positive, got ", eps);
  KILN_CHECK(!momentum || (*momentum >= 0 && *momentum <= 1), "BatchNorm2d", "momentum must be in [0, 1], got ",
             momentum.value_or(0));
  opts = opts.requires_grad(false);
  weight = register_parameter("weight", affine ? empty({n}, opts) : Tensor());
  bias = register_parameter("bias", affine ? empty({n}, opts) : Tensor());
  if (track) {
    running_mean = register_buffer("running_mean", zeros({n}, opts));
    running_var = register_buffer("running_var", ones({n}, opts));
    num_batches_tracked =
        register_buffer("num_batches_tracked", zeros({}, TensorOptions(opts).dtype(DType::Int64)));
  }
  reset_parameters();
}

void BatchNorm2dImpl::reset_running_stats() {
  if (!track_running_stats) return;
  init::zeros_(running_mean);
  init::ones_(running_var);
  num_batches_tracked.detach().zero_();
}

void BatchNorm2dImpl::reset_parameters() {
  reset_running_stats();
  if (affine) {
    init::ones_(weight);
    init::zeros_(bias);
  }
}

Tensor BatchNorm2dImpl::forward(const Tensor& x) {
  KILN_CHECK(x.defined() && x.dim() == 4, "BatchNorm2d", "expected a 4-d input (N, C, H, W), got ",
             x.defined() ? shape_str(x.shape()) : std::string("undefined"));
  KILN_CHECK(x.size(1) == num_features, "BatchNorm2d", "expected ", num_features, " channels, got input ",
             shape_str(x.shape()));
  double factor = momentum.value_or(0.0);
  const bool update = is_training() && track_running_stats;
  if (update) {
    num_batches_tracked.detach().add_(1);
    if (!momentum) factor = 1.0 / double(num_batches_tracked.item<int64_t>());  // cumulative average
  }
  // Batch statistics in training, and in eval when no running statistics are kept.
  const bool use_batch = is_training() || !track_running_stats;
  const bool pass_running = track_running_stats && (update || !is_training());
  return batch_norm(x, pass_running ? running_mean : Tensor(), pass_running ? running_var : Tensor(), weight, bias,
                    use_batch, factor, eps);
}

std::string BatchNorm2dImpl::extra_repr() const {
  return detail::cat_str(num_features, ", eps=", eps, ", momentum=", momentum ? std::to_string(*momentum) : "None",
                         ", affine=", affine, ", track_running_stats=", track_running_stats);
}

LayerNormImpl::LayerNormImpl(const LayerNormOptions& o, TensorOptions opts)
    : options(o), normalized_shape(o.normalized_shape()), eps(o.eps()) {
  const bool affine = o.elementwise_affine(), with_bias = o.bias();
  KILN_CHECK(!normalized_shape.empty(), "LayerNorm", "normalized_shape must not be empty");
  for (int64_t d : normalized_shape) detail::check_positive("LayerNorm", "normalized_shape dims", d);
  opts = opts.requires_grad(false);
  weight = register_parameter("weight", affine ? ones(normalized_shape, opts) : Tensor());
  bias = register_parameter("bias", affine && with_bias ? zeros(normalized_shape, opts) : Tensor());
}

Tensor LayerNormImpl::forward(const Tensor& x) { return layer_norm(x, normalized_shape, weight, bias, eps); }

std::string LayerNormImpl::extra_repr() const {
  return detail::cat_str(shape_str(normalized_shape), ", eps=", eps, ", elementwise_affine=", weight.defined());
}

}  // namespace kiln::nn
