// cuDNN fused attention forward (see cudnn_sdpa.h). The graph follows cuDNN's documented
// flash-attention fprop pattern: matmul, scale, optional bias add, optional causal
// select, a softmax spelled as max / sub / exp / sum / div whose log-sum-exp is an
// output, and the second matmul.
#include "src/backend/cuda/cudnn_sdpa.h"

#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>

namespace kiln::cuda {

namespace {

constexpr const char* kOp = "scaled_dot_product_attention";
enum Uid : int64_t { kQ = 1, kK, kV, kO, kLse, kScale, kBias, kNegInf };

std::unique_ptr<dnn::Graph> build(cudnnHandle_t handle, const SdpaForwardKey& k) {
  auto g = std::make_unique<dnn::Graph>(kOp);
  const int64_t B = k.B, L = k.L, S = k.S, E = k.E, Ev = k.Ev;
  const dnn::Desc& q = g->tensor(kQ, k.io, {B, 1, L, E}, {L * E, L * E, E, 1});
  const dnn::Desc& kt = g->tensor(kK, k.io, {B, 1, E, S}, {S * E, S * E, 1, E});  // k^T as a strided view
  const dnn::Desc& v = g->tensor(kV, k.io, {B, 1, S, Ev}, {S * Ev, S * Ev, Ev, 1});
  const dnn::Desc& o = g->tensor(kO, k.io, {B, 1, L, Ev}, {L * Ev, L * Ev, Ev, 1});
  const dnn::Desc& lse = g->tensor(kLse, CUDNN_DATA_FLOAT, {B, 1, L, 1}, {L, L, 1, 1});
  const dnn::Desc& scale = g->tensor(kScale, CUDNN_DATA_FLOAT, {1, 1, 1, 1}, {1, 1, 1, 1}, false, true);
  const std::vector<int64_t> scores{B, 1, L, S}, rows{B, 1, L, 1};

  const dnn::Desc* s = &g->virt(scores);
  g->matmul(q, kt, *s);
  const dnn::Desc* scaled = &g->virt(scores);
  g->pointwise(CUDNN_POINTWISE_MUL, *s, &scale, *scaled);
  s = scaled;
  if (k.bias_batch > 0) {
    const dnn::Desc& bias = g->tensor(kBias, k.io, {k.bias_batch, 1, L, S}, {L * S, L * S, S, 1});
    const dnn::Desc& biased = g->virt(scores);
    g->pointwise(CUDNN_POINTWISE_ADD, *s, &bias, biased);
    s = &biased;
  }
  if (k.causal) {
    const dnn::Desc& row = g->virt(scores, CUDNN_DATA_INT32);
    const dnn::Desc& col = g->virt(scores, CUDNN_DATA_INT32);
    g->pointwise(CUDNN_POINTWISE_GEN_INDEX, *s, nullptr, row, nullptr, 2);
    g->pointwise(CUDNN_POINTWISE_GEN_INDEX, *s, nullptr, col, nullptr, 3);
    const dnn::Desc& keep = g->virt(scores, CUDNN_DATA_BOOLEAN);
    g->pointwise(CUDNN_POINTWISE_CMP_GE, row, &col, keep);
    const dnn::Desc& neg_inf = g->tensor(kNegInf, CUDNN_DATA_FLOAT, {1, 1, 1, 1}, {1, 1, 1, 1}, false, true);
    const dnn::Desc& masked = g->virt(scores);
    g->pointwise(CUDNN_POINTWISE_BINARY_SELECT, *s, &neg_inf, masked, &keep);
    s = &masked;
  }
  const dnn::Desc& mx = g->virt(rows);
  g->reduction(CUDNN_REDUCE_TENSOR_MAX, *s, mx);
  const dnn::Desc& centred = g->virt(scores);
  g->pointwise(CUDNN_POINTWISE_SUB, *s, &mx, centred);
  const dnn::Desc& ex = g->virt(scores);
  g->pointwise(CUDNN_POINTWISE_EXP, centred, nullptr, ex);
  const dnn::Desc& sum = g->virt(rows);
  g->reduction(CUDNN_REDUCE_TENSOR_ADD, ex, sum);
  const dnn::Desc& log_sum = g->virt(rows);
  g->pointwise(CUDNN_POINTWISE_LOG, sum, nullptr, log_sum);
  g->pointwise(CUDNN_POINTWISE_ADD, mx, &log_sum, lse);
  const dnn::Desc& p = g->virt(scores, k.io);  // the second matmul takes both operands in io type
  g->pointwise(CUDNN_POINTWISE_DIV, ex, &sum, p);
  g->matmul(p, v, o);
  if (!g->build_plan(handle)) return nullptr;
  return g;
}

}  // namespace

const dnn::Graph* sdpa_forward_plan(cudnnHandle_t handle, const SdpaForwardKey& key) {
  static std::mutex mutex;
  static std::map<SdpaForwardKey, std::unique_ptr<dnn::Graph>> cache;  // nullptr: unsupported
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(key);
  if (it == cache.end()) it = cache.emplace(key, build(handle, key)).first;
  return it->second.get();
}

void sdpa_forward_run(const dnn::Graph& plan, cudnnHandle_t handle, const void* q, const void* k, const void* v,
                      const void* bias, void* o, float* lse, float scale, void* workspace) {
  float neg_inf = -std::numeric_limits<float>::infinity();
  std::vector<int64_t> uids{kQ, kK, kV, kO, kLse, kScale};
  std::vector<void*> ptrs{const_cast<void*>(q), const_cast<void*>(k), const_cast<void*>(v), o, lse, &scale};
  if (bias) {
    uids.push_back(kBias);
    ptrs.push_back(const_cast<void*>(bias));
  }
  if (plan.uses(kNegInf)) {
    uids.push_back(kNegInf);
    ptrs.push_back(&neg_inf);
  }
  plan.execute(handle, uids, ptrs, workspace);
}

}  // namespace kiln::cuda
