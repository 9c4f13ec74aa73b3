// Elementwise ops on 16M float32 elements against a plain memcpy of the same bytes:
// these ops are bandwidth-bound, so memcpy's GB/s is their ceiling on this machine.
#include <benchmark/benchmark.h>

#include <cstring>
#include <vector>

#include "kiln/ops.h"

namespace {
constexpr int64_t kN = int64_t(1) << 24;

// memcpy of a 3-stream op's traffic (two reads, one write) is modelled as copying 1.5x
// the output size; we report bytes processed so GB/s compares directly.
void BM_memcpy(benchmark::State& state) {
  std::vector<float> a(kN, 1.0f), b(kN);
  for (auto _ : state) {
    std::memcpy(b.data(), a.data(), kN * sizeof(float));
    benchmark::DoNotOptimize(b.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * 2 * kN * int64_t(sizeof(float)));
}
BENCHMARK(BM_memcpy)->Unit(benchmark::kMillisecond)->UseRealTime();

template <int Op>
void BM_binary(benchmark::State& state) {
  kiln::Tensor a = kiln::randn({kN}), b = kiln::randn({kN});
  for (auto _ : state) {
    kiln::Tensor c = Op == 0 ? kiln::add(a, b) : kiln::mul(a, b);
    benchmark::DoNotOptimize(c.data_ptr());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * 3 * kN * int64_t(sizeof(float)));
}
BENCHMARK(BM_binary<0>)->Name("add_fp32_16M")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_binary<1>)->Name("mul_fp32_16M")->Unit(benchmark::kMillisecond)->UseRealTime();

template <int Op>
void BM_unary(benchmark::State& state) {
  kiln::Tensor a = kiln::randn({kN});
  for (auto _ : state) {
    kiln::Tensor c = Op == 0 ? kiln::relu(a) : Op == 1 ? kiln::gelu(a) : kiln::exp(a);
    benchmark::DoNotOptimize(c.data_ptr());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * 2 * kN * int64_t(sizeof(float)));
}
BENCHMARK(BM_unary<0>)->Name("relu_fp32_16M")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_unary<1>)->Name("gelu_fp32_16M")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_unary<2>)->Name("exp_fp32_16M")->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_add_broadcast(benchmark::State& state) {
  kiln::Tensor a = kiln::randn({4096, 4096}), b = kiln::randn({4096});
  for (auto _ : state) {
    kiln::Tensor c = kiln::add(a, b);
    benchmark::DoNotOptimize(c.data_ptr());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * 2 * kN * int64_t(sizeof(float)));
}
BENCHMARK(BM_add_broadcast)->Name("add_broadcast_row_4096^2")->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_add_transposed(benchmark::State& state) {
  kiln::Tensor a = kiln::randn({4096, 4096}), b = kiln::randn({4096, 4096}).t();
  for (auto _ : state) {
    kiln::Tensor c = kiln::add(a, b);
    benchmark::DoNotOptimize(c.data_ptr());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * 3 * kN * int64_t(sizeof(float)));
}
BENCHMARK(BM_add_transposed)->Name("add_transposed_4096^2")->Unit(benchmark::kMillisecond)->UseRealTime();
}  // namespace

BENCHMARK_MAIN();
