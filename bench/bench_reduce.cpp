// Reductions and softmax on the CPU at the sizes of shared/bench/pytorch_peer.py (64M
// float32 elements), with a memcpy of the same bytes as the bandwidth ceiling. GB/s
// counts the bytes the peer script counts (input once; softmax input + output).
#include <benchmark/benchmark.h>

#include <cstring>
#include <vector>

#include "kiln/ops.h"

namespace {

constexpr int64_t kN = int64_t(1) << 26;  // 64M float32 = 256 MB
constexpr int64_t kSide = 8192;

const kiln::Tensor& data() {
  static const kiln::Tensor a = kiln::randn({kN});
  return a;
}

void set_bytes(benchmark::State& st, double bytes) {
  st.counters["GB/s"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_memcpy_256MB(benchmark::State& st) {
  data();  // make the input outside the timed loops
  std::vector<float> src(static_cast<size_t>(kN), 1.0f), dst(static_cast<size_t>(kN));
  for (auto _ : st) {
    std::memcpy(dst.data(), src.data(), size_t(kN) * 4);
    benchmark::DoNotOptimize(dst.data());
  }
  set_bytes(st, 2.0 * double(kN) * 4);  // read + write
}

void BM_sum_fp32_64M(benchmark::State& st) {
  for (auto _ : st) benchmark::DoNotOptimize(data().sum());
  set_bytes(st, double(kN) * 4);
}

void BM_std_fp32_64M(benchmark::State& st) {
  for (auto _ : st) benchmark::DoNotOptimize(kiln::std(data()));
  set_bytes(st, double(kN) * 4);
}

void BM_sum_dim1_8192sq(benchmark::State& st) {
  const kiln::Tensor m = data().view({kSide, kSide});
  for (auto _ : st) benchmark::DoNotOptimize(m.sum({1}));
  set_bytes(st, double(kN) * 4);
}

void BM_sum_dim0_8192sq(benchmark::State& st) {
  const kiln::Tensor m = data().view({kSide, kSide});
  for (auto _ : st) benchmark::DoNotOptimize(m.sum({0}));
  set_bytes(st, double(kN) * 4);
}

void BM_max_dim0_8192sq(benchmark::State& st) {
  const kiln::Tensor m = data().view({kSide, kSide});
  for (auto _ : st) benchmark::DoNotOptimize(kiln::max(m, 0));
  set_bytes(st, double(kN) * 4);
}

void BM_max_dim1_8192sq(benchmark::State& st) {
  const kiln::Tensor m = data().view({kSide, kSide});
  for (auto _ : st) benchmark::DoNotOptimize(kiln::max(m, 1));
  set_bytes(st, double(kN) * 4);
}

void BM_softmax_rows_8192sq(benchmark::State& st) {
  const kiln::Tensor m = data().view({kSide, kSide});
  for (auto _ : st) benchmark::DoNotOptimize(kiln::softmax(m, -1));
  set_bytes(st, 2.0 * double(kN) * 4);
}

void BM_log_softmax_rows_8192sq(benchmark::State& st) {
  const kiln::Tensor m = data().view({kSide, kSide});
  for (auto _ : st) benchmark::DoNotOptimize(kiln::log_softmax(m, -1));
  set_bytes(st, 2.0 * double(kN) * 4);
}

}  // namespace

#define KILN_REDUCE_BENCH(fn) BENCHMARK(fn)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(0.5)
KILN_REDUCE_BENCH(BM_memcpy_256MB);
KILN_REDUCE_BENCH(BM_sum_fp32_64M);
KILN_REDUCE_BENCH(BM_std_fp32_64M);
KILN_REDUCE_BENCH(BM_sum_dim1_8192sq);
KILN_REDUCE_BENCH(BM_sum_dim0_8192sq);
KILN_REDUCE_BENCH(BM_max_dim0_8192sq);
KILN_REDUCE_BENCH(BM_max_dim1_8192sq);
KILN_REDUCE_BENCH(BM_softmax_rows_8192sq);
KILN_REDUCE_BENCH(BM_log_softmax_rows_8192sq);
BENCHMARK_MAIN();
