// What kiln promises to threads (docs/thread-safety.md), checked with real threads; CI also runs
// this binary under ThreadSanitizer (scripts/ci-tsan.sh).
//  - The default generator can be shared: concurrent draws take disjoint parts of the
//    Philox stream (no duplicated values, no lost offset updates).
//  - Concurrent backward() calls into the same leaf accumulate every gradient.
//  - Independent tensors can be used from different threads.
#include <gtest/gtest.h>

#include <algorithm>
#include <latch>
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
  constexpr int kDraws = 200000;
  std::vector<std::vector<uint64_t>> starts(kThreads);
  std::latch start(kThreads);
  run_threads([&](int t) {
    start.arrive_and_wait();
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
  constexpr int kDraws = 300, kSize = 64;
  std::vector<std::vector<std::vector<float>>> draws(kThreads);
  std::latch start(kThreads);
  run_threads([&](int t) {
    start.arrive_and_wait();
    for (int i = 0; i < kDraws; ++i) draws[size_t(t)].push_back(randn({kSize}).to_vector<float>());
  });
  // Disjoint counters give different draws; two threads reading the same offset would
  // draw the same 64 values.
  std::set<std::vector<float>> distinct;
  for (const auto& d : draws) distinct.insert(d.begin(), d.end());
  EXPECT_EQ(distinct.size(), size_t(kThreads * kDraws));
  // No lost updates: the offset advanced by exactly the counters drawn (one per element).
  EXPECT_EQ(default_generator().offset(), uint64_t(kThreads * kDraws * kSize));
}

TEST(Threads, ConcurrentBackwardIntoOneLeafAccumulatesEveryGradient) {
  constexpr int kSteps = 2000;  // without the per-leaf lock, updates are lost within a few hundred
  constexpr int64_t kSize = 1 << 14;  // large enough that accumulations overlap in time
  Tensor w = zeros({kSize}).requires_grad_();
  std::latch start(kThreads);
  run_threads([&](int t) {
    Tensor x = full({kSize}, double(t + 1));
    start.arrive_and_wait();
    for (int i = 0; i < kSteps; ++i) (w * x).sum().backward();  // d/dw = x
  });
  // Reference: every thread adds (t + 1) kSteps times.
  double want = 0;
  for (int t = 0; t < kThreads; ++t) want += double(t + 1) * kSteps;
  const auto grad = w.grad().to_vector<float>();
  EXPECT_EQ(std::count(grad.begin(), grad.end(), float(want)), kSize) << "first element " << grad[0] << " vs " << want;
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
