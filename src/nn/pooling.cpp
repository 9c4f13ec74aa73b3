// Pooling layers.
#include "kiln/nn/layers.h"
#include "src/nn/layer_utils.h"

namespace kiln::nn {

MaxPool2d::MaxPool2d(Pair k, Pair s, Pair p, Pair d, bool ceil)
    : kernel_size(k), stride(s[0] == 0 && s[1] == 0 ? k : s), padding(p), dilation(d), ceil_mode(ceil) {
  KILN_CHECK(k[0] > 0 && k[1] > 0, "MaxPool2d", "kernel_size must be positive, got ", detail::pair_str(k));
  KILN_CHECK(stride[0] > 0 && stride[1] > 0, "MaxPool2d", "stride must be positive, got ", detail::pair_str(s));
}

Tensor MaxPool2d::forward(const Tensor& x) {
  return max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode);
}

std::string MaxPool2d::extra_repr() const {
  return detail::cat_str("kernel_size=", detail::pair_str(kernel_size), ", stride=", detail::pair_str(stride),
                         ", padding=", detail::pair_str(padding));
}

AvgPool2d::AvgPool2d(Pair k, Pair s, Pair p, bool ceil, bool include_pad)
    : kernel_size(k), stride(s[0] == 0 && s[1] == 0 ? k : s), padding(p), ceil_mode(ceil),
      count_include_pad(include_pad) {
  KILN_CHECK(k[0] > 0 && k[1] > 0, "AvgPool2d", "kernel_size must be positive, got ", detail::pair_str(k));
  KILN_CHECK(stride[0] > 0 && stride[1] > 0, "AvgPool2d", "stride must be positive, got ", detail::pair_str(s));
}

Tensor AvgPool2d::forward(const Tensor& x) {
  return avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad);
}

std::string AvgPool2d::extra_repr() const {
  return detail::cat_str("kernel_size=", detail::pair_str(kernel_size), ", stride=", detail::pair_str(stride),
                         ", padding=", detail::pair_str(padding));
}

Tensor AdaptiveAvgPool2d::forward(const Tensor& x) { return adaptive_avg_pool2d(x, output_size); }

std::string AdaptiveAvgPool2d::extra_repr() const {
  return "output_size=" + detail::pair_str(output_size);
}

}  // namespace kiln::nn
