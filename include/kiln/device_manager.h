#pragma once
// Spec §1: which devices are present, the current device, and an RAII guard.
#include <string>
#include <vector>

#include "kiln/backend.h"
#include "kiln/device.h"

namespace kiln {

class DeviceManager {
 public:
  static DeviceManager& instance();

  std::vector<Device> devices() const;           // every present device, CPU first
  bool is_available(DeviceType type) const;
  std::string unavailable_reason(DeviceType type) const;  // empty when available
  bool is_gpu_available() const;                 // any non-CPU device present
  int device_count(DeviceType type) const;
  Device best_device() const;                    // first GPU if present, else the CPU
  DeviceInfo info(Device d) const;
  GpuContext context(Device d) const;

  Device current_device() const;                 // where factories put tensors by default
  void set_device(Device d);                     // throws kiln::Error if d is not present
  void synchronize(Device d) const;

 private:
  DeviceManager() = default;
};

inline DeviceManager& device_manager() { return DeviceManager::instance(); }
inline Device current_device() { return DeviceManager::instance().current_device(); }
inline void set_device(Device d) { DeviceManager::instance().set_device(d); }
inline bool is_gpu_available() { return DeviceManager::instance().is_gpu_available(); }

// Sets the current device for a scope and restores the previous one.
class DeviceGuard {
 public:
  explicit DeviceGuard(Device d) : previous_(current_device()) { set_device(d); }
  ~DeviceGuard() { set_device(previous_); }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  Device previous_;
};

}  // namespace kiln
