#pragma once
// Registration functions of the CUDA kernel families, one per file, called by
// cuda_backend.cpp.
#include <string>

#include "kiln/dispatch.h"
#include "kiln/op_attrs.h"
#include "kiln/shape.h"

namespace kiln {
class Tensor;
}

namespace kiln::cuda {
void register_copy(KernelRegistry& r);         // copy.cu: copy/cast, fill, arange, random
void register_unary(KernelRegistry& r);        // unary.cu
void register_binary(KernelRegistry& r);       // binary.cu: arithmetic, comparisons, where, activation backward
void register_reduce(KernelRegistry& r);       // reduce.cu
void register_linalg(KernelRegistry& r);       // linalg.cpp (cuBLASLt)
void register_nn(KernelRegistry& r);           // nn.cpp: the two below
void register_conv(KernelRegistry& r);         // conv.cpp (cuDNN)
void register_nn_kernels(KernelRegistry& r);   // nn.cu
void register_batch_norm(KernelRegistry& r);   // batch_norm.cu
void register_attention(KernelRegistry& r);    // attention.cpp
void register_pool(KernelRegistry& r);         // pool.cu
void register_index(KernelRegistry& r);        // index.cu: gather, scatter_add, index_add, one_hot
void register_optim(KernelRegistry& r);        // optim.cu

// c = alpha * a b through cuBLASLt (linalg.cpp): a [B?, M, K], b [B?, K, N] row-major or
// transposed-contiguous, c contiguous [B, M, N], possibly float32 for 16-bit a and b.
void gemm(const Tensor& a, const Tensor& b, const Tensor& c, double alpha, bool allow_tf32, int device);
// Softmax over the last dim of s [R, n] (float or double, contiguous) into p (any floating
// dtype) and the rows' log-sum-exp into lse [R] (s's dtype) (reduce.cu).
void softmax_rows_with_lse(const Tensor& s, const Tensor& p, const Tensor& lse, int device);
// Raises kiln::Error naming op (the CPU kernels' text: value, position, dim, size, shape)
// when an element of the int32/int64 device tensor idx is outside [0, bound); run before a
// kernel writes anything (index.cu). Waits for the device stream.
void check_index_range(const char* op, const Tensor& idx, int64_t bound, int64_t dim, const Shape& indexed_shape);
// "cuDNN 9.14.0, cuBLASLt 13.0.0, NCCL 2.27.3": the libraries loaded (library_versions.cpp).
std::string library_versions();
// Attention dropout in place on probabilities x [n, L, S] (contiguous), whose first row
// block is batch first_batch of the whole [B, L, S] (attention_dropout.cu).
void apply_attention_dropout(const Tensor& x, int64_t first_batch, const AttentionAttrs& at, int device);
// Runs the op's CPU kernel on CPU copies of the arguments and copies the outputs back
// (for attribute combinations a CUDA kernel does not cover).
void run_on_cpu(const KernelArgs& args);
}  // namespace kiln::cuda
