#pragma once
// The profiler (spec §6, PyTorch's torch.profiler): one record per dispatched op, taken
// at the dispatcher, without synchronising the device. GPU ops get timing marks queued on
// their stream (CUDA events), resolved only when the profile is collected; CPU ops get
// host time. Records nest: an op dispatched while another runs (staging copies, CPU
// fallbacks, kernels that call ops) names its parent, and summaries count it once.
//
//   profiler::Profile prof({.schedule = {.wait = 1, .warmup = 1, .active = 3}});
//   for (...) { train_step(); prof.step(); }
//   profiler::Trace t = prof.stop();
//   std::cout << profiler::table(profiler::summarize(t));
//   profiler::write_chrome_trace(t, "trace.json");   // open in ui.perfetto.dev
#include <atomic>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "kiln/device.h"
#include "kiln/dispatch.h"
#include "kiln/dtype.h"
#include "kiln/shape.h"

namespace kiln {
class Tensor;
}

namespace kiln::profiler {

// PyTorch's torch.profiler.schedule: each cycle skips `wait` steps, records `warmup`
// steps and drops them (first-call costs), then keeps `active` steps; `repeat` cycles
// (0: until stop). The default records from the start until stop.
struct Schedule {
  int wait = 0, warmup = 0, active = 0;  // active == 0: one endless active phase
  int repeat = 0;
};

struct OpRecord;
struct Trace;

struct ProfileOptions {
  bool record_shapes = true;   // input shapes and dtypes in each record
  bool profile_memory = true;  // allocations and frees (the caching allocators') in Trace::memory
  bool nvtx = false;           // also an NVTX range per op, for Nsight Systems (CUDA builds)
  Schedule schedule{};
  // Called with each finished active phase's records (then not kept for stop()).
  std::function<void(Trace&&)> on_trace_ready;
};

struct TensorMeta {
  Shape shape;
  DType dtype = DType::Float32;
};

// One dispatched op. Times are microseconds since the profile started, on one clock
// for host and device (device marks are placed on it at the start of each phase).
struct OpRecord {
  uint64_t id = 0;             // unique within a profile
  uint64_t parent = 0;         // the enclosing op's id on the same thread, 0 at top level
  int depth = 0;               // 0 at top level
  OpId op{};
  std::string name;            // op_name(op)
  Device device;               // where it ran
  Device home;                 // where its tensors live (differs when staged or fallen back)
  int stream = 0;              // the device stream it was queued on (0 on the CPU)
  bool fallback = false;       // a GPU op that ran on the CPU (no kernel, or a kernel's way out)
  uint32_t thread = 0;         // small per-thread number, 0 for the first thread seen
  int64_t step = 0;            // Profile::step() count when it started
  double host_begin_us = 0, host_end_us = 0;      // on the calling thread
  double device_begin_us = 0, device_end_us = 0;  // when it ran (== host times on the CPU)
  bool has_device_time = false;                   // device times came from device marks
  std::vector<TensorMeta> inputs;                 // when record_shapes
  int64_t bytes = 0;           // bytes its inputs and outputs occupy (a lower bound on traffic)
  double flops = 0;            // floating-point operations, for ops that know them; 0 otherwise
  double device_us() const { return device_end_us - device_begin_us; }
};

// One allocation (bytes > 0) or free (bytes < 0) of a caching allocator.
struct MemoryEvent {
  double time_us = 0;          // host time, as OpRecord's
  Device device;
  uintptr_t address = 0;
  int64_t bytes = 0;
  int64_t allocated = 0, reserved = 0;  // the allocator's totals after the event
  uintptr_t stream = 0;
  uint32_t thread = 0;         // as OpRecord::thread
  // The op that allocated: the innermost open op on that thread, or else the next op the
  // thread dispatches (front ends allocate outputs before dispatching); 0 and "" if none.
  // Frees outside any op have none.
  uint64_t op = 0;
  std::string op_name;
};

struct StepMark {
  int64_t step = 0;
  double begin_us = 0, end_us = 0;  // host time between Profile::step() calls
};

struct Trace {
  std::vector<OpRecord> ops;          // in start order per thread, threads one after another
  std::vector<MemoryEvent> memory;    // in time order
  std::vector<StepMark> steps;        // the active steps recorded
};

// RAII profile, like `with torch.profiler.profile(...)`: records from construction (or
// the schedule's first recording step) until stop() or destruction. One at a time.
class Profile {
 public:
  explicit Profile(ProfileOptions options = {});
  ~Profile();  // stops (discarding the trace) if stop() was not called
  Profile(const Profile&) = delete;
  Profile& operator=(const Profile&) = delete;

  void step();   // marks the end of a training step (advances the schedule)
  Trace stop();  // stops and returns every active phase's records not given to on_trace_ready
  bool recording() const;  // whether ops are recorded now (active or warmup)
  int64_t step_count() const { return step_; }

 private:
  void begin_phase();
  void end_phase(bool keep);
  int phase_at(int64_t step) const;  // 0 wait, 1 warmup, 2 active, 3 done
  ProfileOptions options_;
  int64_t step_ = 0;
  double step_begin_us_ = 0;
  bool stopped_ = false;
  std::vector<StepMark> phase_steps_;  // the current phase's finished steps
  Trace kept_;
};

// ---- summaries
struct OpSummary {
  std::string name;
  Device device;
  int64_t calls = 0;
  double self_us = 0;    // its own time: nested ops' time subtracted
  double total_us = 0;   // including nested ops
  int64_t bytes = 0;
  double flops = 0;
  bool fallback = false; // some calls ran as a CPU fallback
};
// By self time, largest first. Times are device times where the record has them.
std::vector<OpSummary> summarize(const Trace& trace);
// A table of the top rows: calls, self and total ms, % of the summed self time (or of
// step_us when given: one step's wall time), achieved GB/s and TFLOP/s, and the share of
// the device's peak where the device reports one. `per` divides times and calls (steps).
std::string table(const std::vector<OpSummary>& summary, size_t max_rows = 20, double per = 1,
                  double step_us = 0);

// ---- export
// The Chrome trace / Perfetto JSON format: a host track per thread, a track per device
// stream, flows from each launch to its device slice, and memory counters.
std::string chrome_trace_json(const Trace& trace);
void write_chrome_trace(const Trace& trace, const std::string& path);  // kiln::Error naming the path

// ---- memory
// The trace's allocations and frees as JSON: per event time, device, address, bytes,
// totals and the op that allocated.
std::string memory_timeline_json(const Trace& trace);
// The caching allocator of d now (memory_snapshot): segments, blocks, and totals: live,
// cached free, and fragmentation (1 - largest free block / all free bytes).
std::string memory_snapshot_json(Device d);
// An SVG per trace: for each device, allocated and reserved memory over time, and the
// live memory of the ops that allocate most, over time.
void write_memory_svg(const Trace& trace, const std::string& path);

// ---- the dispatcher's hook
namespace detail {
extern std::atomic<bool> g_recording;
}
// Acquire: a thread that sees recording also sees the profile's options (free on x86).
inline bool is_recording() { return detail::g_recording.load(std::memory_order_acquire); }

// Opened by the dispatcher around an op once it knows where the op runs; costs one
// load and a branch when no profile records.
class OpScope {
 public:
  OpScope(OpId op, Device home, Device exec, std::span<const Tensor> inputs, std::span<const Tensor> outputs) {
    if (is_recording()) [[unlikely]]
      begin(op, home, exec, inputs, outputs);
  }
  ~OpScope() {
    if (open_) [[unlikely]]
      end();
  }
  OpScope(const OpScope&) = delete;
  OpScope& operator=(const OpScope&) = delete;

 private:
  void begin(OpId op, Device home, Device exec, std::span<const Tensor> inputs, std::span<const Tensor> outputs);
  void end();
  bool open_ = false;
};

// A backend kernel that hands its work to the CPU (cuda::run_on_cpu) calls this: the
// innermost open op is marked as a fallback.
void note_cpu_fallback();

}  // namespace kiln::profiler
