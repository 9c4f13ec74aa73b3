// The Chrome trace event format (JSON), which ui.perfetto.dev and chrome://tracing open:
// process "host" with a track per thread, a process per device with a track per stream,
// flow arrows from each launch (host slice) to its device slice, and memory counters.
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "kiln/error.h"
#include "kiln/profiler.h"

namespace kiln::profiler {

namespace {

using nlohmann::json;

constexpr int kHostPid = 0;
constexpr int kStepTid = 1 << 20;  // the host's "steps" track, apart from the threads

int device_pid(Device d) { return 1 + int(d.type) * 64 + d.index; }

json meta(const char* what, int pid, int tid, const std::string& name) {
  json e{{"ph", "M"}, {"name", what}, {"pid", pid}, {"args", {{"name", name}}}};
  if (tid >= 0) e["tid"] = tid;
  return e;
}

json op_args(const OpRecord& r) {
  json a{{"id", r.id}, {"device", r.device.str()}, {"stream", r.stream}, {"step", r.step}};
  if (r.parent) a["parent"] = r.parent;
  if (r.home != r.device) a["home"] = r.home.str();
  if (r.fallback) a["cpu fallback"] = true;
  if (!r.inputs.empty()) {
    json shapes = json::array(), types = json::array();
    for (const TensorMeta& m : r.inputs) {
      shapes.push_back(m.shape);
      types.push_back(dtype_name(m.dtype));
    }
    a["input shapes"] = std::move(shapes);
    a["input dtypes"] = std::move(types);
  }
  if (r.bytes) a["bytes"] = r.bytes;
  if (r.flops > 0) a["flops"] = r.flops;
  return a;
}

}  // namespace

std::string chrome_trace_json(const Trace& trace) {
  json events = json::array();
  events.push_back(meta("process_name", kHostPid, -1, "host"));
  std::set<uint32_t> threads;
  std::set<std::pair<int, int>> streams;  // (device pid, stream)
  std::map<int, Device> device_pids;
  for (const OpRecord& r : trace.ops) {
    threads.insert(r.thread);
    json x{{"ph", "X"},        {"cat", r.fallback ? "cpu_fallback" : "op"}, {"name", r.name},
           {"pid", kHostPid},  {"tid", r.thread},
           {"ts", r.host_begin_us}, {"dur", r.host_end_us - r.host_begin_us},
           {"args", op_args(r)}};
    events.push_back(std::move(x));
    if (!r.has_device_time) continue;
    // The device slice, and a flow from the launch to it.
    const int pid = device_pid(r.device);
    device_pids.emplace(pid, r.device);
    streams.insert({pid, r.stream});
    events.push_back(json{{"ph", "X"}, {"cat", "kernel"}, {"name", r.name}, {"pid", pid}, {"tid", r.stream},
                          {"ts", r.device_begin_us}, {"dur", r.device_us()},
                          {"args", {{"id", r.id}, {"host thread", r.thread}}}});
    events.push_back(json{{"ph", "s"}, {"cat", "launch"}, {"name", "launch"}, {"id", r.id}, {"pid", kHostPid},
                          {"tid", r.thread}, {"ts", r.host_begin_us}});
    events.push_back(json{{"ph", "f"}, {"bp", "e"}, {"cat", "launch"}, {"name", "launch"}, {"id", r.id},
                          {"pid", pid}, {"tid", r.stream}, {"ts", r.device_begin_us}});
  }
  for (uint32_t t : threads) events.push_back(meta("thread_name", kHostPid, int(t), "thread " + std::to_string(t)));
  for (const auto& [pid, d] : device_pids) {
    events.push_back(meta("process_name", pid, -1, d.str()));
  }
  for (const auto& [pid, s] : streams) events.push_back(meta("thread_name", pid, s, "stream " + std::to_string(s)));
  // Training steps on a track of their own.
  if (!trace.steps.empty()) events.push_back(meta("thread_name", kHostPid, kStepTid, "steps"));
  for (const StepMark& s : trace.steps)
    events.push_back(json{{"ph", "X"}, {"cat", "step"}, {"name", "ProfilerStep#" + std::to_string(s.step)},
                          {"pid", kHostPid}, {"tid", kStepTid}, {"ts", s.begin_us}, {"dur", s.end_us - s.begin_us}});
  // Memory: a counter track per device (allocated and reserved bytes).
  for (const MemoryEvent& m : trace.memory) {
    const int pid = device_pid(m.device);
    if (!device_pids.count(pid)) {
      device_pids.emplace(pid, m.device);
      events.push_back(meta("process_name", pid, -1, m.device.str()));
    }
    events.push_back(json{{"ph", "C"}, {"name", "memory " + m.device.str()}, {"pid", pid}, {"ts", m.time_us},
                          {"args", {{"allocated", m.allocated}, {"reserved", m.reserved}}}});
  }
  return json{{"traceEvents", std::move(events)}, {"displayTimeUnit", "ms"},
              {"otherData", {{"producer", "kiln " KILN_VERSION}}}}
      .dump();
}

void write_chrome_trace(const Trace& trace, const std::string& path) {
  std::ofstream out(path, std::ios::binary);
  KILN_CHECK(out.good(), "write_chrome_trace", "cannot open ", path, " for writing");
  out << chrome_trace_json(trace);
  out.close();
  KILN_CHECK(out.good(), "write_chrome_trace", "writing ", path, " failed");
}

}  // namespace kiln::profiler
