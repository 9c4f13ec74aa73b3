// Pooling layers.
#include "kiln/nn/layers.h"
#include "src/nn/layer_utils.h"

namespace kiln::nn {

MaxPool2dImpl::MaxPool2dImpl(const MaxPool2dOptions& o)
    : options(o), kernel_size(o.kernel_size()), stride(o.stride()), padding(o.padding()), dilation(o.dilation()),
      ceil_mode(o.ceil_mode()) {
  const Pair k = kernel_size, s = stride;
  KILN_CHECK(k[0] > 0 && k[1] > 0, "MaxPool2d", "kernel_size must be positive, got ", detail::pair_str(k));
  KILN_CHECK(stride[0] > 0 && stride[1] > 0, "MaxPool2d", "stride must be positive, got ", detail::pair_str(s));
}

Tensor MaxPool2dImpl::forward(const Tensor& x) {
  return max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode);
}

std::string MaxPool2dImpl::extra_repr() const {
  return detail::cat_str("kernel_size=", detail::pair_str(kernel_size), ", stride=", detail::pair_str(stride),
                         ", padding=", detail::pair_str(padding));
}

AvgPool2dImpl::AvgPool2dImpl(const AvgPool2dOptions& o)
    : options(o), kernel_size(o.kernel_size()), stride(o.stride()), padding(o.padding()), ceil_mode(o.ceil_mode()),
      count_include_pad(o.count_include_pad()) {
  const Pair k = kernel_size, s = stride;
  KILN_CHECK(k[0] > 0 && k[1] > 0, "AvgPool2d", "kernel_size must be positive, got ", detail::pair_str(k));
  KILN_CHECK(stride[0] > 0 && stride[1] > 0, "AvgPool2d", "stride must be positive, got ", detail::pair_str(s));
}

Tensor AvgPool2dImpl::forward(const Tensor& x) {
  return avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad);
}

std::string AvgPool2dImpl::extra_repr() const {
  return detail::cat_str("kernel_size=", detail::pair_str(kernel_size), ", stride=", detail::pair_str(stride),
                         ", padding=", detail::pair_str(padding));
}

Tensor AdaptiveAvgPool2dImpl::forward(const Tensor& x) { return adaptive_avg_pool2d(x, output_size); }

std::string AdaptiveAvgPool2dImpl::extra_repr() const {
  return "output_size=" + detail::pair_str(output_size);
}

}  // namespace kiln::nn
