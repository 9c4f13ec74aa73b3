// kiln monitor: per-GPU utilisation, memory, temperature, power and SM clock from NVML,
// a line per GPU each interval (like `nvidia-smi dmon`), until --count samples or Ctrl-C.
#include <condition_variable>
#include <iostream>
#include <mutex>

#include "kiln/error.h"
#include "kiln/gpu_monitor.h"
#include "tools/commands.h"
#include "tools/gpu_metrics_table.h"

namespace kiln::cli {

int cmd_monitor(const Args& args) {
  double interval = 1.0;
  long long count = 0;  // 0: until interrupted
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& k = args[i];
    if (k == "--help" || k == "-h") {
      std::cout << "usage: kiln monitor [--interval S] [--count N]\n"
                   "Prints each GPU's utilisation, memory, temperature, power and SM clock every S\n"
                   "seconds (default 1), N times (default: until interrupted). Needs NVIDIA's driver.\n";
      return 0;
    }
    KILN_CHECK(i + 1 < args.size() && (k == "--interval" || k == "--count"), "monitor", "unknown option '", k,
               "' (use --interval S, --count N)");
    try {
      if (k == "--interval") interval = std::stod(args[++i]);
      else count = std::stoll(args[++i]);
    } catch (const std::logic_error&) {
      KILN_FAIL("monitor", "bad value '", args[i], "' for ", k);
    }
  }
  KILN_CHECK(interval > 0 && count >= 0, "monitor", "--interval must be positive and --count non-negative");
  profiler::MultiGpuProfiler mon(interval);
  if (!mon.available()) {
    std::cout << "GPU metrics unavailable: " << mon.unavailable_reason() << '\n';
    return 0;
  }
  if (mon.device_count() == 0) {
    std::cout << "GPU metrics: NVML sees no GPU\n";
    return 0;
  }
  std::mutex m;
  std::condition_variable done;
  long long samples = 0;
  std::cout << gpu_metrics_header() << std::endl;
  mon.on_sample([&](const std::vector<profiler::GpuMetrics>& s) {
    std::lock_guard<std::mutex> lock(m);
    if (count > 0 && samples >= count) return;
    for (const auto& g : s) std::cout << gpu_metrics_row(g) << '\n';
    std::cout.flush();
    if (++samples == count) done.notify_all();
  });
  mon.start();
  std::unique_lock<std::mutex> lock(m);
  done.wait(lock, [&] { return count > 0 && samples >= count; });
  lock.unlock();
  mon.stop();
  return 0;
}

}  // namespace kiln::cli
