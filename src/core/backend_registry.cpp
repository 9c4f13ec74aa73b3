// Creates each compiled-in backend once and lets it register its kernels.
// The list of backends comes from CMake (backend_list.inc: one KILN_BACKEND line per
// backend folder), so adding a backend touches no file here.
#include <array>
#include <memory>
#include <mutex>

#include "kiln/backend.h"
#include "kiln/dispatch.h"

namespace kiln {

#define KILN_BACKEND(type, factory) std::unique_ptr<Backend> factory();
#include "backend_list.inc"
#undef KILN_BACKEND

namespace {
struct Runtime {
  std::array<std::unique_ptr<Backend>, kNumDeviceTypes> backends;
  KernelRegistry registry;

  Runtime() {
#define KILN_BACKEND(type, factory) backends[int(DeviceType::type)] = factory();
#include "backend_list.inc"
#undef KILN_BACKEND
    for (auto& b : backends)
      if (b) b->register_kernels(registry);
  }
};

Runtime& runtime() {
  static Runtime r;
  return r;
}
}  // namespace

Backend* backend_for(DeviceType type) { return runtime().backends[int(type)].get(); }
KernelRegistry& kernel_registry() { return runtime().registry; }

void set_backend_for_testing(DeviceType type, std::unique_ptr<Backend> backend) {
  Runtime& r = runtime();
  r.registry.remove_device(type);
  r.backends[int(type)] = std::move(backend);
  if (r.backends[int(type)]) r.backends[int(type)]->register_kernels(r.registry);
}

}  // namespace kiln
