// The CUDA backend at the sizes of shared/bench/pytorch_peer.py: each iteration runs the
// op and synchronises the device, so the time is the op's own (plus one sync). GB/s counts
// the bytes the peer script counts. Every benchmark skips when no CUDA device is present.
#include <benchmark/benchmark.h>

#include "kiln/device_manager.h"
#include "kiln/memory.h"
#include "kiln/ops.h"
#include "kiln/ops_backward.h"

using namespace kiln;

namespace {

const Device kGpu{DeviceType::Cuda, 0};

bool have_gpu(benchmark::State& st) {
  if (device_manager().is_available(DeviceType::Cuda)) return true;
  st.SkipWithError("no CUDA device");
  return false;
}

void rate(benchmark::State& st, double bytes, double flops = 0) {
  if (bytes > 0) st.counters["GB/s"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  if (flops > 0) st.counters["TFLOP/s"] = benchmark::Counter(flops * 1e-12, benchmark::Counter::kIsIterationInvariantRate);
}

template <typename F>
void run(benchmark::State& st, F f) {
  for (int i = 0; i < 3; ++i) f();  // warm up: plans, algorithm search, cache
  device_manager().synchronize(kGpu);
  for (auto _ : st) {
    f();
    device_manager().synchronize(kGpu);
  }
}

constexpr int64_t kN = int64_t(1) << 26;
TensorOptions gpu(DType t = DType::Float32) { return TensorOptions(t).device(kGpu); }

#define KILN_ELEMENTWISE(name, bytes, expr)                               \
  void BM_##name(benchmark::State& st) {                                  \
    if (!have_gpu(st)) return;                                            \
    const Tensor a = randn({kN}, gpu()), b = randn({kN}, gpu());          \
    const Tensor c = randn({kN}, gpu());                                  \
    run(st, [&] { benchmark::DoNotOptimize(expr); });                     \
    rate(st, double(bytes));                                              \
  }                                                                       \
  BENCHMARK(BM_##name)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_d2d_copy_256MiB(benchmark::State& st) {
  if (!have_gpu(st)) return;
  const Tensor a = randn({kN}, gpu());
  Tensor b = empty({kN}, gpu());
  run(st, [&] { b.copy_(a); });
  rate(st, 2.0 * kN * 4);
}
BENCHMARK(BM_d2d_copy_256MiB)->UseRealTime()->Unit(benchmark::kMillisecond);

KILN_ELEMENTWISE(add_fp32_64M, 3 * kN * 4, add(a, b))
KILN_ELEMENTWISE(mul_fp32_64M, 3 * kN * 4, mul(a, b))
KILN_ELEMENTWISE(div_fp32_64M, 3 * kN * 4, div(a, b))
KILN_ELEMENTWISE(relu_fp32_64M, 2 * kN * 4, relu(a))
KILN_ELEMENTWISE(gelu_fp32_64M, 2 * kN * 4, gelu(a))
KILN_ELEMENTWISE(sum_fp32_64M, kN * 4, sum(a))
KILN_ELEMENTWISE(std_fp32_64M, kN * 4, kiln::std(a))
KILN_ELEMENTWISE(sum_dim1_8192sq, kN * 4, sum(a.view({8192, 8192}), {1}))
KILN_ELEMENTWISE(max_dim0_8192sq, kN * 4, max(a.view({8192, 8192}), 0).first)
KILN_ELEMENTWISE(softmax_rows_8192sq, 2 * kN * 4, softmax(a.view({8192, 8192}), -1))

void BM_matmul(benchmark::State& st, DType dt, int64_t n, bool tf32) {
  if (!have_gpu(st)) return;
  const Tensor x = randn({n, n}, gpu(DType::Float32)).to(dt), y = randn({n, n}, gpu(DType::Float32)).to(dt);
  set_allow_tf32(tf32);
  run(st, [&] { benchmark::DoNotOptimize(matmul(x, y)); });
  set_allow_tf32(false);
  rate(st, 0, 2.0 * double(n) * double(n) * double(n));
}
BENCHMARK_CAPTURE(BM_matmul, fp32_4096, DType::Float32, 4096, false)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_matmul, tf32_4096, DType::Float32, 4096, true)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_matmul, bf16_8192, DType::BFloat16, 8192, false)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_conv2d_3x3(benchmark::State& st, DType dt) {
  if (!have_gpu(st)) return;
  const Tensor x = randn({64, 256, 56, 56}, gpu()).to(dt), w = randn({256, 256, 3, 3}, gpu()).to(dt);
  run(st, [&] { benchmark::DoNotOptimize(conv2d(x, w, Tensor(), {1, 1}, {1, 1})); });
  rate(st, 0, 2.0 * 64 * 256 * 56 * 56 * 256 * 9);
}
BENCHMARK_CAPTURE(BM_conv2d_3x3, fp32, DType::Float32)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_conv2d_3x3, bf16, DType::BFloat16)->UseRealTime()->Unit(benchmark::kMillisecond);

// The same convolution channels-last (input and weight NHWC, as pytorch_peer.py's NHWC row).
void BM_conv2d_3x3_nhwc(benchmark::State& st, DType dt) {
  if (!have_gpu(st)) return;
  const Tensor x = randn({64, 256, 56, 56}, gpu()).to(dt).to(MemoryFormat::ChannelsLast),
               w = randn({256, 256, 3, 3}, gpu()).to(dt).to(MemoryFormat::ChannelsLast);
  run(st, [&] { benchmark::DoNotOptimize(conv2d(x, w, Tensor(), {1, 1}, {1, 1})); });
  rate(st, 0, 2.0 * 64 * 256 * 56 * 56 * 256 * 9);
}
BENCHMARK_CAPTURE(BM_conv2d_3x3_nhwc, fp32, DType::Float32)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_conv2d_3x3_nhwc, bf16, DType::BFloat16)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_max_pool2d_3x3s2(benchmark::State& st) {
  if (!have_gpu(st)) return;
  const Tensor x = randn({64, 64, 112, 112}, gpu());
  run(st, [&] { benchmark::DoNotOptimize(max_pool2d(x, {3, 3}, {2, 2}, {1, 1})); });
  rate(st, double(x.numel()) * 4 * 1.25);
}
BENCHMARK(BM_max_pool2d_3x3s2)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_avg_pool2d_2x2s2(benchmark::State& st) {
  if (!have_gpu(st)) return;
  const Tensor x = randn({64, 64, 112, 112}, gpu());
  run(st, [&] { benchmark::DoNotOptimize(avg_pool2d(x, {2, 2}, {2, 2})); });
  rate(st, double(x.numel()) * 4 * 1.25);
}
BENCHMARK(BM_avg_pool2d_2x2s2)->UseRealTime()->Unit(benchmark::kMillisecond);

// The backward gathers (one thread per grad_x element): grad_y read, grad_x written once.
void BM_avg_pool2d_backward_3x3s2(benchmark::State& st) {
  if (!have_gpu(st)) return;
  const Tensor gy = randn({64, 64, 56, 56}, gpu());
  run(st, [&] { benchmark::DoNotOptimize(avg_pool2d_backward(gy, {64, 64, 112, 112}, {3, 3}, {2, 2}, {1, 1})); });
  rate(st, double(gy.numel()) * 4 * 5);
}
BENCHMARK(BM_avg_pool2d_backward_3x3s2)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_adaptive_avg_pool2d_backward_7x7(benchmark::State& st) {
  if (!have_gpu(st)) return;
  const Tensor gy = randn({256, 512, 7, 7}, gpu());
  run(st, [&] { benchmark::DoNotOptimize(adaptive_avg_pool2d_backward(gy, {256, 512, 14, 14})); });
  rate(st, double(gy.numel()) * 4 * 5);
}
BENCHMARK(BM_adaptive_avg_pool2d_backward_7x7)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_conv_transpose2d_3x3(benchmark::State& st, DType dt) {
  if (!have_gpu(st)) return;
  const Tensor x = randn({64, 256, 56, 56}, gpu()).to(dt), w = randn({256, 256, 3, 3}, gpu()).to(dt);
  run(st, [&] { benchmark::DoNotOptimize(conv_transpose2d(x, w, Tensor(), {1, 1}, {1, 1})); });
  rate(st, 0, 2.0 * 64 * 256 * 56 * 56 * 256 * 9);
}
BENCHMARK_CAPTURE(BM_conv_transpose2d_3x3, fp32, DType::Float32)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_batch_norm_infer(benchmark::State& st) {
  if (!have_gpu(st)) return;
  const Tensor x = randn({64, 256, 56, 56}, gpu()), mu = randn({256}, gpu()), var = add(rand({256}, gpu()), 0.5);
  run(st, [&] { benchmark::DoNotOptimize(batch_norm(x, mu, var)); });
  rate(st, 2.0 * double(x.numel()) * 4);
}
BENCHMARK(BM_batch_norm_infer)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_attention_bf16(benchmark::State& st) {
  if (!have_gpu(st)) return;
  const Tensor q = randn({8, 16, 4096, 128}, gpu()).to(DType::BFloat16);
  const Tensor k = randn({8, 16, 4096, 128}, gpu()).to(DType::BFloat16);
  const Tensor v = randn({8, 16, 4096, 128}, gpu()).to(DType::BFloat16);
  run(st, [&] { benchmark::DoNotOptimize(scaled_dot_product_attention(q, k, v)); });
  rate(st, 0, 4.0 * 8 * 16 * 4096.0 * 4096.0 * 128);
}
BENCHMARK(BM_attention_bf16)->UseRealTime()->Unit(benchmark::kMillisecond)->Iterations(5);

void BM_h2d_pinned_256MiB(benchmark::State& st) {
  if (!have_gpu(st)) return;
  const Tensor h = pinned_empty({kN});
  Tensor d = empty({kN}, gpu());
  run(st, [&] { d.copy_(h, true); });
  rate(st, double(kN) * 4);
}
BENCHMARK(BM_h2d_pinned_256MiB)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_alloc_free_1000_mixed(benchmark::State& st) {
  if (!have_gpu(st)) return;
  run(st, [&] {
    for (int i = 0; i < 1000; ++i) {
      Tensor t = empty({int64_t(256) << (i % 12)}, gpu());
      benchmark::DoNotOptimize(t.data_ptr());
    }
  });
}
BENCHMARK(BM_alloc_free_1000_mixed)->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_add_1_element(benchmark::State& st) {
  if (!have_gpu(st)) return;
  const Tensor a = randn({1}, gpu()), b = randn({1}, gpu());
  run(st, [&] { benchmark::DoNotOptimize(add(a, b)); });
}
BENCHMARK(BM_add_1_element)->UseRealTime()->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
