// Backward formulas of the reductions and the softmax family. A reduction's gradient is
// the output gradient broadcast back over the reduced dims (times the op's local factor).
#include "kiln/ops.h"
#include "kiln/ops_nn_backward.h"
#include "src/autograd/record.h"

namespace kiln::autograd {

namespace {
using V = std::vector<Tensor>;

// t (the reduction's output or its gradient) with the reduced dims restored as size 1.
Tensor keepdim_view(const Tensor& t, int64_t in_rank, const std::vector<int64_t>& dims, bool keepdim) {
  if (keepdim) return t;
  if (dims.empty()) return t.reshape(Shape(size_t(in_rank), 1));
  Tensor r = t;
  for (int64_t d : dims) r = r.unsqueeze(d);  // dims are sorted ascending
  return r;
}

int64_t reduced_count(const Shape& shape, const std::vector<int64_t>& dims) {
  if (dims.empty()) return numel_of(shape);
  int64_t n = 1;
  for (int64_t d : dims) n *= shape[size_t(d)];
  return n;
}
}  // namespace

void record_reduce(OpId op, const Tensor& out, const Tensor& a, const ReduceAttrs& attrs) {
  if (!is_floating(out.dtype()) || !should_record({&a})) return;
  const Shape shape = a.shape();
  const int64_t rank = a.dim();
  const std::vector<int64_t> dims = attrs.dims;
  const bool keepdim = attrs.keepdim;
  switch (op) {
    case OpId::Sum:
      record("SumBackward", {out}, {a}, {}, [=](BackwardCtx& c) {
        return V{keepdim_view(c.grad(), rank, dims, keepdim).expand(shape)};
      });
      return;
    case OpId::Mean: {
      const double n = double(reduced_count(shape, dims));
      record("MeanBackward", {out}, {a}, {}, [=](BackwardCtx& c) {
        return V{keepdim_view(c.grad(), rank, dims, keepdim).expand(shape) / n};
      });
      return;
    }
    case OpId::Amax:
    case OpId::Amin:
      // Ties share the gradient evenly, as in PyTorch.
      record(op == OpId::Amax ? "AmaxBackward" : "AminBackward", {out}, {a}, {a, out}, [=](BackwardCtx& c) {
        const Tensor& x = c.saved[0];
        const Tensor hit = eq(x, keepdim_view(c.saved[1], rank, dims, keepdim)).to(x.dtype());
        const Tensor count = sum(hit, dims, /*keepdim=*/true);
        return V{hit * (keepdim_view(c.grad(), rank, dims, keepdim) / count)};
      });
      return;
    case OpId::Var: {
      const double denom = double(reduced_count(shape, dims) - attrs.correction);
      record("VarBackward", {out}, {a}, {a}, [=](BackwardCtx& c) {
        const Tensor& x = c.saved[0];
        const Tensor centered = x - mean(x, dims, /*keepdim=*/true);
        return V{centered * keepdim_view(c.grad(), rank, dims, keepdim) * (2.0 / denom)};
      });
      return;
    }
    default:
      return;
  }
}

void record_reduce_with_index(OpId op, const Tensor& values, const Tensor& indices, const Tensor& a, int64_t dim,
                              bool keepdim) {
  if (!should_record({&a})) return;
  const Shape shape = a.shape();
  // The gradient goes to the one position the index names.
  record(op == OpId::MaxDim ? "MaxBackward" : "MinBackward", {values}, {a}, {indices}, [=](BackwardCtx& c) {
    const Tensor& g = c.grad();
    if (shape.empty()) return V{g};
    const Tensor idx = keepdim ? c.saved[0] : c.saved[0].unsqueeze(dim);
    const Tensor gk = keepdim ? g : g.unsqueeze(dim);
    return V{scatter_add(zeros(shape, TensorOptions(g.dtype()).device(g.device())), dim, idx, gk)};
  });
}

void record_softmax(OpId op, const Tensor& out, const Tensor& a, int64_t dim) {
  if (!should_record({&a})) return;
  if (op == OpId::Softmax)
    record("SoftmaxBackward", {out}, {a}, {out},
           [dim](BackwardCtx& c) { return V{softmax_backward(c.grad(), c.saved[0], dim)}; });
  else
    record("LogSoftmaxBackward", {out}, {a}, {out},
           [dim](BackwardCtx& c) { return V{log_softmax_backward(c.grad(), c.saved[0], dim)}; });
}

}  // namespace kiln::autograd
