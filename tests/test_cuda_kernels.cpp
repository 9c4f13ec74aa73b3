// CUDA kernels beyond the generated op tests: the index ops (gather, scatter_add,
// index_add, one_hot) at sizes that exercise the grid loops and heavy atomic contention,
// their out-of-range errors, against naive double-precision loops on the host. The GPU
// tests run under the GpuOnly strategy, so a missing CUDA kernel fails instead of quietly
// falling back to the CPU. They skip when no CUDA device is present (CI has none); the
// registration check runs whenever the CUDA backend is built.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kiln/device_manager.h"
#include "kiln/dispatch.h"
#include "kiln/nn/loss.h"
#include "kiln/op_attrs.h"
#include "kiln/ops.h"
#include "kiln/ops_backward.h"
#include "kiln/ops_nn_backward.h"
#include "kiln/tensor.h"
#include "tests/support/expect_error.h"
#include "tests/support/cuda_test.h"
#include "tests/support/gradcheck.h"

using namespace kiln;
using kiln::testing::kGpu;
using kiln::testing::expect_error;

namespace {
// Runs the scope under GpuOnly: an op without a CUDA kernel raises instead of falling back.
struct GpuOnlyScope {
  ExecutionStrategy saved = execution_strategy();
  GpuOnlyScope() { set_execution_strategy(ExecutionStrategy::gpu_only()); }
  ~GpuOnlyScope() { set_execution_strategy(saved); }
};

// Deterministic small values, exact in every floating dtype (multiples of 0.25 in [-1.25, 1.25]).
double small_value(int64_t i) { return double((i * 37 + 11) % 11 - 5) * 0.25; }

std::vector<double> values(int64_t n, int64_t salt = 0) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = small_value(i + salt);
  return v;
}
std::vector<int64_t> indices(int64_t n, int64_t bound, int64_t salt = 0) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = ((i + salt) * 7919 + 13) % bound;
  return v;
}

// Tolerance of an accumulated result: one rounding of the exact sum to the dtype.
double tol(DType dt, double want) {
  switch (dt) {
    case DType::Float16: return 1e-3 * std::abs(want) + 1e-3;
    case DType::BFloat16: return 8e-3 * std::abs(want) + 8e-3;
    case DType::Float32: return 1e-6 * std::abs(want) + 1e-6;
    default: return 0;
  }
}

void expect_close(const std::vector<double>& got, const std::vector<double>& want, DType dt) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], tol(dt, want[i])) << dtype_name(dt) << " at element " << i;
}

// A CPU tensor of dt from small values: integers get 4x the value (whole numbers), int64
// additionally 2^33 times that, so sums pass 2^32 and need the 64-bit atomics.
Tensor host_input(std::vector<double> v, const Shape& shape, DType dt) {
  if (dt == DType::Int32 || dt == DType::Int64)
    for (double& x : v) x = std::round(x * 4) * (dt == DType::Int64 ? double(int64_t(1) << 33) : 1.0);
  return tensor(v, shape).to(dt);
}

constexpr DType kAccumulated[] = {DType::Float32, DType::Float64, DType::Float16, DType::BFloat16, DType::Int32,
                                  DType::Int64};
}  // namespace

TEST(CudaKernels, IndexOpsAreRegisteredForEveryDtype) {
#ifdef KILN_WITH_CUDA
  const KernelRegistry& r = kernel_registry();
  for (int t = 0; t < kNumDTypes; ++t) EXPECT_TRUE(r.supports(DeviceType::Cuda, OpId::Gather, DType(t)));
  for (DType dt : kAccumulated) {
    EXPECT_TRUE(r.supports(DeviceType::Cuda, OpId::ScatterAdd, dt)) << dtype_name(dt);
    EXPECT_TRUE(r.supports(DeviceType::Cuda, OpId::IndexAdd, dt)) << dtype_name(dt);
  }
  EXPECT_TRUE(r.supports(DeviceType::Cuda, OpId::OneHot, DType::Int32));
  EXPECT_TRUE(r.supports(DeviceType::Cuda, OpId::OneHot, DType::Int64));
#else
  GTEST_SKIP() << "built without the CUDA backend";
#endif
}

TEST(CudaKernels, ScatterAddWithThousandsOfCollisions) {
  REQUIRE_CUDA();
  GpuOnlyScope gpu_only;
  const int64_t rows = 7, cols = 3, n = 5000;
  const auto idx_v = indices(n * cols, rows);
  for (DType dt : kAccumulated) {
    const Tensor self = host_input(values(rows * cols, 5), {rows, cols}, dt);
    const Tensor src = host_input(values(n * cols, 1), {n, cols}, dt);
    const auto self_h = self.to_vector<double>(), src_h = src.to_vector<double>();
    std::vector<double> want = self_h;
    for (int64_t p = 0; p < n * cols; ++p) want[size_t(idx_v[size_t(p)] * cols + p % cols)] += src_h[size_t(p)];
    const Tensor self_d = self.to(kGpu);
    Tensor out = scatter_add(self_d, 0, tensor(idx_v, {n, cols}).to(kGpu), src.to(kGpu));
    EXPECT_EQ(out.device(), kGpu);
    EXPECT_EQ(out.dtype(), dt);
    expect_close(out.to_vector<double>(), want, dt);
    EXPECT_EQ(self_d.to_vector<double>(), self_h);
  }
}

TEST(CudaKernels, ScatterAddAlongTheLastDimWithSmallerIndex) {
  REQUIRE_CUDA();
  GpuOnlyScope gpu_only;
  // self [4, 5, 6], index [3, 4, 50] along dim 2 (index smaller than self in dims 0-1),
  // src [3, 5, 60] larger than the index: only its leading [3, 4, 50] part takes part.
  const auto idx_v = indices(600, 6, 2);
  for (DType dt : {DType::Float32, DType::Int32, DType::BFloat16}) {
    const Tensor self = host_input(values(120, 3), {4, 5, 6}, dt), src = host_input(values(900, 9), {3, 5, 60}, dt);
    const auto src_h = src.to_vector<double>();
    std::vector<double> want = self.to_vector<double>();
    for (int64_t a = 0; a < 3; ++a)
      for (int64_t b = 0; b < 4; ++b)
        for (int64_t c = 0; c < 50; ++c)
          want[size_t((a * 5 + b) * 6 + idx_v[size_t((a * 4 + b) * 50 + c)])] += src_h[size_t((a * 5 + b) * 60 + c)];
    Tensor out = scatter_add(self.to(kGpu), 2, tensor(idx_v, {3, 4, 50}).to(DType::Int32).to(kGpu), src.to(kGpu));
    expect_close(out.to_vector<double>(), want, dt);
  }
}

TEST(CudaKernels, IndexAddWithThousandsOfCollisions) {
  REQUIRE_CUDA();
  GpuOnlyScope gpu_only;
  const int64_t outer = 4, mid = 6, inner = 5, k = 3000;
  const auto idx_v = indices(k, mid);
  for (DType dt : kAccumulated) {
    const Tensor self = host_input(values(outer * mid * inner, 2), {outer, mid, inner}, dt);
    const Tensor src = host_input(values(outer * k * inner, 7), {outer, k, inner}, dt);
    const auto src_h = src.to_vector<double>();
    std::vector<double> want = self.to_vector<double>();
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t q = 0; q < k; ++q)
        for (int64_t j = 0; j < inner; ++j)
          want[size_t((o * mid + idx_v[size_t(q)]) * inner + j)] += src_h[size_t((o * k + q) * inner + j)];
    for (DType it : {DType::Int32, DType::Int64}) {
      Tensor out = index_add(self.to(kGpu), 1, tensor(idx_v).to(it).to(kGpu), src.to(kGpu));
      EXPECT_EQ(out.dtype(), dt);
      expect_close(out.to_vector<double>(), want, dt);
    }
  }
}

TEST(CudaKernels, GatherEveryDtypeAndDim) {
  REQUIRE_CUDA();
  GpuOnlyScope gpu_only;
  // t [5, 7, 9]; index [4, 11, 6] along dim 1 (smaller than t in dims 0 and 2), and a
  // large [300, 9] x [1000, 9] gather along dim 0.
  struct Case {
    Shape ts, is;
    int64_t dim;
  };
  for (const Case& c : {Case{{5, 7, 9}, {4, 11, 6}, 1}, Case{{300, 9}, {1000, 9}, 0}, Case{{5, 7, 9}, {5, 7, 20}, 2}}) {
    const auto t_v = values(numel_of(c.ts), 4);
    const auto idx_v = indices(numel_of(c.is), c.ts[size_t(c.dim)], 1);
    const Strides ts = contiguous_strides(c.ts), is = contiguous_strides(c.is);
    for (int dti = 0; dti < kNumDTypes; ++dti) {
      const DType dt = DType(dti);
      const Tensor t = tensor(t_v, c.ts).to(dt);
      std::vector<double> w(idx_v.size());
      const auto rounded = t.to_vector<double>();
      for (int64_t p = 0; p < int64_t(idx_v.size()); ++p) {
        int64_t off = 0;
        for (size_t d = 0; d < c.is.size(); ++d) {
          const int64_t coord = (p / is[d]) % c.is[d];
          off += (int64_t(d) == c.dim ? idx_v[size_t(p)] : coord) * ts[d];
        }
        w[size_t(p)] = rounded[size_t(off)];
      }
      for (DType it : {DType::Int32, DType::Int64}) {
        Tensor out = gather(t.to(kGpu), c.dim, tensor(idx_v, c.is).to(it).to(kGpu));
        EXPECT_EQ(out.dtype(), dt);
        EXPECT_EQ(out.to_vector<double>(), w) << dtype_name(dt) << " " << shape_str(c.ts) << " dim " << c.dim;
      }
    }
  }
}

TEST(CudaKernels, OneHotLarge) {
  REQUIRE_CUDA();
  GpuOnlyScope gpu_only;
  const int64_t n = 1000, classes = 37;
  const auto idx_v = indices(n, classes, 5);
  for (DType it : {DType::Int32, DType::Int64}) {
    Tensor out = one_hot(tensor(idx_v, {10, 100}).to(it).to(kGpu), classes);
    EXPECT_EQ(out.dtype(), DType::Int64);
    EXPECT_EQ(out.shape(), (Shape{10, 100, classes}));
    const auto got = out.to_vector<int64_t>();
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = 0; c < classes; ++c)
        ASSERT_EQ(got[size_t(i * classes + c)], idx_v[size_t(i)] == c ? 1 : 0) << i << " " << c;
  }
}

TEST(CudaKernels, OutOfRangeIndicesRaiseNamingTheOpAndPositionBeforeWriting) {
  REQUIRE_CUDA();
  GpuOnlyScope gpu_only;
  const Tensor t = tensor(values(12), {3, 4}).to(kGpu);
  const auto t_before = t.to_vector<double>();
  const Tensor bad = tensor<int64_t>({0, 1, 2, 9, 1, -1}, {3, 2}).to(kGpu);
  expect_error([&] { gather(t, 1, bad); }, "gather", "index 9 (at position 3)");
  expect_error([&] { scatter_add(t, 1, bad, ones({3, 2}, TensorOptions(DType::Float32).device(kGpu))); },
               "scatter_add", "index 9 (at position 3) is out of range for dim 1 of size 4");
  expect_error([&] { index_add(t, 0, tensor<int32_t>({2, -3}).to(kGpu), ones({2, 4}).to(kGpu)); }, "index_add",
               "index -3 (at position 1)");
  expect_error([&] { one_hot(tensor<int64_t>({0, 4, 5}).to(kGpu), 4); }, "one_hot", "index 4 (at position 1)");
  expect_error([&] { index_select(t, 0, tensor<int64_t>({1, 3}).to(kGpu)); }, "index_select",
               "index 3 (at position 1)");
  expect_error([&] { embedding(t, tensor<int32_t>({0, 0, 7}).to(kGpu)); }, "embedding", "index 7 (at position 2)");
  EXPECT_EQ(t.to_vector<double>(), t_before);
  EXPECT_EQ(bad.to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, 9, 1, -1}));
  // cross_entropy's targets are checked by its gather: the error still names the loss.
  expect_error([&] { nn::cross_entropy(t, tensor<int64_t>({1, 4, 0}).to(kGpu)); }, "cross_entropy",
               "target 4 is out of range for 4 classes");
}

TEST(CudaKernels, AdamStepRegisteredForEveryFloatingDtype) {
#ifdef KILN_WITH_CUDA
  for (DType dt : {DType::Float32, DType::Float64, DType::Float16, DType::BFloat16})
    EXPECT_TRUE(kernel_registry().supports(DeviceType::Cuda, OpId::AdamStep, dt)) << dtype_name(dt);
#else
  GTEST_SKIP() << "built without the CUDA backend";
#endif
}

// One AdamW + amsgrad step on [6, 5] tensors stored transposed (dense, one stride order:
// the CUDA kernel walks them flat) and with the gradient contiguous (mixed orders: the
// kernel hands them to the CPU), against a double-precision reference of the same step.
TEST(CudaKernels, AdamStepOnDenseTransposedAndMixedLayouts) {
  REQUIRE_CUDA();
  const double lr = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1;
  const int64_t step = 3;
  for (DType dt : {DType::Float32, DType::Float16, DType::BFloat16}) {
    for (bool mixed : {false, true}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + (mixed ? " mixed layouts" : " transposed"));
      std::vector<double> mv = values(30, 3), vv = values(30, 4), vmaxv = values(30, 6);
      for (double& x : mv) x *= 0.1;
      for (double& x : vv) x = std::abs(x) * 0.1;
      for (double& x : vmaxv) x = std::abs(x) * 0.1;
      const Tensor hp = tensor(values(30, 1), {6, 5}).to(dt), hg = tensor(values(30, 2), {6, 5}).to(dt);
      const Tensor hm = tensor(mv, {6, 5}).to(dt), hv = tensor(vv, {6, 5}).to(dt), hvmax = tensor(vmaxv, {6, 5}).to(dt);
      auto transposed = [](const Tensor& h) { return h.to(kGpu).t().contiguous().t(); };  // same values, strides (1, 6)
      Tensor p = transposed(hp), m = transposed(hm), v = transposed(hv), vmax = transposed(hvmax);
      const Tensor g = mixed ? hg.to(kGpu) : transposed(hg);
      ASSERT_FALSE(p.is_contiguous());
      const AdamAttrs at{lr, b1, b2, eps, wd, step, true, true};
      const Tensor in[] = {g};
      Tensor outs[] = {p, m, v, vmax};
      dispatch(OpId::AdamStep, dt, in, outs, &at);

      const auto P = hp.to_vector<double>(), G = hg.to_vector<double>(), M = hm.to_vector<double>(),
                 V = hv.to_vector<double>(), VM = hvmax.to_vector<double>();
      const double bc1 = 1 - std::pow(b1, double(step)), bc2 = 1 - std::pow(b2, double(step));
      std::vector<double> wp(30), wm(30), wv(30), wvm(30);
      for (size_t i = 0; i < 30; ++i) {
        wm[i] = b1 * M[i] + (1 - b1) * G[i];
        wv[i] = b2 * V[i] + (1 - b2) * G[i] * G[i];
        wvm[i] = std::max(VM[i], wv[i]);
        wp[i] = P[i] * (1 - lr * wd) - lr / bc1 * wm[i] / (std::sqrt(wvm[i] / bc2) + eps);
      }
      const double rt = dt == DType::Float32 ? 1e-5 : dt == DType::Float16 ? 1e-3 : 1e-2;
      auto check = [&](const Tensor& got, const std::vector<double>& want, const char* what) {
        const auto gv = got.contiguous().to_vector<double>();
        for (size_t i = 0; i < want.size(); ++i)
          EXPECT_NEAR(gv[i], want[i], rt * (std::abs(want[i]) + 1e-3)) << what << " at " << i;
      };
      check(p, wp, "param");
      check(m, wm, "exp_avg");
      check(v, wv, "exp_avg_sq");
      check(vmax, wvm, "max_exp_avg_sq");
      EXPECT_FALSE(p.is_contiguous());  // updated in place, layout kept
    }
  }
}

namespace {
struct PoolCase {
  Shape x;
  Pair k, s, p, d;
  bool ceil;
};

int64_t pooled_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, bool ceil) {
  const double span = double(in + 2 * p - d * (k - 1) - 1) / double(s);
  int64_t o = int64_t(ceil ? std::ceil(span) : std::floor(span)) + 1;
  if (ceil && (o - 1) * s >= in + p) --o;
  return o;
}
}  // namespace

// max_pool2d forward (values and int64 indices) and backward on CUDA against naive loops:
// the band-tiled kernels (the benchmark's 3x3 s2 geometry, the CNN's 2x2, odd sizes,
// dilation, ceil mode, misaligned planes, more planes than a grid dimension holds) and the
// fallbacks for planes too wide for shared memory. Inputs are small integers (many ties:
// the first maximum must win), a few NaN (they win) and -inf.
TEST(CudaKernels, MaxPool2dForwardAndBackwardMatchNaiveLoops) {
  REQUIRE_CUDA();
  GpuOnlyScope gpu_only;
  const std::vector<PoolCase> cases = {
      {{2, 3, 112, 112}, {3, 3}, {2, 2}, {1, 1}, {1, 1}, false},
      {{4, 8, 28, 28}, {2, 2}, {2, 2}, {0, 0}, {1, 1}, false},
      {{1, 3, 57, 33}, {3, 3}, {2, 2}, {1, 1}, {1, 1}, true},
      {{1, 2, 300, 41}, {3, 2}, {1, 2}, {1, 0}, {2, 1}, true},
      {{2, 1, 64, 200}, {5, 3}, {3, 1}, {2, 1}, {1, 2}, false},
      {{70000, 1, 3, 3}, {2, 2}, {1, 1}, {0, 0}, {1, 1}, false},
      {{1, 2, 12, 5000}, {3, 3}, {2, 2}, {1, 1}, {1, 1}, false},  // wide rows: the fallback kernels
  };
  for (const PoolCase& q : cases) {
    const int64_t planes = q.x[0] * q.x[1], H = q.x[2], W = q.x[3];
    const int64_t OH = pooled_size(H, q.k[0], q.s[0], q.p[0], q.d[0], q.ceil);
    const int64_t OW = pooled_size(W, q.k[1], q.s[1], q.p[1], q.d[1], q.ceil);
    std::vector<double> xv(size_t(planes * H * W));
    for (size_t e = 0; e < xv.size(); ++e) {
      const int64_t r = int64_t((e * 2654435761u) % 1009);
      xv[e] = r == 0 ? NAN : r == 1 ? -INFINITY : double(r % 6);
    }
    std::vector<double> gyv(size_t(planes * OH * OW));
    for (size_t o = 0; o < gyv.size(); ++o) gyv[o] = double(int64_t(o * 7 % 17) - 8) * 0.25;
    // Reference forward and backward.
    std::vector<double> ry(gyv.size()), rgx(xv.size(), 0.0);
    std::vector<int64_t> ridx(gyv.size());
    for (int64_t pl = 0; pl < planes; ++pl)
      for (int64_t i = 0; i < OH; ++i)
        for (int64_t j = 0; j < OW; ++j) {
          double best = -INFINITY;
          int64_t arg = -1;
          bool nan = false;
          for (int64_t u = 0; u < q.k[0] && !nan; ++u)
            for (int64_t v = 0; v < q.k[1] && !nan; ++v) {
              const int64_t r = i * q.s[0] - q.p[0] + u * q.d[0], c = j * q.s[1] - q.p[1] + v * q.d[1];
              if (r < 0 || r >= H || c < 0 || c >= W) continue;
              const double val = xv[size_t((pl * H + r) * W + c)];
              if (arg < 0 || val > best || std::isnan(val)) best = val, arg = r * W + c, nan = std::isnan(val);
            }
          const size_t o = size_t((pl * OH + i) * OW + j);
          ry[o] = best;
          ridx[o] = arg;
          rgx[size_t(pl * H * W + arg)] += gyv[o];
        }
    for (DType dt : {DType::Float32, DType::Float64, DType::Float16, DType::BFloat16}) {
      SCOPED_TRACE(shape_str(q.x) + " " + dtype_name(dt));
      const Tensor x = tensor(xv, q.x).to(dt).to(kGpu);
      auto [y, idx] = max_pool2d_with_indices(x, q.k, q.s, q.p, q.d, q.ceil);
      ASSERT_EQ(y.shape(), (Shape{q.x[0], q.x[1], OH, OW}));
      const auto yv = y.to_vector<double>();
      ASSERT_EQ(idx.to_vector<int64_t>(), ridx);
      for (size_t o = 0; o < yv.size(); ++o)
        ASSERT_TRUE(yv[o] == ry[o] || (std::isnan(yv[o]) && std::isnan(ry[o]))) << o << ": " << yv[o] << " vs " << ry[o];
      const auto y2 = max_pool2d(x, q.k, q.s, q.p, q.d, q.ceil).to_vector<double>();  // no indices written
      for (size_t o = 0; o < yv.size(); ++o)
        ASSERT_TRUE(y2[o] == ry[o] || (std::isnan(y2[o]) && std::isnan(ry[o]))) << o << ": " << y2[o] << " vs " << ry[o];
      const Tensor gx = max_pool2d_backward(tensor(gyv, y.shape()).to(dt).to(kGpu), idx, x.shape());
      expect_close(gx.to_vector<double>(), rgx, dt);  // sums of quarters: exact but for the final rounding
    }
  }
}

// avg_pool2d on CUDA (the band-tiled kernel; the wide case takes the fallback) against
// naive loops with PyTorch's divisor rules.
TEST(CudaKernels, AvgPool2dMatchesNaiveLoops) {
  REQUIRE_CUDA();
  GpuOnlyScope gpu_only;
  struct AvgCase {
    Shape x;
    Pair k, s, p;
    bool ceil, include_pad;
  };
  const std::vector<AvgCase> cases = {
      {{2, 3, 112, 112}, {2, 2}, {2, 2}, {0, 0}, false, true},
      {{1, 3, 57, 33}, {3, 3}, {2, 2}, {1, 1}, true, false},
      {{1, 3, 57, 33}, {3, 3}, {2, 2}, {1, 1}, true, true},
      {{2, 2, 40, 30}, {3, 2}, {1, 2}, {1, 1}, false, false},
      {{1, 2, 12, 5000}, {2, 2}, {2, 2}, {0, 0}, false, true},
  };
  for (const AvgCase& q : cases) {
    const int64_t planes = q.x[0] * q.x[1], H = q.x[2], W = q.x[3];
    const int64_t OH = pooled_size(H, q.k[0], q.s[0], q.p[0], 1, q.ceil);
    const int64_t OW = pooled_size(W, q.k[1], q.s[1], q.p[1], 1, q.ceil);
    const auto xv = values(planes * H * W, 3);
    std::vector<double> want(size_t(planes * OH * OW));
    for (int64_t pl = 0; pl < planes; ++pl)
      for (int64_t i = 0; i < OH; ++i)
        for (int64_t j = 0; j < OW; ++j) {
          const int64_t r0 = i * q.s[0] - q.p[0], c0 = j * q.s[1] - q.p[1];
          const int64_t r1 = std::min(r0 + q.k[0], H + q.p[0]), c1 = std::min(c0 + q.k[1], W + q.p[1]);
          double s = 0;
          int64_t inside = 0;
          for (int64_t r = r0; r < r1; ++r)
            for (int64_t c = c0; c < c1; ++c)
              if (r >= 0 && r < H && c >= 0 && c < W) s += xv[size_t((pl * H + r) * W + c)], ++inside;
          want[size_t((pl * OH + i) * OW + j)] = s / double(q.include_pad ? (r1 - r0) * (c1 - c0) : inside);
        }
    for (DType dt : {DType::Float32, DType::Float64, DType::Float16, DType::BFloat16}) {
      SCOPED_TRACE(shape_str(q.x) + " " + dtype_name(dt));
      const Tensor y = avg_pool2d(tensor(xv, q.x).to(dt).to(kGpu), q.k, q.s, q.p, q.ceil, q.include_pad);
      ASSERT_EQ(y.shape(), (Shape{q.x[0], q.x[1], OH, OW}));
      expect_close(y.to_vector<double>(), want, dt);
    }
  }
}

// Gradients through the CUDA kernels (max_pool2d_backward, scatter_add as gather's
// backward, gather as scatter_add's, index_select as index_add's, avg_pool2d): float64
// inputs go to the GPU inside the checked function, so autograd runs there and the
// finite differences check it.
TEST(CudaKernels, GradcheckThroughTheCudaKernels) {
  REQUIRE_CUDA();
  using In = std::vector<Tensor>;
  using kiln::testing::grad_input;
  auto gpu = [](const Tensor& t) { return t.to(kGpu); };
  const Tensor x = grad_input({2, 2, 7, 8});  // random values: no ties within a window
  EXPECT_TRUE(kiln::testing::gradcheck(
      [&](const In& t) { return max_pool2d(gpu(t[0]), {3, 3}, {2, 2}, {1, 1}).to(kCpu); }, {x}));
  EXPECT_TRUE(kiln::testing::gradcheck(
      [&](const In& t) { return max_pool2d(gpu(t[0]), {2, 2}, {1, 2}, {0, 1}, {2, 1}, true).to(kCpu); }, {x}));
  EXPECT_TRUE(kiln::testing::gradcheck(
      [&](const In& t) { return avg_pool2d(gpu(t[0]), {3, 3}, {2, 2}, {1, 1}, true, false).to(kCpu); }, {x}));
  const Tensor gidx = tensor<int64_t>({0, 2, 2, 1, 0, 0}, {2, 3});
  EXPECT_TRUE(kiln::testing::gradcheck([&](const In& t) { return gather(gpu(t[0]), 1, gpu(gidx)).to(kCpu); },
                                       {grad_input({2, 4})}));
  const Tensor sidx = tensor<int64_t>({0, 2, 2, 1}, {2, 2});
  EXPECT_TRUE(kiln::testing::gradcheck(
      [&](const In& t) { return scatter_add(gpu(t[0]), 1, gpu(sidx), gpu(t[1])).to(kCpu); },
      {grad_input({2, 3}), grad_input({2, 2})}));
  const Tensor idx = tensor<int64_t>({2, 0, 2});
  EXPECT_TRUE(kiln::testing::gradcheck(
      [&](const In& t) { return index_add(gpu(t[0]), 1, gpu(idx), gpu(t[1])).to(kCpu); },
      {grad_input({2, 4}), grad_input({2, 3})}));
}
