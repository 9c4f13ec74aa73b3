#pragma once
// One cuDNN handle per device, bound to the device's current stream on each use, and
// scratch memory for cuDNN's workspaces from the caching allocator.
#include <cudnn.h>

#include <cstddef>

#include "kiln/tensor.h"

namespace kiln::cuda {

cudnnHandle_t cudnn_handle(int device, const char* op);
// A device buffer of at least bytes (undefined for 0), freed with the tensor.
Tensor cudnn_workspace(size_t bytes, int device);

}  // namespace kiln::cuda
