// CUDA matmul through cuBLASLt: float32 (tf32 when MatmulAttrs.allow_tf32), float16,
// bfloat16 (float accumulation) and float64; 2-D or batched [B, M, K] x [B, K, N] with
// a batch of 1 broadcast (batch stride 0). Each operand is row-major or a transposed
// contiguous matrix, read from its strides. A row-major product C = A B is computed as
// the column-major product C^T = B^T A^T, so no copy is needed. Plans (descriptors and
// the heuristic's algorithm) are cached per shape; each device has one handle and a
// 32 MiB workspace.
#include <cublasLt.h>

#include <map>
#include <memory>
#include <mutex>
#include <tuple>

#include "kiln/op_attrs.h"
#include "kiln/tensor.h"
#include "src/backend/cuda/cuda_common.h"
#include "src/backend/cuda/kernels.h"

namespace kiln::cuda {

namespace {

void check_blas(cublasStatus_t s, const char* call) {
  if (s != CUBLAS_STATUS_SUCCESS) KILN_FAIL("matmul", "cuBLASLt error in ", call, ": ", cublasLtGetStatusString(s));
}
#define KILN_BLAS_CHECK(call) check_blas((call), #call)

constexpr size_t kWorkspace = size_t(32) << 20;

struct Operand {
  int64_t batch = 1, rows = 0, cols = 0;
  bool trans = false;
};

Operand operand(const Tensor& t) {
  Operand o;
  const int64_t d = t.dim();
  o.rows = t.shape()[size_t(d - 2)];
  o.cols = t.shape()[size_t(d - 1)];
  o.batch = d == 3 ? t.shape()[0] : 1;
  const int64_t sr = t.strides()[size_t(d - 2)], sc = t.strides()[size_t(d - 1)];
  o.trans = !((o.cols == 1 || sc == 1) && (o.rows == 1 || sr == o.cols));
  return o;
}

using PlanKey = std::tuple<int, int, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, bool, bool, bool, uint32_t>;

// Largest power of two (up to 256) dividing the address: the heuristic must not assume more.
uint32_t alignment(const void* p) {
  const auto v = reinterpret_cast<uintptr_t>(p);
  uint32_t a = 256;
  while (a > 1 && v % a) a /= 2;
  return a;
}

struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  bool has_algo = false;
  bool f64 = false;
  ~Plan() {
    if (desc) cublasLtMatmulDescDestroy(desc);
    for (auto l : {a, b, c})
      if (l) cublasLtMatrixLayoutDestroy(l);
  }
};

struct DeviceBlas {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
  std::map<PlanKey, std::unique_ptr<Plan>> plans;
};

std::mutex g_mutex;
std::map<int, DeviceBlas> g_devices;

DeviceBlas& blas(int dev) {
  DeviceBlas& d = g_devices[dev];
  if (!d.handle) {
    KILN_BLAS_CHECK(cublasLtCreate(&d.handle));
    KILN_CUDA_CHECK(cudaMalloc(&d.workspace, kWorkspace), "matmul");
  }
  return d;
}

cublasLtMatrixLayout_t layout(cudaDataType_t t, int64_t rows, int64_t cols, int64_t ld, int64_t batch,
                              int64_t stride) {
  cublasLtMatrixLayout_t l;
  KILN_BLAS_CHECK(cublasLtMatrixLayoutCreate(&l, t, uint64_t(rows), uint64_t(cols), ld));
  if (batch > 1) {
    const int32_t count = int32_t(batch);
    KILN_BLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)));
    KILN_BLAS_CHECK(
        cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof(stride)));
  }
  return l;
}

cudaDataType_t blas_type(DType t) {
  switch (t) {
    case DType::Float32: return CUDA_R_32F;
    case DType::Float16: return CUDA_R_16F;
    case DType::BFloat16: return CUDA_R_16BF;
    case DType::Float64: return CUDA_R_64F;
    default: KILN_FAIL("matmul", "not implemented for dtype ", dtype_name(t), " on cuda");
  }
}

}  // namespace

void gemm(const Tensor& ta, const Tensor& tb, const Tensor& tc, double alpha_v, bool tf32, int dev) {
  const Operand a = operand(ta), b = operand(tb);
  const int64_t m = a.rows, k = a.cols, n = b.cols, batch = std::max(a.batch, b.batch);
  CudaDeviceGuard guard(dev);
  const cudaDataType_t dt = blas_type(ta.dtype()), ct = blas_type(tc.dtype());
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
  cudaDataType_t scale = CUDA_R_32F;
  if (ta.dtype() == DType::Float32 && tf32) compute = CUBLAS_COMPUTE_32F_FAST_TF32;
  if (ta.dtype() == DType::Float64) {
    compute = CUBLAS_COMPUTE_64F;
    scale = CUDA_R_64F;
  }

  std::lock_guard<std::mutex> lock(g_mutex);
  DeviceBlas& d = blas(dev);
  const uint32_t al_a = alignment(tb.data_ptr()), al_b = alignment(ta.data_ptr()), al_c = alignment(tc.data_ptr());
  const PlanKey key{dev, int(ta.dtype()) * 16 + int(tc.dtype()), m, n, k, batch, a.batch, b.batch, a.trans, b.trans, tf32,
                    al_a | (al_b << 9) | (al_c << 18)};
  auto& slot = d.plans[key];
  if (!slot) {
    auto p = std::make_unique<Plan>();
    p->f64 = ta.dtype() == DType::Float64;
    KILN_BLAS_CHECK(cublasLtMatmulDescCreate(&p->desc, compute, scale));
    // Lt's first operand is our b (column-major N x K view), its second our a.
    const cublasOperation_t op_first = b.trans ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasOperation_t op_second = a.trans ? CUBLAS_OP_T : CUBLAS_OP_N;
    KILN_BLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_first, sizeof(op_first)));
    KILN_BLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_second, sizeof(op_second)));
    const int64_t sb = b.batch > 1 ? k * n : 0, sa = a.batch > 1 ? m * k : 0;
    p->a = b.trans ? layout(dt, k, n, k, batch, sb) : layout(dt, n, k, n, batch, sb);
    p->b = a.trans ? layout(dt, m, k, m, batch, sa) : layout(dt, k, m, k, batch, sa);
    p->c = layout(ct, n, m, n, batch, m * n);
    cublasLtMatmulPreference_t pref;
    KILN_BLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    const uint64_t ws = kWorkspace;
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof(al_a));
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof(al_b));
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_c, sizeof(al_c));
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_c, sizeof(al_c));
    constexpr int kCandidates = 24;  // all timed below for large products (with 8, bmm trailed PyTorch by 0-4%)
    cublasLtMatmulHeuristicResult_t results[kCandidates] = {};
    int found = 0;
    const cublasStatus_t hs = cublasLtMatmulAlgoGetHeuristic(d.handle, p->desc, p->a, p->b, p->c, p->c, pref,
                                                              kCandidates, results, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (hs == CUBLAS_STATUS_SUCCESS && found > 0) {
      p->algo = results[0].algo;
      p->has_algo = true;
      // Large products: time the candidates once on these operands and keep the fastest
      // (the heuristic's first pick is not always the best on this card).
      if (found > 1 && double(m) * double(n) * double(k) * double(batch) >= double(1 << 30)) {
        const float one_f = float(alpha_v), zero_f = 0.0f;
        const double one_d = alpha_v, zero_d = 0.0;
        const void* al = p->f64 ? static_cast<const void*>(&one_d) : &one_f;
        const void* be = p->f64 ? static_cast<const void*>(&zero_d) : &zero_f;
        cudaStream_t st = current_stream(dev);
        cudaEvent_t e0, e1;
        cudaEventCreate(&e0);
        cudaEventCreate(&e1);
        float best = 1e30f;
        for (int i = 0; i < found; ++i) {
          if (results[i].state != CUBLAS_STATUS_SUCCESS) continue;
          auto launch = [&] {
            return cublasLtMatmul(d.handle, p->desc, al, tb.data_ptr(), p->a, ta.data_ptr(), p->b, be, tc.data_ptr(),
                                  p->c, tc.data_ptr(), p->c, &results[i].algo, d.workspace, kWorkspace, st);
          };
          if (launch() != CUBLAS_STATUS_SUCCESS) continue;
          cudaEventRecord(e0, st);
          bool ok = true;
          for (int r = 0; r < 3; ++r) ok = ok && launch() == CUBLAS_STATUS_SUCCESS;
          cudaEventRecord(e1, st);
          cudaEventSynchronize(e1);
          float ms = 0;
          cudaEventElapsedTime(&ms, e0, e1);
          if (ok && ms < best) {
            best = ms;
            p->algo = results[i].algo;
          }
        }
        cudaEventDestroy(e0);
        cudaEventDestroy(e1);
        cudaGetLastError();
      }
    }
    slot = std::move(p);
  }
  Plan& p = *slot;
  const float one_f = float(alpha_v), zero_f = 0.0f;
  const double one_d = alpha_v, zero_d = 0.0;
  const void* alpha = p.f64 ? static_cast<const void*>(&one_d) : &one_f;
  const void* beta = p.f64 ? static_cast<const void*>(&zero_d) : &zero_f;
  KILN_BLAS_CHECK(cublasLtMatmul(d.handle, p.desc, alpha, tb.data_ptr(), p.a, ta.data_ptr(), p.b, beta,
                                 tc.data_ptr(), p.c, tc.data_ptr(), p.c, p.has_algo ? &p.algo : nullptr,
                                 d.workspace, kWorkspace, current_stream(dev)));
}

namespace {
void matmul_kernel(const KernelArgs& args) {
  const bool tf32 = args.attrs ? args.attr<MatmulAttrs>().allow_tf32 : false;
  gemm(args.inputs[0], args.inputs[1], args.outputs[0], 1.0, tf32, args.device.index);
}
}  // namespace

void register_linalg(KernelRegistry& r) {
  // A subset of the declared dtypes: integer matmul falls back to the CPU kernel.
  r.add(DeviceType::Cuda, OpId::Matmul, matmul_kernel, kFloatingDTypes);
}

}  // namespace kiln::cuda
