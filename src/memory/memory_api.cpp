// include/kiln/memory.h: forwards to the device's backend.
#include "kiln/memory.h"

#include "kiln/device_manager.h"
#include "kiln/error.h"

namespace kiln {

namespace {
Backend* present(const char* op, Device d) {
  Backend* b = backend_for(d.type);
  KILN_CHECK(b && d.index >= 0 && d.index < b->device_count(), op, "device ", d.str(), " is not present: ",
             device_manager().unavailable_reason(d.type));
  return b;
}
}  // namespace

MemoryStats memory_stats(Device d) { return present("memory_stats", d)->memory_stats(d.index); }
void reset_peak_memory_stats(Device d) { present("reset_peak_memory_stats", d)->reset_peak_memory_stats(d.index); }
void empty_cache(Device d) { present("empty_cache", d)->empty_cache(d.index); }
std::vector<MemorySegmentInfo> memory_snapshot(Device d) {
  return present("memory_snapshot", d)->memory_snapshot(d.index);
}

Tensor pinned_empty(const Shape& shape, DType dtype) {
  const size_t bytes = size_t(numel_of(shape)) * element_size(dtype);
  for (int t = 1; t < kNumDeviceTypes; ++t) {
    Backend* b = backend_for(DeviceType(t));
    if (!b || b->device_count() == 0) continue;
    if (void* p = b->allocate_pinned(bytes))
      return from_blob(p, shape, dtype, kCpu, [b](void* q) { b->deallocate_pinned(q); });
  }
  return empty(shape, TensorOptions(dtype).device(kCpu));
}

Tensor pin_memory(const Tensor& t) {
  KILN_CHECK(t.device().is_cpu(), "pin_memory", "expected a CPU tensor, got one on ", t.device().str());
  Tensor out = pinned_empty(t.shape(), t.dtype());
  out.copy_(t);
  return out;
}

int current_stream(Device d) { return present("current_stream", d)->current_stream(d.index); }

void set_current_stream(Device d, int stream) {
  Backend* b = present("set_current_stream", d);
  const int n = b->context(d.index).stream_count;
  KILN_CHECK(stream >= 0 && stream < n, "set_current_stream", "stream ", stream, " out of range: ", d.str(),
             " has ", n, " stream(s)");
  b->set_current_stream(d.index, stream);
}

}  // namespace kiln
