#pragma once
// Where a tensor lives: a device type and an index (spec §1).
#include <cstdint>
#include <functional>
#include <ostream>
#include <string>

namespace kiln {

enum class DeviceType : uint8_t { Cpu, Cuda, Metal, OpenCL, CoreML, WebGpu };
inline constexpr int kNumDeviceTypes = 6;

const char* device_type_name(DeviceType t);  // "cpu", "cuda", "metal", "opencl", "coreml", "webgpu"

struct Device {
  DeviceType type = DeviceType::Cpu;
  int index = 0;

  Device() = default;
  Device(DeviceType t, int i = 0) : type(t), index(i) {}  // NOLINT: Device d = DeviceType::Cpu
  // Parses "cpu", "cuda", "cuda:1"; throws kiln::Error on anything else.
  static Device parse(const std::string& spec);

  bool is_cpu() const { return type == DeviceType::Cpu; }
  bool is_gpu() const { return type != DeviceType::Cpu; }
  std::string str() const;
  friend bool operator==(const Device&, const Device&) = default;
};

inline const Device kCpu{DeviceType::Cpu, 0};
inline std::ostream& operator<<(std::ostream& os, const Device& d) { return os << d.str(); }

}  // namespace kiln

template <> struct std::hash<kiln::Device> {
  size_t operator()(const kiln::Device& d) const noexcept { return size_t(d.type) * 1024 + size_t(d.index); }
};
