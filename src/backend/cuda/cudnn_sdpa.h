#pragma once
// Fused flash attention through cuDNN 9's runtime-fusion engine, forward and backward:
// the graph scores = scale * q k^T (+ bias) (causal: keep key j <= query i), softmax,
// @ v, which cuDNN compiles into one flash-attention kernel for float16/bfloat16. The
// forward also writes each row's log-sum-exp (the softmax "stats"); the backward graph
// recomputes the probabilities from it, FlashAttention-2 style.
// Plans are built once per shape and cached; an unsupported shape gives nullptr, and
// the caller then takes the unfused path.
#include <cudnn.h>

#include <cstdint>
#include <tuple>

#include "src/backend/cuda/cudnn_graph.h"

namespace kiln::cuda {

// One attention problem; the forward and backward graphs of a shape share it.
struct SdpaKey {
  int device = 0;
  cudnnDataType_t io = CUDNN_DATA_BFLOAT16;  // q, k, v, o (and bias)
  int64_t B = 0, L = 0, S = 0, E = 0, Ev = 0;  // q [B, L, E], k [B, S, E], v [B, S, Ev]
  bool causal = false;
  int64_t bias_batch = 0;  // 0: no bias; 1: one [L, S] bias for every batch; B: bias [B, L, S]
  auto tie() const { return std::tie(device, io, B, L, S, E, Ev, causal, bias_batch); }
  bool operator<(const SdpaKey& o) const { return tie() < o.tie(); }
};

// The cached plan for key, or nullptr when cuDNN has no fused engine for it.
const dnn::Graph* sdpa_forward_plan(cudnnHandle_t handle, const SdpaKey& key);

// The cached backward plan for key, or nullptr when cuDNN has no fused engine for it.
const dnn::Graph* sdpa_backward_plan(cudnnHandle_t handle, const SdpaKey& key);

// Runs a plan from sdpa_backward_plan: q, k, v, bias as the forward; o and grad_o
// [B, L, Ev]; lse [B, L] float32 (finite: a fully masked row's -inf replaced by 0);
// grad_q [B, L, E], grad_k [B, S, E], grad_v [B, S, Ev]; dq_accum: B * L * E float32
// zeroed on the stream before the call; workspace of plan->workspace_bytes().
void sdpa_backward_run(const dnn::Graph& plan, cudnnHandle_t handle, const void* q, const void* k, const void* v,
                       const void* bias, const void* o, const void* grad_o, const float* lse, void* grad_q,
                       void* grad_k, void* grad_v, float* dq_accum, float scale, void* workspace);

// Runs a plan from sdpa_forward_plan. All tensors contiguous: q [B, L, E], k [B, S, E],
// v [B, S, Ev], bias [bias_batch, L, S] in io's type (nullptr without), o [B, L, Ev],
// lse [B, L] float32; workspace of plan->workspace_bytes().
void sdpa_forward_run(const dnn::Graph& plan, cudnnHandle_t handle, const void* q, const void* k, const void* v,
                      const void* bias, void* o, float* lse, float scale, void* workspace);

}  // namespace kiln::cuda
