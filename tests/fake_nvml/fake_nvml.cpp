// A stand-in for libnvidia-ml.so.1 with the entry points kiln's loader uses, built as a
// shared library so that tests can load it the way kiln loads the real one. Two GPUs;
// GPU 1 reports no power reading (NOT_SUPPORTED). Tests steer it through the fake_nvml_*
// functions (found with dlsym on the same handle).
#include <cstring>

namespace {
constexpr int kSuccess = 0, kNotSupported = 3, kInvalidArgument = 2, kUninitialized = 1;
struct FakeDevice {
  int index;
};
FakeDevice g_devices[2] = {{0}, {1}};
unsigned long long g_used[2] = {1ull << 30, 3ull << 30};
int g_fail_init = 0;
int g_initialised = 0;
}  // namespace

extern "C" {
struct Utilization {
  unsigned int gpu, memory;
};
struct Memory {
  unsigned long long total, free, used;
};

void fake_nvml_set_memory_used(int index, unsigned long long bytes) { g_used[index] = bytes; }
void fake_nvml_fail_init(int fail) { g_fail_init = fail; }
int fake_nvml_initialised() { return g_initialised; }

int nvmlInit_v2() {
  if (g_fail_init) return 999;
  ++g_initialised;
  return kSuccess;
}
int nvmlShutdown() {
  --g_initialised;
  return kSuccess;
}
const char* nvmlErrorString(int r) { return r == 999 ? "Driver Not Loaded (fake)" : "fake error"; }
int nvmlDeviceGetCount_v2(unsigned int* n) {
  if (!g_initialised) return kUninitialized;
  *n = 2;
  return kSuccess;
}
int nvmlDeviceGetHandleByIndex_v2(unsigned int i, FakeDevice** d) {
  if (i >= 2) return kInvalidArgument;
  *d = &g_devices[i];
  return kSuccess;
}
int nvmlDeviceGetName(FakeDevice* d, char* name, unsigned int len) {
  const char* n = d->index == 0 ? "Fake GPU A" : "Fake GPU B";
  std::strncpy(name, n, len);
  return kSuccess;
}
int nvmlDeviceGetUtilizationRates(FakeDevice* d, Utilization* u) {
  u->gpu = 40u + unsigned(d->index);
  u->memory = 7u;
  return kSuccess;
}
int nvmlDeviceGetMemoryInfo(FakeDevice* d, Memory* m) {
  m->total = 16ull << 30;
  m->used = g_used[d->index];
  m->free = m->total - m->used;
  return kSuccess;
}
int nvmlDeviceGetTemperature(FakeDevice* d, int sensor, unsigned int* t) {
  if (sensor != 0) return kInvalidArgument;
  *t = 50u + unsigned(d->index);
  return kSuccess;
}
int nvmlDeviceGetPowerUsage(FakeDevice* d, unsigned int* mw) {
  if (d->index == 1) return kNotSupported;
  *mw = 123456u;
  return kSuccess;
}
int nvmlDeviceGetClockInfo(FakeDevice* d, int type, unsigned int* mhz) {
  if (type != 1) return kInvalidArgument;
  *mhz = 1980u;
  return kSuccess;
}
}
