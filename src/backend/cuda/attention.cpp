// CUDA scaled_dot_product_attention, forward. float16/bfloat16 without dropout take
// cuDNN's fused flash-attention kernel (cudnn_sdpa.h): no [L, S] matrix in memory.
// Everything else (float32/64, head dims cuDNN rejects, dropout) takes the unfused
// path: scores = scale * q k^T through cuBLASLt into float32 (float64 for float64),
// the masks, one softmax pass that also writes each row's log-sum-exp, the Philox
// dropout of the contract (attention_dropout.cu), then @ v.
#include <cmath>
#include <cstdint>

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

Tensor mask_scores(Tensor s, const AttentionAttrs& at, const Tensor& mask) {
  const TensorOptions acc_opts = TensorOptions(s.dtype()).device(s.device());
  const int64_t L = s.size(1), S = s.size(2);
  if (at.is_causal) {
    const TensorOptions idx = TensorOptions(DType::Int64).device(s.device());
    const Tensor keep = le(arange(S, idx).view({1, 1, S}), arange(L, idx).view({1, L, 1}));
    s = where(keep, s, full({}, -INFINITY, acc_opts));
  }
  if (at.has_mask) {
    if (mask.dtype() == DType::Bool) s = where(mask, s, full({}, -INFINITY, acc_opts));
    else s = add(s, mask.to(s.dtype()));
  }
  return s;
}

Tensor additive_bias(const Tensor& mask, DType dt) {
  const Tensor base = mask.stride(0) == 0 ? mask.narrow(0, 0, 1) : mask;
  const TensorOptions opts = TensorOptions(dt).device(mask.device());
  if (mask.dtype() == DType::Bool) return where(base, zeros({}, opts), full({}, -INFINITY, opts)).contiguous();
  return base.to(dt).contiguous();
}

SdpaKey sdpa_key(int device, const Tensor& q, const Tensor& k, const Tensor& v, const AttentionAttrs& at,
                        const Tensor& bias) {
  SdpaKey key;
  key.device = device;
  key.io = q.dtype() == DType::BFloat16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_HALF;
  key.B = q.size(0), key.L = q.size(1), key.E = q.size(2), key.S = k.size(1), key.Ev = v.size(2);
  key.causal = at.is_causal;
  key.bias_batch = bias.defined() ? bias.size(0) : 0;
  return key;
}

namespace {

constexpr const char* kOp = "scaled_dot_product_attention";

// The fused path; false when it does not apply (the caller then runs the unfused one).
bool fused_forward(const KernelArgs& k, const AttentionAttrs& at) {
  const Tensor& q = k.inputs[0];
  const Tensor& kk = k.inputs[1];
  const Tensor& v = k.inputs[2];
  Tensor o = k.outputs[0], lse = k.outputs[1];
  const DType dt = q.dtype();
  const int64_t B = q.size(0), L = q.size(1), E = q.size(2), S = kk.size(1), Ev = v.size(2);
  if ((dt != DType::Float16 && dt != DType::BFloat16) || at.dropout_p > 0) return false;
  if (B == 0 || L == 0 || S == 0 || E % 8 != 0 || Ev % 8 != 0 || E > 256 || Ev > 256) return false;
  if (!o.is_contiguous() || !aligned16(q) || !aligned16(kk) || !aligned16(v) || !aligned16(o)) return false;
  const int dev = k.device.index;
  CudaDeviceGuard guard(dev);
  const Tensor bias = at.has_mask ? additive_bias(k.inputs[3], dt) : Tensor();
  const SdpaKey key = sdpa_key(dev, q, kk, v, at, bias);
  const auto lock = cudnn_lock();
  cudnnHandle_t handle = cudnn_handle(dev, kOp);
  const dnn::Graph* plan = sdpa_forward_plan(handle, key);
  if (!plan) return false;
  const bool lse_direct = lse.dtype() == DType::Float32 && lse.is_contiguous();
  Tensor lse_f = lse_direct ? lse : empty({B, L}, TensorOptions(DType::Float32).device(q.device()));
  Tensor ws = cudnn_workspace(size_t(plan->workspace_bytes()), dev);
  sdpa_forward_run(*plan, handle, q.data_ptr(), kk.data_ptr(), v.data_ptr(), bias.defined() ? bias.data_ptr() : nullptr,
                   o.data_ptr(), static_cast<float*>(lse_f.data_ptr()), float(attention_scale(at, E)),
                   ws.defined() ? ws.data_ptr() : nullptr);
  if (at.has_mask) {  // fully masked rows: output 0 and lse -inf (cuDNN leaves NaN there)
    const Tensor dead = eq(amax(bias, {2}), -INFINITY);  // [1 or B, L]
    o.copy_(where(dead.unsqueeze(2), zeros({}, TensorOptions(dt).device(o.device())), o));
    lse_f.copy_(where(dead, full({}, -INFINITY, TensorOptions(DType::Float32).device(o.device())), lse_f));
  }
  if (!lse_direct) lse.copy_(lse_f);
  return true;
}

void unfused_forward(const KernelArgs& k, const AttentionAttrs& at) {
  const Tensor& q = k.inputs[0];
  const Tensor& kk = k.inputs[1];
  const Tensor& v = k.inputs[2];
  const int dev = k.device.index;
  CudaDeviceGuard guard(dev);
  const int64_t B = q.size(0), L = q.size(1), E = q.size(2), S = kk.size(1);
  Tensor o = k.outputs[0], lse = k.outputs[1];
  const DType acc = q.dtype() == DType::Float64 ? DType::Float64 : DType::Float32;
  const TensorOptions acc_opts = TensorOptions(acc).device(q.device());
  if (S == 0) {  // nothing to attend to: every row fully masked
    o.zero_();
    lse.fill_(-INFINITY);
    return;
  }
  Tensor s = empty({B, L, S}, acc_opts);
  gemm(q, kk.transpose(1, 2), s, attention_scale(at, E), false, dev);
  s = mask_scores(s, at, at.has_mask ? k.inputs[3] : Tensor()).contiguous();
  Tensor p = empty({B, L, S}, TensorOptions(q.dtype()).device(q.device()));
  Tensor lse_acc = lse.dtype() == acc && lse.is_contiguous() ? lse : empty({B, L}, acc_opts);
  softmax_rows_with_lse(s, p, lse_acc, dev);
  if (!lse_acc.is_same(lse)) lse.copy_(lse_acc);
  if (at.dropout_p > 0) apply_attention_dropout(p, 0, at, dev);
  if (o.numel() > 0) gemm(p, v, o, 1.0, false, dev);
  if (at.is_causal || at.has_mask) {  // fully masked rows: output 0 (their probabilities are NaN)
    const Tensor dead = eq(lse_acc, -INFINITY).unsqueeze(2);
    o.copy_(where(dead, zeros({}, TensorOptions(o.dtype()).device(o.device())), o));
  }
}

void attention_kernel(const KernelArgs& k) {
  const auto& at = k.attr<AttentionAttrs>();
  if (k.outputs[0].numel() == 0 && k.outputs[1].numel() == 0) return;
  if (fused_forward(k, at)) return;
  unfused_forward(k, at);
}

}  // namespace

void attention_backward_kernel(const KernelArgs& k);  // attention_backward.cpp

void register_attention(KernelRegistry& r) {
  r.add(DeviceType::Cuda, OpId::Attention, attention_kernel);
  r.add(DeviceType::Cuda, OpId::AttentionBackward, attention_backward_kernel);
}

}  // namespace kiln::cuda
