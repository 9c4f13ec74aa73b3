// float32 matmul at 1024 and 2048: kiln::matmul against the bare libraries doing the
// same product (oneDNN's dnnl_sgemm, a cached oneDNN matmul primitive, OpenBLAS's
// cblas_sgemm), all in one binary so kiln's overhead is read from one run.
#include <benchmark/benchmark.h>
#include <dnnl.hpp>

#include <vector>

#include "kiln/ops.h"
#ifdef KILN_BENCH_OPENBLAS
#include <cblas.h>
#endif

namespace {

void set_flops(benchmark::State& st, int64_t n) {
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * double(n) * double(n) * double(n) * 1e-9,
                                              benchmark::Counter::kIsIterationInvariantRate);
}

std::vector<float> filled(int64_t n, float v) { return std::vector<float>(size_t(n * n), v); }

#ifdef KILN_BENCH_OPENBLAS
void BM_openblas_sgemm(benchmark::State& st) {
  const int n = int(st.range(0));
  auto a = filled(n, 0.5f), b = filled(n, 0.25f), c = filled(n, 0.f);
  for (auto _ : st) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.f, a.data(), n, b.data(), n, 0.f, c.data(), n);
    benchmark::DoNotOptimize(c.data());
  }
  set_flops(st, n);
}
BENCHMARK(BM_openblas_sgemm)->Arg(1024)->Arg(2048)->Unit(benchmark::kMillisecond)->UseRealTime();
#endif

void BM_dnnl_sgemm(benchmark::State& st) {
  const int64_t n = st.range(0);
  auto a = filled(n, 0.5f), b = filled(n, 0.25f), c = filled(n, 0.f);
  for (auto _ : st) {
    dnnl_sgemm('N', 'N', n, n, n, 1.f, a.data(), n, b.data(), n, 0.f, c.data(), n);
    benchmark::DoNotOptimize(c.data());
  }
  set_flops(st, n);
}
BENCHMARK(BM_dnnl_sgemm)->Arg(1024)->Arg(2048)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_dnnl_matmul_primitive(benchmark::State& st) {
  const int64_t n = st.range(0);
  using md = dnnl::memory::desc;
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream s(eng);
  const md d({n, n}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::ab);
  dnnl::matmul prim(dnnl::matmul::primitive_desc(dnnl::matmul::desc(d, d, d), eng));
  auto a = filled(n, 0.5f), b = filled(n, 0.25f), c = filled(n, 0.f);
  dnnl::memory ma(d, eng, a.data()), mb(d, eng, b.data()), mc(d, eng, c.data());
  for (auto _ : st) {
    prim.execute(s, {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}});
    s.wait();
    benchmark::DoNotOptimize(c.data());
  }
  set_flops(st, n);
}
BENCHMARK(BM_dnnl_matmul_primitive)->Arg(1024)->Arg(2048)->Unit(benchmark::kMillisecond)->UseRealTime();

// kiln end to end: validation, output allocation, dispatch, the cached primitive.
void BM_kiln_matmul(benchmark::State& st) {
  const int64_t n = st.range(0);
  kiln::Tensor a = kiln::full({n, n}, 0.5), b = kiln::full({n, n}, 0.25);
  for (auto _ : st) {
    kiln::Tensor c = kiln::matmul(a, b);
    benchmark::DoNotOptimize(c.data_ptr());
  }
  set_flops(st, n);
}
BENCHMARK(BM_kiln_matmul)->Arg(1024)->Arg(2048)->Unit(benchmark::kMillisecond)->UseRealTime();

// linear's x @ W^T: the transposed weight goes to oneDNN as a strided view, no copy.
void BM_kiln_matmul_transposed_b(benchmark::State& st) {
  const int64_t n = st.range(0);
  kiln::Tensor a = kiln::full({n, n}, 0.5), b = kiln::full({n, n}, 0.25);
  for (auto _ : st) {
    kiln::Tensor c = kiln::matmul(a, b.t());
    benchmark::DoNotOptimize(c.data_ptr());
  }
  set_flops(st, n);
}
BENCHMARK(BM_kiln_matmul_transposed_b)->Arg(2048)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
