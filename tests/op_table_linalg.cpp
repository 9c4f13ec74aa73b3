// OpInfo entries of the linalg family: matmul (all of PyTorch's shape cases), mm, bmm,
// mv, linear; conv2d and conv_transpose2d; the pools. References are naive loops in double.
#include <algorithm>
#include <cmath>
#include <limits>

#include "tests/support/op_info.h"

namespace kiln::testing {
namespace {

// ---------------------------------------------------------------- matmul family

// PyTorch's matmul rules on float64 contiguous CPU tensors, with plain loops.
Tensor ref_matmul(const Tensor& a, const Tensor& b) {
  Shape sa = a.shape(), sb = b.shape();
  const bool va = sa.size() == 1, vb = sb.size() == 1;
  if (va) sa.insert(sa.begin(), 1);
  if (vb) sb.push_back(1);
  const int64_t m = sa[sa.size() - 2], k = sa.back(), n = sb.back();
  Shape ba(sa.begin(), sa.end() - 2), bb(sb.begin(), sb.end() - 2);
  const size_t nd = std::max(ba.size(), bb.size());
  ba.insert(ba.begin(), nd - ba.size(), 1);
  bb.insert(bb.begin(), nd - bb.size(), 1);
  Shape batch(nd);
  for (size_t d = 0; d < nd; ++d) batch[d] = std::max(ba[d], bb[d]);
  Shape out_shape = batch;
  if (!va) out_shape.push_back(m);
  if (!vb) out_shape.push_back(n);
  Tensor out = ref_empty(out_shape);
  const double *pa = ref_data(a), *pb = ref_data(b);
  double* po = out.data<double>();
  int64_t nbatch = 1;
  for (auto x : batch) nbatch *= x;
  for (int64_t z = 0; z < nbatch; ++z) {
    int64_t rem = z, oa = 0, ob = 0, sta = 1, stb = 1;
    for (size_t d = nd; d-- > 0;) {
      const int64_t i = rem % batch[d];
      rem /= batch[d];
      oa += (ba[d] == 1 ? 0 : i) * sta;
      ob += (bb[d] == 1 ? 0 : i) * stb;
      sta *= ba[d];
      stb *= bb[d];
    }
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t p = 0; p < k; ++p) s += pa[oa * m * k + i * k + p] * pb[ob * k * n + p * n + j];
        po[z * m * n + i * n + j] = s;
      }
  }
  return out;
}

Tolerance matmul_tol(DType t) {
  switch (t) {
    case DType::Float32: return {1e-4, 1e-4};
    case DType::Float16: return {2e-3, 2e-3};
    case DType::BFloat16: return {1e-2, 2e-2};
    default: return {1e-10, 1e-10};
  }
}

OpSample sample(Generator& g, const std::vector<Shape>& shapes) {
  OpSample s;
  for (size_t i = 0; i < shapes.size(); ++i) {
    s.inputs.push_back(random_input(shapes[i], g));
    s.description += (i ? " x " : "") + shape_str(shapes[i]);
  }
  return s;
}

std::vector<OpSample> samples_of(Generator& g, const std::vector<std::vector<Shape>>& cases) {
  std::vector<OpSample> out;
  for (const auto& c : cases) out.push_back(sample(g, c));
  return out;
}


// ---------------------------------------------------------------- convolutions

struct ConvParams {
  Pair s{1, 1}, p{0, 0}, d{1, 1};
  int64_t g = 1;
  Pair op{0, 0};  // conv_transpose2d's output_padding
};

// y[n,o,i,j] = b[o] + sum_{c,u,v} x[n, grp*cg + c, i*s - p + u*d, j*s - p + v*d] * w[o, c, u, v]
Tensor ref_conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const ConvParams& q) {
  const int64_t n = x.shape()[0], c = x.shape()[1], h = x.shape()[2], wd = x.shape()[3];
  const int64_t o = w.shape()[0], kh = w.shape()[2], kw = w.shape()[3], cg = c / q.g, og = o / q.g;
  const int64_t oh = (h + 2 * q.p[0] - q.d[0] * (kh - 1) - 1) / q.s[0] + 1;
  const int64_t ow = (wd + 2 * q.p[1] - q.d[1] * (kw - 1) - 1) / q.s[1] + 1;
  Tensor y = ref_empty({n, o, oh, ow});
  const double *px = ref_data(x), *pw = ref_data(w), *pb = b.defined() ? ref_data(b) : nullptr;
  double* py = y.data<double>();
  for (int64_t in = 0; in < n; ++in)
    for (int64_t io = 0; io < o; ++io)
      for (int64_t i = 0; i < oh; ++i)
        for (int64_t j = 0; j < ow; ++j) {
          double acc = pb ? pb[io] : 0.0;
          for (int64_t ic = 0; ic < cg; ++ic)
            for (int64_t u = 0; u < kh; ++u)
              for (int64_t v = 0; v < kw; ++v) {
                const int64_t ih = i * q.s[0] - q.p[0] + u * q.d[0], iw = j * q.s[1] - q.p[1] + v * q.d[1];
                if (ih < 0 || ih >= h || iw < 0 || iw >= wd) continue;
                acc += px[((in * c + (io / og) * cg + ic) * h + ih) * wd + iw] * pw[((io * cg + ic) * kh + u) * kw + v];
              }
          py[((in * o + io) * oh + i) * ow + j] = acc;
        }
  return y;
}

// y[n, co, i*s - p + u*d, j*s - p + v*d] += x[n, ci, i, j] * w[ci, co % cog, u, v] (ci in co's group)
Tensor ref_conv_transpose2d(const Tensor& x, const Tensor& w, const Tensor& b, const ConvParams& q) {
  const int64_t n = x.shape()[0], cin = x.shape()[1], h = x.shape()[2], wd = x.shape()[3];
  const int64_t cog = w.shape()[1], kh = w.shape()[2], kw = w.shape()[3], cout = cog * q.g, cig = cin / q.g;
  const int64_t oh = (h - 1) * q.s[0] - 2 * q.p[0] + q.d[0] * (kh - 1) + q.op[0] + 1;
  const int64_t ow = (wd - 1) * q.s[1] - 2 * q.p[1] + q.d[1] * (kw - 1) + q.op[1] + 1;
  Tensor y = ref_empty({n, cout, oh, ow});
  const double *px = ref_data(x), *pw = ref_data(w), *pb = b.defined() ? ref_data(b) : nullptr;
  double* py = y.data<double>();
  for (int64_t in = 0; in < n; ++in)
    for (int64_t co = 0; co < cout; ++co)
      for (int64_t k = 0; k < oh * ow; ++k) py[(in * cout + co) * oh * ow + k] = pb ? pb[co] : 0.0;
  for (int64_t in = 0; in < n; ++in)
    for (int64_t ci = 0; ci < cin; ++ci)
      for (int64_t i = 0; i < h; ++i)
        for (int64_t j = 0; j < wd; ++j)
          for (int64_t col = 0; col < cog; ++col)
            for (int64_t u = 0; u < kh; ++u)
              for (int64_t v = 0; v < kw; ++v) {
                const int64_t yh = i * q.s[0] - q.p[0] + u * q.d[0], yw = j * q.s[1] - q.p[1] + v * q.d[1];
                if (yh < 0 || yh >= oh || yw < 0 || yw >= ow) continue;
                py[((in * cout + (ci / cig) * cog + col) * oh + yh) * ow + yw] +=
                    px[((in * cin + ci) * h + i) * wd + j] * pw[((ci * cog + col) * kh + u) * kw + v];
              }
  return y;
}

Tolerance conv_tol(DType t) {
  switch (t) {
    case DType::Float32: return {1e-4, 1e-4};
    case DType::Float16: return {4e-3, 4e-3};
    case DType::BFloat16: return {2e-2, 4e-2};
    default: return {1e-10, 1e-10};
  }
}

OpInfo conv_entry(const std::string& name, std::vector<std::vector<Shape>> shapes, ConvParams q, bool transpose) {
  const bool bias = shapes[0].size() == 3;
  return OpInfo{
      .name = name,
      .samples = [shapes](Layout l, Generator& g) {
        if (l == Layout::Broadcast) return std::vector<OpSample>{};
        return samples_of(g, shapes);
      },
      .op = [q, transpose, bias](const std::vector<Tensor>& in) {
        const Tensor b = bias ? in[2] : Tensor();
        return transpose ? conv_transpose2d(in[0], in[1], b, q.s, q.p, q.op, q.g, q.d)
                         : conv2d(in[0], in[1], b, q.s, q.p, q.d, q.g);
      },
      .reference = [q, transpose, bias](const std::vector<Tensor>& in) {
        const Tensor b = bias ? in[2] : Tensor();
        return transpose ? ref_conv_transpose2d(in[0], in[1], b, q) : ref_conv2d(in[0], in[1], b, q);
      },
      .tolerance = conv_tol,
  };
}


// ---------------------------------------------------------------- pools

struct PoolParams {
  Pair k{2, 2}, s{2, 2}, p{0, 0}, d{1, 1};
  bool ceil = false, include_pad = true;
};

int64_t ref_pool_out(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, bool ceil) {
  const double span = double(in + 2 * p - d * (k - 1) - 1) / double(s);
  int64_t o = int64_t(ceil ? std::ceil(span) : std::floor(span)) + 1;
  if (ceil && (o - 1) * s >= in + p) --o;
  return o;
}

// values (want_indices = false) or int64 flat indices of each window's first maximum; a NaN
// beats every number (PyTorch propagates NaN)
Tensor ref_max_pool2d(const Tensor& x, const PoolParams& q, bool want_indices) {
  const int64_t n = x.shape()[0], c = x.shape()[1], h = x.shape()[2], w = x.shape()[3];
  const int64_t oh = ref_pool_out(h, q.k[0], q.s[0], q.p[0], q.d[0], q.ceil);
  const int64_t ow = ref_pool_out(w, q.k[1], q.s[1], q.p[1], q.d[1], q.ceil);
  Tensor y = ref_empty({n, c, oh, ow}), idx = ref_empty({n, c, oh, ow}, DType::Int64);
  const double* px = ref_data(x);
  for (int64_t pl = 0; pl < n * c; ++pl)
    for (int64_t i = 0; i < oh; ++i)
      for (int64_t j = 0; j < ow; ++j) {
        double best = -std::numeric_limits<double>::infinity();
        int64_t arg = -1;
        for (int64_t u = 0; u < q.k[0]; ++u)
          for (int64_t v = 0; v < q.k[1]; ++v) {
            const int64_t r = i * q.s[0] - q.p[0] + u * q.d[0], cc = j * q.s[1] - q.p[1] + v * q.d[1];
            if (r < 0 || r >= h || cc < 0 || cc >= w) continue;
            const double val = px[pl * h * w + r * w + cc];
            if (arg < 0 || val > best || (std::isnan(val) && !std::isnan(best))) best = val, arg = r * w + cc;
          }
        y.data<double>()[(pl * oh + i) * ow + j] = best;
        idx.data<int64_t>()[(pl * oh + i) * ow + j] = arg;
      }
  return want_indices ? idx : y;
}

Tensor ref_avg_pool2d(const Tensor& x, const PoolParams& q) {
  const int64_t n = x.shape()[0], c = x.shape()[1], h = x.shape()[2], w = x.shape()[3];
  const int64_t oh = ref_pool_out(h, q.k[0], q.s[0], q.p[0], 1, q.ceil), ow = ref_pool_out(w, q.k[1], q.s[1], q.p[1], 1, q.ceil);
  Tensor y = ref_empty({n, c, oh, ow});
  const double* px = ref_data(x);
  for (int64_t pl = 0; pl < n * c; ++pl)
    for (int64_t i = 0; i < oh; ++i)
      for (int64_t j = 0; j < ow; ++j) {
        const int64_t r0 = i * q.s[0] - q.p[0], c0 = j * q.s[1] - q.p[1];
        const int64_t r1 = std::min(r0 + q.k[0], h + q.p[0]), c1 = std::min(c0 + q.k[1], w + q.p[1]);
        double s = 0;
        int64_t inside = 0;
        for (int64_t r = r0; r < r1; ++r)
          for (int64_t cc = c0; cc < c1; ++cc)
            if (r >= 0 && r < h && cc >= 0 && cc < w) s += px[pl * h * w + r * w + cc], ++inside;
        y.data<double>()[(pl * oh + i) * ow + j] = s / double(q.include_pad ? (r1 - r0) * (c1 - c0) : inside);
      }
  return y;
}

Tensor ref_adaptive_avg_pool2d(const Tensor& x, int64_t oh, int64_t ow) {
  const int64_t n = x.shape()[0], c = x.shape()[1], h = x.shape()[2], w = x.shape()[3];
  Tensor y = ref_empty({n, c, oh, ow});
  const double* px = ref_data(x);
  for (int64_t pl = 0; pl < n * c; ++pl)
    for (int64_t i = 0; i < oh; ++i)
      for (int64_t j = 0; j < ow; ++j) {
        const int64_t r0 = int64_t(std::floor(double(i * h) / double(oh))), r1 = int64_t(std::ceil(double((i + 1) * h) / double(oh)));
        const int64_t c0 = int64_t(std::floor(double(j * w) / double(ow))), c1 = int64_t(std::ceil(double((j + 1) * w) / double(ow)));
        double s = 0;
        for (int64_t r = r0; r < r1; ++r)
          for (int64_t cc = c0; cc < c1; ++cc) s += px[pl * h * w + r * w + cc];
        y.data<double>()[(pl * oh + i) * ow + j] = s / double((r1 - r0) * (c1 - c0));
      }
  return y;
}

Tolerance pool_tol(DType t) {
  switch (t) {
    case DType::Float32: return {1e-5, 1e-5};
    case DType::Float16: return {2e-3, 2e-3};
    case DType::BFloat16: return {1e-2, 2e-2};
    default: return {1e-10, 1e-10};
  }
}

std::function<std::vector<OpSample>(Layout, Generator&)> pool_samples(std::vector<std::vector<Shape>> shapes) {
  return [shapes](Layout l, Generator& g) {
    if (l == Layout::Broadcast) return std::vector<OpSample>{};
    return samples_of(g, shapes);
  };
}

// pool_samples with NaN at every nan_every-th element (0: none), so that some windows
// hold a NaN and others don't.
std::function<std::vector<OpSample>(Layout, Generator&)> pool_samples(std::vector<std::vector<Shape>> shapes,
                                                                     int64_t nan_every) {
  return [shapes, nan_every](Layout l, Generator& g) {
    auto out = pool_samples(shapes)(l, g);
    for (OpSample& smp : out) {
      double* p = smp.inputs[0].data<double>();
      for (int64_t i = 0; nan_every > 0 && i < smp.inputs[0].numel(); i += nan_every)
        p[i] = std::numeric_limits<double>::quiet_NaN();
    }
    return out;
  };
}

OpInfo max_pool_entry(const std::string& name, std::vector<std::vector<Shape>> shapes, PoolParams q, bool indices,
                      int64_t nan_every = 0) {
  OpInfo o{
      .name = name,
      .samples = pool_samples(shapes, nan_every),
      .op = [q, indices](const std::vector<Tensor>& in) {
        if (indices) return max_pool2d_with_indices(in[0], q.k, q.s, q.p, q.d, q.ceil).second;
        return max_pool2d(in[0], q.k, q.s, q.p, q.d, q.ceil);
      },
      .reference = [q, indices](const std::vector<Tensor>& in) { return ref_max_pool2d(in[0], q, indices); },
      .tolerance = pool_tol,
  };
  o.output_keeps_integer_dtype = indices;
  return o;
}

OpInfo avg_pool_entry(const std::string& name, std::vector<std::vector<Shape>> shapes, PoolParams q) {
  return OpInfo{
      .name = name,
      .samples = pool_samples(shapes),
      .op = [q](const std::vector<Tensor>& in) { return avg_pool2d(in[0], q.k, q.s, q.p, q.ceil, q.include_pad); },
      .reference = [q](const std::vector<Tensor>& in) { return ref_avg_pool2d(in[0], q); },
      .tolerance = pool_tol,
  };
}

const DTypeSet kMatmulDTypes = kFloatingDTypes | dtypes({DType::Int32, DType::Int64});

std::vector<OpInfo> linalg_ops() {
  std::vector<OpInfo> ops;
  ops.push_back(OpInfo{
      .name = "matmul",
      .dtypes = kMatmulDTypes,
      .samples = [](Layout l, Generator& g) {
        if (l == Layout::Broadcast)
          return samples_of(g, {{{2, 1, 3, 4}, {1, 5, 4, 2}}, {{1, 3, 4}, {6, 4, 5}}, {{3, 2, 4}, {1, 4, 3}}});
        return samples_of(g, {{{5}, {5}},
                              {{3, 5}, {5}},
                              {{5}, {5, 4}},
                              {{3, 5}, {5, 4}},
                              {{2, 3, 5}, {2, 5, 4}},
                              {{2, 3, 5}, {5, 4}},
                              {{3, 5}, {2, 5, 4}},
                              {{2, 3, 5}, {5}},
                              {{5}, {2, 5, 4}},
                              {{2, 2, 3, 5}, {2, 5, 4}},
                              {{17, 33}, {33, 9}}});
      },
      .op = [](const std::vector<Tensor>& in) { return matmul(in[0], in[1]); },
      .reference = [](const std::vector<Tensor>& in) { return ref_matmul(in[0], in[1]); },
      .tolerance = matmul_tol,
  });
  ops.push_back(OpInfo{
      .name = "mm",
      .dtypes = kMatmulDTypes,
      .samples = [](Layout l, Generator& g) {
        if (l == Layout::Broadcast) return std::vector<OpSample>{};
        return samples_of(g, {{{4, 6}, {6, 3}}, {{1, 7}, {7, 1}}, {{9, 2}, {2, 11}}});
      },
      .op = [](const std::vector<Tensor>& in) { return mm(in[0], in[1]); },
      .reference = [](const std::vector<Tensor>& in) { return ref_matmul(in[0], in[1]); },
      .tolerance = matmul_tol,
  });
  ops.push_back(OpInfo{
      .name = "bmm",
      .dtypes = kMatmulDTypes,
      .samples = [](Layout l, Generator& g) {
        if (l == Layout::Broadcast) return std::vector<OpSample>{};
        return samples_of(g, {{{3, 4, 6}, {3, 6, 2}}, {{1, 2, 3}, {1, 3, 4}}});
      },
      .op = [](const std::vector<Tensor>& in) { return bmm(in[0], in[1]); },
      .reference = [](const std::vector<Tensor>& in) { return ref_matmul(in[0], in[1]); },
      .tolerance = matmul_tol,
  });
  ops.push_back(OpInfo{
      .name = "mv",
      .dtypes = kMatmulDTypes,
      .samples = [](Layout l, Generator& g) {
        if (l == Layout::Broadcast) return std::vector<OpSample>{};
        return samples_of(g, {{{4, 6}, {6}}, {{1, 3}, {3}}});
      },
      .op = [](const std::vector<Tensor>& in) { return mv(in[0], in[1]); },
      .reference = [](const std::vector<Tensor>& in) { return ref_matmul(in[0], in[1]); },
      .tolerance = matmul_tol,
  });
  ops.push_back(OpInfo{
      .name = "linear",
      .samples = [](Layout l, Generator& g) {
        if (l == Layout::Broadcast) return std::vector<OpSample>{};
        return samples_of(g, {{{3, 5}, {4, 5}, {4}}, {{2, 3, 5}, {4, 5}, {4}}, {{5}, {2, 5}, {2}}});
      },
      .op = [](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); },
      .reference = [](const std::vector<Tensor>& in) {
        const Tensor& x = in[0];
        const int64_t fin = x.shape().back(), fout = in[1].shape()[0], rows = x.numel() / fin;
        Shape out_shape = x.shape();
        out_shape.back() = fout;
        Tensor out = ref_empty(out_shape);
        const double *px = ref_data(x), *pw = ref_data(in[1]), *pb = ref_data(in[2]);
        double* po = out.data<double>();
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t o = 0; o < fout; ++o) {
            double s = pb[o];
            for (int64_t i = 0; i < fin; ++i) s += px[r * fin + i] * pw[o * fin + i];
            po[r * fout + o] = s;
          }
        return out;
      },
      .tolerance = matmul_tol,
  });
  ops.push_back(conv_entry("conv2d", {{{2, 3, 6, 5}, {4, 3, 3, 3}, {4}}, {{1, 2, 4, 4}, {3, 2, 1, 1}, {3}}},
                           ConvParams{{1, 1}, {1, 1}, {1, 1}, 1}, false));
  ops.push_back(conv_entry("conv2d_stride_dilation", {{{1, 3, 9, 8}, {2, 3, 3, 2}}},
                           ConvParams{{2, 1}, {1, 0}, {1, 2}, 1}, false));
  ops.push_back(conv_entry("conv2d_groups", {{{2, 4, 6, 6}, {6, 2, 3, 3}, {6}}}, ConvParams{{1, 2}, {0, 1}, {2, 1}, 2},
                           false));
  ops.push_back(conv_entry("conv2d_depthwise", {{{1, 4, 7, 7}, {4, 1, 3, 3}, {4}}}, ConvParams{{2, 2}, {1, 1}, {1, 1}, 4},
                           false));
  ops.push_back(conv_entry("conv_transpose2d", {{{2, 3, 4, 5}, {3, 2, 3, 3}, {2}}},
                           ConvParams{{2, 2}, {1, 1}, {1, 1}, 1, {1, 0}}, true));
  ops.push_back(conv_entry("conv_transpose2d_groups_dilation", {{{1, 4, 3, 4}, {4, 3, 2, 3}, {6}}},
                           ConvParams{{3, 2}, {0, 1}, {1, 2}, 2, {2, 1}}, true));
  ops.push_back(max_pool_entry("max_pool2d", {{{2, 3, 6, 6}}, {{1, 2, 5, 7}}}, PoolParams{{2, 2}, {2, 2}}, false));
  ops.push_back(max_pool_entry("max_pool2d_padding_ceil", {{{2, 3, 6, 6}}, {{1, 2, 7, 5}}},
                               PoolParams{{3, 3}, {2, 2}, {1, 1}, {1, 1}, true}, false));
  ops.push_back(max_pool_entry("max_pool2d_dilation", {{{1, 2, 9, 8}}}, PoolParams{{3, 2}, {1, 2}, {1, 1}, {2, 1}, true},
                               false));
  ops.push_back(max_pool_entry("max_pool2d_nan", {{{2, 3, 6, 6}}, {{1, 2, 7, 5}}},
                               PoolParams{{3, 3}, {2, 2}, {1, 1}, {1, 1}, true}, false, 17));
  ops.push_back(max_pool_entry("max_pool2d_indices", {{{2, 3, 6, 6}}, {{1, 2, 9, 8}}},
                               PoolParams{{3, 2}, {2, 1}, {1, 1}, {1, 2}, true}, true));
  ops.push_back(avg_pool_entry("avg_pool2d", {{{2, 3, 6, 6}}, {{1, 2, 5, 7}}}, PoolParams{{2, 2}, {2, 2}}));
  ops.push_back(avg_pool_entry("avg_pool2d_ceil_include_pad", {{{2, 3, 6, 6}}, {{1, 2, 7, 5}}},
                               PoolParams{{3, 3}, {2, 2}, {1, 1}, {1, 1}, true, true}));
  ops.push_back(avg_pool_entry("avg_pool2d_exclude_pad", {{{2, 3, 6, 6}}, {{1, 2, 7, 5}}},
                               PoolParams{{3, 2}, {2, 1}, {1, 1}, {1, 1}, true, false}));
  ops.push_back(OpInfo{
      .name = "adaptive_avg_pool2d",
      .samples = pool_samples({{{2, 3, 7, 5}}, {{1, 2, 6, 6}}, {{1, 1, 3, 2}}}),
      .op = [](const std::vector<Tensor>& in) { return adaptive_avg_pool2d(in[0], {3, 2}); },
      .reference = [](const std::vector<Tensor>& in) { return ref_adaptive_avg_pool2d(in[0], 3, 2); },
      .tolerance = pool_tol,
  });
  return ops;
}

}  // namespace

KILN_REGISTER_OPS(linalg_ops());

}  // namespace kiln::testing
