// CUDA backward of scaled_dot_product_attention. float16/bfloat16 without dropout, head
// dims up to 128: cuDNN's fused flash-attention backward (cudnn_sdpa.h; measured 1.06x
// PyTorch's at B8 H16 S4096 D128 bf16 on an H200). Otherwise on the GPU through cuBLASLt
// and kiln's own elementwise/reduction kernels: per slice of the batch small enough for
// its [n, L, S] scores to stay under ~1 GiB, the scores are recomputed, the
// probabilities rebuilt from the saved log-sum-exp (p = exp(s - lse)), then
//   dv = p^T do,  dp = do v^T,  ds = scale * p (dp - rowsum(p dp)),  dq = ds k,  dk = ds^T q.
// For 16-bit inputs p and ds enter the products in the input dtype, as flash-attention
// backward kernels do; sums accumulate in float32. With dropout (mask M, scaled), the
// products use P * M for dV and dP = (dO V^T) * M, the same Philox mask as the forward.
#include <algorithm>
#include <cmath>

#include "kiln/dispatch.h"
#include "kiln/op_attrs.h"
#include "kiln/ops.h"
#include "kiln/tensor.h"
#include "src/backend/cuda/attention_common.h"
#include "src/backend/cuda/cuda_common.h"
#include "src/backend/cuda/cudnn_handle.h"
#include "src/backend/cuda/cudnn_sdpa.h"
#include "src/backend/cuda/kernels.h"

namespace kiln::cuda {

namespace {

constexpr int64_t kMaxScoreElements = int64_t(1) << 28;  // 1 GiB of float32 scores per slice

// gemm into dst, through a contiguous temporary when dst is not contiguous.
void gemm_into(const Tensor& a, const Tensor& b, Tensor dst, int dev) {
  if (dst.is_contiguous()) return gemm(a, b, dst, 1.0, false, dev);
  Tensor tmp = empty(dst.shape(), TensorOptions(dst.dtype()).device(dst.device()));
  gemm(a, b, tmp, 1.0, false, dev);
  dst.copy_(tmp);
}

// The fused path; false when it does not apply (the caller then runs the unfused one).
bool fused_backward(const KernelArgs& k, const AttentionAttrs& at) {
  const Tensor& grad_o = k.inputs[0];
  const Tensor& q = k.inputs[1];
  const Tensor& kk = k.inputs[2];
  const Tensor& v = k.inputs[3];
  const Tensor& lse = k.inputs[4];
  const Tensor& o = k.inputs[5];
  const Tensor &gq = k.outputs[0], &gk = k.outputs[1], &gv = k.outputs[2];
  const DType dt = q.dtype();
  const int64_t B = q.size(0), L = q.size(1), E = q.size(2), S = kk.size(1), Ev = v.size(2);
  if ((dt != DType::Float16 && dt != DType::BFloat16) || at.dropout_p > 0) return false;
  if (B == 0 || L == 0 || S == 0 || E % 8 != 0 || Ev % 8 != 0 || E > 128 || Ev > 128) return false;
  for (const Tensor* t : {&grad_o, &q, &kk, &v, &o, &gq, &gk, &gv})
    if (!t->is_contiguous() || !aligned16(*t)) return false;
  const int dev = k.device.index;
  CudaDeviceGuard guard(dev);
  const Tensor bias = at.has_mask ? additive_bias(k.inputs[6], dt) : Tensor();
  const SdpaKey key = sdpa_key(dev, q, kk, v, at, bias);
  const TensorOptions f32 = TensorOptions(DType::Float32).device(q.device());
  // A fully masked row (lse = -inf, every score -inf) gets lse 0: its probabilities are 0.
  Tensor lse_f = lse.to(DType::Float32);
  if (at.has_mask) lse_f = where(eq(lse_f, -INFINITY), zeros({}, f32), lse_f);
  lse_f = lse_f.contiguous();
  const auto lock = cudnn_lock();
  cudnnHandle_t handle = cudnn_handle(dev, "scaled_dot_product_attention_backward");
  const dnn::Graph* plan = sdpa_backward_plan(handle, key);
  if (!plan) return false;
  Tensor dq_accum = empty({B * L * E}, f32);
  KILN_CUDA_CHECK(cudaMemsetAsync(dq_accum.data_ptr(), 0, size_t(B * L * E) * 4, current_stream(dev)),
                  "scaled_dot_product_attention_backward");
  Tensor ws = cudnn_workspace(size_t(plan->workspace_bytes()), dev);
  sdpa_backward_run(*plan, handle, q.data_ptr(), kk.data_ptr(), v.data_ptr(), bias.defined() ? bias.data_ptr() : nullptr,
                    o.data_ptr(), grad_o.data_ptr(), static_cast<const float*>(lse_f.data_ptr()), gq.data_ptr(),
                    gk.data_ptr(), gv.data_ptr(), static_cast<float*>(dq_accum.data_ptr()),
                    float(attention_scale(at, E)), ws.defined() ? ws.data_ptr() : nullptr);
  return true;
}

}  // namespace

void attention_backward_kernel(const KernelArgs& k) {
  const auto& at = k.attr<AttentionAttrs>();
  if (fused_backward(k, at)) return;
  const Tensor& grad_o = k.inputs[0];
  const Tensor& q = k.inputs[1];
  const Tensor& kk = k.inputs[2];
  const Tensor& v = k.inputs[3];
  const Tensor& lse = k.inputs[4];
  const Tensor mask = at.has_mask ? k.inputs[6] : Tensor();  // inputs[5] is o, unused here
  Tensor gq = k.outputs[0], gk = k.outputs[1], gv = k.outputs[2];
  const int dev = k.device.index;
  CudaDeviceGuard guard(dev);
  const int64_t B = q.size(0), L = q.size(1), E = q.size(2), S = kk.size(1);
  if (B == 0) return;
  if (L == 0 || S == 0) {  // no scores: nothing flows back
    for (Tensor* t : {&gq, &gk, &gv}) t->zero_();
    return;
  }
  const DType io = q.dtype();
  const DType acc = io == DType::Float64 ? DType::Float64 : DType::Float32;
  const TensorOptions acc_opts = TensorOptions(acc).device(q.device());
  const double scale = attention_scale(at, E);
  // A fully masked row has lse = -inf and every score -inf: with lse taken as 0 its
  // probabilities come out exactly 0 instead of NaN.
  const Tensor lse_acc = lse.to(acc);
  const Tensor lse_safe = where(eq(lse_acc, -INFINITY), zeros({}, acc_opts), lse_acc);
  const int64_t chunk = std::clamp<int64_t>(kMaxScoreElements / std::max<int64_t>(1, L * S), 1, B);
  for (int64_t b0 = 0; b0 < B; b0 += chunk) {
    const int64_t n = std::min(chunk, B - b0);
    const Tensor qs = q.narrow(0, b0, n), ks = kk.narrow(0, b0, n), vs = v.narrow(0, b0, n);
    const Tensor dos = grad_o.narrow(0, b0, n).contiguous();
    Tensor s = empty({n, L, S}, acc_opts);
    gemm(qs, ks.transpose(1, 2), s, scale, false, dev);
    s = mask_scores(s, at, mask.defined() ? mask.narrow(0, b0, n) : Tensor());
    const Tensor p = exp(sub(s, lse_safe.narrow(0, b0, n).unsqueeze(2)));
    Tensor p_kept = p.to(io).contiguous();
    if (at.dropout_p > 0) {
      if (p_kept.is_same(p)) p_kept = p.clone();
      apply_attention_dropout(p_kept, b0, at, dev);
    }
    gemm_into(p_kept.transpose(1, 2), dos, gv.narrow(0, b0, n), dev);
    Tensor dp = empty({n, L, S}, acc_opts);
    gemm(dos, vs.transpose(1, 2), dp, 1.0, false, dev);
    if (at.dropout_p > 0) apply_attention_dropout(dp, b0, at, dev);
    const Tensor row_dot = sum(mul(p, dp), {2}, true);
    const Tensor ds = mul(mul(p, sub(dp, row_dot)), scale).to(io).contiguous();
    gemm_into(ds, ks, gq.narrow(0, b0, n), dev);
    gemm_into(ds.transpose(1, 2), qs, gk.narrow(0, b0, n), dev);
  }
}

}  // namespace kiln::cuda
