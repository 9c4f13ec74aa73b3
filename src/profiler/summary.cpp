// Summaries of a trace: per (op, device) calls, self and total time, bytes and flops,
// and the table `kiln train --profile` and `kiln bench --profile-train` print.
#include <algorithm>
#include <cmath>
#include <iomanip>
#include <map>
#include <sstream>
#include <unordered_map>

#include "kiln/device_manager.h"
#include "kiln/profiler.h"

namespace kiln::profiler {

std::vector<OpSummary> summarize(const Trace& trace) {
  // An op's self time is its own duration less its children's, so that a fallback's
  // copies or a kernel's nested ops are counted once, under their own names.
  std::unordered_map<uint64_t, double> children_us;
  for (const OpRecord& r : trace.ops)
    if (r.parent != 0) children_us[r.parent] += r.device_us();
  std::map<std::pair<std::string, std::string>, OpSummary> by_key;
  for (const OpRecord& r : trace.ops) {
    OpSummary& s = by_key[{r.name, r.device.str()}];
    s.name = r.name;
    s.device = r.device;
    s.calls++;
    const auto it = children_us.find(r.id);
    s.total_us += r.device_us();
    s.self_us += std::max(0.0, r.device_us() - (it == children_us.end() ? 0.0 : it->second));
    s.bytes += r.bytes;
    s.flops += r.flops;
    s.fallback = s.fallback || r.fallback;
  }
  std::vector<OpSummary> out;
  out.reserve(by_key.size());
  for (auto& [k, v] : by_key) out.push_back(std::move(v));
  std::stable_sort(out.begin(), out.end(), [](const OpSummary& a, const OpSummary& b) { return a.self_us > b.self_us; });
  return out;
}

namespace {
std::string fixed(double v, int digits) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(digits) << v;
  return os.str();
}
}  // namespace

std::string table(const std::vector<OpSummary>& summary, size_t max_rows, double per, double step_us) {
  if (per <= 0) per = 1;
  double self_sum = 0;
  for (const auto& s : summary) self_sum += s.self_us;
  const double whole = step_us > 0 ? step_us * per : self_sum;
  std::map<std::string, DeviceInfo> infos;  // peaks per device, looked up once
  std::ostringstream os;
  os << std::left << std::setw(30) << "op" << std::setw(9) << "device" << std::right << std::setw(8) << "calls"
     << std::setw(11) << "self ms" << std::setw(11) << "total ms" << std::setw(8) << "%" << std::setw(9) << "GB/s"
     << std::setw(9) << "TFLOP/s" << std::setw(8) << "% peak" << '\n';
  for (size_t i = 0; i < summary.size() && i < max_rows; ++i) {
    const OpSummary& s = summary[i];
    const double secs = s.total_us * 1e-6;
    const double gbps = secs > 0 ? double(s.bytes) / secs / 1e9 : 0;
    const double tflops = secs > 0 ? s.flops / secs / 1e12 : 0;
    std::string peak;
    if (s.device.is_gpu()) {
      auto it = infos.find(s.device.str());
      if (it == infos.end()) it = infos.emplace(s.device.str(), device_manager().info(s.device)).first;
      const DeviceInfo& info = it->second;
      double share = 0;
      if (info.peak_bytes_per_s > 0) share = std::max(share, gbps * 1e9 / info.peak_bytes_per_s);
      if (info.peak_flops > 0) share = std::max(share, tflops * 1e12 / info.peak_flops);
      if (share > 0) peak = fixed(100 * share, 1);
    }
    os << std::left << std::setw(30) << (s.name + (s.fallback ? " (cpu fallback)" : "")) << std::setw(9)
       << s.device.str() << std::right << std::setw(8) << fixed(double(s.calls) / per, std::fmod(double(s.calls), per) != 0 ? 1 : 0)
       << std::setw(11) << fixed(s.self_us / per * 1e-3, 3) << std::setw(11) << fixed(s.total_us / per * 1e-3, 3)
       << std::setw(7) << fixed(whole > 0 ? 100 * s.self_us / whole : 0, 1) << '%' << std::setw(9)
       << (s.bytes > 0 ? fixed(gbps, 1) : "") << std::setw(9) << (s.flops > 0 ? fixed(tflops, 2) : "")
       << std::setw(8) << peak << '\n';
  }
  os << "self time summed: " << fixed(self_sum / per * 1e-3, 3) << " ms";
  if (step_us > 0) os << " of a " << fixed(step_us * 1e-3, 3) << " ms step";
  os << '\n';
  return os.str();
}

}  // namespace kiln::profiler
