#pragma once
// Options of the activation and dropout layers (libtorch's names and defaults).
#include <string>

#include "kiln/arg.h"

namespace kiln::nn {

struct ReLUOptions {
  ReLUOptions(bool inplace = false) : inplace_(inplace) {}  // NOLINT
  KILN_ARG(bool, inplace);
};

struct GELUOptions {
  KILN_ARG(std::string, approximate) = "none";  // "none" (erf) or "tanh"
};

struct DropoutOptions {
  DropoutOptions(double p = 0.5) : p_(p) {}  // NOLINT
  KILN_ARG(double, p);
  KILN_ARG(bool, inplace) = false;
};

}  // namespace kiln::nn
