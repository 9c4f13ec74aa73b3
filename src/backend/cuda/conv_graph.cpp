// Graph-API convolutions with per-shape autotuning (see conv_graph.h).
#include "src/backend/cuda/conv_graph.h"

#include <cuda_runtime.h>

#include <map>
#include <memory>
#include <tuple>
#include <vector>

#include "src/backend/cuda/cuda_common.h"
#include "src/backend/cuda/cudnn_handle.h"

namespace kiln::cuda {

namespace {

enum Uid : int64_t { kX = 1, kW, kY };
constexpr int64_t kMaxTuningWorkspace = int64_t(2) << 30;  // candidates needing more are skipped

// Strides of a 4-d operand given as (N, C, H, W) dims (filters: (K, C, R, S)).
std::vector<int64_t> strides_of(const Shape& s, bool channels_last) {
  if (channels_last) return {s[1] * s[2] * s[3], 1, s[3] * s[1], s[1]};
  return {s[1] * s[2] * s[3], s[2] * s[3], s[3], 1};
}

bool aligned16(const Tensor& t) { return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0; }

// Median-free but warm timing of the graph's current plan: one run, then three timed.
double time_plan(const dnn::Graph& g, cudnnHandle_t h, int dev, const std::vector<void*>& ptrs) {
  if (g.workspace_bytes() > kMaxTuningWorkspace) return -1;
  Tensor ws = cudnn_workspace(size_t(g.workspace_bytes()), dev);
  void* wsp = ws.defined() ? ws.data_ptr() : nullptr;
  const std::vector<int64_t> uids{kX, kW, kY};
  cudaStream_t st = current_stream(dev);
  cudaEvent_t start, stop;
  KILN_CUDA_CHECK(cudaEventCreate(&start), "conv autotune");
  KILN_CUDA_CHECK(cudaEventCreate(&stop), "conv autotune");
  g.execute(h, uids, ptrs, wsp);
  KILN_CUDA_CHECK(cudaEventRecord(start, st), "conv autotune");
  for (int i = 0; i < 3; ++i) g.execute(h, uids, ptrs, wsp);
  KILN_CUDA_CHECK(cudaEventRecord(stop, st), "conv autotune");
  KILN_CUDA_CHECK(cudaEventSynchronize(stop), "conv autotune");
  float ms = 0;
  KILN_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop), "conv autotune");
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return ms / 3;
}

}  // namespace

bool run_conv_graph(ConvPass pass, const char* op, int dev, const Tensor& x, const Tensor& w, const Tensor& y,
                    const Conv2dAttrs& a) {
  const DType dt = y.dtype();
  if ((dt != DType::Float16 && dt != DType::BFloat16) || a.groups != 1 || x.dim() != 4) return false;
  if (!aligned16(x) || !aligned16(w) || !aligned16(y)) return false;
  CudaDeviceGuard guard(dev);
  const auto lock = cudnn_lock();  // also guards the plan cache below
  cudnnHandle_t h = cudnn_handle(dev, op);
  const std::vector<void*> ptrs{x.data_ptr(), w.data_ptr(), y.data_ptr()};
  const std::vector<int64_t> padding{a.padding[0], a.padding[1]}, stride{a.stride[0], a.stride[1]},
      dilation{a.dilation[0], a.dilation[1]};

  using Key = std::tuple<int, int, int, Shape, Shape, Shape, std::vector<int64_t>>;
  static std::map<Key, std::unique_ptr<dnn::Graph>> plans;  // nullptr: no engine
  std::vector<int64_t> geometry = padding;
  geometry.insert(geometry.end(), stride.begin(), stride.end());
  geometry.insert(geometry.end(), dilation.begin(), dilation.end());
  geometry.push_back(a.channels_last);
  const Key key{int(pass), dev, int(dt), x.shape(), w.shape(), y.shape(), geometry};
  auto it = plans.find(key);
  if (it == plans.end()) {
    const cudnnDataType_t t = dt == DType::BFloat16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_HALF;
    auto g = std::make_unique<dnn::Graph>(op);
    const dnn::Desc& xd = g->tensor(kX, t, x.shape(), strides_of(x.shape(), a.channels_last));
    const dnn::Desc& wd = g->tensor(kW, t, w.shape(), strides_of(w.shape(), a.channels_last));
    const dnn::Desc& yd = g->tensor(kY, t, y.shape(), strides_of(y.shape(), a.channels_last));
    g->convolution(pass, xd, wd, yd, padding, stride, dilation);
    dnn::Graph* gp = g.get();
    // cuDNN ranks its engines well: the best is among its first few (seen: first or second).
    if (!g->build_plan(h, [&] { return time_plan(*gp, h, dev, ptrs); }, 4)) g.reset();
    it = plans.emplace(key, std::move(g)).first;
  }
  if (!it->second) return false;
  const dnn::Graph& g = *it->second;
  Tensor ws = cudnn_workspace(size_t(g.workspace_bytes()), dev);
  g.execute(h, {kX, kW, kY}, ptrs, ws.defined() ? ws.data_ptr() : nullptr);
  return true;
}

}  // namespace kiln::cuda
