// kiln info: version, build options, devices with their memory.
#include <iomanip>
#include <iostream>

#include "kiln/device_manager.h"
#include "kiln/dispatch.h"
#include "kiln/error.h"
#include "kiln/gpu_monitor.h"
#include "tools/commands.h"
#include "tools/gpu_metrics_table.h"

namespace kiln::cli {

namespace {
std::string gib(size_t bytes) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(1) << double(bytes) / (1024.0 * 1024 * 1024) << " GiB";
  return os.str();
}
}  // namespace

int cmd_info(const Args&) {
  auto& dm = device_manager();
  std::cout << "kiln " << KILN_VERSION << "\n";
  std::cout << "execution strategy: " << execution_strategy().str() << "\n\n";
  std::cout << "device types:\n";
  for (int t = 0; t < kNumDeviceTypes; ++t) {
    const auto type = DeviceType(t);
    const int n = dm.device_count(type);
    std::cout << "  " << std::left << std::setw(8) << device_type_name(type);
    if (n > 0) std::cout << n << " device(s)\n";
    else std::cout << "unavailable: " << dm.unavailable_reason(type) << '\n';
  }
  std::cout << "\ndevices:\n";
  for (const Device& d : dm.devices()) {
    const DeviceInfo info = dm.info(d);
    std::cout << "  " << std::left << std::setw(8) << d.str() << info.name << ", " << gib(info.total_memory)
              << " total, " << gib(info.free_memory) << " free, " << info.compute_units << " compute units";
    if (!info.details.empty()) std::cout << " (" << info.details << ")";
    std::cout << '\n';
    if (d.is_gpu()) {
      const MemoryStats s = backend_for(d.type)->memory_stats(d.index);
      std::cout << "           allocator: " << s.allocated_bytes << " B allocated, " << s.reserved_bytes
                << " B reserved, peak " << s.peak_allocated_bytes << " B, " << s.cache_hits << " cache hits, "
                << s.cache_misses << " misses\n";
    }
  }
  std::cout << "\nGPU metrics (NVML): ";
  const auto nvml = profiler::Nvml::shared();
  if (!nvml->available()) {
    std::cout << "unavailable: " << nvml->unavailable_reason() << '\n';
  } else {
    std::cout << nvml->device_count() << " GPU(s)\n" << gpu_metrics_header() << '\n';
    try {
      for (const auto& g : nvml->sample_all()) std::cout << gpu_metrics_row(g) << '\n';
    } catch (const Error& e) {  // a GPU NVML lists but cannot read (lost, reset): say so, go on
      std::cout << "  unavailable: " << e.what() << '\n';
    }
  }
  return 0;
}

}  // namespace kiln::cli
