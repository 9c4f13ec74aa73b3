// The CPU backend: host memory (64-byte aligned) and the CPU kernels.
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <unistd.h>

#include "kiln/backend.h"
#include "kiln/error.h"
#include "kiln/threading.h"
#include "src/backend/cpu/kernels.h"
#include "src/backend/cpu/parallel.h"
#include "src/memory/caching_allocator.h"

namespace kiln {

namespace {
// Large host blocks go through the caching allocator: a fresh 64 MB malloc is an mmap
// whose pages fault in on first touch, which costs more than a bandwidth-bound op on
// them. Small blocks stay with malloc, which caches them well. Under AddressSanitizer
// nothing is cached, so that use-after-free stays visible.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kCacheHostMemory = false;
#else
constexpr bool kCacheHostMemory = true;
#endif
constexpr size_t kCacheAbove = size_t(1) << 20;

void* aligned_host_alloc(size_t bytes) { return std::aligned_alloc(64, (bytes + 63) / 64 * 64); }

class CpuBackend final : public Backend {
 public:
  CpuBackend()
      : cache_("cpu", memory::RawAllocator{aligned_host_alloc, [](void* p, size_t) { std::free(p); }}, kCpu) {}

  DeviceType type() const override { return DeviceType::Cpu; }
  int device_count() const override { return 1; }

  DeviceInfo device_info(int) const override {
    DeviceInfo info;
    info.name = "CPU";
    const long pages = sysconf(_SC_PHYS_PAGES), avail = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    info.total_memory = size_t(pages) * size_t(page);
    info.free_memory = size_t(avail) * size_t(page);
    info.compute_units = get_num_threads();  // also links threading.cpp, whose preinit entry sets the defaults
    info.details = std::to_string(std::thread::hardware_concurrency()) + " hardware threads";
    return info;
  }

  void* allocate(size_t bytes, int) override {
    if (cached(bytes)) return cache_.allocate(bytes);
    void* p = aligned_host_alloc(bytes);
    KILN_CHECK(p != nullptr, "alloc", "out of host memory allocating ", bytes, " bytes");
    return p;
  }
  void deallocate(void* p, size_t bytes, int) override {
    if (cached(bytes)) cache_.deallocate(p);
    else std::free(p);
  }
  MemoryStats memory_stats(int) const override { return cache_.stats(); }
  void reset_peak_memory_stats(int) override { cache_.reset_peak(); }
  void empty_cache(int) override { cache_.empty_cache(); }
  std::vector<MemorySegmentInfo> memory_snapshot(int) const override { return cache_.snapshot(); }

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

 private:
  static bool cached(size_t bytes) { return kCacheHostMemory && bytes >= kCacheAbove; }
  memory::CachingAllocator cache_;
};
}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace kiln
