// The profiler: one record per dispatched op, nesting and fallbacks attributed once,
// device times from marks resolved at collection (no synchronisation per op), the
// wait/warmup/active schedule, flops of the products, and a profiled training step
// that computes exactly what an unprofiled one does.
#include <gtest/gtest.h>

#include <map>
#include <thread>
#include <set>

#include "kiln/generator.h"
#include "kiln/nn.h"
#include "kiln/ops.h"
#include "kiln/optim.h"
#include "kiln/profiler.h"
#include "kiln/tensor.h"
#include "tests/support/expect_error.h"
#include "tests/support/fake_backend.h"

using namespace kiln;

namespace {
std::vector<const profiler::OpRecord*> named(const profiler::Trace& t, const std::string& name) {
  std::vector<const profiler::OpRecord*> out;
  for (const auto& r : t.ops)
    if (r.name == name) out.push_back(&r);
  return out;
}
}  // namespace

TEST(Profiler, OneRecordPerOpCallWithShapesAndHostTimes) {
  const Tensor a = randn({3, 4}), b = randn({4});
  profiler::Profile prof;
  for (int i = 0; i < 7; ++i) (void)add(a, b);
  for (int i = 0; i < 2; ++i) (void)mul(a, b);
  const profiler::Trace t = prof.stop();
  const auto adds = named(t, "add"), muls = named(t, "mul");
  ASSERT_EQ(adds.size(), 7u);
  ASSERT_EQ(muls.size(), 2u);
  std::set<uint64_t> ids;
  for (const auto& r : t.ops) ids.insert(r.id);
  EXPECT_EQ(ids.size(), t.ops.size());
  for (const auto* r : adds) {
    EXPECT_EQ(r->depth, 0);
    EXPECT_EQ(r->parent, 0u);
    EXPECT_EQ(r->device, kCpu);
    EXPECT_FALSE(r->fallback);
    EXPECT_FALSE(r->has_device_time);
    ASSERT_EQ(r->inputs.size(), 2u);
    EXPECT_EQ(r->inputs[0].shape, (Shape{3, 4}));
    EXPECT_EQ(r->inputs[1].shape, (Shape{3, 4}));  // broadcast by the front end
    EXPECT_EQ(r->inputs[0].dtype, DType::Float32);
    EXPECT_LE(r->host_begin_us, r->host_end_us);
    EXPECT_EQ(r->device_begin_us, r->host_begin_us);
    EXPECT_EQ(r->bytes, 3 * 12 * 4);  // two inputs and the output, float32
  }
  for (size_t i = 1; i < adds.size(); ++i) EXPECT_LE(adds[i - 1]->host_end_us, adds[i]->host_begin_us);
}

TEST(Profiler, NothingIsRecordedOutsideAProfile) {
  const Tensor a = randn({2});
  { profiler::Profile prof; }  // destroyed without stop(): its records are dropped
  EXPECT_FALSE(profiler::is_recording());
  (void)add(a, a);
  profiler::Profile prof;
  EXPECT_TRUE(prof.stop().ops.empty());
}

TEST(Profiler, OneProfileAtATimeAndScheduleChecked) {
  profiler::Profile prof;
  kiln::testing::expect_error([] { profiler::Profile second; }, "profile", "another profile");
  (void)prof.stop();
  kiln::testing::expect_error([] { profiler::Profile p({.schedule = {.wait = -1, .active = 1}}); }, "profile",
                        "non-negative");
  kiln::testing::expect_error([] { profiler::Profile p({.schedule = {.wait = 2}}); }, "profile", "active > 0");
  profiler::Profile again;  // the failed ones left no profile open
  kiln::testing::expect_error([&] { (void)again.stop(), (void)again.stop(); }, "profile", "twice");
}

TEST(Profiler, FallbackRecordedOnceWithItsStagingCopiesNested) {
  kiln::testing::FakeGpuScope gpu;
  const Tensor a = randn({5}).to(kiln::testing::kFakeGpu), b = randn({5}).to(kiln::testing::kFakeGpu);
  profiler::Profile prof;
  const Tensor c = mul(a, b);  // the fake GPU has no mul kernel: it runs on the CPU
  const profiler::Trace t = prof.stop();
  const auto muls = named(t, "mul");
  ASSERT_EQ(muls.size(), 1u);
  const profiler::OpRecord& m = *muls[0];
  EXPECT_TRUE(m.fallback);
  EXPECT_EQ(m.device, kCpu);
  EXPECT_EQ(m.home, kiln::testing::kFakeGpu);
  EXPECT_EQ(m.depth, 0);
  // Staging: a and b copied to the CPU, the output copied in, and the result copied back.
  int nested_copies = 0;
  for (const auto& r : t.ops) {
    if (r.id == m.id) continue;
    EXPECT_EQ(r.name, "copy_");
    EXPECT_EQ(r.parent, m.id);
    EXPECT_EQ(r.depth, 1);
    EXPECT_LE(m.host_begin_us, r.host_begin_us);
    EXPECT_LE(r.host_end_us, m.host_end_us);
    ++nested_copies;
  }
  EXPECT_EQ(nested_copies, 4);
  // Attributed once: the copies (fake device marks: one tick each) count under copy_
  // alone, and mul's self time is its own time less theirs.
  const auto summary = profiler::summarize(t);
  ASSERT_EQ(summary.size(), 2u);
  for (const auto& s : summary) {
    if (s.name == "mul") {
      EXPECT_EQ(s.calls, 1);
      EXPECT_TRUE(s.fallback);
      EXPECT_DOUBLE_EQ(s.total_us, m.device_us());
      EXPECT_DOUBLE_EQ(s.self_us, std::max(0.0, m.device_us() - 4 * kiln::testing::kFakeMarkTickUs));
    } else {
      EXPECT_EQ(s.name, "copy_");
      EXPECT_EQ(s.calls, 4);
      EXPECT_DOUBLE_EQ(s.self_us, 4 * kiln::testing::kFakeMarkTickUs);
      EXPECT_DOUBLE_EQ(s.total_us, s.self_us);
    }
  }
  EXPECT_EQ(c.to(kCpu).to_vector<float>().size(), 5u);
}

TEST(Profiler, DeviceTimesComeFromMarksWithoutSynchronising) {
  kiln::testing::FakeGpuScope gpu;
  const Tensor a = randn({8}).to(kiln::testing::kFakeGpu);
  kiln::testing::fake_tracer_counts.synchronizes = 0;
  profiler::Profile prof;
  for (int i = 0; i < 6; ++i) (void)add(a, a);
  const profiler::Trace t = prof.stop();
  EXPECT_EQ(kiln::testing::fake_tracer_counts.synchronizes, 0);  // never per op
  EXPECT_EQ(kiln::testing::fake_tracer_counts.starts, 1);        // time zero once per phase
  EXPECT_EQ(kiln::testing::fake_tracer_counts.collects, 1);
  EXPECT_EQ(kiln::testing::fake_tracer_counts.marks, 12);        // two per op
  const auto adds = named(t, "add");
  ASSERT_EQ(adds.size(), 6u);
  // Mark k reads (k + 1) ticks after time zero; op i owns marks 2i and 2i + 1.
  const double zero = adds[0]->device_begin_us - kiln::testing::kFakeMarkTickUs;
  for (size_t i = 0; i < adds.size(); ++i) {
    const profiler::OpRecord& r = *adds[i];
    EXPECT_TRUE(r.has_device_time);
    EXPECT_EQ(r.device, kiln::testing::kFakeGpu);
    EXPECT_DOUBLE_EQ(r.device_begin_us - zero, double(2 * i + 1) * kiln::testing::kFakeMarkTickUs);
    EXPECT_DOUBLE_EQ(r.device_us(), kiln::testing::kFakeMarkTickUs);
  }
  EXPECT_GE(zero, 0);  // time zero is taken after the profile started
  EXPECT_LE(zero, adds[0]->host_begin_us);
}

TEST(Profiler, ScheduleKeepsOnlyActiveSteps) {
  // Step s adds tensors of s + 1 elements, so each record names its step by its shape.
  std::vector<Tensor> xs;
  for (int s = 0; s < 12; ++s) xs.push_back(randn({s + 1}));
  std::vector<profiler::Trace> ready;
  profiler::Profile prof({.schedule = {.wait = 1, .warmup = 1, .active = 2, .repeat = 2},
                          .on_trace_ready = [&](profiler::Trace&& t) { ready.push_back(std::move(t)); }});
  for (int s = 0; s < 12; ++s) {
    (void)add(xs[size_t(s)], xs[size_t(s)]);
    prof.step();
  }
  const profiler::Trace rest = prof.stop();
  EXPECT_TRUE(rest.ops.empty());
  ASSERT_EQ(ready.size(), 2u);  // two cycles of wait 1, warmup 1, active 2
  const std::vector<std::vector<int64_t>> expected_steps{{2, 3}, {6, 7}};
  for (size_t c = 0; c < 2; ++c) {
    std::vector<int64_t> sizes, steps;
    for (const auto& r : ready[c].ops) sizes.push_back(r.inputs[0].shape[0] - 1);
    for (const auto& r : ready[c].ops) EXPECT_EQ(r.step, r.inputs[0].shape[0] - 1);
    for (const auto& s : ready[c].steps) steps.push_back(s.step);
    EXPECT_EQ(sizes, expected_steps[c]);
    EXPECT_EQ(steps, expected_steps[c]);
    for (const auto& s : ready[c].steps) EXPECT_LE(s.begin_us, s.end_us);
  }
}

TEST(Profiler, ProductsReportTheirFlops) {
  const Tensor a = randn({2, 5, 3}), b = randn({2, 3, 4});
  const Tensor x = randn({2, 3, 9, 8}), w = randn({6, 3, 3, 2});
  profiler::Profile prof;
  (void)matmul(a, b);
  (void)matmul(a.transpose(1, 2).contiguous().transpose(1, 2), b);  // a transposed operand
  (void)conv2d(x, w);
  const profiler::Trace t = prof.stop();
  const auto mm = named(t, "matmul");
  ASSERT_EQ(mm.size(), 2u);
  for (const auto* r : mm) EXPECT_DOUBLE_EQ(r->flops, 2.0 * 2 * 5 * 4 * 3);  // 2 x batch x M x N x K
  const auto conv = named(t, "conv2d");
  ASSERT_EQ(conv.size(), 1u);
  // 2 x N x Cout x Hout x Wout x (Cin x kh x kw), Hout = 9 - 3 + 1, Wout = 8 - 2 + 1.
  EXPECT_DOUBLE_EQ(conv[0]->flops, 2.0 * 2 * 6 * 7 * 7 * (3 * 3 * 2));
}

TEST(Profiler, ProfilingATrainingStepChangesNothing) {
  auto run = [](bool profiled) {
    manual_seed(3);
    nn::Sequential model(nn::Linear(12, 16), nn::ReLU(), nn::Linear(16, 5));
    optim::Adam opt(model->parameters(), optim::AdamOptions{.lr = 1e-2});
    const Tensor x = randn({8, 12}), y = randint(0, 5, {8});
    std::optional<profiler::Profile> prof;
    if (profiled) prof.emplace();
    for (int step = 0; step < 3; ++step) {
      opt.zero_grad();
      nn::cross_entropy(model(x), y).backward();
      opt.step();
      if (prof) prof->step();
    }
    if (prof) EXPECT_GT(prof->stop().ops.size(), 30u);
    std::vector<std::vector<float>> params;
    for (const Tensor& p : model->parameters()) params.push_back(p.to_vector<float>());
    return params;
  };
  EXPECT_EQ(run(false), run(true));  // bit for bit
}

TEST(Profiler, RecordsOpsOfSeveralThreadsEachOnItsOwnTrack) {
  constexpr int kThreads = 3, kOps = 50;
  std::vector<Tensor> xs;
  for (int t = 0; t < kThreads; ++t) xs.push_back(randn({t + 2}));
  profiler::Profile prof;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kOps; ++i) (void)add(xs[size_t(t)], xs[size_t(t)]);
    });
  for (auto& th : threads) th.join();
  const profiler::Trace trace = prof.stop();
  // Each thread's adds (told apart by shape) sit on one thread track, none nested.
  std::map<int64_t, std::set<uint32_t>> tracks;
  std::map<int64_t, int> counts;
  for (const auto& r : trace.ops) {
    ASSERT_EQ(r.name, "add");
    EXPECT_EQ(r.depth, 0);
    tracks[r.inputs[0].shape[0]].insert(r.thread);
    ++counts[r.inputs[0].shape[0]];
  }
  ASSERT_EQ(counts.size(), size_t(kThreads));
  for (const auto& [n, c] : counts) EXPECT_EQ(c, kOps);
  std::set<uint32_t> all;
  for (const auto& [n, ts] : tracks) {
    EXPECT_EQ(ts.size(), 1u);
    all.insert(*ts.begin());
  }
  EXPECT_EQ(all.size(), size_t(kThreads));
}
