// Conv2d and ConvTranspose2d.
#include "kiln/nn/layers.h"
#include "src/nn/layer_utils.h"

namespace kiln::nn {

namespace {
void check_conv(const char* layer, int64_t in, int64_t out, int64_t groups, Pair k, Pair s, Pair d) {
  detail::check_positive(layer, "in_channels", in);
  detail::check_positive(layer, "out_channels", out);
  detail::check_positive(layer, "groups", groups);
  KILN_CHECK(in % groups == 0 && out % groups == 0, layer, "in_channels (", in, ") and out_channels (", out,
             ") must be divisible by groups (", groups, ")");
  KILN_CHECK(k[0] > 0 && k[1] > 0, layer, "kernel_size must be positive, got ", detail::pair_str(k));
  KILN_CHECK(s[0] > 0 && s[1] > 0, layer, "stride must be positive, got ", detail::pair_str(s));
  KILN_CHECK(d[0] > 0 && d[1] > 0, layer, "dilation must be positive, got ", detail::pair_str(d));
}
}  // namespace

Conv2dImpl::Conv2dImpl(const Conv2dOptions& o, TensorOptions opts)
    : options(o), in_channels(o.in_channels()), out_channels(o.out_channels()), groups(o.groups()),
      kernel_size(o.kernel_size()), stride(o.stride()), padding(o.padding()), dilation(o.dilation()) {
  const int64_t in = in_channels, out = out_channels, g = groups;
  const Pair k = kernel_size, s = stride, d = dilation;
  const bool with_bias = o.bias();
  check_conv("Conv2d", in, out, g, k, s, d);
  opts = opts.requires_grad(false);
  weight = register_parameter("weight", empty({out, in / g, k[0], k[1]}, opts));
  bias = register_parameter("bias", with_bias ? empty({out}, opts) : Tensor());
  reset_parameters();
}

void Conv2dImpl::reset_parameters() { detail::reset_affine(weight, bias); }

Tensor Conv2dImpl::forward(const Tensor& x) { return conv2d(x, weight, bias, stride, padding, dilation, groups); }

std::string Conv2dImpl::extra_repr() const {
  return detail::cat_str(in_channels, ", ", out_channels, ", kernel_size=", detail::pair_str(kernel_size),
                         ", stride=", detail::pair_str(stride), ", padding=", detail::pair_str(padding),
                         ", groups=", groups, ", bias=", bias.defined() ? "true" : "false");
}

ConvTranspose2dImpl::ConvTranspose2dImpl(const ConvTranspose2dOptions& o, TensorOptions opts)
    : options(o), in_channels(o.in_channels()), out_channels(o.out_channels()), groups(o.groups()),
      kernel_size(o.kernel_size()), stride(o.stride()), padding(o.padding()), output_padding(o.output_padding()),
      dilation(o.dilation()) {
  const int64_t in = in_channels, out = out_channels, g = groups;
  const Pair k = kernel_size, s = stride, d = dilation, op = output_padding;
  const bool with_bias = o.bias();
  check_conv("ConvTranspose2d", in, out, g, k, s, d);
  KILN_CHECK(op[0] < s[0] || op[0] < d[0], "ConvTranspose2d", "output_padding ", detail::pair_str(op),
             " must be smaller than stride or dilation");
  KILN_CHECK(op[1] < s[1] || op[1] < d[1], "ConvTranspose2d", "output_padding ", detail::pair_str(op),
             " must be smaller than stride or dilation");
  opts = opts.requires_grad(false);
  weight = register_parameter("weight", empty({in, out / g, k[0], k[1]}, opts));
  bias = register_parameter("bias", with_bias ? empty({out}, opts) : Tensor());
  reset_parameters();
}

void ConvTranspose2dImpl::reset_parameters() { detail::reset_affine(weight, bias); }

Tensor ConvTranspose2dImpl::forward(const Tensor& x) {
  return conv_transpose2d(x, weight, bias, stride, padding, output_padding, groups, dilation);
}

std::string ConvTranspose2dImpl::extra_repr() const {
  return detail::cat_str(in_channels, ", ", out_channels, ", kernel_size=", detail::pair_str(kernel_size),
                         ", stride=", detail::pair_str(stride), ", padding=", detail::pair_str(padding),
                         ", output_padding=", detail::pair_str(output_padding), ", groups=", groups);
}

}  // namespace kiln::nn
