#include "src/backend/cuda/device_tracer.h"

#include <cuda_runtime.h>
#include <nvtx3/nvToolsExt.h>

#include <mutex>
#include <vector>

#include "src/backend/cuda/cuda_common.h"

namespace kiln::cuda {

namespace {

class CudaTracer final : public DeviceTracer {
 public:
  explicit CudaTracer(int device_count) : devices_(size_t(device_count)) {}

  // Events are kept for the next phase; the CUDA runtime may be gone at exit, so they are
  // left to the driver rather than destroyed.
  ~CudaTracer() override = default;

  void start(int index) override {
    PerDevice& d = devices_.at(size_t(index));
    std::lock_guard<std::mutex> lock(d.mutex);
    CudaDeviceGuard g(index);
    KILN_CUDA_CHECK(cudaDeviceSynchronize(), "profile");
    if (!d.zero) KILN_CUDA_CHECK(cudaEventCreate(&d.zero), "profile");
    KILN_CUDA_CHECK(cudaEventRecord(d.zero, current_stream(index)), "profile");
    KILN_CUDA_CHECK(cudaEventSynchronize(d.zero), "profile");
    d.used = 0;
  }

  uint32_t mark(int index) override {
    PerDevice& d = devices_.at(size_t(index));
    std::lock_guard<std::mutex> lock(d.mutex);
    if (d.used == d.events.size()) {
      cudaEvent_t e;
      KILN_CUDA_CHECK(cudaEventCreate(&e), "profile");  // timing enabled
      d.events.push_back(e);
    }
    KILN_CUDA_CHECK(cudaEventRecord(d.events[d.used], current_stream(index)), "profile");
    return uint32_t(d.used++);
  }

  std::vector<double> collect(int index) override {
    PerDevice& d = devices_.at(size_t(index));
    std::lock_guard<std::mutex> lock(d.mutex);
    std::vector<double> us(d.used, 0.0);
    for (size_t i = 0; i < d.used; ++i) {
      float ms = 0;
      KILN_CUDA_CHECK(cudaEventSynchronize(d.events[i]), "profile");
      KILN_CUDA_CHECK(cudaEventElapsedTime(&ms, d.zero, d.events[i]), "profile");
      us[i] = double(ms) * 1e3;
    }
    d.used = 0;
    return us;
  }

  void range_push(const char* name) override { nvtxRangePushA(name); }
  void range_pop() override { nvtxRangePop(); }

 private:
  struct PerDevice {
    std::mutex mutex;
    cudaEvent_t zero = nullptr;
    std::vector<cudaEvent_t> events;  // a pool: marks reuse them phase after phase
    size_t used = 0;
  };
  std::vector<PerDevice> devices_;
};

}  // namespace

std::unique_ptr<DeviceTracer> make_device_tracer(int device_count) { return std::make_unique<CudaTracer>(device_count); }

}  // namespace kiln::cuda
