#pragma once
// Spec §4: device memory statistics, the allocator cache, pinned host memory and streams,
// for any device (the CPU reports empty statistics and has one stream).
#include "kiln/backend.h"
#include "kiln/tensor.h"

namespace kiln {

MemoryStats memory_stats(Device d);
void reset_peak_memory_stats(Device d);
void empty_cache(Device d);  // returns cached, unused device memory to the device
// The caching allocator's segments and blocks (PyTorch's torch.cuda.memory_snapshot()).
std::vector<MemorySegmentInfo> memory_snapshot(Device d);

// A CPU tensor in page-locked memory (from the first GPU backend that provides it;
// ordinary memory when none does). Copies from it with non_blocking=true are asynchronous.
Tensor pinned_empty(const Shape& shape, DType dtype = DType::Float32);
Tensor pin_memory(const Tensor& t);  // a pinned copy of a CPU tensor

// The stream a device's ops are queued on (0 .. context(d).stream_count - 1).
int current_stream(Device d);
// Later ops on d go to stream s; s first waits for the work already queued on the old one.
void set_current_stream(Device d, int stream);

class StreamGuard {
 public:
  StreamGuard(Device d, int stream) : device_(d), previous_(current_stream(d)) { set_current_stream(d, stream); }
  ~StreamGuard() { set_current_stream(device_, previous_); }
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;

 private:
  Device device_;
  int previous_;
};

}  // namespace kiln
