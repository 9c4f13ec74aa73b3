// OpInfo entries of the pooling backward ops (max_pool2d_backward, avg_pool2d_backward,
// adaptive_avg_pool2d_backward), so they run on every dtype, layout and device like the
// forward ops. References are naive double loops: each output's gradient added to the
// input position(s) its window reads.
#include <algorithm>
#include <cmath>

#include "kiln/ops_backward.h"
#include "tests/support/op_info.h"

namespace kiln::testing {
namespace {

Tolerance backward_tol(DType t) {
  switch (t) {
    case DType::Float32: return {1e-5, 1e-5};
    case DType::Float16: return {2e-3, 2e-3};
    case DType::BFloat16: return {1e-2, 2e-2};
    default: return {1e-10, 1e-10};
  }
}

int64_t pooled(int64_t in, int64_t k, int64_t s, int64_t p, bool ceil) {
  const double span = double(in + 2 * p - (k - 1) - 1) / double(s);
  int64_t o = int64_t(ceil ? std::ceil(span) : std::floor(span)) + 1;
  if (ceil && (o - 1) * s >= in + p) --o;
  return o;
}

// grad_x of a max pool from grad_y [N, C, OH, OW] and int64 in-plane indices of its shape.
Tensor ref_max_backward(const Tensor& gy, const Tensor& idx, const Shape& x) {
  Tensor gx = ref_empty(x);
  std::fill(gx.data<double>(), gx.data<double>() + gx.numel(), 0.0);
  const int64_t plane_in = x[2] * x[3], plane_out = gy.shape()[2] * gy.shape()[3];
  const auto iv = idx.to_vector<int64_t>();
  for (int64_t o = 0; o < gy.numel(); ++o) gx.data<double>()[(o / plane_out) * plane_in + iv[size_t(o)]] += ref_data(gy)[o];
  return gx;
}

struct AvgCase {
  Shape x;
  Pair k, s, p;
  bool ceil, include_pad;
};

// PyTorch's avg_pool2d windows and divisors, each output's gradient spread over its window.
Tensor ref_avg_backward(const Tensor& gy, const AvgCase& q) {
  const int64_t planes = q.x[0] * q.x[1], h = q.x[2], w = q.x[3], oh = gy.shape()[2], ow = gy.shape()[3];
  Tensor gx = ref_empty(q.x);
  double* out = gx.data<double>();
  std::fill(out, out + gx.numel(), 0.0);
  for (int64_t pl = 0; pl < planes; ++pl)
    for (int64_t i = 0; i < oh; ++i)
      for (int64_t j = 0; j < ow; ++j) {
        const int64_t r0 = i * q.s[0] - q.p[0], c0 = j * q.s[1] - q.p[1];
        const int64_t r1 = std::min(r0 + q.k[0], h + q.p[0]), c1 = std::min(c0 + q.k[1], w + q.p[1]);
        int64_t inside = 0;
        for (int64_t r = std::max<int64_t>(r0, 0); r < std::min(r1, h); ++r)
          for (int64_t c = std::max<int64_t>(c0, 0); c < std::min(c1, w); ++c) ++inside;
        const double v = ref_data(gy)[(pl * oh + i) * ow + j] / double(q.include_pad ? (r1 - r0) * (c1 - c0) : inside);
        for (int64_t r = std::max<int64_t>(r0, 0); r < std::min(r1, h); ++r)
          for (int64_t c = std::max<int64_t>(c0, 0); c < std::min(c1, w); ++c) out[(pl * h + r) * w + c] += v;
      }
  return gx;
}

// Output cell i covers input rows [floor(i*H/OH), ceil((i+1)*H/OH)).
Tensor ref_adaptive_backward(const Tensor& gy, const Shape& x) {
  const int64_t planes = x[0] * x[1], h = x[2], w = x[3], oh = gy.shape()[2], ow = gy.shape()[3];
  Tensor gx = ref_empty(x);
  double* out = gx.data<double>();
  std::fill(out, out + gx.numel(), 0.0);
  for (int64_t pl = 0; pl < planes; ++pl)
    for (int64_t i = 0; i < oh; ++i)
      for (int64_t j = 0; j < ow; ++j) {
        const int64_t r0 = (i * h) / oh, r1 = ((i + 1) * h + oh - 1) / oh;
        const int64_t c0 = (j * w) / ow, c1 = ((j + 1) * w + ow - 1) / ow;
        const double v = ref_data(gy)[(pl * oh + i) * ow + j] / double((r1 - r0) * (c1 - c0));
        for (int64_t r = r0; r < r1; ++r)
          for (int64_t c = c0; c < c1; ++c) out[(pl * h + r) * w + c] += v;
      }
  return gx;
}

std::vector<OpInfo> pool_backward_ops() {
  std::vector<OpInfo> ops;
  // Indices anywhere in the plane (the op's contract), with repeats so gradients add up.
  ops.push_back(OpInfo{
      .name = "max_pool2d_backward",
      .samples = [](Layout l, Generator& g) {
        if (l == Layout::Broadcast) return std::vector<OpSample>{};
        OpSample s;
        s.inputs = {random_input({2, 3, 4, 5}, g), random_integers({2, 3, 4, 5}, g, 0, 8 * 9 - 1).to(DType::Int64)};
        s.fixed_dtype_inputs = {1};
        s.description = "grad [2, 3, 4, 5], indices into 8 x 9 planes";
        return std::vector<OpSample>{s};
      },
      .op = [](const std::vector<Tensor>& in) { return max_pool2d_backward(in[0], in[1], {2, 3, 8, 9}); },
      .reference = [](const std::vector<Tensor>& in) { return ref_max_backward(in[0], in[1], {2, 3, 8, 9}); },
      .tolerance = backward_tol,
  });
  for (const AvgCase& q : {AvgCase{{2, 3, 6, 7}, {2, 2}, {2, 2}, {0, 0}, false, true},
                           AvgCase{{1, 2, 7, 5}, {3, 3}, {2, 2}, {1, 1}, true, false},
                           AvgCase{{1, 2, 7, 5}, {3, 2}, {2, 1}, {1, 1}, true, true},
                           // stride > kernel: rows 2, 5 and columns 2, 5, 8 lie in no window (gradient 0)
                           AvgCase{{1, 2, 8, 9}, {2, 2}, {3, 3}, {0, 0}, false, true}}) {
    const Shape y = {q.x[0], q.x[1], pooled(q.x[2], q.k[0], q.s[0], q.p[0], q.ceil),
                     pooled(q.x[3], q.k[1], q.s[1], q.p[1], q.ceil)};
    ops.push_back(OpInfo{
        .name = "avg_pool2d_backward",
        .samples = [y](Layout l, Generator& g) {
          if (l == Layout::Broadcast) return std::vector<OpSample>{};
          OpSample s;
          s.inputs = {random_input(y, g)};
          s.description = "grad " + shape_str(y);
          return std::vector<OpSample>{s};
        },
        .op = [q](const std::vector<Tensor>& in) {
          return avg_pool2d_backward(in[0], q.x, q.k, q.s, q.p, q.ceil, q.include_pad);
        },
        .reference = [q](const std::vector<Tensor>& in) { return ref_avg_backward(in[0], q); },
        .tolerance = backward_tol,
    });
  }
  // Shrinking (cells of 2-3 rows) and growing (an output larger than the input: cells overlap).
  for (const auto& [gy, x] : {std::pair<Shape, Shape>{{2, 3, 3, 2}, {2, 3, 7, 5}}, {{1, 2, 5, 4}, {1, 2, 3, 3}}}) {
    ops.push_back(OpInfo{
        .name = "adaptive_avg_pool2d_backward",
        .samples = [gy, x](Layout l, Generator& g) {
          if (l == Layout::Broadcast) return std::vector<OpSample>{};
          OpSample s;
          s.inputs = {random_input(gy, g)};
          s.description = "grad " + shape_str(gy) + " of a " + shape_str(x) + " input";
          return std::vector<OpSample>{s};
        },
        .op = [x](const std::vector<Tensor>& in) { return adaptive_avg_pool2d_backward(in[0], x); },
        .reference = [x](const std::vector<Tensor>& in) { return ref_adaptive_backward(in[0], x); },
        .tolerance = backward_tol,
    });
  }
  return ops;
}

}  // namespace

KILN_REGISTER_OPS(pool_backward_ops());

}  // namespace kiln::testing
