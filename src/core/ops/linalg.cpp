// Front ends of matmul, mm, bmm, mv and linear (PyTorch's rules), and the global TF32
// switch. Everything reduces to the one batched Matmul op: [B?, M, K] x [B?, K, N].
#include <atomic>

#include "kiln/op_attrs.h"
#include "src/autograd/record.h"
#include "src/core/ops/op_helpers.h"

namespace kiln {

namespace {
using detail::check_defined;
using detail::common_device;

std::atomic<bool> g_allow_tf32{false};

void check_matmul_dtypes(const char* op, const Tensor& a, const Tensor& b) {
  KILN_CHECK(a.dtype() == b.dtype(), op, "expected both operands to have the same dtype, got ",
             dtype_name(a.dtype()), " of shape ", shape_str(a.shape()), " and ", dtype_name(b.dtype()), " of shape ",
             shape_str(b.shape()));
  KILN_CHECK(a.dtype() != DType::Bool, op, "not supported for bool tensors (shapes ", shape_str(a.shape()), " and ",
             shape_str(b.shape()), ")");
}

// t as a Matmul operand: its last two dims row-major (trans = false) or column-major
// (trans = true, a transposed contiguous matrix), batch dim dense. Copies only when
// neither holds.
Tensor matmul_operand(const Tensor& t, bool& trans) {
  const int64_t r = t.shape()[t.dim() - 2], c = t.shape()[t.dim() - 1];
  const int64_t sr = t.strides()[t.dim() - 2], sc = t.strides()[t.dim() - 1];
  const bool batch_ok = t.dim() == 2 || t.shape()[0] <= 1 || t.strides()[0] == r * c;
  trans = false;
  if (batch_ok && (c == 1 || sc == 1) && (r == 1 || sr == c)) return t;
  if (batch_ok && (r == 1 || sr == 1) && (c == 1 || sc == r)) {
    trans = true;
    return t;
  }
  return t.contiguous();
}

// a [M, K] or [Ba, M, K], b [K, N] or [Bb, K, N] (Ba, Bb in {1, B}): validated already.
Tensor matmul_core(const Tensor& a, const Tensor& b) {
  const int64_t m = a.shape()[a.dim() - 2], k = a.shape()[a.dim() - 1], n = b.shape()[b.dim() - 1];
  Shape out_shape{m, n};
  if (a.dim() == 3 || b.dim() == 3)
    out_shape.insert(out_shape.begin(), std::max(a.dim() == 3 ? a.shape()[0] : 1, b.dim() == 3 ? b.shape()[0] : 1));
  const TensorOptions opts = TensorOptions(a.dtype()).device(a.device());
  if (numel_of(out_shape) == 0) return empty(out_shape, opts);
  if (k == 0) return zeros(out_shape, opts);
  MatmulAttrs attrs;
  attrs.allow_tf32 = g_allow_tf32.load(std::memory_order_relaxed);
  const Tensor in[] = {matmul_operand(a, attrs.trans_a), matmul_operand(b, attrs.trans_b)};
  Tensor out = empty(out_shape, opts);
  Tensor outs[] = {out};
  dispatch(OpId::Matmul, a.dtype(), in, outs, &attrs);
  autograd::record_matmul(out, a, b);
  return out;
}

[[noreturn]] void fail_inner(const char* op, const Tensor& a, const Tensor& b, int64_t ka, int64_t kb) {
  KILN_FAIL(op, "shapes ", shape_str(a.shape()), " and ", shape_str(b.shape()), " cannot be multiplied (", ka,
            " != ", kb, ")");
}

Shape batch_of(const Tensor& t) { return Shape(t.shape().begin(), t.shape().end() - 2); }

// t [batch..., R, C] broadcast to [batch_full..., R, C] and folded to [B, R, C]; a
// tensor with no real batch stays [1, R, C] so that the kernel broadcasts it for free.
Tensor fold_batch(const Tensor& t, const Shape& batch, int64_t nbatch) {
  const int64_t r = t.shape()[t.dim() - 2], c = t.shape()[t.dim() - 1];
  if (numel_of(batch_of(t)) == 1 && nbatch != 1) return t.reshape({1, r, c});
  Shape full = batch;
  full.push_back(r);
  full.push_back(c);
  return t.expand(full).reshape({nbatch, r, c});
}
}  // namespace

void set_allow_tf32(bool allow) { g_allow_tf32.store(allow); }
bool allow_tf32() { return g_allow_tf32.load(); }

Tensor mm(const Tensor& a, const Tensor& b) {
  check_defined("mm", {&a, &b});
  common_device("mm", {&a, &b});
  detail::check_dim("mm", a, 2, "first operand");
  detail::check_dim("mm", b, 2, "second operand");
  check_matmul_dtypes("mm", a, b);
  if (a.shape()[1] != b.shape()[0]) fail_inner("mm", a, b, a.shape()[1], b.shape()[0]);
  return matmul_core(a, b);
}

Tensor bmm(const Tensor& a, const Tensor& b) {
  check_defined("bmm", {&a, &b});
  common_device("bmm", {&a, &b});
  detail::check_dim("bmm", a, 3, "first operand");
  detail::check_dim("bmm", b, 3, "second operand");
  check_matmul_dtypes("bmm", a, b);
  KILN_CHECK(a.shape()[0] == b.shape()[0], "bmm", "batch sizes differ: shapes ", shape_str(a.shape()), " and ",
             shape_str(b.shape()));
  if (a.shape()[2] != b.shape()[1]) fail_inner("bmm", a, b, a.shape()[2], b.shape()[1]);
  return matmul_core(a, b);
}

Tensor mv(const Tensor& a, const Tensor& v) {
  check_defined("mv", {&a, &v});
  common_device("mv", {&a, &v});
  detail::check_dim("mv", a, 2, "matrix");
  detail::check_dim("mv", v, 1, "vector");
  check_matmul_dtypes("mv", a, v);
  if (a.shape()[1] != v.shape()[0]) fail_inner("mv", a, v, a.shape()[1], v.shape()[0]);
  return matmul_core(a, v.unsqueeze(1)).view({a.shape()[0]});
}

Tensor matmul(const Tensor& a, const Tensor& b) {
  check_defined("matmul", {&a, &b});
  common_device("matmul", {&a, &b});
  KILN_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul", "both arguments need at least 1 dimension, got shapes ",
             shape_str(a.shape()), " and ", shape_str(b.shape()));
  check_matmul_dtypes("matmul", a, b);
  const int64_t da = a.dim(), db = b.dim();
  const int64_t ka = a.shape()[size_t(da - 1)], kb = b.shape()[size_t(db == 1 ? 0 : db - 2)];
  if (ka != kb) fail_inner("matmul", a, b, ka, kb);

  if (da == 1 && db == 1) return matmul_core(a.unsqueeze(0), b.unsqueeze(1)).view({});
  if (da == 2 && db == 1) return matmul_core(a, b.unsqueeze(1)).view({a.shape()[0]});
  if (da == 1 && db == 2) return matmul_core(a.unsqueeze(0), b).view({b.shape()[1]});
  if (da == 2 && db == 2) return matmul_core(a, b);
  if (da >= 3 && db <= 2) {  // fold a's batch into its rows: one large 2-D product
    Shape out_shape(a.shape().begin(), a.shape().end() - 1);
    const Tensor b2 = db == 1 ? b.unsqueeze(1) : b;
    if (db == 2) out_shape.push_back(b.shape()[1]);
    return matmul_core(a.reshape({-1, ka}), b2).view(out_shape);
  }
  // batched with broadcasting of the batch dims
  const Tensor a2 = da == 1 ? a.unsqueeze(0) : a;
  const Tensor b2 = db == 1 ? b.unsqueeze(1) : b;
  const Shape batch = broadcast_shapes("matmul", batch_of(a2), batch_of(b2));
  const int64_t nbatch = numel_of(batch);
  Shape out_shape = batch;
  if (da > 1) out_shape.push_back(a2.shape()[size_t(a2.dim() - 2)]);
  if (db > 1) out_shape.push_back(b2.shape()[size_t(b2.dim() - 1)]);
  Tensor out = matmul_core(fold_batch(a2, batch, nbatch), fold_batch(b2, batch, nbatch));
  return out.reshape(out_shape);
}

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  check_defined("linear", {&x, &weight});
  common_device("linear", {&x, &weight, &bias});
  KILN_CHECK(x.dim() >= 1, "linear", "input must have at least 1 dimension, got shape ", shape_str(x.shape()));
  detail::check_dim("linear", weight, 2, "weight");
  check_matmul_dtypes("linear", x, weight);
  KILN_CHECK(x.shape().back() == weight.shape()[1], "linear", "input of shape ", shape_str(x.shape()),
             " has ", x.shape().back(), " features but weight of shape ", shape_str(weight.shape()), " expects ",
             weight.shape()[1]);
  if (bias.defined()) {
    KILN_CHECK(bias.dim() == 1 && bias.shape()[0] == weight.shape()[0], "linear", "bias of shape ",
               shape_str(bias.shape()), " does not match weight of shape ", shape_str(weight.shape()),
               " (expected [", weight.shape()[0], "])");
    KILN_CHECK(bias.dtype() == x.dtype(), "linear", "bias dtype ", dtype_name(bias.dtype()),
               " differs from input dtype ", dtype_name(x.dtype()));
  }
  Tensor y = matmul(x, weight.t());  // weight^T is a column-major view: no copy
  if (bias.defined()) add_(y, bias);
  return y;
}

Tensor Tensor::matmul(const Tensor& o) const { return kiln::matmul(*this, o); }

}  // namespace kiln
