#include "kiln/device_manager.h"

#include <mutex>

#include "kiln/error.h"

namespace kiln {

namespace {
std::mutex g_mutex;
Device g_current = kCpu;
}  // namespace

DeviceManager& DeviceManager::instance() {
  static DeviceManager m;
  return m;
}

int DeviceManager::device_count(DeviceType type) const {
  Backend* b = backend_for(type);
  return b ? b->device_count() : 0;
}

bool DeviceManager::is_available(DeviceType type) const { return device_count(type) > 0; }

std::string DeviceManager::unavailable_reason(DeviceType type) const {
  Backend* b = backend_for(type);
  if (!b) return std::string(device_type_name(type)) + " support is not compiled into this build of kiln";
  if (b->device_count() > 0) return {};
  const std::string why = b->unavailable_reason();
  return why.empty() ? std::string("no ") + device_type_name(type) + " device found" : why;
}

bool DeviceManager::is_gpu_available() const {
  for (int t = 1; t < kNumDeviceTypes; ++t)
    if (is_available(DeviceType(t))) return true;
  return false;
}

std::vector<Device> DeviceManager::devices() const {
  std::vector<Device> out;
  for (int t = 0; t < kNumDeviceTypes; ++t)
    for (int i = 0; i < device_count(DeviceType(t)); ++i) out.emplace_back(DeviceType(t), i);
  return out;
}

Device DeviceManager::best_device() const {
  for (const Device& d : devices())
    if (d.is_gpu()) return d;
  return kCpu;
}

DeviceInfo DeviceManager::info(Device d) const {
  KILN_CHECK(d.index >= 0 && d.index < device_count(d.type), "device_info", "device ", d.str(),
             " is not present: ", unavailable_reason(d.type));
  return backend_for(d.type)->device_info(d.index);
}

GpuContext DeviceManager::context(Device d) const {
  KILN_CHECK(d.index >= 0 && d.index < device_count(d.type), "context", "device ", d.str(), " is not present");
  return backend_for(d.type)->context(d.index);
}

Device DeviceManager::current_device() const {
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_current;
}

void DeviceManager::set_device(Device d) {
  const int n = device_count(d.type);
  KILN_CHECK(n > 0, "set_device", "cannot use ", d.str(), ": ", unavailable_reason(d.type));
  KILN_CHECK(d.index >= 0 && d.index < n, "set_device", "device index ", d.index, " out of range: ", n, " ",
             device_type_name(d.type), " device(s) present");
  std::lock_guard<std::mutex> lock(g_mutex);
  g_current = d;
}

void DeviceManager::synchronize(Device d) const {
  if (Backend* b = backend_for(d.type); b && d.index < b->device_count()) b->synchronize(d.index);
}

}  // namespace kiln
