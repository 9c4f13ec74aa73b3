// CUDA convolutions through cuDNN 9 (the convolution API): conv2d forward, its backward
// data and weight, and conv_transpose2d (the backward data of the convolution whose
// filter is the transposed conv's weight [Cin, Cout/g, kh, kw]). Tensors are NCHW
// contiguous, or NHWC contiguous (filters KRSC) when Conv2dAttrs::channels_last: then
// cuDNN gets NHWC descriptors and works on the channels-last data in place. float16 and
// bfloat16 go first through the graph API (conv_graph.h, faster engines on Hopper), then
// this legacy API; float32 runs without TF32 (as PyTorch's default for cuDNN), float64 in
// double. The algorithm of each shape is chosen once by timing every candidate (like
// torch.backends.cudnn.benchmark) and cached; workspace comes from the caching allocator.
#include <cudnn.h>

#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "kiln/op_attrs.h"
#include "kiln/ops.h"
#include "kiln/tensor.h"
#include "src/backend/cuda/conv_graph.h"
#include "src/backend/cuda/cuda_common.h"
#include "src/backend/cuda/cudnn_handle.h"
#include "src/backend/cuda/kernels.h"

namespace kiln::cuda {

namespace {

void check_dnn(cudnnStatus_t s, const char* call, const char* op) {
  if (s != CUDNN_STATUS_SUCCESS) KILN_FAIL(op, "cuDNN error in ", call, ": ", cudnnGetErrorString(s));
}
#define KILN_DNN_CHECK(call, op) check_dnn((call), #call, op)


cudnnDataType_t dnn_type(DType t, const char* op) {
  switch (t) {
    case DType::Float32: return CUDNN_DATA_FLOAT;
    case DType::Float64: return CUDNN_DATA_DOUBLE;
    case DType::Float16: return CUDNN_DATA_HALF;
    case DType::BFloat16: return CUDNN_DATA_BFLOAT16;
    default: KILN_FAIL(op, "not implemented for dtype ", dtype_name(t), " on cuda");
  }
}

struct Descs {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  Descs() = default;
  Descs(const Descs&) = delete;
  ~Descs() {
    if (x) cudnnDestroyTensorDescriptor(x);
    if (y) cudnnDestroyTensorDescriptor(y);
    if (w) cudnnDestroyFilterDescriptor(w);
    if (conv) cudnnDestroyConvolutionDescriptor(conv);
  }
};

// The convolution x [N, C, H, W] * w [K, C/g, kh, kw] -> y [N, K, P, Q].
void make_descs(Descs& d, DType dt, const Shape& x, const Shape& w, const Shape& y, const Conv2dAttrs& a,
                const char* op) {
  const cudnnDataType_t t = dnn_type(dt, op);
  KILN_DNN_CHECK(cudnnCreateTensorDescriptor(&d.x), op);
  KILN_DNN_CHECK(cudnnCreateTensorDescriptor(&d.y), op);
  KILN_DNN_CHECK(cudnnCreateFilterDescriptor(&d.w), op);
  KILN_DNN_CHECK(cudnnCreateConvolutionDescriptor(&d.conv), op);
  // Dims are always given as N, C, H, W; the format says how they are laid out.
  const cudnnTensorFormat_t fmt = a.channels_last ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
  KILN_DNN_CHECK(cudnnSetTensor4dDescriptor(d.x, fmt, t, int(x[0]), int(x[1]), int(x[2]), int(x[3])), op);
  KILN_DNN_CHECK(cudnnSetTensor4dDescriptor(d.y, fmt, t, int(y[0]), int(y[1]), int(y[2]), int(y[3])), op);
  KILN_DNN_CHECK(cudnnSetFilter4dDescriptor(d.w, t, fmt, int(w[0]), int(w[1]), int(w[2]), int(w[3])), op);
  const cudnnDataType_t acc = dt == DType::Float64 ? CUDNN_DATA_DOUBLE : CUDNN_DATA_FLOAT;
  KILN_DNN_CHECK(cudnnSetConvolution2dDescriptor(d.conv, int(a.padding[0]), int(a.padding[1]), int(a.stride[0]),
                                                 int(a.stride[1]), int(a.dilation[0]), int(a.dilation[1]),
                                                 CUDNN_CROSS_CORRELATION, acc),
                 op);
  KILN_DNN_CHECK(cudnnSetConvolutionGroupCount(d.conv, int(a.groups)), op);
  const cudnnMathType_t math = dt == DType::Float32   ? CUDNN_FMA_MATH
                               : dt == DType::Float64 ? CUDNN_DEFAULT_MATH
                                                      : CUDNN_TENSOR_OP_MATH;
  KILN_DNN_CHECK(cudnnSetConvolutionMathType(d.conv, math), op);
}

using Kind = ConvPass;

struct Choice {
  int algo = 0;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  size_t workspace = 0;
};

using Key = std::tuple<int, int, int, Shape, Shape, Shape, std::string>;
std::map<Key, std::optional<Choice>> g_choices;  // nullopt: cuDNN has no algorithm

std::string attrs_key(const Conv2dAttrs& a) {
  std::string s;
  for (int64_t v : {a.stride[0], a.stride[1], a.padding[0], a.padding[1], a.dilation[0], a.dilation[1], a.groups,
                    int64_t(a.channels_last)})
    s += std::to_string(v) + ",";
  return s;
}

template <typename Perf>
std::optional<Choice> pick(const Perf* perf, int n) {
  for (int i = 0; i < n; ++i)
    if (perf[i].status == CUDNN_STATUS_SUCCESS) return Choice{int(perf[i].algo), perf[i].mathType, perf[i].memory};
  return std::nullopt;
}

// The fastest algorithm, or nullopt when cuDNN has none for an NHWC case (the caller then
// runs NCHW; float64 never comes here NHWC: conv_memory_format keeps it NCHW on CUDA).
std::optional<Choice> choose(Kind kind, cudnnHandle_t h, const Descs& d, int dev, DType dt, const Shape& x,
                             const Shape& w, const Shape& y, const Conv2dAttrs& a, const char* op) {
  const Key key{int(kind), dev, int(dt), x, w, y, attrs_key(a)};
  if (auto it = g_choices.find(key); it != g_choices.end()) return it->second;
  constexpr int kMax = 16;
  int n = 0;
  std::optional<Choice> c;
  cudnnStatus_t st;
  // Timed search: cuDNN allocates its own scratch buffers for it.
  if (kind == Kind::Forward) {
    cudnnConvolutionFwdAlgoPerf_t perf[kMax];
    st = cudnnFindConvolutionForwardAlgorithm(h, d.x, d.w, d.conv, d.y, kMax, &n, perf);
    if (st == CUDNN_STATUS_SUCCESS) c = pick(perf, n);
  } else if (kind == Kind::BackwardData) {
    cudnnConvolutionBwdDataAlgoPerf_t perf[kMax];
    st = cudnnFindConvolutionBackwardDataAlgorithm(h, d.w, d.y, d.conv, d.x, kMax, &n, perf);
    if (st == CUDNN_STATUS_SUCCESS) c = pick(perf, n);
  } else {
    cudnnConvolutionBwdFilterAlgoPerf_t perf[kMax];
    st = cudnnFindConvolutionBackwardFilterAlgorithm(h, d.x, d.y, d.conv, d.w, kMax, &n, perf);
    if (st == CUDNN_STATUS_SUCCESS) c = pick(perf, n);
  }
  if (st != CUDNN_STATUS_SUCCESS && st != CUDNN_STATUS_NOT_SUPPORTED) check_dnn(st, "cudnnFind*Algorithm", op);
  if (!c && !a.channels_last) KILN_FAIL(op, "cuDNN found no algorithm for this convolution");
  g_choices[key] = c;
  return c;
}

// Scaling factors: double for double data, float otherwise.
struct Scale {
  float f1 = 1, f0 = 0;
  double d1 = 1, d0 = 0;
  bool dbl;
  const void* one() const { return dbl ? static_cast<const void*>(&d1) : &f1; }
  const void* zero() const { return dbl ? static_cast<const void*>(&d0) : &f0; }
};

void add_bias(const Tensor& y, const Tensor& bias) {
  Tensor out = y;
  add_(out, bias.view({1, -1, 1, 1}));
}

// x, w, y: the forward convolution's operands. Runs the kind's cuDNN call on them; false
// (nothing run) when cuDNN has no algorithm for this channels-last case.
bool try_run_conv(Kind kind, const char* op, int dev, const Tensor& x, const Tensor& w, const Tensor& y,
                  const Conv2dAttrs& a) {
  CudaDeviceGuard guard(dev);
  const auto lock = cudnn_lock();  // also guards g_choices
  cudnnHandle_t h = cudnn_handle(dev, op);
  const DType dt = y.dtype();
  Descs d;
  make_descs(d, dt, x.shape(), w.shape(), y.shape(), a, op);
  const std::optional<Choice> found = choose(kind, h, d, dev, dt, x.shape(), w.shape(), y.shape(), a, op);
  if (!found) return false;
  const Choice c = *found;
  KILN_DNN_CHECK(cudnnSetConvolutionMathType(d.conv, c.math), op);
  Tensor ws = cudnn_workspace(c.workspace, dev);
  void* wsp = ws.defined() ? ws.data_ptr() : nullptr;
  const Scale s{.dbl = dt == DType::Float64};
  switch (kind) {
    case Kind::Forward:
      KILN_DNN_CHECK(cudnnConvolutionForward(h, s.one(), d.x, x.data_ptr(), d.w, w.data_ptr(), d.conv,
                                             cudnnConvolutionFwdAlgo_t(c.algo), wsp, c.workspace, s.zero(), d.y,
                                             y.data_ptr()),
                     op);
      break;
    case Kind::BackwardData:
      KILN_DNN_CHECK(cudnnConvolutionBackwardData(h, s.one(), d.w, w.data_ptr(), d.y, y.data_ptr(), d.conv,
                                                  cudnnConvolutionBwdDataAlgo_t(c.algo), wsp, c.workspace, s.zero(),
                                                  d.x, x.data_ptr()),
                     op);
      break;
    case Kind::BackwardFilter:
      KILN_DNN_CHECK(cudnnConvolutionBackwardFilter(h, s.one(), d.x, x.data_ptr(), d.y, y.data_ptr(), d.conv,
                                                    cudnnConvolutionBwdFilterAlgo_t(c.algo), wsp, c.workspace,
                                                    s.zero(), d.w, w.data_ptr()),
                     op);
      break;
  }
  return true;
}

void run_conv(Kind kind, const char* op, int dev, const Tensor& x, const Tensor& w, const Tensor& y,
              const Conv2dAttrs& a) {
  if (run_conv_graph(kind, op, dev, x, w, y, a)) return;
  // cuDNN's channels-last float32 kernels without TF32 are far slower than its NCHW ones
  // (H200, conv2d 3x3 N64 C256 56^2: 9.0 ms against 1.8 ms), so float32 takes NCHW copies.
  const bool nchw_faster = a.channels_last && y.dtype() == DType::Float32;
  if (!nchw_faster && try_run_conv(kind, op, dev, x, w, y, a)) return;
  // No NHWC algorithm or a slow one: run NCHW on copies, then write the result back.
  Conv2dAttrs nchw = a;
  nchw.channels_last = false;
  const Tensor& out = kind == Kind::Forward ? y : kind == Kind::BackwardData ? x : w;
  auto in_nchw = [&](const Tensor& t) {
    return t.is_same(out) ? empty(t.shape(), TensorOptions(t.dtype()).device(t.device())) : t.contiguous();
  };
  const Tensor xc = in_nchw(x), wc = in_nchw(w), yc = in_nchw(y);
  try_run_conv(kind, op, dev, xc, wc, yc, nchw);
  Tensor dst = out;
  dst.copy_(kind == Kind::Forward ? yc : kind == Kind::BackwardData ? xc : wc);
}

// in (x, w[, bias]) -> y
void conv2d_kernel(const KernelArgs& k) {
  const auto& a = k.attr<Conv2dAttrs>();
  run_conv(Kind::Forward, "conv2d", k.device.index, k.inputs[0], k.inputs[1], k.outputs[0], a);
  if (a.has_bias) add_bias(k.outputs[0], k.inputs[2]);
}

// in (x, w [Cin, Cout/g, kh, kw][, bias]) -> y: y is the "x" of a convolution whose output is x.
void conv_transpose2d_kernel(const KernelArgs& k) {
  const auto& a = k.attr<Conv2dAttrs>();
  run_conv(Kind::BackwardData, "conv_transpose2d", k.device.index, k.outputs[0], k.inputs[1], k.inputs[0], a);
  if (a.has_bias) add_bias(k.outputs[0], k.inputs[2]);
}

// in (grad_out, w) -> grad_x
void conv2d_backward_input_kernel(const KernelArgs& k) {
  run_conv(Kind::BackwardData, "conv2d_backward_input", k.device.index, k.outputs[0], k.inputs[1], k.inputs[0],
           k.attr<Conv2dAttrs>());
}

// in (grad_out, x) -> (grad_w[, grad_bias])
void conv2d_backward_weight_kernel(const KernelArgs& k) {
  const auto& a = k.attr<Conv2dAttrs>();
  run_conv(Kind::BackwardFilter, "conv2d_backward_weight", k.device.index, k.inputs[1], k.outputs[0], k.inputs[0], a);
  if (a.has_bias) {
    Tensor gb = k.outputs[1];
    gb.copy_(sum(k.inputs[0], {0, 2, 3}));
  }
}

}  // namespace

void register_conv(KernelRegistry& r) {
  const DeviceType cu = DeviceType::Cuda;
  r.add(cu, OpId::Conv2d, conv2d_kernel);
  r.add(cu, OpId::ConvTranspose2d, conv_transpose2d_kernel);
  r.add(cu, OpId::Conv2dBackwardInput, conv2d_backward_input_kernel);
  r.add(cu, OpId::Conv2dBackwardWeight, conv2d_backward_weight_kernel);
}

}  // namespace kiln::cuda
