#pragma once
// Per-GPU metrics (spec §6): utilisation, memory, temperature, power and SM clock from
// NVIDIA's management library (NVML), loaded at run time, so kiln needs no driver to
// build or run: without one, everything here reports "unavailable" and a reason.
//
//   profiler::MultiGpuProfiler mon(0.5);         // a sample every 0.5 s
//   mon.start();  ...  mon.stop();
//   for (const auto& per_gpu : mon.history()) ...
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace kiln::profiler {

// One GPU at one moment. A metric the device does not report is -1.
struct GpuMetrics {
  int index = 0;
  std::string name;
  double time_s = 0;              // seconds since the MultiGpuProfiler was made (0 for a one-off sample)
  double utilization_pct = -1;    // kernels running, % of the last sample period
  double memory_utilization_pct = -1;  // memory reads/writes, % of the period
  int64_t memory_used = -1, memory_total = -1;  // bytes
  double temperature_c = -1;
  double power_w = -1;
  double sm_clock_mhz = -1;
};

struct NvmlApi;  // the library's entry points (src/profiler/nvml.cpp)

// The management library, opened once per instance (dlopen). available() is false, with
// a reason, when the library is absent, lacks an entry point, or fails to initialise.
class Nvml {
 public:
  // The library at path; "" means KILN_NVML_LIBRARY when set, else "libnvidia-ml.so.1".
  explicit Nvml(const std::string& path = "");
  ~Nvml();
  Nvml(const Nvml&) = delete;
  Nvml& operator=(const Nvml&) = delete;

  static std::shared_ptr<const Nvml> shared();  // the process's default instance

  bool available() const { return api_ != nullptr; }
  const std::string& unavailable_reason() const { return reason_; }
  int device_count() const { return count_; }
  // The metrics of GPU index now (index outside [0, device_count()): kiln::Error).
  GpuMetrics sample(int index) const;
  std::vector<GpuMetrics> sample_all() const;

 private:
  void* handle_ = nullptr;
  std::unique_ptr<NvmlApi> api_;
  std::string reason_;
  int count_ = 0;
};

// The spec's MultiGpuProfiler: a background thread sampling every GPU each interval.
class MultiGpuProfiler {
 public:
  explicit MultiGpuProfiler(double interval_s = 1.0, std::shared_ptr<const Nvml> nvml = Nvml::shared());
  ~MultiGpuProfiler();  // stops the thread
  MultiGpuProfiler(const MultiGpuProfiler&) = delete;
  MultiGpuProfiler& operator=(const MultiGpuProfiler&) = delete;

  bool available() const { return nvml_->available(); }
  const std::string& unavailable_reason() const { return nvml_->unavailable_reason(); }
  int device_count() const { return nvml_->device_count(); }

  // Called on the sampling thread after each sample of every GPU.
  void on_sample(std::function<void(const std::vector<GpuMetrics>&)> callback);
  void start();  // a sample at once, then one per interval; no-op when running or unavailable
  void stop();   // joins the thread; no-op when stopped
  bool running() const;

  std::vector<GpuMetrics> latest() const;                // one per GPU; empty before a sample
  std::vector<std::vector<GpuMetrics>> history() const;  // per GPU, oldest first (at most max_history)
  size_t max_history = 3600;

 private:
  void run();
  std::shared_ptr<const Nvml> nvml_;
  double interval_s_;
  std::chrono::steady_clock::time_point t0_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_requested_ = false;
  std::thread thread_;
  std::function<void(const std::vector<GpuMetrics>&)> callback_;
  std::vector<std::vector<GpuMetrics>> history_;
};

}  // namespace kiln::profiler
