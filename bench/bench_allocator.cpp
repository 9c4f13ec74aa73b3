// The caching allocator's cost per allocate/free pair (spec §4), on the CPU, and the
// host cost of a tiny op: the bare
// CachingAllocator over malloc, and whole tensors (empty + destruction) on the CPU
// device, whose blocks of 1 MiB and more come from the same allocator. The sizes are
// the GPU bench's "1000 allocs+frees" row (4 KiB to 16 MiB, mixed).
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <vector>

#include "kiln/ops.h"
#include "kiln/tensor.h"
#include "src/memory/caching_allocator.h"

using namespace kiln;

namespace {

int64_t floats_of(int i) { return (int64_t(i) * 7919 % 4096 + 1) * 1024; }

void BM_caching_allocator_1000_pairs(benchmark::State& state) {
  memory::CachingAllocator cache("bench", memory::RawAllocator{[](size_t n) { return std::malloc(n); },
                                                                [](void* p, size_t) { std::free(p); }});
  std::vector<void*> ptrs(1000);
  for (auto _ : state) {
    for (int i = 0; i < 1000; ++i) ptrs[size_t(i)] = cache.allocate(size_t(floats_of(i)) * 4);
    for (void* p : ptrs) cache.deallocate(p);
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_caching_allocator_1000_pairs)->Unit(benchmark::kMicrosecond);

void BM_empty_tensors_1000(benchmark::State& state) {
  for (auto _ : state) {
    std::vector<Tensor> xs;
    xs.reserve(1000);
    for (int i = 0; i < 1000; ++i) xs.push_back(empty({floats_of(i)}));
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_empty_tensors_1000)->Unit(benchmark::kMicrosecond);

// Every block from the caching allocator (>= 1 MiB on the CPU), as on a GPU.
void BM_empty_tensors_1000_cached(benchmark::State& state) {
  for (auto _ : state) {
    std::vector<Tensor> xs;
    xs.reserve(1000);
    for (int i = 0; i < 1000; ++i) xs.push_back(empty({floats_of(i) + (int64_t(1) << 18)}));
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}
BENCHMARK(BM_empty_tensors_1000_cached)->Unit(benchmark::kMicrosecond);

// The host-side cost of one small op end to end (front end, dispatch, output tensor).
void BM_add_1_element_cpu(benchmark::State& state) {
  Tensor a = randn({1}), b = randn({1});
  for (auto _ : state) benchmark::DoNotOptimize(add(a, b));
}
BENCHMARK(BM_add_1_element_cpu)->Unit(benchmark::kNanosecond);

}  // namespace

BENCHMARK_MAIN();
