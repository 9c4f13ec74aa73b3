#pragma once
// gradcheck: compares every input's analytic gradient (from autograd) with central finite
// differences, in float64, on the CPU. The outputs are contracted with random weights w,
// f(x) = sum_k <w_k, out_k(x)>, so a single backward gives d f / d x for all inputs; each
// input element is then perturbed by +-eps and (f(x+eps) - f(x-eps)) / 2eps compared.
// By default it checks twice: with the inputs as given and with every input laid out
// non-contiguously (strided), so formulas must not assume contiguous inputs.
#include <gtest/gtest.h>

#include <functional>
#include <vector>

#include "kiln/autograd.h"
#include "kiln/generator.h"
#include "kiln/ops.h"

namespace kiln::testing {

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-5;
  double rtol = 1e-4;
  bool check_strided = true;         // also run with non-contiguous copies of the inputs
  std::vector<size_t> no_grad = {};  // input positions not differentiated (besides non-floating ones)
};

using MultiOutputFn = std::function<std::vector<Tensor>(const std::vector<Tensor>&)>;
using OutputFn = std::function<Tensor(const std::vector<Tensor>&)>;

::testing::AssertionResult gradcheck(const OutputFn& fn, const std::vector<Tensor>& inputs,
                                     const GradcheckOptions& opts = {});
::testing::AssertionResult gradcheck_multi(const MultiOutputFn& fn, const std::vector<Tensor>& inputs,
                                           const GradcheckOptions& opts = {});

// Fresh float64 CPU inputs, uniform in [lo, hi), from a generator private to the tests.
Tensor grad_input(const Shape& shape, double lo = -1.0, double hi = 1.0);
// Uniform in +-[lo, hi): values kept away from 0 (for ops with a kink or pole there).
Tensor grad_input_away_from_zero(const Shape& shape, double lo = 0.2, double hi = 1.0);
// The same values laid out non-contiguously (a strided view into a larger buffer).
Tensor strided_copy(const Tensor& t);

}  // namespace kiln::testing
