// CUDA scaled_dot_product_attention, forward: scores = scale * q k^T through cuBLASLt
// into float32 (float64 for float64), the causal and given masks applied, one softmax
// pass that also writes each row's log-sum-exp, then probabilities @ v through cuBLASLt.
// A correct path for every floating dtype; it keeps the [B, L, S] scores in memory (no
// fused flash kernel yet). Dropout on the probabilities and the backward run the CPU
// kernel (run_on_cpu), so results match the contract exactly.
#include <cmath>
#include <vector>

#include "kiln/dispatch.h"
#include "kiln/op_attrs.h"
#include "kiln/ops.h"
#include "kiln/tensor.h"
#include "src/backend/cuda/cuda_common.h"
#include "src/backend/cuda/kernels.h"

namespace kiln::cuda {

void run_on_cpu(const KernelArgs& args) {
  const DType key = args.inputs.empty() ? args.outputs[0].dtype() : args.inputs[0].dtype();
  const Kernel k = kernel_registry().find(DeviceType::Cpu, args.op, key);
  KILN_CHECK(k != nullptr, op_name(args.op), "no CUDA kernel for these arguments and no CPU kernel to fall back to");
  std::vector<Tensor> in, out;
  for (const Tensor& t : args.inputs) in.push_back(t.defined() ? t.to(kCpu) : t);
  for (const Tensor& t : args.outputs) out.push_back(t.to(kCpu).contiguous());
  k(KernelArgs{args.op, kCpu, in, out, args.attrs});
  for (size_t i = 0; i < out.size(); ++i) {
    Tensor dst = args.outputs[i];
    dst.copy_(out[i]);
  }
}

namespace {

void attention_kernel(const KernelArgs& k) {
  const auto& at = k.attr<AttentionAttrs>();
  if (at.dropout_p > 0) return run_on_cpu(k);
  const Tensor& q = k.inputs[0];
  const Tensor& kk = k.inputs[1];
  const Tensor& v = k.inputs[2];
  const int dev = k.device.index;
  CudaDeviceGuard guard(dev);
  const int64_t B = q.size(0), L = q.size(1), E = q.size(2), S = kk.size(1);
  Tensor o = k.outputs[0], lse = k.outputs[1];
  if (o.numel() == 0 && lse.numel() == 0) return;
  const double scale = at.scale != 0 ? at.scale : 1.0 / std::sqrt(double(E));
  const DType acc = q.dtype() == DType::Float64 ? DType::Float64 : DType::Float32;
  const TensorOptions acc_opts = TensorOptions(acc).device(q.device());
  if (S == 0) {  // nothing to attend to: every row fully masked
    o.zero_();
    lse.fill_(-INFINITY);
    return;
  }
  Tensor s = empty({B, L, S}, acc_opts);
  gemm(q, kk.transpose(1, 2), s, scale, false, dev);
  const bool masked = at.is_causal || at.has_mask;
  if (at.is_causal) {
    const TensorOptions idx = TensorOptions(DType::Int64).device(q.device());
    const Tensor keep = le(arange(S, idx).view({1, 1, S}), arange(L, idx).view({1, L, 1}));
    s = where(keep, s, full({}, -INFINITY, acc_opts));
  }
  if (at.has_mask) {
    const Tensor& mask = k.inputs[3];
    if (mask.dtype() == DType::Bool) s = where(mask, s, full({}, -INFINITY, acc_opts));
    else s = add(s, mask.to(acc));
  }
  s = s.contiguous();
  Tensor p = empty({B, L, S}, TensorOptions(q.dtype()).device(q.device()));
  Tensor lse_acc = lse.dtype() == acc && lse.is_contiguous() ? lse : empty({B, L}, acc_opts);
  softmax_rows_with_lse(s, p, lse_acc, dev);
  if (!lse_acc.is_same(lse)) lse.copy_(lse_acc);
  if (o.numel() > 0) gemm(p, v, o, 1.0, false, dev);
  if (masked) {  // fully masked rows: output 0 (their probabilities are NaN)
    const Tensor dead = eq(lse_acc, -INFINITY).unsqueeze(2);
    o.copy_(where(dead, zeros({}, TensorOptions(o.dtype()).device(o.device())), o));
  }
}

}  // namespace

void register_attention(KernelRegistry& r) {
  r.add(DeviceType::Cuda, OpId::Attention, attention_kernel, kFloatingDTypes);
  r.add(DeviceType::Cuda, OpId::AttentionBackward, run_on_cpu, kFloatingDTypes);
}

}  // namespace kiln::cuda
