// The CUDA backend: device enumeration, per-device streams and caching allocator,
// pinned host memory, copies, and the kernel families' registration.
#include <cuda_runtime.h>

#include <array>
#include <atomic>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "kiln/backend.h"
#include "kiln/error.h"
#include "src/backend/cuda/cuda_common.h"
#include "src/backend/cuda/device_tracer.h"
#include "src/backend/cuda/kernels.h"
#include "src/memory/caching_allocator.h"

namespace kiln::cuda {

void fail(cudaError_t err, const char* call, const char* op) {
  cudaGetLastError();  // clear a non-sticky error so later calls are not blamed for it
  KILN_FAIL(op, "CUDA error in ", call, ": ", cudaGetErrorString(err), " (", cudaGetErrorName(err), ")");
}

CudaDeviceGuard::CudaDeviceGuard(int device) {
  KILN_CUDA_CHECK(cudaGetDevice(&previous_), "device_guard");
  if (previous_ != device) KILN_CUDA_CHECK(cudaSetDevice(device), "device_guard");
}
CudaDeviceGuard::~CudaDeviceGuard() {
  int now = -1;
  if (cudaGetDevice(&now) == cudaSuccess && now != previous_) cudaSetDevice(previous_);
}

namespace {

constexpr int kMaxDevices = 16;
constexpr int kDefaultStreams = 4;

struct DeviceState {
  cudaDeviceProp props{};
  std::vector<cudaStream_t> streams;  // created lazily
  std::unique_ptr<memory::CachingAllocator> allocator;
  std::once_flag init;
};

thread_local std::array<int, kMaxDevices> t_stream{};  // current stream index per device, per thread

class CudaBackend final : public Backend {
 public:
  CudaBackend() {
    const cudaError_t err = cudaGetDeviceCount(&count_);
    if (err != cudaSuccess) {
      reason_ = std::string("cudaGetDeviceCount failed: ") + cudaGetErrorString(err);
      count_ = 0;
      cudaGetLastError();
    } else if (count_ == 0) {
      reason_ = "no CUDA device found";
    }
    if (count_ > kMaxDevices) count_ = kMaxDevices;
    if (const char* s = std::getenv("KILN_CUDA_STREAMS")) stream_count_ = std::max(1, std::atoi(s));
    for (int i = 0; i < count_; ++i) KILN_CUDA_CHECK(cudaGetDeviceProperties(&states_[i].props, i), "cuda_init");
    tracer_ = make_device_tracer(count_);
    instance_ = this;
  }

  // The process is exiting and the CUDA runtime may already be gone: leave the memory to
  // the driver rather than calling into CUDA.
  ~CudaBackend() override {
    instance_ = nullptr;
    for (auto& s : states_) (void)s.allocator.release();
    (void)pinned_.release();
    (void)tracer_.release();
  }

  static CudaBackend* instance() { return instance_; }

  DeviceType type() const override { return DeviceType::Cuda; }
  int device_count() const override { return count_; }
  std::string unavailable_reason() const override { return reason_; }
  DeviceTracer* tracer() override { return count_ > 0 ? tracer_.get() : nullptr; }

  DeviceInfo device_info(int index) const override {
    const cudaDeviceProp& p = states_[index].props;
    DeviceInfo info;
    info.name = p.name;
    info.total_memory = p.totalGlobalMem;
    size_t free_b = 0, total_b = 0;
    {
      CudaDeviceGuard g(index);
      if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) info.free_memory = free_b;
      else cudaGetLastError();
    }
    info.compute_units = p.multiProcessorCount;
    // Peaks from the clocks (kHz): DDR memory moves 2 words per clock over the bus; an SM
    // of sm_80+ issues 64 (sm_80) or 128 float32 FMAs per clock.
    int mem_khz = 0, bus_bits = 0, sm_khz = 0;
    if (cudaDeviceGetAttribute(&mem_khz, cudaDevAttrMemoryClockRate, index) == cudaSuccess &&
        cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, index) == cudaSuccess)
      info.peak_bytes_per_s = 2.0 * double(mem_khz) * 1e3 * double(bus_bits) / 8;
    if (cudaDeviceGetAttribute(&sm_khz, cudaDevAttrClockRate, index) == cudaSuccess) {
      const int fma_per_sm = p.major == 8 && p.minor == 0 ? 64 : 128;
      info.peak_flops = 2.0 * fma_per_sm * p.multiProcessorCount * double(sm_khz) * 1e3;
    }
    cudaGetLastError();
    int driver = 0, runtime = 0;
    cudaDriverGetVersion(&driver);
    cudaRuntimeGetVersion(&runtime);
    info.details = "sm_" + std::to_string(p.major) + std::to_string(p.minor) + ", " +
                   std::to_string(p.l2CacheSize >> 20) + " MiB L2, driver " + version_str(driver) +
                   ", runtime " + version_str(runtime) + ", " + library_versions();
    return info;
  }

  GpuContext context(int index) const override {
    GpuContext c{Device(DeviceType::Cuda, index)};
    c.stream_count = stream_count_;
    c.memory_pool_size = size_t(memory_stats(index).reserved_bytes);
    return c;
  }

  DeviceState& state(int index) {
    DeviceState& s = states_[index];
    std::call_once(s.init, [&] {
      CudaDeviceGuard g(index);
      s.streams.resize(size_t(stream_count_));
      for (auto& st : s.streams) KILN_CUDA_CHECK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking), "cuda_init");
      const std::string name = "cuda:" + std::to_string(index);
      s.allocator = std::make_unique<memory::CachingAllocator>(
          name, memory::RawAllocator{[index](size_t n) -> void* {
                                       CudaDeviceGuard g(index);
                                       void* p = nullptr;
                                       if (cudaMalloc(&p, n) != cudaSuccess) {
                                         cudaGetLastError();
                                         return nullptr;
                                       }
                                       return p;
                                     },
                                     [index](void* p, size_t) {
                                       CudaDeviceGuard g(index);
                                       // Pending work may still use cached blocks: wait for it.
                                       cudaDeviceSynchronize();
                                       cudaFree(p);
                                     }},
          Device(DeviceType::Cuda, index));
    });
    return s;
  }

  cudaStream_t stream(int index) { return state(index).streams[size_t(t_stream[size_t(index)])]; }

  void* allocate(size_t bytes, int index) override {
    DeviceState& s = state(index);
    return s.allocator->allocate(bytes, reinterpret_cast<uintptr_t>(s.streams[size_t(t_stream[size_t(index)])]));
  }
  void deallocate(void* ptr, size_t, int index) override { state(index).allocator->deallocate(ptr); }

  void copy(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes,
            bool non_blocking) override {
    const int dev = dst_device.is_gpu() ? dst_device.index : src_device.index;
    CudaDeviceGuard g(dev);
    cudaStream_t st = stream(dev);
    if (dst_device.is_gpu() && src_device.is_gpu()) {
      if (dst_device.index == src_device.index) {
        KILN_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, st), "copy_");
      } else {
        // The source's queued work must finish first; the copy runs on the destination's stream.
        KILN_CUDA_CHECK(cudaStreamSynchronize(stream(src_device.index)), "copy_");
        KILN_CUDA_CHECK(cudaMemcpyPeerAsync(dst, dst_device.index, src, src_device.index, bytes, st), "copy_");
      }
      return;  // stream-ordered: later ops on the device see the data
    }
    const bool to_device = dst_device.is_gpu();
    const void* host = to_device ? src : dst;
    KILN_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, to_device ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost, st),
                    "copy_");
    if (!(non_blocking && is_pinned(host))) KILN_CUDA_CHECK(cudaStreamSynchronize(st), "copy_");
  }

  static bool is_pinned(const void* p) {
    cudaPointerAttributes a{};
    if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
      cudaGetLastError();
      return false;
    }
    return a.type == cudaMemoryTypeHost;
  }

  void synchronize(int index) override {
    CudaDeviceGuard g(index);
    for (cudaStream_t s : state(index).streams) KILN_CUDA_CHECK(cudaStreamSynchronize(s), "synchronize");
  }

  MemoryStats memory_stats(int index) const override {
    const DeviceState& s = states_[index];
    return s.allocator ? s.allocator->stats() : MemoryStats{};
  }
  void reset_peak_memory_stats(int index) override { state(index).allocator->reset_peak(); }
  std::vector<MemorySegmentInfo> memory_snapshot(int index) const override {
    const DeviceState& s = states_[index];
    return s.allocator ? s.allocator->snapshot() : std::vector<MemorySegmentInfo>{};
  }
  void empty_cache(int index) override {
    synchronize(index);
    state(index).allocator->empty_cache();
  }

  // Pinned host memory, cached. A freed block may still feed an asynchronous copy, so
  // it goes back to the cache only once an event recorded at free time has completed.
  void* allocate_pinned(size_t bytes) override {
    std::lock_guard<std::mutex> lock(pinned_mutex_);
    if (!pinned_) {
      pinned_ = std::make_unique<memory::CachingAllocator>(
          "pinned host", memory::RawAllocator{[](size_t n) -> void* {
                                                void* p = nullptr;
                                                if (cudaHostAlloc(&p, n, cudaHostAllocPortable) != cudaSuccess) {
                                                  cudaGetLastError();
                                                  return nullptr;
                                                }
                                                return p;
                                              },
                                              [](void* p, size_t) { cudaFreeHost(p); }});
    }
    reclaim_pinned_locked(false);
    return pinned_->allocate(bytes);
  }

  void deallocate_pinned(void* p) override {
    std::lock_guard<std::mutex> lock(pinned_mutex_);
    std::vector<cudaEvent_t> events;
    for (int i = 0; i < count_; ++i) {
      if (!states_[i].allocator) continue;  // never used: nothing in flight
      CudaDeviceGuard g(i);
      for (cudaStream_t s : states_[i].streams) {
        cudaEvent_t e;
        if (cudaEventCreateWithFlags(&e, cudaEventDisableTiming) != cudaSuccess) continue;
        cudaEventRecord(e, s);
        events.push_back(e);
      }
    }
    pending_pinned_.push_back({p, std::move(events)});
  }

  void reclaim_pinned_locked(bool wait) {
    for (size_t i = 0; i < pending_pinned_.size();) {
      auto& [ptr, events] = pending_pinned_[i];
      bool done = true;
      for (cudaEvent_t e : events) done = done && (wait ? cudaEventSynchronize(e) : cudaEventQuery(e)) == cudaSuccess;
      cudaGetLastError();
      if (!done) {
        ++i;
        continue;
      }
      for (cudaEvent_t e : events) cudaEventDestroy(e);
      pinned_->deallocate(ptr);
      pending_pinned_[i] = std::move(pending_pinned_.back());
      pending_pinned_.pop_back();
    }
  }

  int current_stream(int index) const override { return t_stream[size_t(index)]; }
  void set_current_stream(int index, int stream_index) override {
    const int old = t_stream[size_t(index)];
    if (old == stream_index) return;
    DeviceState& s = state(index);
    CudaDeviceGuard g(index);
    cudaEvent_t e;
    KILN_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "set_current_stream");
    KILN_CUDA_CHECK(cudaEventRecord(e, s.streams[size_t(old)]), "set_current_stream");
    KILN_CUDA_CHECK(cudaStreamWaitEvent(s.streams[size_t(stream_index)], e, 0), "set_current_stream");
    cudaEventDestroy(e);
    t_stream[size_t(index)] = stream_index;
  }

  void register_kernels(KernelRegistry& r) override {
    register_copy(r);
    register_unary(r);
    register_binary(r);
    register_reduce(r);
    register_linalg(r);
    register_nn(r);
  }

  int sm(int index) const { return states_[index].props.multiProcessorCount; }

 private:
  static std::string version_str(int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); }

  int count_ = 0;
  int stream_count_ = kDefaultStreams;
  std::string reason_;
  std::array<DeviceState, kMaxDevices> states_;
  std::mutex pinned_mutex_;
  std::unique_ptr<memory::CachingAllocator> pinned_;
  std::unique_ptr<DeviceTracer> tracer_;
  std::vector<std::pair<void*, std::vector<cudaEvent_t>>> pending_pinned_;
  static inline CudaBackend* instance_ = nullptr;
};

}  // namespace

cudaStream_t current_stream(int device) { return CudaBackend::instance()->stream(device); }
int sm_count(int device) { return CudaBackend::instance()->sm(device); }

}  // namespace kiln::cuda

namespace kiln {
std::unique_ptr<Backend> make_cuda_backend() { return std::make_unique<cuda::CudaBackend>(); }
}  // namespace kiln
