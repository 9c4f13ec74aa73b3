// CUDA kernels of the nn family: layer_norm (forward; its backward composes CUDA ops),
// dropout (Philox as the CPU), embedding and its backward, index_select, cat (batch_norm:
// batch_norm.cu). Contracts in ops.def. Statistics accumulate in float (double for
// float64) with Welford's update.
#include <cmath>

#include "kiln/op_attrs.h"
#include "kiln/ops.h"
#include "src/backend/cuda/kernels.h"
#include "src/backend/cuda/block_reduce.cuh"
#include "src/backend/cuda/loops.cuh"
#include "src/backend/cuda/philox.cuh"

namespace kiln::cuda {

namespace {

constexpr int kBlk = kReduceBlock;

DType acc_of(DType t) { return t == DType::Float64 ? DType::Float64 : DType::Float32; }

template <typename A>
A* ptr(const Tensor& t) {
  return static_cast<A*>(t.data_ptr());
}

// ---- layer_norm: x [M, N] rows ----
template <typename T, typename A, typename P>
__global__ void layer_norm_kernel(const T* x, const P* w, const P* b, T* y, A* mean_out, A* rstd_out, int64_t M,
                                  int64_t N, double eps) {
  const int64_t row = blockIdx.x;
  const T* xr = x + row * N;
  Wf<A> s{A(0), A(0), A(0)};
  for (int64_t i = threadIdx.x; i < N; i += kBlk) {
    const A v = convert<A>(xr[i]);
    s.n += A(1);
    const A d = v - s.mean;
    s.mean += d / s.n;
    s.m2 += d * (v - s.mean);
  }
  s = block_all(s, [](Wf<A>& a, const Wf<A>& c) { wf_combine(a, c); });
  const A var = s.n > A(0) ? s.m2 / s.n : A(0);
  const A rstd = A(1) / ::sqrt(var + A(eps));
  T* yr = y + row * N;
  for (int64_t i = threadIdx.x; i < N; i += kBlk)
    yr[i] = convert<T>((convert<A>(xr[i]) - s.mean) * rstd * convert<A>(w[i]) + convert<A>(b[i]));
  if (threadIdx.x == 0) {
    mean_out[row] = s.mean;
    rstd_out[row] = rstd;
  }
}

void layer_norm_kernel_entry(const KernelArgs& k) {
  const auto& at = k.attr<LayerNormAttrs>();
  const Tensor& x = k.inputs[0];
  const int dev = k.device.index;
  CudaDeviceGuard guard(dev);
  const int64_t M = x.size(0), N = x.size(1);
  if (M == 0) return;
  const DType acc = acc_of(x.dtype());
  const Tensor w = k.inputs[1].to(acc).contiguous(), b = k.inputs[2].to(acc).contiguous();
  KILN_DISPATCH_FLOATING(x.dtype(), "layer_norm", [&]<typename TK>() {
    using T = dev_t<TK>;
    using A = std::conditional_t<std::is_same_v<T, double>, double, float>;
    layer_norm_kernel<T, A, A><<<unsigned(M), kBlk, 0, current_stream(dev)>>>(
        ptr<const T>(x), ptr<const A>(w), ptr<const A>(b), ptr<T>(k.outputs[0]), ptr<A>(k.outputs[1]),
        ptr<A>(k.outputs[2]), M, N, at.eps);
    KILN_CUDA_CHECK_LAUNCH("layer_norm");
  });
}

// grad_x = rstd * (gw - mean(gw) - xhat * mean(gw * xhat)), gw = g * w; grad_w = sum(g * xhat);
// grad_b = sum(g), composed from CUDA ops.
void layer_norm_backward_kernel(const KernelArgs& k) {
  const Tensor& g = k.inputs[0];
  const DType acc = acc_of(g.dtype());
  const Tensor ga = g.to(acc), xa = k.inputs[1].to(acc);
  const Tensor mean = k.inputs[2].to(acc).unsqueeze(1), rstd = k.inputs[3].to(acc).unsqueeze(1);
  const Tensor w = k.inputs[4].to(acc);
  const Tensor xhat = mul(sub(xa, mean), rstd);
  const Tensor gw = mul(ga, w);
  const Tensor gx = mul(rstd, sub(sub(gw, kiln::mean(gw, {1}, true)), mul(xhat, kiln::mean(mul(gw, xhat), {1}, true))));
  Tensor o0 = k.outputs[0], o1 = k.outputs[1], o2 = k.outputs[2];
  o0.copy_(gx);
  o1.copy_(sum(mul(ga, xhat), {0}));
  o2.copy_(sum(ga, {0}));
}

// ---- dropout ----
template <typename T>
__global__ void dropout_kernel(const T* x, T* y, bool* keep, int64_t n, float p, double scale, uint64_t seed,
                               uint64_t offset) {
  using A = comp_t<T>;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    uint32_t w[4];
    philox(seed, offset + uint64_t(i), w);
    const bool k = philox_unit(w[0]) >= p;
    keep[i] = k;
    y[i] = k ? convert<T>(convert<A>(x[i]) * A(scale)) : convert<T>(A(0));
  }
}

void dropout_entry(const KernelArgs& k) {
  const auto& at = k.attr<DropoutAttrs>();
  const Tensor& x = k.inputs[0];
  const int dev = k.device.index;
  CudaDeviceGuard guard(dev);
  if (x.numel() == 0) return;
  KILN_DISPATCH_FLOATING(x.dtype(), "dropout", [&]<typename TK>() {
    using T = dev_t<TK>;
    const double scale = at.p < 1.0 ? 1.0 / (1.0 - at.p) : 0.0;
    dropout_kernel<T><<<blocks_for(x.numel(), dev), kThreads, 0, current_stream(dev)>>>(
        ptr<const T>(x), ptr<T>(k.outputs[0]), ptr<bool>(k.outputs[1]), x.numel(), float(at.p), scale, at.seed,
        at.offset);
    KILN_CUDA_CHECK_LAUNCH("dropout");
  });
}

// ---- index ops ----
// out [outer, K, inner] = t [outer, S, inner] at index[k] along the middle dim.
template <typename T, typename I>
__global__ void index_select_kernel(const T* t, const I* idx, T* out, int64_t outer, int64_t S, int64_t K,
                                    int64_t inner) {
  const int64_t total = outer * K * inner;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t j = i % inner, k = (i / inner) % K, o = i / (inner * K);
    out[i] = t[(o * S + int64_t(idx[k])) * inner + j];
  }
}

void index_select_rows(const char* op, const Tensor& t, const Tensor& idx, const Tensor& out, int64_t dim, int dev) {
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= t.size(d);
  for (int64_t d = dim + 1; d < t.dim(); ++d) inner *= t.size(d);
  const int64_t S = t.dim() ? t.size(dim) : 1, K = idx.numel();
  if (out.numel() == 0) return;
  KILN_DISPATCH_DTYPE(t.dtype(), op, [&]<typename TK>() {
    using T = dev_t<TK>;
    auto go = [&]<typename I>() {
      index_select_kernel<T, I><<<blocks_for(out.numel(), dev), kThreads, 0, current_stream(dev)>>>(
          ptr<const T>(t), ptr<const I>(idx), ptr<T>(out), outer, S, K, inner);
    };
    if (idx.dtype() == DType::Int32) go.template operator()<int32_t>();
    else go.template operator()<int64_t>();
    KILN_CUDA_CHECK_LAUNCH(op);
  });
}

void index_select_entry(const KernelArgs& k) {
  const int64_t dim = k.attr<DimAttrs>().dim;
  const Tensor& t = k.inputs[0];
  CudaDeviceGuard guard(k.device.index);
  check_index_range("index_select", k.inputs[1], t.dim() ? t.size(dim) : 1, dim, t.shape());
  index_select_rows("index_select", t, k.inputs[1], k.outputs[0], dim, k.device.index);
}

void embedding_entry(const KernelArgs& k) {
  const Tensor& w = k.inputs[0];
  CudaDeviceGuard guard(k.device.index);
  check_index_range("embedding", k.inputs[1], w.size(0), 0, w.shape());
  index_select_rows("embedding", w, k.inputs[1], k.outputs[0], 0, k.device.index);
}

// grad_weight[idx[n], :] += grad[n, :] (atomics in the accumulation type for float32/float64)
template <typename T, typename I>
__global__ void embedding_backward_kernel(const T* g, const I* idx, T* gw, int64_t N, int64_t D) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < N * D; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t n = i / D, d = i % D;
    atomicAdd(gw + int64_t(idx[n]) * D + d, g[i]);
  }
}

void embedding_backward_entry(const KernelArgs& k) {
  const Tensor& g = k.inputs[0];
  const Tensor& idx = k.inputs[1];
  const int dev = k.device.index;
  CudaDeviceGuard guard(dev);
  Tensor gw = k.outputs[0];
  const int64_t V = gw.size(0), D = gw.size(1), N = idx.numel();
  check_index_range("embedding_backward", idx, V, 0, gw.shape());
  // float16/bfloat16 accumulate in a float32 buffer, then convert.
  Tensor acc = (g.dtype() == DType::Float32 || g.dtype() == DType::Float64)
                   ? gw
                   : empty(gw.shape(), TensorOptions(DType::Float32).device(gw.device()));
  acc.zero_();
  const Tensor ga = g.to(acc.dtype()).contiguous();
  if (N * D > 0) {
    KILN_DISPATCH_FLOATING(acc.dtype(), "embedding_backward", [&]<typename TK>() {
      if constexpr (std::is_same_v<TK, float> || std::is_same_v<TK, double>) {
        auto go = [&]<typename I>() {
          embedding_backward_kernel<TK, I><<<blocks_for(N * D, dev), kThreads, 0, current_stream(dev)>>>(
              ptr<const TK>(ga), ptr<const I>(idx), ptr<TK>(acc), N, D);
        };
        if (idx.dtype() == DType::Int32) go.template operator()<int32_t>();
        else go.template operator()<int64_t>();
        KILN_CUDA_CHECK_LAUNCH("embedding_backward");
      }
    });
  }
  if (!acc.is_same(gw)) gw.copy_(acc);
}

// cat: each input copied into its slice of out (CUDA copies).
void cat_entry(const KernelArgs& k) {
  const int64_t dim = k.attr<DimAttrs>().dim;
  Tensor out = k.outputs[0];
  int64_t off = 0;
  for (const Tensor& t : k.inputs) {
    const int64_t n = t.dim() ? t.size(dim) : 0;
    if (n == 0 || t.numel() == 0) {
      off += n;
      continue;
    }
    Tensor slice = out.narrow(dim, off, n);
    slice.copy_(t);
    off += n;
  }
}

}  // namespace

void register_nn_kernels(KernelRegistry& r) {
  const DeviceType cu = DeviceType::Cuda;
  r.add(cu, OpId::LayerNorm, layer_norm_kernel_entry);
  r.add(cu, OpId::LayerNormBackward, layer_norm_backward_kernel);
  r.add(cu, OpId::Dropout, dropout_entry);
  r.add(cu, OpId::IndexSelect, index_select_entry);
  r.add(cu, OpId::Embedding, embedding_entry);
  r.add(cu, OpId::EmbeddingBackward, embedding_backward_entry);
  r.add(cu, OpId::Cat, cat_entry);
}

}  // namespace kiln::cuda
