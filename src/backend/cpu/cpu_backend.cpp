// The CPU backend: host memory (64-byte aligned) and the CPU kernels.
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <unistd.h>

#include "kiln/backend.h"
#include "kiln/error.h"
#include "src/backend/cpu/kernels.h"
#include "src/backend/cpu/parallel.h"

namespace kiln {

namespace {
class CpuBackend final : public Backend {
 public:
  DeviceType type() const override { return DeviceType::Cpu; }
  int device_count() const override { return 1; }

  DeviceInfo device_info(int) const override {
    DeviceInfo info;
    info.name = "CPU";
    const long pages = sysconf(_SC_PHYS_PAGES), avail = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    info.total_memory = size_t(pages) * size_t(page);
    info.free_memory = size_t(avail) * size_t(page);
    info.compute_units = cpu::max_threads();
    info.details = std::to_string(std::thread::hardware_concurrency()) + " hardware threads";
    return info;
  }

  void* allocate(size_t bytes, int) override {
    const size_t rounded = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded);
    KILN_CHECK(p != nullptr, "alloc", "out of host memory allocating ", bytes, " bytes");
    return p;
  }
  void deallocate(void* p, size_t, int) override { std::free(p); }

  void copy(void* dst, Device, const void* src, Device, size_t bytes, bool) override {
    std::memcpy(dst, src, bytes);
  }
  void synchronize(int) override {}

  void register_kernels(KernelRegistry& r) override {
    cpu::register_elementwise(r);
    cpu::register_reduce(r);
    cpu::register_linalg(r);
    cpu::register_nn(r);
    cpu::register_optim(r);
  }
};
}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace kiln
