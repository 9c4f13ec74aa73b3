// What kiln promises to threads (docs/threads.md), checked with real threads; CI also runs
// this binary under ThreadSanitizer (scripts/ci-tsan.sh).
//  - The default generator can be shared: concurrent draws take disjoint parts of the
//    Philox stream (no duplicated values, no lost offset updates).
//  - Concurrent backward() calls into the same leaf accumulate every gradient.
//  - Independent tensors can be used from different threads.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <thread>
#include <vector>

#include "kiln/autograd.h"
#include "kiln/generator.h"
#include "kiln/ops.h"

using namespace kiln;

namespace {
constexpr int kThreads = 4;

template <typename F> void run_threads(F f) {
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) ts.emplace_back(f, t);
  for (auto& t : ts) t.join();
}
}  // namespace

TEST(Threads, GeneratorOffsetReservationsAreDisjoint) {
  Generator g(5);
  constexpr int kDraws = 2000;
  std::vector<std::vector<uint64_t>> starts(kThreads);
  run_threads([&](int t) {
    for (int i = 0; i < kDraws; ++i) starts[size_t(t)].push_back(g.advance(3));
  });
  std::vector<uint64_t> all;
  for (const auto& s : starts) all.insert(all.end(), s.begin(), s.end());
  std::sort(all.begin(), all.end());
  // Every reservation of 3 counters is its own: the starts are exactly 0, 3, 6, ...
  for (size_t i = 0; i < all.size(); ++i) ASSERT_EQ(all[i], 3 * i);
  EXPECT_EQ(g.offset(), uint64_t(3) * kThreads * kDraws);
}

TEST(Threads, RandnFromManyThreadsDrawsDistinctValues) {
  manual_seed(123);
  constexpr int kDraws = 50, kSize = 64;
  std::vector<std::vector<float>> values(kThreads);
  run_threads([&](int t) {
    for (int i = 0; i < kDraws; ++i) {
      const auto v = randn({kSize}).to_vector<float>();
      values[size_t(t)].insert(values[size_t(t)].end(), v.begin(), v.end());
    }
  });
  std::set<float> distinct;
  for (const auto& v : values) distinct.insert(v.begin(), v.end());
  // Disjoint counters give distinct normals, but for the odd float collision by chance
  // (about one expected among 12800); a duplicated draw would repeat a whole block of 64.
  EXPECT_GT(distinct.size(), size_t(kThreads * kDraws * kSize) - 32);
  // No lost updates: the offset advanced by exactly the counters drawn (one per element).
  EXPECT_EQ(default_generator().offset(), uint64_t(kThreads * kDraws * kSize));
}

TEST(Threads, ConcurrentBackwardIntoOneLeafAccumulatesEveryGradient) {
  constexpr int kSteps = 25;
  Tensor w = zeros({16}).requires_grad_();
  run_threads([&](int t) {
    for (int i = 0; i < kSteps; ++i) {
      Tensor x = full({16}, double(t + 1));
      (w * x).sum().backward();  // d/dw = x
    }
  });
  // Reference: every thread adds (t + 1) kSteps times.
  double want = 0;
  for (int t = 0; t < kThreads; ++t) want += double(t + 1) * kSteps;
  for (float g : w.grad().to_vector<float>()) EXPECT_EQ(double(g), want);
}

TEST(Threads, IndependentTensorsInParallel) {
  std::vector<double> sums(kThreads);
  run_threads([&](int t) {
    Tensor a = arange(100, DType::Float64) * double(t);
    Tensor b = (a + 1.0).sum();
    sums[size_t(t)] = b.item().to_double();
  });
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(sums[size_t(t)], 4950.0 * t + 100.0);
}
