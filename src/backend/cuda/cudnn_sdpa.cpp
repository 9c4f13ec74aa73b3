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
enum Uid : int64_t { kQ = 1, kK, kV, kO, kLse, kScale, kBias, kNegInf, kGradO, kGradQ, kGradK, kGradV, kDqAccum, kOne };

// The scores both graphs start from: scale * q k^T (+ bias), with keys after their query
// replaced by fill (a by-value tensor: -inf forward, the lowest float backward) when causal.
const dnn::Desc& masked_scores(dnn::Graph& g, const SdpaKey& k, const dnn::Desc& q, const dnn::Desc& kt,
                               const dnn::Desc& scale) {
  const std::vector<int64_t> scores{k.B, 1, k.L, k.S};
  const dnn::Desc& s = g.virt(scores);
  g.matmul(q, kt, s);
  const dnn::Desc* cur = &g.virt(scores);
  g.pointwise(CUDNN_POINTWISE_MUL, s, &scale, *cur);
  if (k.bias_batch > 0) {
    const dnn::Desc& bias = g.tensor(kBias, k.io, {k.bias_batch, 1, k.L, k.S}, {k.L * k.S, k.L * k.S, k.S, 1});
    const dnn::Desc& biased = g.virt(scores);
    g.pointwise(CUDNN_POINTWISE_ADD, *cur, &bias, biased);
    cur = &biased;
  }
  if (k.causal) {
    const dnn::Desc& row = g.virt(scores, CUDNN_DATA_INT32);
    const dnn::Desc& col = g.virt(scores, CUDNN_DATA_INT32);
    g.pointwise(CUDNN_POINTWISE_GEN_INDEX, *cur, nullptr, row, nullptr, 2);
    g.pointwise(CUDNN_POINTWISE_GEN_INDEX, *cur, nullptr, col, nullptr, 3);
    const dnn::Desc& keep = g.virt(scores, CUDNN_DATA_BOOLEAN);
    g.pointwise(CUDNN_POINTWISE_CMP_GE, row, &col, keep);
    const dnn::Desc& fill = g.tensor(kNegInf, CUDNN_DATA_FLOAT, {1, 1, 1, 1}, {1, 1, 1, 1}, false, true);
    const dnn::Desc& masked = g.virt(scores);
    g.pointwise(CUDNN_POINTWISE_BINARY_SELECT, *cur, &fill, masked, &keep);
    cur = &masked;
  }
  return *cur;
}

std::unique_ptr<dnn::Graph> build_forward(cudnnHandle_t handle, const SdpaKey& k) {
  auto g = std::make_unique<dnn::Graph>(kOp);
  const int64_t B = k.B, L = k.L, S = k.S, E = k.E, Ev = k.Ev;
  const dnn::Desc& q = g->tensor(kQ, k.io, {B, 1, L, E}, {L * E, L * E, E, 1});
  const dnn::Desc& kt = g->tensor(kK, k.io, {B, 1, E, S}, {S * E, S * E, 1, E});  // k^T as a strided view
  const dnn::Desc& v = g->tensor(kV, k.io, {B, 1, S, Ev}, {S * Ev, S * Ev, Ev, 1});
  const dnn::Desc& o = g->tensor(kO, k.io, {B, 1, L, Ev}, {L * Ev, L * Ev, Ev, 1});
  const dnn::Desc& lse = g->tensor(kLse, CUDNN_DATA_FLOAT, {B, 1, L, 1}, {L, L, 1, 1});
  const dnn::Desc& scale = g->tensor(kScale, CUDNN_DATA_FLOAT, {1, 1, 1, 1}, {1, 1, 1, 1}, false, true);
  const std::vector<int64_t> scores{B, 1, L, S}, rows{B, 1, L, 1};

  const dnn::Desc* s = &masked_scores(*g, k, q, kt, scale);
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

// The backward graph, node for node the composition cuDNN's documentation and frontend
// give for flash-attention backward: softmax_sum = rowsum(dO * O); P = exp(scores - lse);
// dV = P^T dO; dS = P (dO V^T - softmax_sum) scale; dK = dS^T Q; dQ = dS K through a
// float32 accumulator in cuDNN's tiled order.
std::unique_ptr<dnn::Graph> build_backward(cudnnHandle_t handle, const SdpaKey& k) {
  auto g = std::make_unique<dnn::Graph>("scaled_dot_product_attention_backward");
  const int64_t B = k.B, L = k.L, S = k.S, E = k.E, Ev = k.Ev;
  const dnn::Desc& q = g->tensor(kQ, k.io, {B, 1, L, E}, {L * E, L * E, E, 1});
  const dnn::Desc& kt = g->tensor(kK, k.io, {B, 1, E, S}, {S * E, S * E, 1, E});
  const dnn::Desc& vt = g->tensor(kV, k.io, {B, 1, Ev, S}, {S * Ev, S * Ev, 1, Ev});
  const dnn::Desc& o = g->tensor(kO, k.io, {B, 1, L, Ev}, {L * Ev, L * Ev, Ev, 1});
  const dnn::Desc& grad_o = g->tensor(kGradO, k.io, {B, 1, L, Ev}, {L * Ev, L * Ev, Ev, 1});
  const dnn::Desc& lse = g->tensor(kLse, CUDNN_DATA_FLOAT, {B, 1, L, 1}, {L, L, 1, 1});
  const dnn::Desc& grad_q = g->tensor(kGradQ, k.io, {B, 1, L, E}, {L * E, L * E, E, 1});
  const dnn::Desc& grad_k = g->tensor(kGradK, k.io, {B, 1, S, E}, {S * E, S * E, E, 1});
  const dnn::Desc& grad_v = g->tensor(kGradV, k.io, {B, 1, S, Ev}, {S * Ev, S * Ev, Ev, 1});
  const dnn::Desc& scale = g->tensor(kScale, CUDNN_DATA_FLOAT, {1, 1, 1, 1}, {1, 1, 1, 1}, false, true);
  const dnn::Desc& one = g->tensor(kOne, CUDNN_DATA_FLOAT, {1, 1, 1, 1}, {1, 1, 1, 1}, false, true);
  const dnn::Desc& dq_accum = g->reordered_buffer(kDqAccum, {B, 1, L, E}, {L * E, L * E, E, 1});
  const std::vector<int64_t> scores{B, 1, L, S}, rows{B, 1, L, 1}, transposed_strides{L * S, L * S, 1, S};

  // softmax_sum = rowsum(dO * O)
  const dnn::Desc& dO_o = g->virt({B, 1, L, Ev});
  g->pointwise(CUDNN_POINTWISE_MUL, grad_o, &o, dO_o);
  const dnn::Desc& row_sum = g->virt(rows);
  g->reduction(CUDNN_REDUCE_TENSOR_ADD, dO_o, row_sum);
  const dnn::Desc& softmax_sum = g->virt(rows);
  g->pointwise(CUDNN_POINTWISE_MUL, row_sum, &one, softmax_sum);

  // P = exp(scale * q k^T (+ bias) (causal) - lse)
  // (causal: the lowest finite float, not -inf: exp(lowest - lse) is 0 without a NaN)
  const dnn::Desc* cur = &masked_scores(*g, k, q, kt, scale);
  const dnn::Desc& centred = g->virt(scores);
  g->pointwise(CUDNN_POINTWISE_SUB, *cur, &lse, centred);
  const dnn::Desc& p = g->virt(scores);
  g->pointwise(CUDNN_POINTWISE_EXP, centred, nullptr, p);

  // dV = P^T dO
  const dnn::Desc& p_t = g->virt_strided({B, 1, S, L}, transposed_strides, k.io);
  g->reshape(p, p_t);
  g->matmul(p_t, grad_o, grad_v);

  // dS = P (dO V^T - softmax_sum) scale
  const dnn::Desc& dp = g->virt(scores);
  g->matmul(grad_o, vt, dp);
  const dnn::Desc& dp_kept = g->virt(scores);
  g->pointwise(CUDNN_POINTWISE_MUL, dp, &one, dp_kept);  // the place of a dropout mask
  const dnn::Desc& dp_centred = g->virt(scores);
  g->pointwise(CUDNN_POINTWISE_SUB, dp_kept, &softmax_sum, dp_centred);
  const dnn::Desc& dp_p = g->virt(scores);
  g->pointwise(CUDNN_POINTWISE_MUL, dp_centred, &p, dp_p);
  const dnn::Desc& ds = g->virt(scores);
  g->pointwise(CUDNN_POINTWISE_MUL, dp_p, &scale, ds);

  // dK = dS^T Q
  const dnn::Desc& ds_t = g->virt_strided({B, 1, S, L}, transposed_strides, k.io);
  g->reshape(ds, ds_t);
  g->matmul(ds_t, q, grad_k);

  // dQ = dS K, accumulated in float32, then written out
  const dnn::Desc& k_rows = g->virt_strided({B, 1, S, E}, {S * E, S * E, E, 1}, k.io);
  g->reshape(kt, k_rows);
  g->matmul(ds, k_rows, dq_accum);
  g->pointwise(CUDNN_POINTWISE_IDENTITY, dq_accum, nullptr, grad_q);
  if (!g->build_plan(handle)) return nullptr;
  return g;
}

}  // namespace

const dnn::Graph* sdpa_backward_plan(cudnnHandle_t handle, const SdpaKey& key) {
  static std::mutex mutex;
  static std::map<SdpaKey, std::unique_ptr<dnn::Graph>> cache;  // nullptr: unsupported
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(key);
  if (it == cache.end()) it = cache.emplace(key, build_backward(handle, key)).first;
  return it->second.get();
}

void sdpa_backward_run(const dnn::Graph& plan, cudnnHandle_t handle, const void* q, const void* k, const void* v,
                       const void* bias, const void* o, const void* grad_o, const float* lse, void* grad_q,
                       void* grad_k, void* grad_v, float* dq_accum, float scale, void* workspace) {
  float one = 1.f, lowest = std::numeric_limits<float>::lowest();
  auto in = [](const void* p) { return const_cast<void*>(p); };
  std::vector<int64_t> uids{kQ, kK, kV, kO, kGradO, kLse, kGradQ, kGradK, kGradV, kScale, kOne, kDqAccum};
  std::vector<void*> ptrs{in(q), in(k), in(v), in(o), in(grad_o), in(lse), grad_q, grad_k, grad_v, &scale, &one,
                          dq_accum};
  if (bias) {
    uids.push_back(kBias);
    ptrs.push_back(in(bias));
  }
  if (plan.uses(kNegInf)) {
    uids.push_back(kNegInf);
    ptrs.push_back(&lowest);
  }
  plan.execute(handle, uids, ptrs, workspace);
}

const dnn::Graph* sdpa_forward_plan(cudnnHandle_t handle, const SdpaKey& key) {
  static std::mutex mutex;
  static std::map<SdpaKey, std::unique_ptr<dnn::Graph>> cache;  // nullptr: unsupported
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(key);
  if (it == cache.end()) it = cache.emplace(key, build_forward(handle, key)).first;
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
