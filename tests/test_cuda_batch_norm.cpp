// CUDA batch_norm in training mode, forward and backward, against naive double loops:
// the output, the running statistics' update, and the gradients of x, weight and bias,
// on shapes with few channels over many images (the grid of per-channel slices) and
// with odd or single-element planes. Skips without a CUDA device.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kiln/device_manager.h"
#include "kiln/generator.h"
#include "kiln/ops.h"
#include "kiln/tensor.h"
#include "tests/support/cuda_test.h"

using namespace kiln;
using kiln::testing::kGpu;

namespace {

double max_rel_diff(const std::vector<double>& got, const std::vector<double>& want) {
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(got[i])) return INFINITY;
    worst = std::max(worst, std::abs(got[i] - want[i]) / (1e-3 + std::abs(want[i])));
  }
  return worst;
}

void check_training_step(const Shape& shape, DType dt, double tol) {
  SCOPED_TRACE(::testing::Message() << dtype_name(dt) << " " << shape_str(shape));
  const int64_t N = shape[0], C = shape[1], HW = numel_of(shape) / (N * C);
  const double eps = 1e-5, momentum = 0.1;
  Generator g(uint64_t(N * 31 + C * 7 + HW));
  // An offset mean per channel tests the cancellation guard of the variance.
  Tensor x = add(randn(shape, TensorOptions(dt), &g), 3.0);
  Tensor w = randn({C}, TensorOptions(DType::Float32), &g), b = randn({C}, TensorOptions(DType::Float32), &g);
  Tensor rm = randn({C}, TensorOptions(DType::Float32), &g), rv = add(rand({C}, TensorOptions(DType::Float32), &g), 0.5);
  Tensor go = randn(shape, TensorOptions(dt), &g);
  const std::vector<double> xs = x.to_vector<double>(), ws = w.to_vector<double>(), bs = b.to_vector<double>(),
                            rms = rm.to_vector<double>(), rvs = rv.to_vector<double>(), gs = go.to_vector<double>();

  // Reference in double.
  const size_t nc = size_t(C);
  std::vector<double> y(xs.size()), gx(xs.size()), gw(nc), gb(nc), rm_ref(nc), rv_ref(nc);
  const double cnt = double(N * HW);
  for (int64_t c = 0; c < C; ++c) {
    auto at = [&](int64_t n, int64_t i) { return size_t((n * C + c) * HW + i); };
    double mean = 0, var = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < HW; ++i) mean += xs[at(n, i)];
    mean /= cnt;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < HW; ++i) var += (xs[at(n, i)] - mean) * (xs[at(n, i)] - mean);
    var /= cnt;
    const double invstd = 1 / std::sqrt(var + eps);
    double sg = 0, sgx = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < HW; ++i) {
        const double xh = (xs[at(n, i)] - mean) * invstd;
        y[at(n, i)] = xh * ws[size_t(c)] + bs[size_t(c)];
        sg += gs[at(n, i)];
        sgx += gs[at(n, i)] * xh;
      }
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < HW; ++i) {
        const double xh = (xs[at(n, i)] - mean) * invstd;
        gx[at(n, i)] = ws[size_t(c)] * invstd * (gs[at(n, i)] - sg / cnt - xh * sgx / cnt);
      }
    gw[size_t(c)] = sgx;
    gb[size_t(c)] = sg;
    rm_ref[size_t(c)] = (1 - momentum) * rms[size_t(c)] + momentum * mean;
    rv_ref[size_t(c)] = (1 - momentum) * rvs[size_t(c)] + momentum * var * (cnt > 1 ? cnt / (cnt - 1) : 1.0);
  }

  Tensor xg = x.to(kGpu).requires_grad_(), wg = w.to(kGpu).requires_grad_(), bg = b.to(kGpu).requires_grad_();
  Tensor rmg = rm.to(kGpu), rvg = rv.to(kGpu);
  Tensor out = batch_norm(xg, rmg, rvg, wg, bg, /*training=*/true, momentum, eps);
  out.backward(go.to(kGpu));
  EXPECT_LT(max_rel_diff(out.to(kCpu).to_vector<double>(), y), tol) << "output";
  EXPECT_LT(max_rel_diff(rmg.to(kCpu).to_vector<double>(), rm_ref), 1e-4) << "running_mean";
  EXPECT_LT(max_rel_diff(rvg.to(kCpu).to_vector<double>(), rv_ref), 1e-3) << "running_var";
  EXPECT_LT(max_rel_diff(xg.grad().to(kCpu).to_vector<double>(), gx), tol * 5) << "grad x";
  EXPECT_LT(max_rel_diff(wg.grad().to(kCpu).to_vector<double>(), gw), 1e-2) << "grad weight";
  EXPECT_LT(max_rel_diff(bg.grad().to(kCpu).to_vector<double>(), gb), 1e-2) << "grad bias";
}

}  // namespace

TEST(CudaBatchNorm, TrainingStepMatchesNaiveLoops) {
  REQUIRE_CUDA();
  for (const Shape& s : std::vector<Shape>{{256, 4, 28, 28}, {3, 5, 7}, {64, 3}, {2, 700, 9, 9}, {1, 2, 3000}})
    check_training_step(s, DType::Float32, 2e-3);
  check_training_step({64, 8, 17, 3}, DType::Float64, 1e-9);
  check_training_step({32, 6, 10, 10}, DType::BFloat16, 6e-2);
}
