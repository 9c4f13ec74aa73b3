// NVML through dlopen, with kiln's own declarations of the few entry points it uses
// (the toolkit here has no nvml.h, and the library exists only where a driver does).
// Signatures and struct layouts follow NVML's documented C API.
#include <dlfcn.h>

#include <cstdlib>
#include <cstring>

#include "kiln/error.h"
#include "kiln/gpu_monitor.h"

namespace kiln::profiler {

namespace nvml {
using Return = int;  // nvmlReturn_t; NVML_SUCCESS is 0
using DeviceHandle = struct Device_st*;
struct Utilization {
  unsigned int gpu, memory;  // %
};
struct Memory {
  unsigned long long total, free, used;  // bytes
};
constexpr int kTemperatureGpu = 0;  // NVML_TEMPERATURE_GPU
constexpr int kClockSm = 1;         // NVML_CLOCK_SM
}  // namespace nvml

struct NvmlApi {
  nvml::Return (*init)();
  nvml::Return (*shutdown)();
  const char* (*error_string)(nvml::Return);
  nvml::Return (*device_count)(unsigned int*);
  nvml::Return (*handle_by_index)(unsigned int, nvml::DeviceHandle*);
  nvml::Return (*name)(nvml::DeviceHandle, char*, unsigned int);
  nvml::Return (*utilization)(nvml::DeviceHandle, nvml::Utilization*);
  nvml::Return (*memory)(nvml::DeviceHandle, nvml::Memory*);
  nvml::Return (*temperature)(nvml::DeviceHandle, int, unsigned int*);
  nvml::Return (*power)(nvml::DeviceHandle, unsigned int*);  // milliwatts
  nvml::Return (*clock)(nvml::DeviceHandle, int, unsigned int*);  // MHz
};

namespace {
template <class F>
bool bind(void* lib, const char* symbol, F& fn, std::string& missing) {
  fn = reinterpret_cast<F>(dlsym(lib, symbol));
  if (!fn && missing.empty()) missing = symbol;
  return fn != nullptr;
}
}  // namespace

Nvml::Nvml(const std::string& path) {
  std::string lib = path;
  if (lib.empty()) {
    const char* env = std::getenv("KILN_NVML_LIBRARY");
    lib = env && *env ? env : "libnvidia-ml.so.1";
  }
  handle_ = dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle_) {
    const char* err = dlerror();
    reason_ = "cannot load " + lib + " (no NVIDIA driver?): " + (err ? err : "dlopen failed");
    return;
  }
  auto api = std::make_unique<NvmlApi>();
  std::string missing;
  bind(handle_, "nvmlInit_v2", api->init, missing);
  bind(handle_, "nvmlShutdown", api->shutdown, missing);
  bind(handle_, "nvmlErrorString", api->error_string, missing);
  bind(handle_, "nvmlDeviceGetCount_v2", api->device_count, missing);
  bind(handle_, "nvmlDeviceGetHandleByIndex_v2", api->handle_by_index, missing);
  bind(handle_, "nvmlDeviceGetName", api->name, missing);
  bind(handle_, "nvmlDeviceGetUtilizationRates", api->utilization, missing);
  bind(handle_, "nvmlDeviceGetMemoryInfo", api->memory, missing);
  bind(handle_, "nvmlDeviceGetTemperature", api->temperature, missing);
  bind(handle_, "nvmlDeviceGetPowerUsage", api->power, missing);
  bind(handle_, "nvmlDeviceGetClockInfo", api->clock, missing);
  if (!missing.empty()) {
    reason_ = lib + " lacks " + missing;
    return;
  }
  if (const nvml::Return r = api->init(); r != 0) {
    reason_ = "nvmlInit_v2 failed: " + std::string(api->error_string(r));
    return;
  }
  unsigned int n = 0;
  if (const nvml::Return r = api->device_count(&n); r != 0) {
    reason_ = "nvmlDeviceGetCount_v2 failed: " + std::string(api->error_string(r));
    api->shutdown();
    return;
  }
  count_ = int(n);
  api_ = std::move(api);
}

Nvml::~Nvml() {
  if (api_) api_->shutdown();
  if (handle_) dlclose(handle_);
}

std::shared_ptr<const Nvml> Nvml::shared() {
  static const std::shared_ptr<const Nvml> instance = std::make_shared<const Nvml>();
  return instance;
}

GpuMetrics Nvml::sample(int index) const {
  KILN_CHECK(api_ != nullptr, "gpu_metrics", "NVML unavailable: ", reason_);
  KILN_CHECK(index >= 0 && index < count_, "gpu_metrics", "GPU ", index, " out of range: NVML sees ", count_,
             " GPU(s)");
  GpuMetrics m;
  m.index = index;
  nvml::DeviceHandle dev = nullptr;
  if (const nvml::Return r = api_->handle_by_index(unsigned(index), &dev); r != 0)
    KILN_FAIL("gpu_metrics", "nvmlDeviceGetHandleByIndex_v2(", index, ") failed: ", api_->error_string(r));
  char name[96] = {};
  if (api_->name(dev, name, sizeof name) == 0) m.name = std::string(name, strnlen(name, sizeof name));
  // Each metric is optional: a device or driver may not report it (NOT_SUPPORTED).
  if (nvml::Utilization u{}; api_->utilization(dev, &u) == 0) {
    m.utilization_pct = u.gpu;
    m.memory_utilization_pct = u.memory;
  }
  if (nvml::Memory mem{}; api_->memory(dev, &mem) == 0) {
    m.memory_used = int64_t(mem.used);
    m.memory_total = int64_t(mem.total);
  }
  if (unsigned int t = 0; api_->temperature(dev, nvml::kTemperatureGpu, &t) == 0) m.temperature_c = t;
  if (unsigned int mw = 0; api_->power(dev, &mw) == 0) m.power_w = mw / 1000.0;
  if (unsigned int mhz = 0; api_->clock(dev, nvml::kClockSm, &mhz) == 0) m.sm_clock_mhz = mhz;
  return m;
}

std::vector<GpuMetrics> Nvml::sample_all() const {
  std::vector<GpuMetrics> out;
  for (int i = 0; i < count_; ++i) out.push_back(sample(i));
  return out;
}

}  // namespace kiln::profiler
