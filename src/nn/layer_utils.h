#pragma once
// Small helpers the layer files share.
#include <cmath>
#include <sstream>
#include <string>

#include "kiln/nn/init.h"
#include "kiln/ops.h"

namespace kiln::nn::detail {

// PyTorch's default for Linear and convolutions: W ~ kaiming_uniform(a = sqrt(5)), i.e.
// U(+-1/sqrt(fan_in)), and b ~ U(+-1/sqrt(fan_in)).
inline void reset_affine(const Tensor& weight, const Tensor& bias) {
  init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (bias.defined()) {
    const int64_t fan_in = init::calculate_fan_in_and_fan_out(weight).first;
    const double bound = fan_in > 0 ? 1.0 / std::sqrt(double(fan_in)) : 0.0;
    init::uniform_(bias, -bound, bound);
  }
}

inline std::string pair_str(Pair p) {
  std::ostringstream os;
  os << "(" << p[0] << ", " << p[1] << ")";
  return os.str();
}

template <typename... Args>
std::string cat_str(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

inline void check_positive(const char* layer, const char* what, int64_t v) {
  KILN_CHECK(v > 0, layer, what, " must be positive, got ", v);
}

}  // namespace kiln::nn::detail
