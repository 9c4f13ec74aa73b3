// CUDA backward of scaled_dot_product_attention, on the GPU through cuBLASLt and kiln's
// own elementwise/reduction kernels (no fused kernel yet). Per slice of the batch small
// enough for its [n, L, S] scores to stay under ~1 GiB: the scores are recomputed, the
// probabilities rebuilt from the saved log-sum-exp (p = exp(s - lse)), then
//   dv = p^T do,  dp = do v^T,  ds = scale * p (dp - rowsum(p dp)),  dq = ds k,  dk = ds^T q.
// For 16-bit inputs p and ds enter the products in the input dtype, as flash-attention
// backward kernels do; sums accumulate in float32. Dropout runs the CPU kernel.
#include <algorithm>
#include <cmath>

#include "kiln/dispatch.h"
#include "kiln/op_attrs.h"
#include "kiln/ops.h"
#include "kiln/tensor.h"
#include "src/backend/cuda/attention_common.h"
#include "src/backend/cuda/cuda_common.h"
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

}  // namespace

void attention_backward_kernel(const KernelArgs& k) {
  const auto& at = k.attr<AttentionAttrs>();
  if (at.dropout_p > 0) return run_on_cpu(k);
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
    const Tensor p_io = p.to(io).contiguous();
    gemm_into(p_io.transpose(1, 2), dos, gv.narrow(0, b0, n), dev);
    Tensor dp = empty({n, L, S}, acc_opts);
    gemm(dos, vs.transpose(1, 2), dp, 1.0, false, dev);
    const Tensor row_dot = sum(mul(p, dp), {2}, true);
    const Tensor ds = mul(mul(p, sub(dp, row_dot)), scale).to(io).contiguous();
    gemm_into(ds, ks, gq.narrow(0, b0, n), dev);
    gemm_into(ds.transpose(1, 2), qs, gk.narrow(0, b0, n), dev);
  }
}

}  // namespace kiln::cuda
