// Recording: OpScope appends to a buffer of the calling thread (its own lock, so that
// threads do not contend), device marks are queued on the executing stream, and
// end_phase() gathers the buffers and turns marks into times on the host clock.
#include <algorithm>
#include <array>
#include <chrono>
#include <memory>
#include <unordered_map>
#include <mutex>
#include <vector>

#include "kiln/backend.h"
#include "kiln/tensor.h"
#include "src/memory/alloc_observer.h"
#include "src/profiler/op_cost.h"
#include "src/profiler/session.h"

namespace kiln::profiler {

namespace detail {
std::atomic<bool> g_recording{false};
}

namespace {

constexpr int kMaxDeviceIndex = 16;
constexpr uint32_t kNoMark = UINT32_MAX;

struct Pending {
  OpRecord rec;
  DeviceTracer* tracer = nullptr;
  uint32_t mark_begin = kNoMark, mark_end = kNoMark;
  bool done = false;
};

struct ThreadBuffer {
  std::mutex mutex;
  uint32_t thread = 0;
  uint64_t generation = 0;          // bumped when a phase ends: open ops then belong to no phase
  std::vector<Pending> records;
  std::vector<size_t> open;         // indices of this thread's open ops, innermost last
  uint64_t open_generation = 0;     // the generation `open` refers to
};

struct State {
  std::mutex mutex;  // guards buffers, options and the device zeros
  std::vector<std::shared_ptr<ThreadBuffer>> buffers;
  uint32_t next_thread = 0;
  ProfileOptions options;
  std::chrono::steady_clock::time_point epoch = std::chrono::steady_clock::now();
  std::atomic<uint64_t> next_id{1};
  std::atomic<int64_t> step{0};
  // Host time of each device's time zero in this phase; < 0: not started.
  std::array<std::array<double, kMaxDeviceIndex>, kNumDeviceTypes> zero_us{};
  std::array<std::array<std::atomic<bool>, kMaxDeviceIndex>, kNumDeviceTypes> started{};  // zero_us set
  DeviceTracer* nvtx = nullptr;  // where NVTX ranges go, when asked for
  std::mutex memory_mutex;       // guards memory (allocations come from any thread)
  std::vector<MemoryEvent> memory;
};

State& state() {
  static State* s = new State;  // never destroyed: threads may record during exit
  return *s;
}

// Time zero of device d for this phase, taken at its first op: the one wait for the
// device in a phase (never per op).
void start_device(DeviceTracer* tracer, Device d) {
  State& s = state();
  if (s.started[size_t(d.type)][size_t(d.index)].load(std::memory_order_acquire)) return;
  std::lock_guard<std::mutex> lock(s.mutex);
  if (s.started[size_t(d.type)][size_t(d.index)].load(std::memory_order_relaxed)) return;
  tracer->start(d.index);
  s.zero_us[size_t(d.type)][size_t(d.index)] = session::now_us();
  s.started[size_t(d.type)][size_t(d.index)].store(true, std::memory_order_release);
}

ThreadBuffer& thread_buffer() {
  thread_local std::shared_ptr<ThreadBuffer> buf;
  if (!buf) {
    buf = std::make_shared<ThreadBuffer>();
    State& s = state();
    std::lock_guard<std::mutex> lock(s.mutex);
    buf->thread = s.next_thread++;
    s.buffers.push_back(buf);
  }
  return *buf;
}

DeviceTracer* tracer_of(Device d) {
  if (d.is_cpu() || d.index < 0 || d.index >= kMaxDeviceIndex) return nullptr;
  Backend* b = backend_for(d.type);
  return b ? b->tracer() : nullptr;
}

void on_alloc(const memory::AllocEvent& e);

// An allocation outside any op is an op's front end allocating its outputs: charge it to
// the next op its thread dispatches (ops and memory are both sorted by time).
void charge_to_next_op(Trace& trace) {
  std::unordered_map<uint32_t, size_t> next;  // per thread: first op not yet passed
  for (MemoryEvent& m : trace.memory) {
    if (m.op != 0 || m.bytes <= 0) continue;
    size_t& i = next[m.thread];
    while (i < trace.ops.size() && (trace.ops[i].thread != m.thread || trace.ops[i].host_begin_us < m.time_us)) ++i;
    if (i < trace.ops.size()) {
      m.op = trace.ops[i].id;
      m.op_name = trace.ops[i].name;
    }
  }
}

}  // namespace

namespace session {

double now_us() {
  return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - state().epoch).count();
}

void open(const ProfileOptions& options) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.options = options;
  s.epoch = std::chrono::steady_clock::now();
  s.step = 0;
  s.nvtx = nullptr;
  if (options.nvtx)
    for (int t = 1; t < kNumDeviceTypes && !s.nvtx; ++t)
      if (Backend* b = backend_for(DeviceType(t)); b && b->device_count() > 0) s.nvtx = b->tracer();
}

void close() {
  detail::g_recording = false;
  (void)end_phase();
}

void begin_phase() {
  State& s = state();
  {
    // Devices get their time zero at their first op of the phase (start_device), so a
    // profile touches no GPU the program does not use.
    std::lock_guard<std::mutex> lock(s.mutex);
    for (auto& row : s.zero_us) row.fill(-1);
    for (auto& row : s.started)
      for (auto& f : row) f.store(false, std::memory_order_relaxed);
  }
  if (s.options.profile_memory) memory::set_alloc_observer(on_alloc);
  detail::g_recording = true;
}

Trace end_phase() {
  detail::g_recording = false;
  memory::set_alloc_observer(nullptr);
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  // Device times by device: marks resolve only now.
  std::array<std::array<std::vector<double>, kMaxDeviceIndex>, kNumDeviceTypes> marks;
  for (int t = 1; t < kNumDeviceTypes; ++t) {
    Backend* b = backend_for(DeviceType(t));
    if (!b || !b->tracer()) continue;
    for (int i = 0; i < b->device_count() && i < kMaxDeviceIndex; ++i)
      if (s.zero_us[size_t(t)][size_t(i)] >= 0) marks[size_t(t)][size_t(i)] = b->tracer()->collect(i);
  }
  Trace trace;
  for (const auto& buf : s.buffers) {
    std::vector<Pending> records;
    {
      std::lock_guard<std::mutex> block(buf->mutex);
      records.swap(buf->records);
      ++buf->generation;
    }
    for (Pending& p : records) {
      if (!p.done) continue;  // still running on another thread when the phase ended
      OpRecord& r = p.rec;
      r.name = op_name(r.op);
      r.device_begin_us = r.host_begin_us;
      r.device_end_us = r.host_end_us;
      if (p.tracer && p.mark_begin != kNoMark && p.mark_end != kNoMark) {
        const auto& times = marks[size_t(r.device.type)][size_t(r.device.index)];
        const double zero = s.zero_us[size_t(r.device.type)][size_t(r.device.index)];
        if (p.mark_end < times.size() && zero >= 0) {
          r.device_begin_us = zero + times[p.mark_begin];
          r.device_end_us = zero + times[p.mark_end];
          r.has_device_time = true;
        }
      }
      trace.ops.push_back(std::move(r));
    }
  }
  std::stable_sort(trace.ops.begin(), trace.ops.end(),
                   [](const OpRecord& a, const OpRecord& b) { return a.host_begin_us < b.host_begin_us; });
  {
    std::lock_guard<std::mutex> mlock(s.memory_mutex);
    trace.memory.swap(s.memory);
  }
  std::stable_sort(trace.memory.begin(), trace.memory.end(),
                   [](const MemoryEvent& a, const MemoryEvent& b) { return a.time_us < b.time_us; });
  charge_to_next_op(trace);
  return trace;
}

}  // namespace session

void OpScope::begin(OpId op, Device home, Device exec, std::span<const Tensor> inputs,
                    std::span<const Tensor> outputs) {
  State& s = state();
  ThreadBuffer& buf = thread_buffer();
  Pending p;
  OpRecord& r = p.rec;
  r.id = s.next_id.fetch_add(1, std::memory_order_relaxed);
  r.op = op;
  r.device = exec;
  r.home = home;
  r.fallback = home.is_gpu() && exec.is_cpu();
  r.thread = buf.thread;
  r.step = s.step.load(std::memory_order_relaxed);
  if (s.options.record_shapes) {
    r.inputs.reserve(inputs.size());
    for (const Tensor& t : inputs) r.inputs.push_back(t.defined() ? TensorMeta{t.shape(), t.dtype()} : TensorMeta{});
  }
  const OpCost cost = op_cost(op, inputs, outputs);
  r.bytes = cost.bytes;
  r.flops = cost.flops;
  if (DeviceTracer* tr = tracer_of(exec)) {
    start_device(tr, exec);
    r.stream = backend_for(exec.type)->current_stream(exec.index);
    p.tracer = tr;
  }
  const uint32_t mark = p.tracer ? p.tracer->mark(exec.index) : kNoMark;
  if (s.nvtx) s.nvtx->range_push(op_name(op));
  std::lock_guard<std::mutex> lock(buf.mutex);
  if (buf.open_generation != buf.generation) {
    buf.open.clear();
    buf.open_generation = buf.generation;
  }
  if (!buf.open.empty()) {
    const OpRecord& parent = buf.records[buf.open.back()].rec;
    r.parent = parent.id;
    r.depth = parent.depth + 1;
  }
  p.mark_begin = mark;
  buf.open.push_back(buf.records.size());
  buf.records.push_back(std::move(p));
  open_ = true;
  // Last, so that the profiler's own work stays outside the op's time.
  buf.records.back().rec.host_begin_us = session::now_us();
}

void OpScope::end() {
  const double t = session::now_us();
  ThreadBuffer& buf = thread_buffer();
  State& s = state();
  if (s.nvtx) s.nvtx->range_pop();
  std::lock_guard<std::mutex> lock(buf.mutex);
  if (buf.open_generation != buf.generation || buf.open.empty()) return;  // its phase ended meanwhile
  Pending& p = buf.records[buf.open.back()];
  buf.open.pop_back();
  p.rec.host_end_us = t;
  if (p.tracer) p.mark_end = p.tracer->mark(p.rec.device.index);
  p.done = true;
}

namespace {
void on_alloc(const memory::AllocEvent& e) {
  if (!is_recording()) return;
  MemoryEvent m;
  m.time_us = session::now_us();
  m.device = e.device;
  m.address = reinterpret_cast<uintptr_t>(e.ptr);
  m.bytes = e.bytes;
  m.allocated = e.allocated;
  m.reserved = e.reserved;
  m.stream = e.stream;
  {
    ThreadBuffer& buf = thread_buffer();
    m.thread = buf.thread;
    std::lock_guard<std::mutex> lock(buf.mutex);
    if (buf.open_generation == buf.generation && !buf.open.empty()) {
      const OpRecord& r = buf.records[buf.open.back()].rec;
      m.op = r.id;
      m.op_name = op_name(r.op);
    }
  }
  State& s = state();
  std::lock_guard<std::mutex> lock(s.memory_mutex);
  s.memory.push_back(std::move(m));
}
}  // namespace

void note_cpu_fallback() {
  if (!is_recording()) return;
  ThreadBuffer& buf = thread_buffer();
  std::lock_guard<std::mutex> lock(buf.mutex);
  if (buf.open_generation == buf.generation && !buf.open.empty()) buf.records[buf.open.back()].rec.fallback = true;
}

void session::set_step(int64_t step) { state().step = step; }

}  // namespace kiln::profiler
