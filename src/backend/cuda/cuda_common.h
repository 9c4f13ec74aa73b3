#pragma once
// Shared by every CUDA backend file: error checks that raise kiln::Error naming the
// call and the op, the device guard, and the per-device state kernels need (the
// current stream, the multiprocessor count).
#include <cuda_runtime.h>

#include "kiln/error.h"

namespace kiln::cuda {

[[noreturn]] void fail(cudaError_t err, const char* call, const char* op);

// KILN_CUDA_CHECK(cudaMemcpyAsync(...), "copy_"): kiln::Error "[copy_] CUDA error in
// cudaMemcpyAsync(...): <reason>" on failure.
#define KILN_CUDA_CHECK(call, op)                                 \
  do {                                                            \
    const cudaError_t kiln_err_ = (call);                         \
    if (kiln_err_ != cudaSuccess) ::kiln::cuda::fail(kiln_err_, #call, op); \
  } while (0)
// After every kernel launch.
#define KILN_CUDA_CHECK_LAUNCH(op) KILN_CUDA_CHECK(cudaGetLastError(), op)

cudaStream_t current_stream(int device);
int sm_count(int device);

// Makes device the CUDA runtime's current device for a scope.
class CudaDeviceGuard {
 public:
  explicit CudaDeviceGuard(int device);
  ~CudaDeviceGuard();
  CudaDeviceGuard(const CudaDeviceGuard&) = delete;
  CudaDeviceGuard& operator=(const CudaDeviceGuard&) = delete;

 private:
  int previous_ = -1;
};

}  // namespace kiln::cuda
