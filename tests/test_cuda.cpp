// The CUDA backend: devices, copies (sync, async from pinned memory, device to device),
// streams, the device allocator's statistics and OOM error, and elementwise kernels on
// contiguous, strided and broadcast inputs against naive double-precision loops.
// Every test skips when no CUDA device is present (CI has none).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kiln/device_manager.h"
#include "kiln/generator.h"
#include "kiln/memory.h"
#include "kiln/ops.h"
#include "kiln/tensor.h"
#include "tests/support/cuda_test.h"

using namespace kiln;
using kiln::testing::kGpu;

namespace {
std::vector<double> iota_values(int64_t n, double scale = 0.37, double shift = -3) {
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = shift + scale * double((i * 7919) % 97);
  return v;
}

void expect_near_all(const std::vector<double>& got, const std::vector<double>& want, double rtol, double atol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], atol + rtol * std::abs(want[i])) << "at element " << i;
}
}  // namespace

TEST(Cuda, ReportsDevicesOrWhyNot) {
  auto& dm = device_manager();
  if (!dm.is_available(DeviceType::Cuda)) {
    EXPECT_FALSE(dm.unavailable_reason(DeviceType::Cuda).empty());
    EXPECT_EQ(dm.device_count(DeviceType::Cuda), 0);
    GTEST_SKIP() << dm.unavailable_reason(DeviceType::Cuda);
  }
  const DeviceInfo info = dm.info(kGpu);
  EXPECT_FALSE(info.name.empty());
  EXPECT_GT(info.total_memory, size_t(0));
  EXPECT_GT(info.compute_units, 0);
  EXPECT_GE(dm.context(kGpu).stream_count, 1);
}

TEST(Cuda, HostDeviceRoundTripAndDeviceToDevice) {
  REQUIRE_CUDA();
  const auto v = iota_values(1000);
  Tensor h = tensor(v, {10, 100});
  Tensor d = h.to(kGpu);
  EXPECT_EQ(d.device(), kGpu);
  Tensor d2 = d.clone();  // device to device
  Tensor back = d2.cpu();
  EXPECT_EQ(back.to_vector<double>(), v);
  // A strided device view copied back gathers the right elements.
  Tensor col = d.transpose(0, 1).contiguous().cpu();
  for (int64_t i = 0; i < 100; ++i)
    for (int64_t j = 0; j < 10; ++j) ASSERT_EQ(col.at({i, j}).to_double(), v[size_t(j * 100 + i)]);
}

TEST(Cuda, AsyncCopyFromPinnedMemory) {
  REQUIRE_CUDA();
  const int64_t n = 1 << 20;
  Tensor pinned = pinned_empty({n}, DType::Float32);
  float* p = pinned.data<float>();
  for (int64_t i = 0; i < n; ++i) p[i] = float(i % 1000) * 0.5f;
  Tensor d = empty({n}, TensorOptions(DType::Float32).device(kGpu));
  d.copy_(pinned, /*non_blocking=*/true);
  device_manager().synchronize(kGpu);
  const auto got = d.cpu().to_vector<float>();
  for (int64_t i = 0; i < n; i += 4099) ASSERT_EQ(got[size_t(i)], float(i % 1000) * 0.5f);
  // And back into pinned memory asynchronously.
  Tensor dst = pinned_empty({n}, DType::Float32);
  dst.copy_(d, /*non_blocking=*/true);
  device_manager().synchronize(kGpu);
  for (int64_t i = 0; i < n; i += 4099) ASSERT_EQ(dst.data<float>()[i], float(i % 1000) * 0.5f);
}

TEST(Cuda, WorkOnSeveralStreamsStaysOrdered) {
  REQUIRE_CUDA();
  const int streams = device_manager().context(kGpu).stream_count;
  Tensor x = full({4096}, 1.0, TensorOptions().device(kGpu));
  for (int s = 0; s < streams; ++s) {
    StreamGuard g(kGpu, s);
    EXPECT_EQ(current_stream(kGpu), s);
    x = add(x, x);  // each stream waits for the previous one's work
  }
  device_manager().synchronize(kGpu);
  EXPECT_EQ(x.cpu().at({17}).to_double(), std::pow(2.0, streams));
  EXPECT_THROW(set_current_stream(kGpu, streams), Error);
}

TEST(Cuda, AllocatorStatsAndCacheReuse) {
  REQUIRE_CUDA();
  empty_cache(kGpu);
  reset_peak_memory_stats(kGpu);
  const MemoryStats before = memory_stats(kGpu);
  {
    Tensor a = empty({1 << 18}, TensorOptions().device(kGpu));  // 1 MiB
    const MemoryStats during = memory_stats(kGpu);
    EXPECT_EQ(during.allocated_bytes - before.allocated_bytes, 1 << 20);
    EXPECT_GE(during.reserved_bytes, during.allocated_bytes);
  }
  const MemoryStats after = memory_stats(kGpu);
  EXPECT_EQ(after.allocated_bytes, before.allocated_bytes);
  EXPECT_GE(after.peak_allocated_bytes, before.allocated_bytes + (1 << 20));
  {
    Tensor b = empty({1 << 18}, TensorOptions().device(kGpu));  // served from the cache
    EXPECT_EQ(memory_stats(kGpu).cache_hits, after.cache_hits + 1);
  }
}

TEST(Cuda, OutOfMemoryRaisesNamingTheRequest) {
  REQUIRE_CUDA();
  const size_t total = device_manager().info(kGpu).total_memory;
  const int64_t too_many = int64_t(total / 4) * 2;  // twice the card, in float32 elements
  try {
    Tensor t = empty({too_many}, TensorOptions().device(kGpu));
    FAIL() << "expected kiln::Error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("out of memory"), std::string::npos) << msg;
    EXPECT_NE(msg.find(std::to_string(too_many * 4)), std::string::npos) << msg;
    EXPECT_NE(msg.find("cuda:0"), std::string::npos) << msg;
  }
  // The device still works.
  EXPECT_EQ(full({3}, 2.0, TensorOptions().device(kGpu)).cpu().at({1}).to_double(), 2.0);
}

TEST(Cuda, ElementwiseMatchesNaiveLoopsOnEveryLayout) {
  REQUIRE_CUDA();
  const int64_t R = 37, C = 53;
  const auto av = iota_values(R * C, 0.11, -2.5);
  const auto bv = iota_values(R * C, 0.07, 0.5);
  const auto rowv = iota_values(C, 0.05, 1.0);
  for (DType dt : {DType::Float32, DType::Float64, DType::Float16, DType::BFloat16}) {
    const double tol = dt == DType::Float32 ? 1e-5 : dt == DType::Float64 ? 1e-12 : dt == DType::Float16 ? 2e-3 : 2e-2;
    // Round inputs to the dtype first, so the reference sees what the kernel sees.
    Tensor a_h = tensor(av, {R, C}).to(dt), b_h = tensor(bv, {R, C}).to(dt), r_h = tensor(rowv, {C}).to(dt);
    const auto a = a_h.to(DType::Float64).to_vector<double>();
    const auto b = b_h.to(DType::Float64).to_vector<double>();
    const auto row = r_h.to(DType::Float64).to_vector<double>();
    Tensor a_d = a_h.to(kGpu), b_d = b_h.to(kGpu), r_d = r_h.to(kGpu);
    auto got = [](const Tensor& t) { return t.cpu().to(DType::Float64).contiguous().to_vector<double>(); };
    std::vector<double> want(size_t(R * C));
    // contiguous
    for (size_t i = 0; i < want.size(); ++i) want[i] = a[i] + 2.0 * b[i];
    expect_near_all(got(add(a_d, b_d, 2)), want, tol, tol);
    for (size_t i = 0; i < want.size(); ++i) want[i] = a[i] / b[i];
    expect_near_all(got(div(a_d, b_d)), want, tol, tol);
    for (size_t i = 0; i < want.size(); ++i) want[i] = 0.5 * a[i] * (1 + std::erf(a[i] / std::sqrt(2.0)));
    expect_near_all(got(gelu(a_d)), want, tol, tol);
    for (size_t i = 0; i < want.size(); ++i) want[i] = 1 / (1 + std::exp(-a[i]));
    expect_near_all(got(sigmoid(a_d)), want, tol, tol);
    // broadcast: [R, C] * [C]
    for (int64_t i = 0; i < R; ++i)
      for (int64_t j = 0; j < C; ++j) want[size_t(i * C + j)] = a[size_t(i * C + j)] * row[size_t(j)];
    expect_near_all(got(mul(a_d, r_d)), want, tol, tol);
    // transposed (strided) input: relu(a^T) laid out [C, R]
    std::vector<double> want_t(size_t(R * C));
    for (int64_t i = 0; i < C; ++i)
      for (int64_t j = 0; j < R; ++j) want_t[size_t(i * R + j)] = std::max(0.0, a[size_t(j * C + i)]);
    expect_near_all(got(relu(a_d.t())), want_t, tol, tol);
    // comparison and where
    Tensor cond = gt(a_d, b_d);
    for (size_t i = 0; i < want.size(); ++i) want[i] = a[i] > b[i] ? a[i] : b[i];
    expect_near_all(got(where(cond, a_d, b_d)), want, tol, tol);
  }
}

TEST(Cuda, IntegerAndCastKernels) {
  REQUIRE_CUDA();
  Tensor x = arange(-6, 6, 1, TensorOptions(DType::Int64).device(kGpu));
  const auto v = x.cpu().to_vector<int64_t>();
  for (int64_t i = 0; i < 12; ++i) ASSERT_EQ(v[size_t(i)], i - 6);
  const auto sq = mul(x, x).cpu().to_vector<int64_t>();
  for (int64_t i = 0; i < 12; ++i) ASSERT_EQ(sq[size_t(i)], (i - 6) * (i - 6));
  const auto ab = abs(x).to(DType::Float32).cpu().to_vector<float>();
  for (int64_t i = 0; i < 12; ++i) ASSERT_EQ(ab[size_t(i)], float(std::abs(i - 6)));
  const auto b = x.to(DType::Bool).cpu().to_vector<bool>();
  for (int64_t i = 0; i < 12; ++i) ASSERT_EQ(bool(b[size_t(i)]), i != 6);
}

TEST(Cuda, RandomNumbersMatchTheCpuForTheSameSeed) {
  REQUIRE_CUDA();
  Generator g1(1234), g2(1234);
  Tensor c = rand({1000}, TensorOptions(), &g1);
  Tensor d = rand({1000}, TensorOptions().device(kGpu), &g2);
  EXPECT_EQ(c.to_vector<float>(), d.cpu().to_vector<float>());
  Generator g3(99), g4(99);
  const auto cn = randn({999}, TensorOptions(DType::Float64), &g3).to_vector<double>();
  const auto dn = randn({999}, TensorOptions(DType::Float64).device(kGpu), &g4).cpu().to_vector<double>();
  expect_near_all(dn, cn, 1e-13, 1e-13);
}

// Sizes large enough to take the split (multi-block) reduction paths.
TEST(Cuda, LargeReductionsMatchNaiveLoops) {
  REQUIRE_CUDA();
  const int64_t n = (1 << 20) + 37;
  const auto v = iota_values(n, 0.013, -0.6);
  Tensor x = tensor(v).to(DType::Float32);
  const auto xf = x.to(DType::Float64).to_vector<double>();
  Tensor xd = x.to(kGpu);
  double s = 0, mx = -1e300;
  for (double e : xf) s += e, mx = std::max(mx, e);
  double var = 0;
  for (double e : xf) var += (e - s / double(n)) * (e - s / double(n));
  var /= double(n - 1);
  EXPECT_NEAR(sum(xd).item<double>(), s, 1e-4 * std::abs(s) + 1e-2);
  EXPECT_NEAR(mean(xd).item<double>(), s / double(n), 1e-5);
  EXPECT_NEAR(kiln::var(xd).item<double>(), var, 1e-4 * var);
  EXPECT_EQ(amax(xd).item<double>(), mx);
  // argmax: the first of the tied maxima
  int64_t first = 0;
  for (int64_t i = 0; i < n; ++i)
    if (xf[size_t(i)] == mx) { first = i; break; }
  EXPECT_EQ(argmax(xd).item<int64_t>(), first);

  // Columns: max over dim 0 of [R, C] with its indices, and sum over dim 0 (67 columns:
  // one column a thread; 256: the 16-byte path, four columns a thread).
  for (const int64_t C : {int64_t(67), int64_t(256)}) {
  const int64_t R = 3001;
  Tensor m = tensor(iota_values(R * C, 0.21, -9), {R, C}).to(DType::Float32);
  const auto mf = m.to(DType::Float64).to_vector<double>();
  auto [vals, idx] = max(m.to(kGpu), 0);
  const auto gv = vals.cpu().to(DType::Float64).to_vector<double>();
  const auto gi = idx.cpu().to_vector<int64_t>();
  const auto cs = sum(m.to(kGpu), {0}).cpu().to(DType::Float64).to_vector<double>();
  for (int64_t j = 0; j < C; ++j) {
    double best = -1e300, col = 0;
    int64_t bi = -1;
    for (int64_t i = 0; i < R; ++i) {
      const double e = mf[size_t(i * C + j)];
      col += e;
      if (e > best) best = e, bi = i;
    }
    ASSERT_EQ(gv[size_t(j)], best) << j;
    ASSERT_EQ(gi[size_t(j)], bi) << j;
    ASSERT_NEAR(cs[size_t(j)], col, 1e-4 * std::abs(col) + 1e-3) << j;
  }
  }
}

TEST(Cuda, SoftmaxRowsAndColumnsMatchNaiveLoops) {
  REQUIRE_CUDA();
  for (int64_t n : {7, 5000}) {
    const int64_t rows = 5;
    Tensor x = tensor(iota_values(rows * n, 0.05, -2), {rows, n}).to(DType::Float32);
    const auto xf = x.to(DType::Float64).to_vector<double>();
    const auto got = softmax(x.to(kGpu), 1).cpu().to(DType::Float64).to_vector<double>();
    const auto got_log = log_softmax(x.to(kGpu), 1).cpu().to(DType::Float64).to_vector<double>();
    const auto got_col = softmax(x.to(kGpu), 0).cpu().to(DType::Float64).to_vector<double>();
    for (int64_t r = 0; r < rows; ++r) {
      double m = -1e300, s = 0;
      for (int64_t k = 0; k < n; ++k) m = std::max(m, xf[size_t(r * n + k)]);
      for (int64_t k = 0; k < n; ++k) s += std::exp(xf[size_t(r * n + k)] - m);
      for (int64_t k = 0; k < n; ++k) {
        const double e = xf[size_t(r * n + k)];
        ASSERT_NEAR(got[size_t(r * n + k)], std::exp(e - m) / s, 1e-6);
        ASSERT_NEAR(got_log[size_t(r * n + k)], e - m - std::log(s), 1e-4);
      }
    }
    for (int64_t k = 0; k < n; ++k) {
      double s = 0;
      for (int64_t r = 0; r < rows; ++r) s += std::exp(xf[size_t(r * n + k)]);
      for (int64_t r = 0; r < rows; ++r) ASSERT_NEAR(got_col[size_t(r * n + k)], std::exp(xf[size_t(r * n + k)]) / s, 1e-6);
    }
  }
}

TEST(Cuda, MatmulBatchedAndTransposedMatchNaiveLoops) {
  REQUIRE_CUDA();
  const int64_t B = 3, M = 70, K = 50, N = 40;
  for (DType dt : {DType::Float32, DType::Float64, DType::BFloat16, DType::Float16}) {
    const double tol = dt == DType::Float64 ? 1e-10 : dt == DType::Float32 ? 1e-3 : 0.1;
    Tensor a = tensor(iota_values(B * M * K, 0.02, -0.9), {B, M, K}).to(dt);
    Tensor bt = tensor(iota_values(N * K, 0.03, -1.3), {N, K}).to(dt);  // b = bt^T: a transposed operand
    const auto af = a.to(DType::Float64).to_vector<double>(), bf = bt.to(DType::Float64).to_vector<double>();
    const auto got = matmul(a.to(kGpu), bt.to(kGpu).t()).cpu().to(DType::Float64).to_vector<double>();
    ASSERT_EQ(got.size(), size_t(B * M * N));
    for (int64_t b = 0; b < B; ++b)
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
          double s = 0;
          for (int64_t k = 0; k < K; ++k) s += af[size_t((b * M + i) * K + k)] * bf[size_t(j * K + k)];
          ASSERT_NEAR(got[size_t((b * M + i) * N + j)], s, tol * (1 + std::abs(s))) << dtype_name(dt);
        }
  }
}
