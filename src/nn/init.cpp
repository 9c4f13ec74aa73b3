// Parameter initialisers. Random fills run the dispatched random kernels straight
// into the tensor (on its device, in its dtype), so they cost no temporary.
#include "kiln/nn/init.h"

#include <cmath>

#include "kiln/autograd.h"
#include "kiln/dispatch.h"
#include "kiln/op_attrs.h"

namespace kiln::nn::init {

namespace {

Tensor fill_random(const char* op, OpId id, const Tensor& t, double a, double b, Generator* gen) {
  KILN_CHECK(t.defined(), op, "tensor is undefined");
  KILN_CHECK(is_floating(t.dtype()), op, "expected a floating tensor, got ", dtype_name(t.dtype()));
  if (t.numel() == 0) return t;
  NoGradGuard no_grad;
  Generator& g = gen ? *gen : default_generator();
  const RandomAttrs attrs{a, b, g.seed(), g.advance(uint64_t(t.numel()))};
  // The kernel writes contiguous memory; a strided tensor gets a fresh fill copied in.
  Tensor dst = t.is_contiguous() ? t.detach() : empty(t.shape(), TensorOptions(t.dtype()).device(t.device()));
  Tensor outs[] = {dst};
  dispatch(id, dst.dtype(), {}, outs, &attrs);
  dst.storage()->bump_version();  // an in-place write: caches keyed on the version see it
  if (!t.is_contiguous()) t.detach().copy_(dst);
  return t;
}

int64_t fan(const char* op, const Tensor& t, FanMode mode) {
  KILN_CHECK(t.defined() && t.dim() >= 2, op, "fan in and fan out need a tensor of 2 or more dims, got ",
             t.defined() ? shape_str(t.shape()) : std::string("undefined"));
  auto [in, out] = calculate_fan_in_and_fan_out(t);
  return mode == FanMode::FanIn ? in : out;
}

}  // namespace

double calculate_gain(const std::string& nl, double param) {
  if (nl == "linear" || nl == "conv1d" || nl == "conv2d" || nl == "conv3d" || nl == "conv_transpose1d" ||
      nl == "conv_transpose2d" || nl == "conv_transpose3d" || nl == "sigmoid")
    return 1.0;
  if (nl == "tanh") return 5.0 / 3.0;
  if (nl == "relu") return std::sqrt(2.0);
  if (nl == "leaky_relu") return std::sqrt(2.0 / (1.0 + param * param));
  if (nl == "selu") return 0.75;
  KILN_FAIL("calculate_gain", "unsupported nonlinearity '", nl, "'");
}

std::pair<int64_t, int64_t> calculate_fan_in_and_fan_out(const Tensor& t) {
  KILN_CHECK(t.defined() && t.dim() >= 2, "calculate_fan_in_and_fan_out",
             "needs a tensor of 2 or more dims, got ", t.defined() ? shape_str(t.shape()) : std::string("undefined"));
  int64_t receptive = 1;
  for (int64_t d = 2; d < t.dim(); ++d) receptive *= t.size(d);
  return {t.size(1) * receptive, t.size(0) * receptive};
}

Tensor uniform_(const Tensor& t, double low, double high, Generator* gen) {
  KILN_CHECK(low <= high, "uniform_", "expected low <= high, got ", low, " and ", high);
  return fill_random("uniform_", OpId::RandomUniform, t, low, high, gen);
}

Tensor normal_(const Tensor& t, double mean, double std, Generator* gen) {
  KILN_CHECK(std >= 0, "normal_", "expected std >= 0, got ", std);
  return fill_random("normal_", OpId::RandomNormal, t, mean, std, gen);
}

Tensor constant_(const Tensor& t, double value) {
  KILN_CHECK(t.defined(), "constant_", "tensor is undefined");
  NoGradGuard no_grad;
  t.detach().fill_(value);
  return t;
}
Tensor zeros_(const Tensor& t) { return constant_(t, 0.0); }
Tensor ones_(const Tensor& t) { return constant_(t, 1.0); }

Tensor xavier_uniform_(const Tensor& t, double gain, Generator* gen) {
  const double fi = double(fan("xavier_uniform_", t, FanMode::FanIn));
  const double fo = double(fan("xavier_uniform_", t, FanMode::FanOut));
  const double bound = gain * std::sqrt(6.0 / (fi + fo));
  return uniform_(t, -bound, bound, gen);
}

Tensor xavier_normal_(const Tensor& t, double gain, Generator* gen) {
  const double fi = double(fan("xavier_normal_", t, FanMode::FanIn));
  const double fo = double(fan("xavier_normal_", t, FanMode::FanOut));
  return normal_(t, 0.0, gain * std::sqrt(2.0 / (fi + fo)), gen);
}

Tensor kaiming_uniform_(const Tensor& t, double a, FanMode mode, const std::string& nonlinearity, Generator* gen) {
  const double f = double(fan("kaiming_uniform_", t, mode));
  KILN_CHECK(f > 0, "kaiming_uniform_", "fan is zero for shape ", shape_str(t.shape()));
  const double bound = calculate_gain(nonlinearity, a) * std::sqrt(3.0 / f);
  return uniform_(t, -bound, bound, gen);
}

Tensor kaiming_normal_(const Tensor& t, double a, FanMode mode, const std::string& nonlinearity, Generator* gen) {
  const double f = double(fan("kaiming_normal_", t, mode));
  KILN_CHECK(f > 0, "kaiming_normal_", "fan is zero for shape ", shape_str(t.shape()));
  return normal_(t, 0.0, calculate_gain(nonlinearity, a) / std::sqrt(f), gen);
}

}  // namespace kiln::nn::init
