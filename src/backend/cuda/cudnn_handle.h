#pragma once
// One cuDNN handle per device, bound to the device's current stream on each use, and
// scratch memory for cuDNN's workspaces from the caching allocator.
#include <cudnn.h>

#include <cstddef>
#include <mutex>

#include "kiln/tensor.h"

namespace kiln::cuda {

// cuDNN handles are not thread-safe and a device has one, whose stream is set per call:
// hold cudnn_lock() from taking the handle until the last call that uses it.
std::unique_lock<std::recursive_mutex> cudnn_lock();
cudnnHandle_t cudnn_handle(int device, const char* op);
// A device buffer of at least bytes (undefined for 0), freed with the tensor.
Tensor cudnn_workspace(size_t bytes, int device);

}  // namespace kiln::cuda
