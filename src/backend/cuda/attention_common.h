#pragma once
// Pieces shared by the CUDA attention forward and backward (attention*.cpp).
#include <cmath>
#include <cstdint>

#include "kiln/op_attrs.h"
#include "kiln/tensor.h"
#include "src/backend/cuda/cudnn_sdpa.h"

namespace kiln::cuda {

inline double attention_scale(const AttentionAttrs& at, int64_t head_dim) {
  return at.scale != 0 ? at.scale : 1.0 / std::sqrt(double(head_dim));
}

// The mask as cuDNN's additive bias: contiguous [1 or B, L, S] in dtype dt, -inf where a
// bool mask is false. One [L, S] bias serves every batch when the mask broadcasts.
Tensor additive_bias(const Tensor& mask, DType dt);

// The cuDNN graph key of an attention call on q [B, L, E], k [B, S, E], v [B, S, Ev]
// (float16/bfloat16) with its bias from additive_bias (undefined without a mask).
SdpaKey sdpa_key(int device, const Tensor& q, const Tensor& k, const Tensor& v, const AttentionAttrs& at,
                        const Tensor& bias);

inline bool aligned16(const Tensor& t) { return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0; }

// Scores s [n, L, S] (float or double) with the causal rule (key j <= query i) and the
// given mask slice [n, L, S] (bool: false -> -inf; floating: added) applied.
Tensor mask_scores(Tensor s, const AttentionAttrs& at, const Tensor& mask);

}  // namespace kiln::cuda
