#include "kiln/device.h"

#include "kiln/error.h"

namespace kiln {

const char* device_type_name(DeviceType t) {
  switch (t) {
    case DeviceType::Cpu: return "cpu";
    case DeviceType::Cuda: return "cuda";
    case DeviceType::Metal: return "metal";
    case DeviceType::OpenCL: return "opencl";
    case DeviceType::CoreML: return "coreml";
    case DeviceType::WebGpu: return "webgpu";
  }
  return "unknown";
}

std::string Device::str() const {
  if (type == DeviceType::Cpu) return "cpu";
  return std::string(device_type_name(type)) + ":" + std::to_string(index);
}

Device Device::parse(const std::string& spec) {
  const auto colon = spec.find(':');
  const std::string name = spec.substr(0, colon);
  int index = 0;
  if (colon != std::string::npos) {
    const std::string num = spec.substr(colon + 1);
    KILN_CHECK(!num.empty() && num.size() <= 9 && num.find_first_not_of("0123456789") == std::string::npos, "device",
               "bad device index in '", spec, "'");
    index = std::stoi(num);
  }
  for (int t = 0; t < kNumDeviceTypes; ++t)
    if (name == device_type_name(DeviceType(t))) return Device(DeviceType(t), index);
  KILN_FAIL("device", "unknown device '", spec, "' (expected cpu, cuda[:N], metal, opencl, coreml or webgpu)");
}

}  // namespace kiln
