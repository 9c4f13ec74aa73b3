// CUDA batch_norm over x [N, C, HW] contiguous: forward (training and eval) and
// backward. Per-channel sums come from a grid of (channel, slice) blocks, so that a few
// channels over many images still fill the GPU (one block per channel left most SMs
// idle); one small kernel then turns them into every per-channel coefficient, the saved
// statistics and the running statistics; one pass applies the affine map. Three
// launches a direction and no host synchronisation. Sums accumulate in float (double
// for float64): per thread against a pivot sample of the channel, then Welford merges.
#include <algorithm>
#include <cmath>

#include "kiln/op_attrs.h"
#include "kiln/ops.h"
#include "src/backend/cuda/block_reduce.cuh"
#include "src/backend/cuda/kernels.h"
#include "src/backend/cuda/loops.cuh"

namespace kiln::cuda {

namespace {

template <typename A>
A* ptr(const Tensor& t) {
  return static_cast<A*>(t.data_ptr());
}

// Blocks per channel: rows along N times cols along HW, about 4 blocks per SM in all.
struct Slicing {
  int rows, cols;
  int parts() const { return rows * cols; }
};
Slicing slicing(int64_t N, int64_t C, int64_t HW, int dev) {
  const int64_t target = std::max<int64_t>(1, 4 * int64_t(sm_count(dev)) / std::max<int64_t>(C, 1));
  const int64_t rows = std::clamp<int64_t>(std::min(N, target), 1, 65535);
  const int64_t cols = std::clamp<int64_t>(target / rows, 1, std::max<int64_t>(1, (HW + 1023) / 1024));
  return {int(rows), int(std::min<int64_t>(cols, 65535 / rows))};
}

// The slice of channel c's [N, HW] plane that block (c, blockIdx.y) covers.
struct Slice {
  int64_t n0, n1, h0, h1;
};
__device__ __forceinline__ Slice slice_of(Slicing sl, int64_t N, int64_t HW) {
  const int r = int(blockIdx.y) / sl.cols, q = int(blockIdx.y) % sl.cols;
  return {N * r / sl.rows, N * (r + 1) / sl.rows, HW * q / sl.cols, HW * (q + 1) / sl.cols};
}

template <typename T, typename A>
__global__ void bn_partial_stats_kernel(const T* x, int64_t N, int64_t C, int64_t HW, Slicing sl, Wf<A>* part) {
  const int64_t c = blockIdx.x;
  const Slice s = slice_of(sl, N, HW);
  const A pivot = N * HW > 0 ? convert<A>(x[c * HW]) : A(0);  // against cancellation in sum of squares
  A s1 = A(0), s2 = A(0), cnt = A(0);
  for (int64_t n = s.n0; n < s.n1; ++n) {
    const T* row = x + (n * C + c) * HW;
    for (int64_t i = s.h0 + threadIdx.x; i < s.h1; i += kReduceBlock) {
      const A v = convert<A>(row[i]) - pivot;
      s1 += v;
      s2 += v * v;
      cnt += A(1);
    }
  }
  Wf<A> w{A(0), A(0), A(0)};
  if (cnt > A(0)) {
    const A m = s1 / cnt;
    w = Wf<A>{pivot + m, s2 - s1 * m > A(0) ? s2 - s1 * m : A(0), cnt};
  }
  w = block_all(w, [](Wf<A>& a, const Wf<A>& b) { wf_combine(a, b); });
  if (threadIdx.x == 0) part[c * gridDim.y + blockIdx.y] = w;
}

template <typename A>
struct CoeffArgs {
  const Wf<A>* part = nullptr;  // training: partial statistics [C, parts]
  int parts = 0;
  const A *mean_in = nullptr, *var_in = nullptr;  // eval: the running statistics
  const A *w = nullptr, *b = nullptr;
  A eps, momentum, unbias;
  A *save_mean = nullptr, *save_invstd = nullptr;  // training outputs
  A *run_mean = nullptr, *run_var = nullptr;       // training: updated in place when given
  A *scale = nullptr, *shift = nullptr;            // y = x * scale + shift
};

template <typename A>
__global__ void bn_coefficients_kernel(CoeffArgs<A> a, int64_t C) {
  for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < C; c += int64_t(gridDim.x) * blockDim.x) {
    A mean, var;
    if (a.part) {
      Wf<A> w{A(0), A(0), A(0)};
      for (int p = 0; p < a.parts; ++p) wf_combine(w, a.part[c * a.parts + p]);
      mean = w.mean;
      var = w.n > A(0) ? w.m2 / w.n : A(0);
    } else {
      mean = a.mean_in[c];
      var = a.var_in[c];
    }
    const A invstd = A(1) / ::sqrt(var + a.eps);
    const A sc = a.w[c] * invstd;
    a.scale[c] = sc;
    a.shift[c] = a.b[c] - mean * sc;
    if (a.save_mean) {
      a.save_mean[c] = mean;
      a.save_invstd[c] = invstd;
    }
    if (a.run_mean) {
      a.run_mean[c] = (A(1) - a.momentum) * a.run_mean[c] + a.momentum * mean;
      a.run_var[c] = (A(1) - a.momentum) * a.run_var[c] + a.momentum * var * a.unbias;
    }
  }
}

template <typename T, typename A>
__global__ void bn_partial_grad_sums_kernel(const T* g, const T* x, int64_t N, int64_t C, int64_t HW, Slicing sl,
                                            const A* mean, A* part) {
  const int64_t c = blockIdx.x;
  const Slice s = slice_of(sl, N, HW);
  const A m = mean[c];
  struct Two {
    A a, b;
  } t{A(0), A(0)};
  for (int64_t n = s.n0; n < s.n1; ++n) {
    const int64_t base = (n * C + c) * HW;
    for (int64_t i = s.h0 + threadIdx.x; i < s.h1; i += kReduceBlock) {
      const A gv = convert<A>(g[base + i]);
      t.a += gv;
      t.b += gv * (convert<A>(x[base + i]) - m);
    }
  }
  t = block_all(t, [](Two& p, const Two& q) {
    p.a += q.a;
    p.b += q.b;
  });
  if (threadIdx.x == 0) {
    A* out = part + (c * gridDim.y + blockIdx.y) * 2;
    out[0] = t.a;
    out[1] = t.b;
  }
}

// grad_x = g * kk + x * k2 + d per channel, from the sums of g and g * (x - mean).
template <typename A>
struct GradArgs {
  const A* part;  // [C, parts, 2]
  int parts;
  const A *w, *mean, *invstd;
  A count;
  bool training;
  A *kk, *k2, *d, *grad_w, *grad_b;
};

template <typename A>
__global__ void bn_grad_coefficients_kernel(GradArgs<A> a, int64_t C) {
  for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < C; c += int64_t(gridDim.x) * blockDim.x) {
    A sum_g = A(0), sum_gd = A(0);
    for (int p = 0; p < a.parts; ++p) {
      sum_g += a.part[(c * a.parts + p) * 2];
      sum_gd += a.part[(c * a.parts + p) * 2 + 1];
    }
    const A invstd = a.invstd[c], kk = a.w[c] * invstd;
    const A k2 = a.training ? -kk * invstd * invstd * sum_gd / a.count : A(0);
    const A k3 = a.training ? -kk * sum_g / a.count : A(0);
    a.kk[c] = kk;
    a.k2[c] = k2;
    a.d[c] = k3 - k2 * a.mean[c];
    a.grad_w[c] = sum_gd * invstd;
    a.grad_b[c] = sum_g;
  }
}

// y = x * a[c] + b[c] (and, with g, y = g * a[c] + x * b[c] + d[c]) over [rows = N*C, HW].
template <typename T, typename A>
__device__ __forceinline__ T affine_one(const T* g, T xs, int64_t i, A a, A b, A d) {
  const A xv = convert<A>(xs);
  return g ? convert<T>(convert<A>(g[i]) * a + xv * b + d) : convert<T>(xv * a + b);
}

// Flat: short rows (HW < 128), one element per step.
template <typename T, typename A>
__global__ void channel_affine_flat_kernel(const T* g, const T* x, T* y, int64_t rows, int64_t C, int64_t HW,
                                           const A* a, const A* b, const A* d) {
  const int64_t total = rows * HW;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = (i / HW) % C;
    y[i] = affine_one(g, x[i], i, a[c], b[c], d ? d[c] : A(0));
  }
}

// Rows: a block per (n, c) row, 16-byte vectors when the row allows.
template <typename T, typename A>
__global__ void channel_affine_rows_kernel(const T* g, const T* x, T* y, int64_t C, int64_t HW, const A* a,
                                           const A* b, const A* d, bool vec) {
  constexpr int V = 16 / sizeof(T) > 0 ? int(16 / sizeof(T)) : 1;
  const int64_t row = blockIdx.x;
  const int64_t c = row % C;
  const A ca = a[c], cb = b[c], cd = d ? d[c] : A(0);
  const int64_t base = row * HW;
  if (vec) {
    const int64_t nv = HW / V;
    for (int64_t v = threadIdx.x; v < nv; v += blockDim.x) {
      const Vec<T, V> xv = reinterpret_cast<const Vec<T, V>*>(x + base)[v];
      Vec<T, V> gv;
      if (g) gv = reinterpret_cast<const Vec<T, V>*>(g + base)[v];
      Vec<T, V> o;
#pragma unroll
      for (int k = 0; k < V; ++k) {
        const A xa = convert<A>(xv.v[k]);
        o.v[k] = g ? convert<T>(convert<A>(gv.v[k]) * ca + xa * cb + cd) : convert<T>(xa * ca + cb);
      }
      reinterpret_cast<Vec<T, V>*>(y + base)[v] = o;
    }
  } else {
    for (int64_t i = threadIdx.x; i < HW; i += blockDim.x) y[base + i] = affine_one(g, x[base + i], base + i, ca, cb, cd);
  }
}

template <typename T, typename A>
void channel_affine(const T* g, const T* x, T* y, int64_t rows, int64_t C, int64_t HW, const A* a, const A* b,
                    const A* d, int dev, const char* op) {
  cudaStream_t st = current_stream(dev);
  if (rows * HW == 0) return;
  if (HW < 128) {
    channel_affine_flat_kernel<T, A><<<blocks_for(rows * HW, dev, 32), kThreads, 0, st>>>(g, x, y, rows, C, HW, a, b, d);
  } else {
    constexpr int V = 16 / sizeof(T) > 0 ? int(16 / sizeof(T)) : 1;
    auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
    const bool vec = HW % V == 0 && aligned(x) && aligned(y) && (!g || aligned(g));
    const int threads = HW / (vec ? V : 1) >= 256 ? 256 : 128;
    channel_affine_rows_kernel<T, A><<<unsigned(rows), threads, 0, st>>>(g, x, y, C, HW, a, b, d, vec);
  }
  KILN_CUDA_CHECK_LAUNCH(op);
}

// A per-channel tensor as contiguous acc-typed memory: t itself when it already is,
// else a copy that write_back() returns to t.
struct ChannelBuffer {
  Tensor target, buf;
  ChannelBuffer(const Tensor& t, DType acc) : target(t) {
    buf = t.dtype() == acc && t.is_contiguous() ? t : t.to(acc).contiguous();
  }
  void write_back() {
    if (!buf.is_same(target)) target.copy_(buf);
  }
};

DType acc_of(DType t) { return t == DType::Float64 ? DType::Float64 : DType::Float32; }
unsigned channel_blocks(int64_t C) { return unsigned(std::clamp<int64_t>((C + 255) / 256, 1, 1024)); }

void batch_norm_kernel(const KernelArgs& k) {
  const auto& at = k.attr<BatchNormAttrs>();
  const Tensor& x = k.inputs[0];
  const int dev = k.device.index;
  CudaDeviceGuard guard(dev);
  cudaStream_t st = current_stream(dev);
  const int64_t N = x.size(0), C = x.size(1), HW = x.numel() / std::max<int64_t>(1, N * C);
  if (C == 0) return;
  const DType acc = acc_of(x.dtype());
  const TensorOptions ao = TensorOptions(acc).device(x.device());
  const Tensor w = k.inputs[1].to(acc).contiguous(), b = k.inputs[2].to(acc).contiguous();
  Tensor scale = empty({C}, ao), shift = empty({C}, ao);
  KILN_DISPATCH_FLOATING(x.dtype(), "batch_norm", [&]<typename TK>() {
    using T = dev_t<TK>;
    using A = std::conditional_t<std::is_same_v<T, double>, double, float>;
    CoeffArgs<A> a;
    a.w = ptr<const A>(w);
    a.b = ptr<const A>(b);
    a.eps = A(at.eps);
    a.momentum = A(at.momentum);
    a.unbias = A(1);
    a.scale = ptr<A>(scale);
    a.shift = ptr<A>(shift);
    Tensor part, mean_in, var_in;
    std::vector<ChannelBuffer> outs;
    if (at.training) {
      const Slicing sl = slicing(N, C, HW, dev);
      part = empty({C * sl.parts() * 3}, ao);
      bn_partial_stats_kernel<T, A><<<dim3(unsigned(C), unsigned(sl.parts())), kReduceBlock, 0, st>>>(
          ptr<const T>(x), N, C, HW, sl, ptr<Wf<A>>(part));
      KILN_CUDA_CHECK_LAUNCH("batch_norm");
      a.part = ptr<const Wf<A>>(part);
      a.parts = sl.parts();
      const double count = double(N * HW);
      a.unbias = A(count > 1 ? count / (count - 1) : 1.0);
      for (size_t i = 1; i < k.outputs.size(); ++i) outs.emplace_back(k.outputs[i], acc);
      a.save_mean = ptr<A>(outs[0].buf);
      a.save_invstd = ptr<A>(outs[1].buf);
      if (at.has_running) {
        a.run_mean = ptr<A>(outs[2].buf);
        a.run_var = ptr<A>(outs[3].buf);
      }
    } else {
      mean_in = k.inputs[3].to(acc).contiguous();
      var_in = k.inputs[4].to(acc).contiguous();
      a.mean_in = ptr<const A>(mean_in);
      a.var_in = ptr<const A>(var_in);
    }
    bn_coefficients_kernel<A><<<channel_blocks(C), 256, 0, st>>>(a, C);
    KILN_CUDA_CHECK_LAUNCH("batch_norm");
    if (x.numel() > 0)
      channel_affine<T, A>(nullptr, ptr<const T>(x), ptr<T>(k.outputs[0]), N * C, C, HW, ptr<const A>(scale),
                           ptr<const A>(shift), nullptr, dev, "batch_norm");
    for (ChannelBuffer& o : outs) o.write_back();
  });
}

void batch_norm_backward_kernel(const KernelArgs& k) {
  const bool training = k.attr<BatchNormAttrs>().training;
  const Tensor& g = k.inputs[0];
  const Tensor& x = k.inputs[1];
  const int dev = k.device.index;
  CudaDeviceGuard guard(dev);
  cudaStream_t st = current_stream(dev);
  const int64_t N = x.size(0), C = x.size(1), HW = x.numel() / std::max<int64_t>(1, N * C);
  if (C == 0) return;
  const DType acc = acc_of(x.dtype());
  const TensorOptions ao = TensorOptions(acc).device(x.device());
  const Tensor w = k.inputs[2].to(acc).contiguous(), mean = k.inputs[3].to(acc).contiguous(),
               invstd = k.inputs[4].to(acc).contiguous();
  Tensor coeffs = empty({3, C}, ao);
  KILN_DISPATCH_FLOATING(x.dtype(), "batch_norm_backward", [&]<typename TK>() {
    using T = dev_t<TK>;
    using A = std::conditional_t<std::is_same_v<T, double>, double, float>;
    const Slicing sl = slicing(N, C, HW, dev);
    Tensor part = empty({C * sl.parts() * 2}, ao);
    bn_partial_grad_sums_kernel<T, A><<<dim3(unsigned(C), unsigned(sl.parts())), kReduceBlock, 0, st>>>(
        ptr<const T>(g), ptr<const T>(x), N, C, HW, sl, ptr<const A>(mean), ptr<A>(part));
    KILN_CUDA_CHECK_LAUNCH("batch_norm_backward");
    ChannelBuffer gw(k.outputs[1], acc), gb(k.outputs[2], acc);
    A* cf = ptr<A>(coeffs);
    GradArgs<A> a{ptr<const A>(part), sl.parts(), ptr<const A>(w), ptr<const A>(mean), ptr<const A>(invstd),
                  A(double(N * HW)), training, cf, cf + C, cf + 2 * C, ptr<A>(gw.buf), ptr<A>(gb.buf)};
    bn_grad_coefficients_kernel<A><<<channel_blocks(C), 256, 0, st>>>(a, C);
    KILN_CUDA_CHECK_LAUNCH("batch_norm_backward");
    if (x.numel() > 0)
      channel_affine<T, A>(ptr<const T>(g), ptr<const T>(x), ptr<T>(k.outputs[0]), N * C, C, HW, cf, cf + C,
                           cf + 2 * C, dev, "batch_norm_backward");
    gw.write_back();
    gb.write_back();
  });
}

}  // namespace

void register_batch_norm(KernelRegistry& r) {
  r.add(DeviceType::Cuda, OpId::BatchNorm, batch_norm_kernel);
  r.add(DeviceType::Cuda, OpId::BatchNormBackward, batch_norm_backward_kernel);
}

}  // namespace kiln::cuda
