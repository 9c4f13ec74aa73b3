// MultiGpuProfiler: a thread that samples every GPU through NVML each interval.

#include "kiln/error.h"
#include "kiln/gpu_monitor.h"

namespace kiln::profiler {

MultiGpuProfiler::MultiGpuProfiler(double interval_s, std::shared_ptr<const Nvml> nvml)
    : nvml_(std::move(nvml)), interval_s_(interval_s), t0_(std::chrono::steady_clock::now()) {
  KILN_CHECK(nvml_ != nullptr, "MultiGpuProfiler", "needs an Nvml instance");
  KILN_CHECK(interval_s > 0, "MultiGpuProfiler", "interval must be positive, got ", interval_s, " s");
  history_.resize(size_t(nvml_->device_count()));
}

MultiGpuProfiler::~MultiGpuProfiler() { stop(); }

void MultiGpuProfiler::on_sample(std::function<void(const std::vector<GpuMetrics>&)> callback) {
  std::lock_guard<std::mutex> lock(mutex_);
  callback_ = std::move(callback);
}

void MultiGpuProfiler::start() {
  if (!nvml_->available() || thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_requested_ = false;
  }
  thread_ = std::thread([this] { run(); });
}

void MultiGpuProfiler::stop() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_requested_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

bool MultiGpuProfiler::running() const { return thread_.joinable(); }

void MultiGpuProfiler::run() {
  using clock = std::chrono::steady_clock;
  const auto t0 = t0_;
  const auto period = std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(interval_s_));
  auto next = clock::now();
  for (;;) {
    std::vector<GpuMetrics> sample;
    try {
      sample = nvml_->sample_all();
    } catch (const Error&) {
      sample.clear();  // a GPU lost mid-run: skip this sample rather than end the thread
    }
    const double t = std::chrono::duration<double>(clock::now() - t0).count();
    for (GpuMetrics& m : sample) m.time_s = t;
    std::function<void(const std::vector<GpuMetrics>&)> callback;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (const GpuMetrics& m : sample) {
        auto& h = history_[size_t(m.index)];
        if (h.size() >= max_history && !h.empty()) h.erase(h.begin());
        h.push_back(m);
      }
      callback = callback_;
    }
    if (callback && !sample.empty()) callback(sample);
    next += period;
    std::unique_lock<std::mutex> lock(mutex_);
    if (wake_.wait_until(lock, next, [this] { return stop_requested_; })) return;
  }
}

std::vector<GpuMetrics> MultiGpuProfiler::latest() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<GpuMetrics> out;
  for (const auto& h : history_)
    if (!h.empty()) out.push_back(h.back());
  return out;
}

std::vector<std::vector<GpuMetrics>> MultiGpuProfiler::history() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return history_;
}

}  // namespace kiln::profiler
