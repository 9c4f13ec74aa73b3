// CPU kernels: matmul (oneDNN for float32/bfloat16/float16, blocked OpenMP loops for
// float64 and integers). Conv and pool kernels live in conv.cpp and pool.cpp and are
// registered from here.
#include <algorithm>
#include <vector>

#include "kiln/op_attrs.h"
#include "src/backend/cpu/dnnl_utils.h"
#include "src/backend/cpu/kernels.h"
#include "src/backend/cpu/linalg_family.h"
#include "src/backend/cpu/parallel.h"

namespace kiln::cpu {

namespace {
namespace du = dnnl_utils;
using dims = dnnl::memory::dims;

// Shape and layout of one Matmul operand, read from its strides (staging to another
// device may have made a transposed input contiguous, so the attrs' flags are not used).
struct Operand {
  Tensor t;
  int64_t batch = 1, rows = 0, cols = 0;
  bool trans = false;  // column-major in its last two dims
};

Operand operand(const Tensor& t) {
  Operand o;
  const int64_t d = t.dim();
  o.rows = t.shape()[size_t(d - 2)];
  o.cols = t.shape()[size_t(d - 1)];
  o.batch = d == 3 ? t.shape()[0] : 1;
  const int64_t sr = t.strides()[size_t(d - 2)], sc = t.strides()[size_t(d - 1)];
  const bool batch_ok = o.batch <= 1 || t.strides()[0] == o.rows * o.cols;
  o.t = t;
  if (batch_ok && (o.cols == 1 || sc == 1) && (o.rows == 1 || sr == o.cols)) return o;
  if (batch_ok && (o.rows == 1 || sr == 1) && (o.cols == 1 || sc == o.rows)) {
    o.trans = true;
    return o;
  }
  o.t = t.contiguous();
  return o;
}

dnnl::memory::desc operand_md(const Operand& o, dnnl::memory::data_type dt) {
  const int64_t r = o.rows, c = o.cols;
  return dnnl::memory::desc(dims{o.batch, r, c}, dt, o.trans ? dims{r * c, 1, r} : dims{r * c, c, 1});
}

struct MatmulPrimitive {
  std::optional<dnnl::matmul> prim;  // empty: oneDNN has no implementation for this case
  dnnl::memory::desc scratchpad;
};

// Returns false when oneDNN can't do this dtype/shape (the caller falls back).
bool matmul_dnnl(const Operand& a, const Operand& b, const Tensor& out) {
  const auto dt = *du::dnnl_type(out.dtype());
  const int64_t m = a.rows, n = b.cols, batch = std::max(a.batch, b.batch);
  const auto amd = operand_md(a, dt), bmd = operand_md(b, dt);
  const dnnl::memory::desc cmd(dims{batch, m, n}, dt, dims{m * n, n, 1});
  du::KeyBuilder key;
  key << "matmul" << int(dt) << a.batch << a.rows << a.cols << a.trans << b.batch << b.cols << b.trans;
  auto entry = du::primitive_cache().get<MatmulPrimitive>(key.str(), [&] {
    MatmulPrimitive p;
    try {
      dnnl::primitive_attr attr;
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(amd, bmd, cmd), attr, du::engine());
      p.scratchpad = pd.scratchpad_desc();
      p.prim.emplace(pd);
    } catch (const dnnl::error&) {
    }
    return p;
  });
  if (!entry->prim) return false;
  entry->prim->execute(du::stream(), {{DNNL_ARG_SRC, du::wrap(amd, a.t)},
                                      {DNNL_ARG_WEIGHTS, du::wrap(bmd, b.t)},
                                      {DNNL_ARG_DST, du::wrap(cmd, out)},
                                      {DNNL_ARG_SCRATCHPAD, du::scratchpad(entry->scratchpad)}});
  du::stream().wait();
  return true;
}

// Blocked i-k-j loops on row-major copies: the inner loop runs over contiguous rows of
// b and c, blocks of k keep a panel of b in cache, threads split batches x row blocks.
template <typename T>
void matmul_loops(const Operand& a0, const Operand& b0, const Tensor& out) {
  const Tensor a = a0.t.contiguous(), b = b0.t.contiguous();
  const int64_t m = a0.rows, k = a0.cols, n = b0.cols, batch = std::max(a0.batch, b0.batch);
  const int64_t sa = a0.batch == 1 ? 0 : m * k, sb = b0.batch == 1 ? 0 : k * n;
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  T* pc = out.data<T>();
  constexpr int64_t kRows = 16, kDepth = 256;
  const int64_t row_blocks = (m + kRows - 1) / kRows;
#pragma omp parallel for collapse(2) schedule(static) if (batch * m * n * k > 32768)
  for (int64_t bi = 0; bi < batch; ++bi) {
    for (int64_t rb = 0; rb < row_blocks; ++rb) {
      const T* A = pa + bi * sa;
      const T* B = pb + bi * sb;
      T* C = pc + bi * m * n;
      const int64_t i0 = rb * kRows, i1 = std::min(m, i0 + kRows);
      for (int64_t i = i0; i < i1; ++i) std::fill(C + i * n, C + (i + 1) * n, T(0));
      for (int64_t k0 = 0; k0 < k; k0 += kDepth) {
        const int64_t k1 = std::min(k, k0 + kDepth);
        for (int64_t i = i0; i < i1; ++i) {
          T* crow = C + i * n;
          for (int64_t kk = k0; kk < k1; ++kk) {
            const T av = A[i * k + kk];
            const T* brow = B + kk * n;
            for (int64_t j = 0; j < n; ++j) crow[j] += av * brow[j];
          }
        }
      }
    }
  }
}

void matmul_kernel(const KernelArgs& args) {
  const Operand a = operand(args.inputs[0]), b = operand(args.inputs[1]);
  const Tensor& out = args.outputs[0];
  switch (out.dtype()) {
    case DType::Float64: return matmul_loops<double>(a, b, out);
    case DType::Int64: return matmul_loops<int64_t>(a, b, out);
    case DType::Int32: return matmul_loops<int32_t>(a, b, out);
    case DType::Float32:
      KILN_CHECK(matmul_dnnl(a, b, out), "matmul", "oneDNN has no float32 matmul for shapes ",
                 shape_str(a.t.shape()), " and ", shape_str(b.t.shape()));
      return;
    default: break;
  }
  if (matmul_dnnl(a, b, out)) return;
  // float16 (and any half case oneDNN lacks on this CPU): compute in float32, round once.
  Operand a32 = operand(a.t.to(DType::Float32)), b32 = operand(b.t.to(DType::Float32));
  Tensor tmp = empty(out.shape(), TensorOptions(DType::Float32).device(kCpu));
  KILN_CHECK(matmul_dnnl(a32, b32, tmp), "matmul", "oneDNN has no float32 matmul for shapes ",
             shape_str(a.t.shape()), " and ", shape_str(b.t.shape()));
  Tensor dst = out;
  dst.copy_(tmp);
}
}  // namespace

void register_linalg(KernelRegistry& r) {
  r.add(DeviceType::Cpu, OpId::Matmul, matmul_kernel);
  register_conv_kernels(r);
  register_pool_kernels(r);
}

}  // namespace kiln::cpu
