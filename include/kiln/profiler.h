#pragma once
// Profiler (spec §6): per-op timings recorded at the dispatcher, the one place every
// kernel launch passes. While enabled, each op synchronises its device so that the
// wall time is the op's own (slower, but attributable).
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kiln/device.h"
#include "kiln/dispatch.h"

namespace kiln {
class Tensor;
}

namespace kiln::profiler {

struct OpRecord {
  std::string name;
  Device device;
  double seconds = 0;
  std::string input_shapes;  // "[256, 1, 28, 28], [32, 1, 3, 3]"
};

struct OpSummary {
  std::string name;
  Device device;
  int64_t calls = 0;
  double total_seconds = 0;
};

bool is_enabled();
void enable();                       // clears earlier records
std::vector<OpRecord> disable();     // stops and returns the records
std::vector<OpSummary> summarize(const std::vector<OpRecord>& records);  // by total time, largest first
std::string table(const std::vector<OpSummary>& summary, size_t max_rows = 20);

// RAII scope the dispatcher opens around a kernel.
class OpScope {
 public:
  OpScope(OpId op, Device device, std::span<const Tensor> inputs, std::span<Tensor> outputs);
  ~OpScope();
  OpScope(const OpScope&) = delete;
  OpScope& operator=(const OpScope&) = delete;

 private:
  OpId op_;
  Device device_;
  std::string shapes_;
  double start_;
};

}  // namespace kiln::profiler
