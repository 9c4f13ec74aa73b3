// What the profiler writes: a Chrome trace / Perfetto JSON that parses with the fields
// the viewers need (one host slice per op, device slices on stream tracks joined to their
// launches by flows, memory counters), the allocation timeline by op, the caching
// allocator snapshot, and the memory SVG.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "kiln/memory.h"
#include "kiln/ops.h"
#include "kiln/profiler.h"
#include "kiln/tensor.h"
#include "tests/support/fake_backend.h"

using namespace kiln;
using nlohmann::json;

TEST(ChromeTrace, ParsesWithTheFieldsPerfettoNeeds) {
  kiln::testing::FakeGpuScope gpu;
  const Tensor h = randn({4, 4});
  profiler::Profile prof;
  const Tensor g = h.to(kiln::testing::kFakeGpu);   // a host-to-device copy
  for (int i = 0; i < 3; ++i) (void)add(g, g);     // device ops
  (void)mul(h, h);                                 // a host op
  prof.step();
  const profiler::Trace t = prof.stop();
  const json doc = json::parse(profiler::chrome_trace_json(t));
  ASSERT_TRUE(doc.contains("traceEvents"));
  std::map<std::string, int> host_slices, device_slices;
  std::map<uint64_t, int> flow_starts, flow_ends;
  std::set<std::string> process_names;
  int steps = 0;
  for (const json& e : doc["traceEvents"]) {
    ASSERT_TRUE(e.contains("ph") && e.contains("pid")) << e.dump();
    const std::string ph = e["ph"];
    if (ph == "M") {
      ASSERT_TRUE(e["args"].contains("name"));
      if (e["name"] == "process_name") process_names.insert(e["args"]["name"].get<std::string>());
      continue;
    }
    ASSERT_TRUE(e.contains("ts") && e["ts"].is_number()) << e.dump();
    if (ph == "X") {
      ASSERT_TRUE(e.contains("dur") && e["dur"].get<double>() >= 0 && e.contains("tid") && e.contains("name"));
      if (e["cat"] == "step") ++steps;
      else if (e["cat"] == "kernel") ++device_slices[e["name"]];
      else ++host_slices[e["name"]];
    } else if (ph == "s") {
      ++flow_starts[e["id"].get<uint64_t>()];
    } else if (ph == "f") {
      EXPECT_EQ(e["bp"], "e");
      ++flow_ends[e["id"].get<uint64_t>()];
    }
  }
  // Every op call once on the host; the fake GPU's ops (adds and the copy) also on the device.
  EXPECT_EQ(host_slices["add"], 3);
  EXPECT_EQ(host_slices["mul"], 1);
  EXPECT_EQ(host_slices["copy_"], 1);
  EXPECT_EQ(device_slices["add"], 3);
  EXPECT_EQ(device_slices["copy_"], 1);
  EXPECT_EQ(device_slices.count("mul"), 0u);
  EXPECT_EQ(flow_starts.size(), 4u);
  EXPECT_EQ(flow_starts, flow_ends);
  EXPECT_EQ(steps, 1);
  EXPECT_TRUE(process_names.count("host"));
  EXPECT_TRUE(process_names.count("metal:0"));
}

TEST(ChromeTrace, MemoryCountersFollowTheAllocator) {
  // CPU blocks of 1 MiB and more go through the caching allocator (not under ASan).
  const int64_t n = int64_t(1) << 19;  // 2 MiB of float32
  profiler::Profile prof;
  Tensor a = empty({n});
  Tensor b = a.add(a);
  a = Tensor();
  b = Tensor();
  const profiler::Trace t = prof.stop();
  if (t.memory.empty()) GTEST_SKIP() << "host memory is not cached in this build (sanitizer)";
  int64_t net = 0, allocs = 0;
  std::set<std::string> ops;
  for (const auto& m : t.memory) {
    net += m.bytes;
    allocs += m.bytes > 0;
    if (m.bytes > 0) ops.insert(m.op_name);
    EXPECT_EQ(m.device, kCpu);
    EXPECT_GE(m.reserved, m.allocated);
  }
  EXPECT_EQ(allocs, 2);
  EXPECT_EQ(net, 0);  // both freed inside the profile
  // Both allocations precede add's dispatch on this thread (empty(), add's front end).
  EXPECT_EQ(ops, std::set<std::string>{"add"});
  const json doc = json::parse(profiler::chrome_trace_json(t));
  int counters = 0;
  for (const json& e : doc["traceEvents"])
    if (e["ph"] == "C") {
      ++counters;
      EXPECT_TRUE(e["args"].contains("allocated") && e["args"].contains("reserved"));
    }
  EXPECT_EQ(counters, int(t.memory.size()));
  const json timeline = json::parse(profiler::memory_timeline_json(t));
  EXPECT_EQ(timeline["events"].size(), t.memory.size());
  const auto dir = std::filesystem::temp_directory_path() / "kiln_test_memory_svg";
  std::filesystem::create_directories(dir);
  profiler::write_memory_svg(t, (dir / "memory.svg").string());
  std::ifstream in(dir / "memory.svg");
  std::stringstream svg;
  svg << in.rdbuf();
  EXPECT_NE(svg.str().find("<svg"), std::string::npos);
  EXPECT_NE(svg.str().find("Memory on cpu"), std::string::npos);
  std::filesystem::remove_all(dir);
}

TEST(MemorySnapshot, SegmentsAndBlocksAddUp) {
  const int64_t n = int64_t(3) << 18;  // 3 MiB of float32: one large block
  Tensor keep = empty({n});
  const json snap = json::parse(profiler::memory_snapshot_json(kCpu));
  if (snap["segments"].empty()) GTEST_SKIP() << "host memory is not cached in this build (sanitizer)";
  size_t reserved = 0, live = 0, free_bytes = 0;
  bool found = false;
  for (const json& s : snap["segments"]) {
    size_t covered = 0;
    for (const json& b : s["blocks"]) {
      EXPECT_EQ(b["offset"].get<size_t>(), covered);  // blocks tile the segment in order
      covered += b["size"].get<size_t>();
      (b["allocated"].get<bool>() ? live : free_bytes) += b["size"].get<size_t>();
      if (b["allocated"].get<bool>() && s["address"].get<uintptr_t>() + b["offset"].get<size_t>() ==
                                            reinterpret_cast<uintptr_t>(keep.data_ptr()))
        found = true;
    }
    EXPECT_EQ(covered, s["size"].get<size_t>());
    reserved += covered;
  }
  EXPECT_TRUE(found);
  EXPECT_EQ(snap["reserved"].get<size_t>(), reserved);
  EXPECT_EQ(snap["live"].get<size_t>(), live);
  EXPECT_EQ(snap["cached_free"].get<size_t>(), free_bytes);
  const MemoryStats stats = memory_stats(kCpu);
  EXPECT_EQ(int64_t(reserved), stats.reserved_bytes);
  EXPECT_EQ(int64_t(live), stats.allocated_bytes);
  const double frag = snap["fragmentation"];
  EXPECT_GE(frag, 0.0);
  EXPECT_LT(frag, 1.0);
}
