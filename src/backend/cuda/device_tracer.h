#pragma once
// The profiler's device marks on CUDA: timing events recorded on the current stream and
// read back when a profile phase ends (no synchronisation per op), and NVTX ranges.
#include <memory>

#include "kiln/backend.h"

namespace kiln::cuda {

std::unique_ptr<DeviceTracer> make_device_tracer(int device_count);

}  // namespace kiln::cuda
