// cuDNN handles and workspaces (see cudnn_handle.h).
#include "src/backend/cuda/cudnn_handle.h"

#include <map>
#include <mutex>

#include "kiln/ops.h"
#include "src/backend/cuda/cuda_common.h"

namespace kiln::cuda {

std::unique_lock<std::recursive_mutex> cudnn_lock() {
  static std::recursive_mutex mutex;
  return std::unique_lock<std::recursive_mutex>(mutex);
}

cudnnHandle_t cudnn_handle(int device, const char* op) {
  static std::mutex mutex;
  static std::map<int, cudnnHandle_t> handles;
  std::lock_guard<std::mutex> lock(mutex);
  cudnnHandle_t& h = handles[device];
  if (!h) {
    const cudnnStatus_t s = cudnnCreate(&h);
    if (s != CUDNN_STATUS_SUCCESS) {
      h = nullptr;
      KILN_FAIL(op, "cudnnCreate failed on cuda:", device, ": ", cudnnGetErrorString(s));
    }
  }
  const cudnnStatus_t s = cudnnSetStream(h, current_stream(device));
  KILN_CHECK(s == CUDNN_STATUS_SUCCESS, op, "cudnnSetStream failed: ", cudnnGetErrorString(s));
  return h;
}

Tensor cudnn_workspace(size_t bytes, int device) {
  if (bytes == 0) return Tensor();
  return empty({int64_t((bytes + 7) / 8)}, TensorOptions(DType::Int64).device(Device(DeviceType::Cuda, device)));
}

}  // namespace kiln::cuda
