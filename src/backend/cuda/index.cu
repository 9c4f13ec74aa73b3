// CUDA kernels of the gather-style index ops: gather, scatter_add, index_add, one_hot
// (contracts in ops.def), and the index range check every CUDA index op runs before it
// writes. Accumulations use atomics: native ones for float32, float64, int32 and int64
// (as unsigned 64-bit, the same two's-complement sum); float16/bfloat16 accumulate in a
// float32 copy of the output that is converted back at the end.
#include "kiln/op_attrs.h"
#include "kiln/ops.h"
#include "src/backend/cuda/kernels.h"
#include "src/backend/cuda/loops.cuh"

namespace kiln::cuda {

namespace {

template <typename P>
P* ptr(const Tensor& t) {
  return static_cast<P*>(t.data_ptr());
}

// Calls f.template operator()<I>() with I the index tensor's element type.
template <typename F>
void with_index_type(const Tensor& idx, F f) {
  if (idx.dtype() == DType::Int32) f.template operator()<int32_t>();
  else f.template operator()<int64_t>();
}

// Calls f.template operator()<U>() with an unsigned type of dt's size: gather only moves bits.
template <typename F>
void with_bits_type(DType dt, F f) {
  switch (element_size(dt)) {
    case 1: f.template operator()<uint8_t>(); break;
    case 2: f.template operator()<uint16_t>(); break;
    case 4: f.template operator()<uint32_t>(); break;
    default: f.template operator()<uint64_t>(); break;
  }
}

template <typename I>
__global__ void find_bad_index_kernel(const I* idx, int64_t n, int64_t bound, unsigned long long* first_bad) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t v = int64_t(idx[i]);
    if (v < 0 || v >= bound) atomicMin(first_bad, static_cast<unsigned long long>(i));
  }
}

// ---- atomics ----
template <typename T>
__device__ __forceinline__ void atomic_add(T* p, T v) {
  if constexpr (std::is_same_v<T, int64_t>) {
    atomicAdd(reinterpret_cast<unsigned long long*>(p), static_cast<unsigned long long>(v));
  } else {
    atomicAdd(p, v);  // float, double, int32
  }
}

// ---- gather / scatter_add ----
// The layout walks the index's shape; its strides are the indexed tensor's contiguous
// strides with 0 along dim, so offsets_of gives the target offset less index * stride(dim).
template <typename T, typename I, typename Ix>
__global__ void gather_kernel(const T* t, const I* idx, T* out, StridedLayout<1> l, int64_t sd, int64_t n) {
  int64_t off[1];
  for (Ix p = Ix(blockIdx.x) * blockDim.x + threadIdx.x; p < Ix(n); p += Ix(gridDim.x) * blockDim.x) {
    offsets_of<1, Ix>(l, p, off);
    out[p] = t[off[0] + int64_t(idx[p]) * sd];
  }
}

template <typename A, typename S, typename I, typename Ix>
__global__ void scatter_add_kernel(const I* idx, const S* src, A* out, StridedLayout<1> l, int64_t sd, int64_t n) {
  int64_t off[1];
  for (Ix p = Ix(blockIdx.x) * blockDim.x + threadIdx.x; p < Ix(n); p += Ix(gridDim.x) * blockDim.x) {
    offsets_of<1, Ix>(l, p, off);
    atomic_add(out + off[0] + int64_t(idx[p]) * sd, convert<A>(src[p]));
  }
}

StridedLayout<1> gather_layout(const char* op, const Shape& index_shape, const Shape& target_shape, int64_t dim,
                               int64_t* stride_dim) {
  Strides st = contiguous_strides(target_shape);
  *stride_dim = st[size_t(dim)];
  st[size_t(dim)] = 0;
  return make_layout<1>(op, index_shape, {&st});
}

// ---- index_add: out [outer, mid, inner] += src [outer, K, inner] at idx[k] ----
template <typename A, typename S, typename I, typename Ix>
__global__ void index_add_kernel(const I* idx, const S* src, A* out, Ix K, Ix mid, Ix inner, Ix n) {
  for (Ix i = Ix(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += Ix(gridDim.x) * blockDim.x) {
    const Ix j = i % inner, r = i / inner, k = r % K, o = r / K;
    atomic_add(out + (int64_t(o) * mid + int64_t(idx[k])) * inner + j, convert<A>(src[i]));
  }
}

// ---- one_hot: out [n, c] int64 ----
template <typename I, typename Ix>
__global__ void one_hot_kernel(const I* idx, int64_t* out, Ix c, Ix n) {
  for (Ix i = Ix(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += Ix(gridDim.x) * blockDim.x)
    out[i] = int64_t(idx[i / c]) == int64_t(i % c) ? 1 : 0;
}

// Runs launch.template operator()<Ix>() with 32-bit index arithmetic when n allows.
template <typename F>
void with_index_math(int64_t n, F launch) {
  if (n <= int64_t(UINT32_MAX)) launch.template operator()<uint32_t>();
  else launch.template operator()<uint64_t>();
}

// The accumulating ops write into out directly for dtypes with native atomics; float16 and
// bfloat16 into a float32 copy that goes back into out afterwards. launch<A, S>(acc) gets
// the accumulation type A and the source's device type S (out's dtype).
template <typename Launch>
void accumulate(const char* op, const Tensor& out, Launch launch) {
  KILN_DISPATCH_DTYPE(out.dtype(), op, [&]<typename TK>() {
    using S = dev_t<TK>;
    if constexpr (std::is_same_v<TK, bool>) {
      KILN_FAIL(op, "not supported for bool");
    } else if constexpr (std::is_same_v<S, __half> || std::is_same_v<S, __nv_bfloat16>) {
      const Tensor acc = out.to(DType::Float32);
      launch.template operator()<float, S>(ptr<float>(acc));
      KILN_CUDA_CHECK_LAUNCH(op);
      Tensor o = out;
      o.copy_(acc);
    } else {
      launch.template operator()<S, S>(ptr<S>(out));
      KILN_CUDA_CHECK_LAUNCH(op);
    }
  });
}

void gather_entry(const KernelArgs& a) {
  const Tensor &t = a.inputs[0], &idx = a.inputs[1], &out = a.outputs[0];
  const int64_t dim = a.attr<DimAttrs>().dim;
  const int dev = a.device.index;
  CudaDeviceGuard guard(dev);
  const int64_t n = idx.numel();
  if (n == 0) return;
  check_index_range("gather", idx, t.size(dim), dim, t.shape());
  int64_t sd = 0;
  const StridedLayout<1> l = gather_layout("gather", idx.shape(), t.shape(), dim, &sd);
  with_bits_type(t.dtype(), [&]<typename T>() {
    with_index_type(idx, [&]<typename I>() {
      with_index_math(n, [&]<typename Ix>() {
        gather_kernel<T, I, Ix><<<blocks_for(n, dev, 32), kThreads, 0, current_stream(dev)>>>(
            ptr<const T>(t), ptr<const I>(idx), ptr<T>(out), l, sd, n);
      });
    });
  });
  KILN_CUDA_CHECK_LAUNCH("gather");
}

void scatter_add_entry(const KernelArgs& a) {
  const Tensor &idx = a.inputs[0], &src = a.inputs[1], &out = a.outputs[0];
  const int64_t dim = a.attr<DimAttrs>().dim;
  const int dev = a.device.index;
  CudaDeviceGuard guard(dev);
  const int64_t n = idx.numel();
  if (n == 0) return;
  check_index_range("scatter_add", idx, out.size(dim), dim, out.shape());
  int64_t sd = 0;
  const StridedLayout<1> l = gather_layout("scatter_add", idx.shape(), out.shape(), dim, &sd);
  accumulate("scatter_add", out, [&]<typename A, typename S>(A* acc) {
    with_index_type(idx, [&]<typename I>() {
      with_index_math(n, [&]<typename Ix>() {
        scatter_add_kernel<A, S, I, Ix><<<blocks_for(n, dev, 32), kThreads, 0, current_stream(dev)>>>(
            ptr<const I>(idx), ptr<const S>(src), acc, l, sd, n);
      });
    });
  });
}

void index_add_entry(const KernelArgs& a) {
  const Tensor &idx = a.inputs[0], &src = a.inputs[1], &out = a.outputs[0];
  const int64_t dim = a.attr<DimAttrs>().dim;
  const int dev = a.device.index;
  CudaDeviceGuard guard(dev);
  const int64_t n = src.numel();
  if (n == 0) return;
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= out.size(d);
  for (int64_t d = dim + 1; d < out.dim(); ++d) inner *= out.size(d);
  const int64_t mid = out.size(dim), K = idx.numel();
  check_index_range("index_add", idx, mid, dim, out.shape());
  accumulate("index_add", out, [&]<typename A, typename S>(A* acc) {
    with_index_type(idx, [&]<typename I>() {
      with_index_math(n, [&]<typename Ix>() {
        index_add_kernel<A, S, I, Ix><<<blocks_for(n, dev, 32), kThreads, 0, current_stream(dev)>>>(
            ptr<const I>(idx), ptr<const S>(src), acc, Ix(K), Ix(mid), Ix(inner), Ix(n));
      });
    });
  });
}

void one_hot_entry(const KernelArgs& a) {
  const Tensor &idx = a.inputs[0], &out = a.outputs[0];
  const int64_t c = a.attr<OneHotAttrs>().num_classes;
  const int dev = a.device.index;
  CudaDeviceGuard guard(dev);
  const int64_t n = out.numel();
  if (n == 0) return;
  check_index_range("one_hot", idx, c, 0, {c});
  with_index_type(idx, [&]<typename I>() {
    with_index_math(n, [&]<typename Ix>() {
      one_hot_kernel<I, Ix><<<blocks_for(n, dev, 32), kThreads, 0, current_stream(dev)>>>(
          ptr<const I>(idx), ptr<int64_t>(out), Ix(c), Ix(n));
    });
  });
  KILN_CUDA_CHECK_LAUNCH("one_hot");
}

}  // namespace

void check_index_range(const char* op, const Tensor& idx, int64_t bound, int64_t dim, const Shape& indexed_shape) {
  const int64_t n = idx.numel();
  if (n == 0) return;
  const int dev = idx.device().index;
  CudaDeviceGuard guard(dev);
  cudaStream_t stream = current_stream(dev);
  // The first bad position, found with atomicMin over a word that starts at all ones.
  const Tensor flag = empty({1}, TensorOptions(DType::Int64).device(idx.device()));
  auto* first_bad = static_cast<unsigned long long*>(flag.data_ptr());
  KILN_CUDA_CHECK(cudaMemsetAsync(first_bad, 0xff, sizeof(unsigned long long), stream), op);
  with_index_type(idx, [&]<typename I>() {
    find_bad_index_kernel<I><<<blocks_for(n, dev), kThreads, 0, stream>>>(ptr<const I>(idx), n, bound, first_bad);
  });
  KILN_CUDA_CHECK_LAUNCH(op);
  unsigned long long bad = 0;
  KILN_CUDA_CHECK(cudaMemcpyAsync(&bad, first_bad, sizeof(bad), cudaMemcpyDeviceToHost, stream), op);
  KILN_CUDA_CHECK(cudaStreamSynchronize(stream), op);
  if (bad == ~0ull) return;
  int64_t value = 0;
  if (idx.dtype() == DType::Int32) {
    int32_t v32 = 0;
    KILN_CUDA_CHECK(cudaMemcpy(&v32, ptr<const int32_t>(idx) + bad, sizeof(v32), cudaMemcpyDeviceToHost), op);
    value = v32;
  } else {
    KILN_CUDA_CHECK(cudaMemcpy(&value, ptr<const int64_t>(idx) + bad, sizeof(value), cudaMemcpyDeviceToHost), op);
  }
  KILN_FAIL(op, "index ", value, " (at position ", bad, ") is out of range for dim ", dim, " of size ", bound,
            " (input shape ", shape_str(indexed_shape), ")");
}

void register_index(KernelRegistry& r) {
  const DeviceType cu = DeviceType::Cuda;
  r.add(cu, OpId::Gather, gather_entry);
  r.add(cu, OpId::ScatterAdd, scatter_add_entry);
  r.add(cu, OpId::IndexAdd, index_add_entry);
  r.add(cu, OpId::OneHot, one_hot_entry);
}

}  // namespace kiln::cuda
