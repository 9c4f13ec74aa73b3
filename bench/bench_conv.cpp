// ResNet-style 3x3 conv2d (N8 C64 56x56 -> 64, padding 1), float32: kiln::conv2d against
// a bare oneDNN convolution doing the same work from the same NCHW buffers (primitive
// in oneDNN's preferred layout, reorders in and out, as kiln does), in one binary; and
// kiln's channels-last (NHWC) path on the same layer.
#include <benchmark/benchmark.h>
#include <dnnl.hpp>

#include <vector>

#include "kiln/ops.h"
#include "kiln/ops_backward.h"

namespace {

constexpr int64_t N = 8, C = 64, H = 56, W = 56, O = 64, K = 3;

void set_flops(benchmark::State& st) {
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * N * O * H * W * C * K * K * 1e-9,
                                              benchmark::Counter::kIsIterationInvariantRate);
}

void BM_dnnl_conv2d(benchmark::State& st) {
  using md = dnnl::memory::desc;
  using tag = dnnl::memory::format_tag;
  const auto f32 = dnnl::memory::data_type::f32;
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream s(eng);
  const md x_user({N, C, H, W}, f32, tag::nchw), w_user({O, C, K, K}, f32, tag::oihw), b_md({O}, f32, tag::x),
      y_user({N, O, H, W}, f32, tag::nchw);
  dnnl::convolution_forward::primitive_desc pd(
      dnnl::convolution_forward::desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                      md({N, C, H, W}, f32, tag::any), md({O, C, K, K}, f32, tag::any), b_md,
                                      md({N, O, H, W}, f32, tag::any), {1, 1}, {0, 0}, {1, 1}, {1, 1}),
      eng);
  dnnl::convolution_forward conv(pd);
  std::vector<float> x(size_t(N * C * H * W), 0.5f), w(size_t(O * C * K * K), 0.25f), b(size_t(O), 0.1f),
      y(size_t(N * O * H * W));
  dnnl::memory mx(x_user, eng, x.data()), mw(w_user, eng, w.data()), mb(b_md, eng, b.data()), my(y_user, eng, y.data());
  dnnl::reorder rx(mx, dnnl::memory(pd.src_desc(), eng)), rw(mw, dnnl::memory(pd.weights_desc(), eng));
  dnnl::reorder ry(dnnl::memory(pd.dst_desc(), eng), my);
  for (auto _ : st) {
    dnnl::memory tx(pd.src_desc(), eng), tw(pd.weights_desc(), eng), ty(pd.dst_desc(), eng);
    rx.execute(s, mx, tx);
    rw.execute(s, mw, tw);
    conv.execute(s, {{DNNL_ARG_SRC, tx}, {DNNL_ARG_WEIGHTS, tw}, {DNNL_ARG_BIAS, mb}, {DNNL_ARG_DST, ty}});
    ry.execute(s, ty, my);
    s.wait();
    benchmark::DoNotOptimize(y.data());
  }
  set_flops(st);
}
BENCHMARK(BM_dnnl_conv2d)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_kiln_conv2d(benchmark::State& st) {
  kiln::Tensor x = kiln::full({N, C, H, W}, 0.5), w = kiln::full({O, C, K, K}, 0.25), b = kiln::full({O}, 0.1);
  for (auto _ : st) {
    kiln::Tensor y = kiln::conv2d(x, w, b, {1, 1}, {1, 1});
    benchmark::DoNotOptimize(y.data_ptr());
  }
  set_flops(st);
}
BENCHMARK(BM_kiln_conv2d)->Unit(benchmark::kMillisecond)->UseRealTime();

// The same layer channels-last: input and weight NHWC, output NHWC, oneDNN with nhwc
// user layouts.
void BM_kiln_conv2d_channels_last(benchmark::State& st) {
  const auto cl = kiln::MemoryFormat::ChannelsLast;
  kiln::Tensor x = kiln::full({N, C, H, W}, 0.5).to(cl), w = kiln::full({O, C, K, K}, 0.25).to(cl),
               b = kiln::full({O}, 0.1);
  for (auto _ : st) {
    kiln::Tensor y = kiln::conv2d(x, w, b, {1, 1}, {1, 1});
    benchmark::DoNotOptimize(y.data_ptr());
  }
  set_flops(st);
}
BENCHMARK(BM_kiln_conv2d_channels_last)->Unit(benchmark::kMillisecond)->UseRealTime();

// The two backward passes of the same layer (a training step runs forward + both).
void BM_kiln_conv2d_backward_input(benchmark::State& st) {
  kiln::Tensor gy = kiln::full({N, O, H, W}, 0.5), w = kiln::full({O, C, K, K}, 0.25);
  for (auto _ : st) {
    kiln::Tensor gx = kiln::conv2d_backward_input(gy, w, {N, C, H, W}, {1, 1}, {1, 1});
    benchmark::DoNotOptimize(gx.data_ptr());
  }
  set_flops(st);
}
BENCHMARK(BM_kiln_conv2d_backward_input)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_kiln_conv2d_backward_weight(benchmark::State& st) {
  kiln::Tensor gy = kiln::full({N, O, H, W}, 0.5), x = kiln::full({N, C, H, W}, 0.25);
  for (auto _ : st) {
    auto g = kiln::conv2d_backward_weight(gy, x, {O, C, K, K}, {1, 1}, {1, 1}, {1, 1}, 1, true);
    benchmark::DoNotOptimize(g.weight.data_ptr());
  }
  set_flops(st);
}
BENCHMARK(BM_kiln_conv2d_backward_weight)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
