// The memory views of a profile: the allocation timeline (JSON), the caching allocator's
// snapshot (JSON), and an SVG of memory over time, in total and by the allocating op.
#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "kiln/io/svg_plot.h"
#include "kiln/memory.h"
#include "kiln/profiler.h"

namespace kiln::profiler {

using nlohmann::json;

std::string memory_timeline_json(const Trace& trace) {
  json events = json::array();
  for (const MemoryEvent& m : trace.memory)
    events.push_back(json{{"time_us", m.time_us}, {"device", m.device.str()}, {"address", m.address},
                          {"bytes", m.bytes}, {"allocated", m.allocated}, {"reserved", m.reserved},
                          {"stream", m.stream}, {"op", m.op_name}, {"op_id", m.op}});
  return json{{"events", std::move(events)}}.dump(1);
}

std::string memory_snapshot_json(Device d) {
  const std::vector<MemorySegmentInfo> segments = memory_snapshot(d);
  json segs = json::array();
  size_t live = 0, free_bytes = 0, largest_free = 0, reserved = 0;
  for (const MemorySegmentInfo& s : segments) {
    json blocks = json::array();
    for (const MemoryBlockInfo& b : s.blocks) {
      blocks.push_back(json{{"offset", b.offset}, {"size", b.size}, {"allocated", b.allocated}});
      if (b.allocated) {
        live += b.size;
      } else {
        free_bytes += b.size;
        largest_free = std::max(largest_free, b.size);
      }
    }
    reserved += s.size;
    segs.push_back(json{{"address", s.address}, {"size", s.size}, {"stream", s.stream},
                        {"pool", s.small ? "small" : "large"}, {"blocks", std::move(blocks)}});
  }
  const double fragmentation = free_bytes > 0 ? 1.0 - double(largest_free) / double(free_bytes) : 0.0;
  return json{{"device", d.str()},
              {"reserved", reserved},
              {"live", live},
              {"cached_free", free_bytes},
              {"largest_free_block", largest_free},
              {"fragmentation", fragmentation},
              {"segments", std::move(segs)}}
      .dump(1);
}

void write_memory_svg(const Trace& trace, const std::string& path) {
  constexpr double kMiB = 1024.0 * 1024.0;
  constexpr size_t kTopOps = 5;
  std::map<std::string, std::vector<const MemoryEvent*>> by_device;
  for (const MemoryEvent& m : trace.memory) by_device[m.device.str()].push_back(&m);
  std::vector<PlotPanel> panels;
  for (const auto& [dev, events] : by_device) {
    PlotSeries allocated{"allocated", {}, {}, "#1f77b4"}, reserved{"reserved", {}, {}, "#d62728"};
    // Live bytes per allocating op: a free is charged to the op that allocated the block.
    std::unordered_map<uintptr_t, std::string> owner;
    std::map<std::string, int64_t> live, peak;
    for (const MemoryEvent* m : events) {
      allocated.x.push_back(m->time_us * 1e-3);
      allocated.y.push_back(double(m->allocated) / kMiB);
      reserved.x.push_back(m->time_us * 1e-3);
      reserved.y.push_back(double(m->reserved) / kMiB);
      const std::string op = m->bytes > 0 ? (m->op_name.empty() ? "(outside ops)" : m->op_name)
                                          : (owner.count(m->address) ? owner[m->address] : "(before the profile)");
      if (m->bytes > 0) owner[m->address] = op;
      else owner.erase(m->address);
      live[op] += m->bytes;
      peak[op] = std::max(peak[op], live[op]);
    }
    std::vector<std::pair<int64_t, std::string>> ranked;
    for (const auto& [op, p] : peak) ranked.push_back({p, op});
    std::sort(ranked.rbegin(), ranked.rend());
    if (ranked.size() > kTopOps) ranked.resize(kTopOps);
    std::vector<PlotSeries> per_op;
    for (const auto& [p, op] : ranked) {
      PlotSeries s{op, {}, {}, ""};
      int64_t bytes = 0;
      owner.clear();
      for (const MemoryEvent* m : events) {
        const std::string who = m->bytes > 0 ? (m->op_name.empty() ? "(outside ops)" : m->op_name)
                                             : (owner.count(m->address) ? owner[m->address] : "(before the profile)");
        if (m->bytes > 0) owner[m->address] = who;
        else owner.erase(m->address);
        if (who != op) continue;
        bytes += m->bytes;
        s.x.push_back(m->time_us * 1e-3);
        s.y.push_back(double(bytes) / kMiB);
      }
      per_op.push_back(std::move(s));
    }
    panels.push_back({"Memory on " + dev, "time (ms)", "MiB", {allocated, reserved}});
    panels.push_back({"Live memory by allocating op, " + dev, "time (ms)", "MiB", std::move(per_op)});
  }
  if (panels.empty()) panels.push_back({"No allocations recorded", "time (ms)", "MiB", {}});
  write_svg_plot(path, panels, 560, 360);
}

}  // namespace kiln::profiler
