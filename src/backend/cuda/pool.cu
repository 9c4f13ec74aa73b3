// CUDA pooling over NCHW contiguous planes: max_pool2d (+ int64 indices, flat h * W + w in
// the plane; the first maximum wins, NaN beats everything, padding never does),
// avg_pool2d (PyTorch's divisor rules), adaptive_avg_pool2d, and their backward ops.
// Forward: one thread per output. Backward: each output's gradient is scattered with
// atomics into a float32 (float64) buffer, converted to the gradient's dtype at the end.
#include <cmath>

#include "kiln/op_attrs.h"
#include "kiln/ops.h"
#include "src/backend/cuda/kernels.h"
#include "src/backend/cuda/loops.cuh"

namespace kiln::cuda {

namespace {

struct Geom {
  int64_t planes, h, w, oh, ow;
};
Geom geom(const Tensor& big, const Tensor& small) {
  const int64_t d = big.dim();
  Geom g;
  g.h = big.size(d - 2);
  g.w = big.size(d - 1);
  g.oh = small.size(d - 2);
  g.ow = small.size(d - 1);
  g.planes = big.numel() / std::max<int64_t>(1, g.h * g.w);
  return g;
}

struct PoolP {
  int kh, kw, sh, sw, ph, pw, dh, dw;
  bool count_include_pad;
  int64_t divisor_override;
};
PoolP pool_params(const Pool2dAttrs& a) {
  return PoolP{int(a.kernel[0]), int(a.kernel[1]), int(a.stride[0]), int(a.stride[1]), int(a.padding[0]),
               int(a.padding[1]), int(a.dilation[0]), int(a.dilation[1]), a.count_include_pad, a.divisor_override};
}

#define KILN_GRID_LOOP(i, n) \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

// Forward kernels: grid.y walks planes, grid.x the outputs of a plane, with 32-bit index
// arithmetic inside a plane.
#define KILN_PLANE_LOOP(pl, o2, i, j)                                                              \
  for (int64_t pl = blockIdx.y; pl < g.planes; pl += gridDim.y)                                    \
    for (int o2 = int(blockIdx.x * blockDim.x + threadIdx.x), i = o2 / int(g.ow), j = o2 % int(g.ow); \
         o2 < int(g.oh * g.ow); o2 += int(gridDim.x * blockDim.x), i = o2 / int(g.ow), j = o2 % int(g.ow))

dim3 plane_grid(const Geom& g, int dev) {
  KILN_CHECK(g.oh * g.ow < int64_t(INT32_MAX), "pool2d", "output planes of ", g.oh, " x ", g.ow, " are too large");
  const int64_t per_plane = (g.oh * g.ow + kThreads - 1) / kThreads;
  const int64_t planes = std::min<int64_t>(g.planes, 65535);
  const int64_t want = int64_t(sm_count(dev)) * 32;
  const int64_t bx = std::max<int64_t>(1, std::min<int64_t>(per_plane, (want + planes - 1) / planes));
  return dim3(unsigned(std::max<int64_t>(bx, 1)), unsigned(std::max<int64_t>(planes, 1)));
}

template <typename T>
__global__ void max_pool_kernel(const T* x, T* y, int64_t* idx, Geom g, PoolP p) {
  using A = comp_t<T>;
  KILN_PLANE_LOOP(pl, o2, i, j) {
    const int64_t o = pl * g.oh * g.ow + o2;
    const T* in = x + pl * g.h * g.w;
    A best = A(-INFINITY);
    int64_t arg = -1;
    bool nan = false;
    for (int u = 0; u < p.kh && !nan; ++u) {
      const int64_t ih = i * p.sh - p.ph + int64_t(u) * p.dh;
      if (ih < 0 || ih >= g.h) continue;
      for (int v = 0; v < p.kw; ++v) {
        const int64_t iw = j * p.sw - p.pw + int64_t(v) * p.dw;
        if (iw < 0 || iw >= g.w) continue;
        const A val = convert<A>(in[ih * g.w + iw]);
        if (arg < 0 || val > best || val != val) {
          best = val;
          arg = ih * g.w + iw;
          if (val != val) {
            nan = true;
            break;
          }
        }
      }
    }
    y[o] = arg < 0 ? convert<T>(A(-INFINITY)) : in[arg];
    if (idx) idx[o] = arg;
  }
}

template <typename T, typename A>
__global__ void max_pool_backward_kernel(const T* gy, const int64_t* idx, A* acc, Geom g) {
  KILN_GRID_LOOP(o, g.planes * g.oh * g.ow) {
    const int64_t pl = o / (g.ow * g.oh);
    if (idx[o] >= 0) atomicAdd(acc + pl * g.h * g.w + idx[o], convert<A>(gy[o]));
  }
}

__device__ __forceinline__ int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
__device__ __forceinline__ int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

struct Window {
  int64_t h0, h1, w0, w1;
  double divisor;
};
__device__ Window avg_window(int64_t i, int64_t j, const Geom& g, const PoolP& p) {
  int64_t h0 = i * p.sh - p.ph, w0 = j * p.sw - p.pw;
  int64_t h1 = imin(h0 + p.kh, g.h + p.ph), w1 = imin(w0 + p.kw, g.w + p.pw);
  const int64_t padded = (h1 - h0) * (w1 - w0);
  h0 = imax(h0, 0);
  w0 = imax(w0, 0);
  h1 = imin(h1, g.h);
  w1 = imin(w1, g.w);
  double div = p.count_include_pad ? double(padded) : double((h1 - h0) * (w1 - w0));
  if (p.divisor_override) div = double(p.divisor_override);
  return {h0, h1, w0, w1, div};
}

template <typename T>
__global__ void avg_pool_kernel(const T* x, T* y, Geom g, PoolP p) {
  using A = comp_t<T>;
  KILN_PLANE_LOOP(pl, o2, i, j) {
    const int64_t o = pl * g.oh * g.ow + o2;
    const T* in = x + pl * g.h * g.w;
    const Window win = avg_window(i, j, g, p);
    A s = A(0);
    for (int64_t r = win.h0; r < win.h1; ++r)
      for (int64_t c = win.w0; c < win.w1; ++c) s += convert<A>(in[r * g.w + c]);
    y[o] = convert<T>(A(double(s) / win.divisor));
  }
}

template <typename T, typename A>
__global__ void avg_pool_backward_kernel(const T* gy, A* acc, Geom g, PoolP p) {
  KILN_GRID_LOOP(o, g.planes * g.oh * g.ow) {
    const int64_t j = o % g.ow, i = (o / g.ow) % g.oh, pl = o / (g.ow * g.oh);
    const Window win = avg_window(i, j, g, p);
    const A v = A(double(convert<A>(gy[o])) / win.divisor);
    for (int64_t r = win.h0; r < win.h1; ++r)
      for (int64_t c = win.w0; c < win.w1; ++c) atomicAdd(acc + pl * g.h * g.w + r * g.w + c, v);
  }
}

// Output cell i covers input rows [floor(i*H/OH), ceil((i+1)*H/OH)).
__device__ __forceinline__ int64_t start_of(int64_t i, int64_t in, int64_t out) { return (i * in) / out; }
__device__ __forceinline__ int64_t end_of(int64_t i, int64_t in, int64_t out) { return ((i + 1) * in + out - 1) / out; }

template <typename T>
__global__ void adaptive_avg_kernel(const T* x, T* y, Geom g) {
  using A = comp_t<T>;
  KILN_GRID_LOOP(o, g.planes * g.oh * g.ow) {
    const int64_t j = o % g.ow, i = (o / g.ow) % g.oh, pl = o / (g.ow * g.oh);
    const int64_t h0 = start_of(i, g.h, g.oh), h1 = end_of(i, g.h, g.oh);
    const int64_t w0 = start_of(j, g.w, g.ow), w1 = end_of(j, g.w, g.ow);
    const T* in = x + pl * g.h * g.w;
    A s = A(0);
    for (int64_t r = h0; r < h1; ++r)
      for (int64_t c = w0; c < w1; ++c) s += convert<A>(in[r * g.w + c]);
    y[o] = convert<T>(s / A((h1 - h0) * (w1 - w0)));
  }
}

template <typename T, typename A>
__global__ void adaptive_avg_backward_kernel(const T* gy, A* acc, Geom g) {
  KILN_GRID_LOOP(o, g.planes * g.oh * g.ow) {
    const int64_t j = o % g.ow, i = (o / g.ow) % g.oh, pl = o / (g.ow * g.oh);
    const int64_t h0 = start_of(i, g.h, g.oh), h1 = end_of(i, g.h, g.oh);
    const int64_t w0 = start_of(j, g.w, g.ow), w1 = end_of(j, g.w, g.ow);
    const A v = convert<A>(gy[o]) / A((h1 - h0) * (w1 - w0));
    for (int64_t r = h0; r < h1; ++r)
      for (int64_t c = w0; c < w1; ++c) atomicAdd(acc + pl * g.h * g.w + r * g.w + c, v);
  }
}

template <typename P>
P* ptr(const Tensor& t) {
  return static_cast<P*>(t.data_ptr());
}

void max_pool_entry(const KernelArgs& k) {
  const Tensor &x = k.inputs[0], &y = k.outputs[0];
  const int dev = k.device.index;
  CudaDeviceGuard guard(dev);
  const Geom g = geom(x, y);
  if (y.numel() == 0) return;
  int64_t* idx = k.outputs.size() > 1 ? ptr<int64_t>(k.outputs[1]) : nullptr;
  KILN_DISPATCH_FLOATING(x.dtype(), "max_pool2d", [&]<typename TK>() {
    using T = dev_t<TK>;
    max_pool_kernel<T><<<plane_grid(g, dev), kThreads, 0, current_stream(dev)>>>(
        ptr<const T>(x), ptr<T>(y), idx, g, pool_params(k.attr<Pool2dAttrs>()));
    KILN_CUDA_CHECK_LAUNCH("max_pool2d");
  });
}

void avg_pool_entry(const KernelArgs& k) {
  const Tensor &x = k.inputs[0], &y = k.outputs[0];
  const int dev = k.device.index;
  CudaDeviceGuard guard(dev);
  if (y.numel() == 0) return;
  KILN_DISPATCH_FLOATING(x.dtype(), "avg_pool2d", [&]<typename TK>() {
    using T = dev_t<TK>;
    avg_pool_kernel<T><<<plane_grid(geom(x, y), dev), kThreads, 0, current_stream(dev)>>>(
        ptr<const T>(x), ptr<T>(y), geom(x, y), pool_params(k.attr<Pool2dAttrs>()));
    KILN_CUDA_CHECK_LAUNCH("avg_pool2d");
  });
}

void adaptive_avg_entry(const KernelArgs& k) {
  const Tensor &x = k.inputs[0], &y = k.outputs[0];
  const int dev = k.device.index;
  CudaDeviceGuard guard(dev);
  if (y.numel() == 0) return;
  KILN_DISPATCH_FLOATING(x.dtype(), "adaptive_avg_pool2d", [&]<typename TK>() {
    using T = dev_t<TK>;
    adaptive_avg_kernel<T><<<blocks_for(y.numel(), dev, 32), kThreads, 0, current_stream(dev)>>>(
        ptr<const T>(x), ptr<T>(y), geom(x, y));
    KILN_CUDA_CHECK_LAUNCH("adaptive_avg_pool2d");
  });
}

// Backward ops: scatter into a zeroed accumulation buffer, then convert into grad_x.
template <typename Launch>
void scatter_backward(const char* op, const Tensor& gy, const Tensor& gx, int dev, Launch launch) {
  CudaDeviceGuard guard(dev);
  Tensor gxo = gx;
  const DType acc = gy.dtype() == DType::Float64 ? DType::Float64 : DType::Float32;
  Tensor buf = gx.dtype() == acc ? gxo : empty(gx.shape(), TensorOptions(acc).device(gx.device()));
  buf.zero_();
  if (gy.numel() > 0) {
    KILN_DISPATCH_FLOATING(gy.dtype(), op, [&]<typename TK>() {
      using T = dev_t<TK>;
      if (acc == DType::Float64) launch.template operator()<T, double>(ptr<const T>(gy), ptr<double>(buf));
      else launch.template operator()<T, float>(ptr<const T>(gy), ptr<float>(buf));
    });
    KILN_CUDA_CHECK_LAUNCH(op);
  }
  if (!buf.is_same(gxo)) gxo.copy_(buf);
}

void max_pool_backward_entry(const KernelArgs& k) {
  const Tensor &gy = k.inputs[0], &idx = k.inputs[1], &gx = k.outputs[0];
  const int dev = k.device.index;
  const Geom g = geom(gx, gy);
  scatter_backward("max_pool2d_backward", gy, gx, dev, [&]<typename T, typename A>(const T* pgy, A* acc) {
    if constexpr (std::is_same_v<A, double> == std::is_same_v<T, double>)
      max_pool_backward_kernel<T, A><<<blocks_for(gy.numel(), dev, 32), kThreads, 0, current_stream(dev)>>>(
          pgy, ptr<const int64_t>(idx), acc, g);
  });
}

void avg_pool_backward_entry(const KernelArgs& k) {
  const Tensor &gy = k.inputs[0], &gx = k.outputs[0];
  const int dev = k.device.index;
  const Geom g = geom(gx, gy);
  const PoolP p = pool_params(k.attr<Pool2dAttrs>());
  scatter_backward("avg_pool2d_backward", gy, gx, dev, [&]<typename T, typename A>(const T* pgy, A* acc) {
    if constexpr (std::is_same_v<A, double> == std::is_same_v<T, double>)
      avg_pool_backward_kernel<T, A><<<blocks_for(gy.numel(), dev, 32), kThreads, 0, current_stream(dev)>>>(
          pgy, acc, g, p);
  });
}

void adaptive_avg_backward_entry(const KernelArgs& k) {
  const Tensor &gy = k.inputs[0], &gx = k.outputs[0];
  const int dev = k.device.index;
  const Geom g = geom(gx, gy);
  scatter_backward("adaptive_avg_pool2d_backward", gy, gx, dev, [&]<typename T, typename A>(const T* pgy, A* acc) {
    if constexpr (std::is_same_v<A, double> == std::is_same_v<T, double>)
      adaptive_avg_backward_kernel<T, A><<<blocks_for(gy.numel(), dev, 32), kThreads, 0, current_stream(dev)>>>(
          pgy, acc, g);
  });
}

}  // namespace

void register_pool(KernelRegistry& r) {
  const DeviceType cu = DeviceType::Cuda;
  r.add(cu, OpId::MaxPool2d, max_pool_entry, kFloatingDTypes);
  r.add(cu, OpId::MaxPool2dBackward, max_pool_backward_entry, kFloatingDTypes);
  r.add(cu, OpId::AvgPool2d, avg_pool_entry, kFloatingDTypes);
  r.add(cu, OpId::AvgPool2dBackward, avg_pool_backward_entry, kFloatingDTypes);
  r.add(cu, OpId::AdaptiveAvgPool2d, adaptive_avg_entry, kFloatingDTypes);
  r.add(cu, OpId::AdaptiveAvgPool2dBackward, adaptive_avg_backward_entry, kFloatingDTypes);
}

}  // namespace kiln::cuda
