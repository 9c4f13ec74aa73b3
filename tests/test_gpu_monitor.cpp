// GPU metrics through NVML: the loader's "unavailable" paths (no library, a library
// without NVML's entry points, an initialisation failure), the values read from a
// stand-in library (tests/fake_nvml) with known answers, and the sampling thread's
// start and stop. On a machine with a driver, the real library's values are checked for
// plausibility: memory used rises after kiln allocates 1 GiB.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "kiln/device_manager.h"
#include "kiln/gpu_monitor.h"
#include "kiln/tensor.h"
#include "tests/support/expect_error.h"

using namespace kiln;
using profiler::MultiGpuProfiler;
using profiler::Nvml;

namespace {
// The stand-in's steering functions, from the handle kiln's loader shares.
template <class F>
F fake_fn(const char* name) {
  void* h = dlopen(KILN_FAKE_NVML, RTLD_NOW | RTLD_NOLOAD);
  if (!h) h = dlopen(KILN_FAKE_NVML, RTLD_NOW);
  EXPECT_NE(h, nullptr) << dlerror();
  F f = reinterpret_cast<F>(dlsym(h, name));
  EXPECT_NE(f, nullptr);
  dlclose(h);  // kiln's own handle keeps the library loaded
  return f;
}
}  // namespace

TEST(Nvml, MissingLibraryIsUnavailableWithAReason) {
  const Nvml nvml("/nonexistent/libnvidia-ml.so.1");
  EXPECT_FALSE(nvml.available());
  EXPECT_EQ(nvml.device_count(), 0);
  EXPECT_NE(nvml.unavailable_reason().find("cannot load /nonexistent/libnvidia-ml.so.1"), std::string::npos)
      << nvml.unavailable_reason();
  kiln::testing::expect_error([&] { (void)nvml.sample(0); }, "gpu_metrics", "unavailable");
  MultiGpuProfiler mon(0.01, std::make_shared<const Nvml>("/nonexistent/libnvidia-ml.so.1"));
  mon.start();  // nothing to sample: no thread, no failure
  EXPECT_FALSE(mon.running());
  EXPECT_TRUE(mon.latest().empty());
}

TEST(Nvml, LibraryWithoutNvmlEntryPointsIsUnavailable) {
  const Nvml nvml("libz.so.1");  // loads, but is not NVML
  EXPECT_FALSE(nvml.available());
  EXPECT_NE(nvml.unavailable_reason().find("lacks nvmlInit_v2"), std::string::npos) << nvml.unavailable_reason();
}

TEST(Nvml, InitialisationFailureIsUnavailable) {
  Nvml probe(KILN_FAKE_NVML);  // keeps the library loaded while the test steers it
  fake_fn<void (*)(int)>("fake_nvml_fail_init")(1);
  const Nvml nvml(KILN_FAKE_NVML);
  fake_fn<void (*)(int)>("fake_nvml_fail_init")(0);
  EXPECT_FALSE(nvml.available());
  EXPECT_EQ(nvml.unavailable_reason(), "nvmlInit_v2 failed: Driver Not Loaded (fake)");
}

TEST(Nvml, ReadsEveryMetricAndMarksUnsupportedOnes) {
  const Nvml nvml(KILN_FAKE_NVML);
  ASSERT_TRUE(nvml.available()) << nvml.unavailable_reason();
  ASSERT_EQ(nvml.device_count(), 2);
  fake_fn<void (*)(int, unsigned long long)>("fake_nvml_set_memory_used")(0, 5ull << 30);
  const profiler::GpuMetrics a = nvml.sample(0), b = nvml.sample(1);
  EXPECT_EQ(a.name, "Fake GPU A");
  EXPECT_EQ(a.utilization_pct, 40);
  EXPECT_EQ(a.memory_utilization_pct, 7);
  EXPECT_EQ(a.memory_used, int64_t(5) << 30);
  EXPECT_EQ(a.memory_total, int64_t(16) << 30);
  EXPECT_EQ(a.temperature_c, 50);
  EXPECT_DOUBLE_EQ(a.power_w, 123.456);  // NVML reports milliwatts
  EXPECT_EQ(a.sm_clock_mhz, 1980);
  EXPECT_EQ(b.name, "Fake GPU B");
  EXPECT_EQ(b.utilization_pct, 41);
  EXPECT_EQ(b.memory_used, int64_t(3) << 30);
  EXPECT_EQ(b.power_w, -1);  // NOT_SUPPORTED on that GPU
  kiln::testing::expect_error([&] { (void)nvml.sample(2); }, "gpu_metrics", "GPU 2 out of range");
  EXPECT_EQ(nvml.sample_all().size(), 2u);
}

TEST(Nvml, LibraryShutDownWithTheLastInstance) {
  auto initialised = [] { return fake_fn<int (*)()>("fake_nvml_initialised")(); };
  Nvml keep(KILN_FAKE_NVML);
  const int before = initialised();
  {
    const Nvml other(KILN_FAKE_NVML);
    EXPECT_EQ(initialised(), before + 1);
  }
  EXPECT_EQ(initialised(), before);  // each init paired with a shutdown
}

TEST(MultiGpuProfiler, SamplesEveryGpuOnItsThreadAndStopsCleanly) {
  auto nvml = std::make_shared<const Nvml>(KILN_FAKE_NVML);
  ASSERT_TRUE(nvml->available()) << nvml->unavailable_reason();
  MultiGpuProfiler mon(0.002, nvml);
  std::atomic<int> callbacks{0};
  mon.on_sample([&](const std::vector<profiler::GpuMetrics>& s) {
    EXPECT_EQ(s.size(), 2u);
    ++callbacks;
  });
  for (int round = 0; round < 3; ++round) {  // start and stop repeatedly
    const int before = callbacks;
    mon.start();
    mon.start();  // a second start while running changes nothing
    EXPECT_TRUE(mon.running());
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (callbacks < before + 3 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    mon.stop();
    mon.stop();
    EXPECT_FALSE(mon.running());
    EXPECT_GE(callbacks, before + 3);
  }
  const int after_stop = callbacks;
  const auto history = mon.history();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(callbacks, after_stop);  // no sampling once stopped
  ASSERT_EQ(history.size(), 2u);
  EXPECT_EQ(history[0].size(), size_t(after_stop));
  for (size_t i = 1; i < history[0].size(); ++i) EXPECT_LE(history[0][i - 1].time_s, history[0][i].time_s);
  const auto latest = mon.latest();
  ASSERT_EQ(latest.size(), 2u);
  EXPECT_EQ(latest[1].index, 1);
  EXPECT_EQ(latest[1].temperature_c, 51);
  kiln::testing::expect_error([&] { MultiGpuProfiler bad(0, nvml); }, "MultiGpuProfiler", "positive");
}

TEST(MultiGpuProfiler, DestructorStopsARunningSampler) {
  auto nvml = std::make_shared<const Nvml>(KILN_FAKE_NVML);
  std::atomic<int> callbacks{0};
  {
    MultiGpuProfiler mon(0.001, nvml);
    mon.on_sample([&](const std::vector<profiler::GpuMetrics>&) { ++callbacks; });
    mon.start();
    while (callbacks == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const int n = callbacks;
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(callbacks, n);
}

// On a machine with an NVIDIA driver: the real library's memory reading follows an
// allocation of 1 GiB on the first GPU (other processes may move it too: 3/4 GiB suffice).
TEST(Nvml, RealDriverReportsPlausibleValues) {
  const auto nvml = Nvml::shared();
  if (!nvml->available()) GTEST_SKIP() << "NVML unavailable: " << nvml->unavailable_reason();
  ASSERT_GE(nvml->device_count(), 1);
  const Device gpu(DeviceType::Cuda, 0);
  if (device_manager().device_count(DeviceType::Cuda) == 0) GTEST_SKIP() << "no CUDA device in this build";
  (void)empty({1}, TensorOptions(DType::Float32).device(gpu));  // the context exists before the baseline
  const profiler::GpuMetrics before = nvml->sample(0);
  EXPECT_GT(before.memory_total, int64_t(1) << 30);
  EXPECT_GE(before.utilization_pct, 0);
  EXPECT_LE(before.utilization_pct, 100);
  EXPECT_GT(before.temperature_c, 5);
  EXPECT_LT(before.temperature_c, 110);
  Tensor big = empty({int64_t(1) << 28}, TensorOptions(DType::Float32).device(gpu));  // 1 GiB
  big.fill_(1.0);
  device_manager().synchronize(gpu);
  const profiler::GpuMetrics after = nvml->sample(0);
  EXPECT_GE(after.memory_used - before.memory_used, int64_t(3) << 28) << before.memory_used << " -> "
                                                                        << after.memory_used;
}
