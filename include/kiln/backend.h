#pragma once
// The one interface a backend implements (one folder under src/backend/<name>).
//
// A backend provides device services (enumerate, allocate, copy, synchronize, memory
// statistics) and registers its kernels into the KernelRegistry. Ops never talk to a
// backend directly: the dispatcher (dispatch.h) looks kernels up by [device type][op].
// A backend that is not compiled in, or finds no device, reports device_count() == 0
// and says why in unavailable_reason().
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kiln/device.h"

namespace kiln {

class KernelRegistry;

// Profiler support for a device with its own queue (src/profiler): timing marks queued in
// stream order and read back later, so profiling never waits for the device per op.
class DeviceTracer {
 public:
  virtual ~DeviceTracer() = default;
  // Time zero for marks on device index: waits for the device once (a phase's start).
  virtual void start(int index) = 0;
  // A mark queued on the calling thread's current stream of device index; its handle
  // (0, 1, 2, ... since start) until collect.
  virtual uint32_t mark(int index) = 0;
  // Waits for the marks of device index and returns each one's time in microseconds
  // after time zero, by handle; forgets them.
  virtual std::vector<double> collect(int index) = 0;
  // Named ranges for external tools (NVTX for Nsight Systems); nothing by default.
  virtual void range_push(const char* /*name*/) {}
  virtual void range_pop() {}
};

struct DeviceInfo {
  std::string name;              // "NVIDIA H100 80GB HBM3", "x86-64 CPU (2 threads)"
  size_t total_memory = 0;       // bytes
  size_t free_memory = 0;        // bytes
  int compute_units = 0;         // CPU threads, GPU multiprocessors
  std::string details;           // backend-specific, e.g. "sm_90, driver 13.0"
  double peak_bytes_per_s = 0;   // memory bandwidth from the device's clocks; 0: unknown
  double peak_flops = 0;         // float32 multiply-adds x 2 per second without tensor cores; 0: unknown
};

// Spec §1 GpuContext: per-device settings a backend exposes.
struct GpuContext {
  Device device;
  size_t memory_pool_size = 0;   // bytes the caching allocator holds (reserved)
  int stream_count = 1;
};

// Spec §4 access counters and fault statistics, filled by each backend's allocator.
struct MemoryStats {
  int64_t allocated_bytes = 0;   // live tensors
  int64_t reserved_bytes = 0;    // held by the cache (live + free blocks)
  int64_t peak_allocated_bytes = 0;
  int64_t allocation_count = 0;  // allocate() calls
  int64_t free_count = 0;
  int64_t cache_hits = 0;        // served from a cached block
  int64_t cache_misses = 0;      // needed a fresh device allocation
  int64_t out_of_memory_count = 0;
};

// The caching allocator's layout (memory_snapshot): segments from the device, each cut
// into blocks, live or cached free.
struct MemoryBlockInfo {
  size_t offset = 0;  // from the segment's start
  size_t size = 0;
  bool allocated = false;
};
struct MemorySegmentInfo {
  uintptr_t address = 0;
  size_t size = 0;
  uintptr_t stream = 0;
  bool small = false;  // the small-block pool (requests <= 1 MiB)
  std::vector<MemoryBlockInfo> blocks;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual DeviceType type() const = 0;
  virtual int device_count() const = 0;
  virtual std::string unavailable_reason() const { return {}; }
  virtual DeviceInfo device_info(int index) const = 0;
  virtual GpuContext context(int index) const { return GpuContext{Device(type(), index)}; }

  // Raw memory of this backend's devices. allocate never returns null: it throws kiln::Error.
  virtual void* allocate(size_t bytes, int index) = 0;
  virtual void deallocate(void* ptr, size_t bytes, int index) = 0;
  // Copies bytes where at least one side is this backend's device and the other is this
  // device or host memory. non_blocking may return before the copy finished (in stream order).
  virtual void copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes,
                    bool non_blocking) = 0;
  virtual void synchronize(int index) = 0;

  virtual MemoryStats memory_stats(int /*index*/) const { return {}; }
  virtual void reset_peak_memory_stats(int /*index*/) {}
  virtual void empty_cache(int /*index*/) {}
  virtual std::vector<MemorySegmentInfo> memory_snapshot(int /*index*/) const { return {}; }

  // Page-locked host memory for fast asynchronous copies; null when the backend has none.
  virtual void* allocate_pinned(size_t /*bytes*/) { return nullptr; }
  virtual void deallocate_pinned(void* /*ptr*/) {}
  // Streams of a device (GpuContext::stream_count): its ops run in order on the current one.
  virtual int current_stream(int /*index*/) const { return 0; }
  virtual void set_current_stream(int /*index*/, int /*stream*/) {}

  // Device timing marks for the profiler; null when the device's work is timed on the host.
  virtual DeviceTracer* tracer() { return nullptr; }

  // Called once when the backend is created: fill registry entries for this device type.
  virtual void register_kernels(KernelRegistry& registry) = 0;
};

// The backend of a device type; null when the type is not compiled in.
Backend* backend_for(DeviceType type);

// Testing hook: makes backend the one for type (replacing any, and its kernel entries)
// and lets it register its kernels; nullptr removes the backend of type and its kernel
// entries. Tensors on the old backend's devices must be gone first. Not thread-safe.
void set_backend_for_testing(DeviceType type, std::unique_ptr<Backend> backend);

}  // namespace kiln
