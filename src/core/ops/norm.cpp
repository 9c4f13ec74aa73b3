// Front ends of batch_norm and layer_norm, forward and backward. Absent weight/bias are
// passed to the kernels as ones/zeros so that the kernel contract has no optional inputs.
// batch_norm's kernels work on NCHW: a channels-last input is made contiguous for them,
// and its output and grad_input are channels-last again (PyTorch's layout; FormattedOutput).
#include "kiln/op_attrs.h"
#include "kiln/ops_nn_backward.h"
#include "src/autograd/record.h"
#include "src/core/ops/nn_helpers.h"

namespace kiln {

namespace {
using detail::acc_dtype;

// A [C] parameter (weight, bias, running stat): defined, floating, on x's device, of size C.
void check_channel_param(const char* op, const Tensor& p, const char* what, const Tensor& x, int64_t c) {
  if (!p.defined()) return;
  KILN_CHECK(p.device() == x.device(), op, what, " is on ", p.device().str(), " but input is on ", x.device().str());
  KILN_CHECK(is_floating(p.dtype()), op, what, " must be floating, got ", dtype_name(p.dtype()));
  KILN_CHECK(p.dim() == 1 && p.size(0) == c, op, what, " of shape ", shape_str(p.shape()), " does not match the ",
             c, " channels of input ", shape_str(x.shape()));
}

void check_bn_input(const char* op, const Tensor& x) {
  detail::check_defined(op, {&x});
  detail::check_floating(op, x);
  KILN_CHECK(x.dim() >= 2, op, "expected an input of shape [N, C, *], got ", shape_str(x.shape()));
}

Tensor param_or(const Tensor& p, double fill, const Tensor& x) {
  if (p.defined()) return p.contiguous();
  return full({x.size(1)}, fill, TensorOptions(x.dtype()).device(x.device()));
}

// Stat-free training forward: y, batch mean, batch invstd; optionally updates running stats.
BatchNormResult bn_train(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                         Tensor running_var, double momentum, double eps) {
  const char* op = "batch_norm";
  const int64_t c = x.size(1);
  KILN_CHECK(x.numel() / std::max<int64_t>(c, 1) > 1, op,
             "expected more than 1 value per channel when training, got input of shape ", shape_str(x.shape()));
  const bool running = running_mean.defined();
  BatchNormAttrs attrs{true, momentum, eps, weight.defined(), bias.defined(), running};
  const Device dev = x.device();
  detail::FormattedOutput y(x.shape(), x.dtype(), dev, x.suggest_memory_format());
  BatchNormResult r{y.result, detail::new_output({c}, acc_dtype(x.dtype()), dev),
                    detail::new_output({c}, acc_dtype(x.dtype()), dev)};
  const Tensor in[] = {x.contiguous(), param_or(weight, 1.0, x), param_or(bias, 0.0, x)};
  std::vector<Tensor> outs{y.kernel, r.batch_mean, r.batch_invstd};
  Tensor rm, rv;
  if (running) {
    rm = running_mean.is_contiguous() ? running_mean : running_mean.contiguous();
    rv = running_var.is_contiguous() ? running_var : running_var.contiguous();
    outs.push_back(rm);
    outs.push_back(rv);
  }
  dispatch(OpId::BatchNorm, x.dtype(), in, outs, &attrs);
  y.finish();
  if (running) {
    if (!rm.is_same(running_mean)) running_mean.copy_(rm);
    if (!rv.is_same(running_var)) running_var.copy_(rv);
    running_mean.storage()->bump_version();
    running_var.storage()->bump_version();
  }
  autograd::record_batch_norm(r.output, x, weight, bias, r.batch_mean, r.batch_invstd, true, eps);
  return r;
}
}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& running_mean, const Tensor& running_var, const Tensor& weight,
                  const Tensor& bias, bool training, double momentum, double eps) {
  const char* op = "batch_norm";
  check_bn_input(op, x);
  const int64_t c = x.size(1);
  KILN_CHECK(running_mean.defined() == running_var.defined(), op,
             "running_mean and running_var must both be given or both be absent");
  KILN_CHECK(training || running_mean.defined(), op, "running_mean and running_var are required when not training");
  check_channel_param(op, weight, "weight", x, c);
  check_channel_param(op, bias, "bias", x, c);
  check_channel_param(op, running_mean, "running_mean", x, c);
  check_channel_param(op, running_var, "running_var", x, c);
  KILN_CHECK(eps >= 0, op, "eps must be non-negative, got ", eps);
  if (training) return bn_train(x, weight, bias, running_mean, running_var, momentum, eps).output;

  BatchNormAttrs attrs{false, momentum, eps, weight.defined(), bias.defined(), true};
  detail::FormattedOutput y(x.shape(), x.dtype(), x.device(), x.suggest_memory_format());
  const Tensor in[] = {x.contiguous(), param_or(weight, 1.0, x), param_or(bias, 0.0, x), running_mean.contiguous(),
                       running_var.contiguous()};
  Tensor outs[] = {y.kernel};
  dispatch(OpId::BatchNorm, x.dtype(), in, outs, &attrs);
  y.finish();
  autograd::record_batch_norm(y.result, x, weight, bias, running_mean, running_var, false, eps);
  return y.result;
}

BatchNormResult batch_norm_train(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  const char* op = "batch_norm";
  check_bn_input(op, x);
  check_channel_param(op, weight, "weight", x, x.size(1));
  check_channel_param(op, bias, "bias", x, x.size(1));
  KILN_CHECK(eps >= 0, op, "eps must be non-negative, got ", eps);
  return bn_train(x, weight, bias, Tensor(), Tensor(), 0.0, eps);
}

Grads3 batch_norm_backward(const Tensor& grad, const Tensor& x, const Tensor& weight, const Tensor& mean,
                           const Tensor& invstd, bool training) {
  const char* op = "batch_norm_backward";
  check_bn_input(op, x);
  detail::check_defined(op, {&grad, &mean, &invstd});
  detail::common_device(op, {&grad, &x, &mean, &invstd});
  KILN_CHECK(grad.shape() == x.shape(), op, "grad of shape ", shape_str(grad.shape()), " does not match input ",
             shape_str(x.shape()));
  const int64_t c = x.size(1);
  check_channel_param(op, weight, "weight", x, c);
  check_channel_param(op, mean, "mean", x, c);
  check_channel_param(op, invstd, "invstd", x, c);
  const Device dev = x.device();
  detail::FormattedOutput gx(x.shape(), x.dtype(), dev, x.suggest_memory_format());
  Grads3 g{gx.result, detail::new_output({c}, acc_dtype(x.dtype()), dev),
           detail::new_output({c}, acc_dtype(x.dtype()), dev)};
  BatchNormAttrs attrs{training, 0.1, 0.0, weight.defined(), false, false};
  const Tensor in[] = {grad.to(x.dtype()).contiguous(), x.contiguous(), param_or(weight, 1.0, x), mean.contiguous(),
                       invstd.contiguous()};
  Tensor outs[] = {gx.kernel, g.grad_weight, g.grad_bias};
  dispatch(OpId::BatchNormBackward, x.dtype(), in, outs, &attrs);
  gx.finish();
  return g;
}

// ---- layer_norm

namespace {
// Checks layer_norm's arguments; returns (rows M, normalized size N).
std::pair<int64_t, int64_t> check_ln(const char* op, const Tensor& x, const Shape& ns, const Tensor& weight,
                                     const Tensor& bias) {
  detail::check_defined(op, {&x});
  detail::check_floating(op, x);
  KILN_CHECK(!ns.empty(), op, "normalized_shape must have at least one dim");
  const int64_t k = int64_t(ns.size());
  KILN_CHECK(x.dim() >= k && Shape(x.shape().end() - k, x.shape().end()) == ns, op, "normalized_shape ",
             shape_str(ns), " does not match the trailing dims of input ", shape_str(x.shape()));
  for (const auto& [p, what] : {std::pair{&weight, "weight"}, std::pair{&bias, "bias"}}) {
    if (!p->defined()) continue;
    KILN_CHECK(p->device() == x.device(), op, what, " is on ", p->device().str(), " but input is on ",
               x.device().str());
    KILN_CHECK(is_floating(p->dtype()), op, what, " must be floating, got ", dtype_name(p->dtype()));
    KILN_CHECK(p->shape() == ns, op, what, " of shape ", shape_str(p->shape()), " does not match normalized_shape ",
               shape_str(ns));
  }
  const int64_t n = numel_of(ns);
  return {n == 0 ? 0 : x.numel() / n, n};
}

Tensor flat_param_or(const Tensor& p, double fill, int64_t n, const Tensor& x) {
  if (p.defined()) return p.reshape({n}).contiguous();
  return full({n}, fill, TensorOptions(x.dtype()).device(x.device()));
}

Shape stat_shape(const Tensor& x, const Shape& ns) { return Shape(x.shape().begin(), x.shape().end() - int64_t(ns.size())); }
}  // namespace

LayerNormResult layer_norm_forward(const Tensor& x, const Shape& normalized_shape, const Tensor& weight,
                                   const Tensor& bias, double eps) {
  const char* op = "layer_norm";
  const auto [m, n] = check_ln(op, x, normalized_shape, weight, bias);
  KILN_CHECK(eps >= 0, op, "eps must be non-negative, got ", eps);
  const Device dev = x.device();
  const Shape ss = stat_shape(x, normalized_shape);
  LayerNormResult r{detail::new_output(x.shape(), x.dtype(), dev), detail::new_output(ss, acc_dtype(x.dtype()), dev),
                    detail::new_output(ss, acc_dtype(x.dtype()), dev)};
  if (x.numel() == 0) return r;
  LayerNormAttrs attrs{int64_t(normalized_shape.size()), eps, weight.defined(), bias.defined()};
  const Tensor in[] = {x.contiguous().view({m, n}), flat_param_or(weight, 1.0, n, x), flat_param_or(bias, 0.0, n, x)};
  Tensor outs[] = {r.output.view({m, n}), r.mean.view({m}), r.rstd.view({m})};
  dispatch(OpId::LayerNorm, x.dtype(), in, outs, &attrs);
  autograd::record_layer_norm(r.output, x, normalized_shape, weight, bias, r.mean, r.rstd);
  return r;
}

Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight, const Tensor& bias,
                  double eps) {
  return layer_norm_forward(x, normalized_shape, weight, bias, eps).output;
}

Grads3 layer_norm_backward(const Tensor& grad, const Tensor& x, const Shape& normalized_shape, const Tensor& mean,
                           const Tensor& rstd, const Tensor& weight) {
  const char* op = "layer_norm_backward";
  const auto [m, n] = check_ln(op, x, normalized_shape, weight, Tensor());
  detail::check_defined(op, {&grad, &mean, &rstd});
  detail::common_device(op, {&grad, &x, &mean, &rstd});
  KILN_CHECK(grad.shape() == x.shape(), op, "grad of shape ", shape_str(grad.shape()), " does not match input ",
             shape_str(x.shape()));
  for (const Tensor* s : {&mean, &rstd}) {
    KILN_CHECK(is_floating(s->dtype()) && s->numel() == m, op, "statistics of shape ", shape_str(s->shape()), " (",
               dtype_name(s->dtype()), ") do not match ", m, " rows of input ", shape_str(x.shape()));
  }
  const Device dev = x.device();
  Grads3 g{detail::new_output(x.shape(), x.dtype(), dev),
           detail::new_output(normalized_shape, acc_dtype(x.dtype()), dev),
           detail::new_output(normalized_shape, acc_dtype(x.dtype()), dev)};
  if (x.numel() == 0) {
    g.grad_weight.zero_();
    g.grad_bias.zero_();
    return g;
  }
  LayerNormAttrs attrs{int64_t(normalized_shape.size()), 0.0, weight.defined(), false};
  const DType acc = acc_dtype(x.dtype());
  const Tensor in[] = {grad.to(x.dtype()).contiguous().view({m, n}), x.contiguous().view({m, n}),
                       mean.to(acc).contiguous().view({m}), rstd.to(acc).contiguous().view({m}),
                       flat_param_or(weight, 1.0, n, x)};
  Tensor outs[] = {g.grad_input.view({m, n}), g.grad_weight.view({n}), g.grad_bias.view({n})};
  dispatch(OpId::LayerNormBackward, x.dtype(), in, outs, &attrs);
  return g;
}

}  // namespace kiln
