#include "kiln/profiler.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <iomanip>
#include <map>
#include <mutex>
#include <sstream>

#include "kiln/device_manager.h"
#include "kiln/tensor.h"

namespace kiln::profiler {

namespace {
std::atomic<bool> g_enabled{false};
std::mutex g_mutex;
std::vector<OpRecord> g_records;

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

bool is_enabled() { return g_enabled.load(std::memory_order_relaxed); }

void enable() {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_records.clear();
  g_enabled = true;
}

std::vector<OpRecord> disable() {
  g_enabled = false;
  std::lock_guard<std::mutex> lock(g_mutex);
  return std::move(g_records);
}

std::vector<OpSummary> summarize(const std::vector<OpRecord>& records) {
  std::map<std::pair<std::string, std::string>, OpSummary> by_key;
  for (const OpRecord& r : records) {
    OpSummary& s = by_key[{r.name, r.device.str()}];
    s.name = r.name;
    s.device = r.device;
    s.calls++;
    s.total_seconds += r.seconds;
  }
  std::vector<OpSummary> out;
  for (auto& [k, v] : by_key) out.push_back(v);
  std::sort(out.begin(), out.end(), [](const OpSummary& a, const OpSummary& b) {
    return a.total_seconds > b.total_seconds;
  });
  return out;
}

std::string table(const std::vector<OpSummary>& summary, size_t max_rows) {
  double total = 0;
  for (const auto& s : summary) total += s.total_seconds;
  std::ostringstream os;
  os << std::left << std::setw(34) << "op" << std::setw(9) << "device" << std::right << std::setw(8) << "calls"
     << std::setw(12) << "total ms" << std::setw(8) << "%" << '\n';
  for (size_t i = 0; i < summary.size() && i < max_rows; ++i) {
    const auto& s = summary[i];
    os << std::left << std::setw(34) << s.name << std::setw(9) << s.device.str() << std::right << std::setw(8)
       << s.calls << std::setw(12) << std::fixed << std::setprecision(3) << s.total_seconds * 1e3 << std::setw(7)
       << std::setprecision(1) << (total > 0 ? 100 * s.total_seconds / total : 0) << "%\n";
  }
  return os.str();
}

OpScope::OpScope(OpId op, Device device, std::span<const Tensor> inputs, std::span<Tensor>)
    : op_(op), device_(device) {
  std::ostringstream os;
  for (size_t i = 0; i < inputs.size(); ++i) os << (i ? ", " : "") << shape_str(inputs[i].shape());
  shapes_ = os.str();
  if (device.is_gpu()) device_manager().synchronize(device);
  start_ = now();
}

OpScope::~OpScope() {
  if (device_.is_gpu()) device_manager().synchronize(device_);
  OpRecord r{op_name(op_), device_, now() - start_, std::move(shapes_)};
  std::lock_guard<std::mutex> lock(g_mutex);
  g_records.push_back(std::move(r));
}

}  // namespace kiln::profiler
