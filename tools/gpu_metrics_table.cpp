#include "tools/gpu_metrics_table.h"

#include <iomanip>
#include <sstream>

namespace kiln::cli {

namespace {
std::string cell(double v, int width, int digits = 0) {
  std::ostringstream os;
  os << std::right << std::setw(width);
  if (v < 0) os << "-";
  else os << std::fixed << std::setprecision(digits) << v;
  return os.str();
}
}  // namespace

std::string gpu_metrics_header() {
  return "# gpu    time s   sm%  mem%   used MiB  total MiB  temp C  power W  sm MHz  name";
}

std::string gpu_metrics_row(const profiler::GpuMetrics& m) {
  constexpr double kMiB = 1024.0 * 1024.0;
  std::ostringstream os;
  os << std::setw(5) << m.index << cell(m.time_s, 10, 1) << cell(m.utilization_pct, 6)
     << cell(m.memory_utilization_pct, 6) << cell(m.memory_used < 0 ? -1 : double(m.memory_used) / kMiB, 11)
     << cell(m.memory_total < 0 ? -1 : double(m.memory_total) / kMiB, 11) << cell(m.temperature_c, 8)
     << cell(m.power_w, 9, 1) << cell(m.sm_clock_mhz, 8) << "  " << m.name;
  return os.str();
}

}  // namespace kiln::cli
