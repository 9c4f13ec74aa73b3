// OpInfo entries for the reductions and the softmax family of include/kiln/ops.h: sum, mean,
// amax/amin, max/min (all, and over a dim: values and indices), argmax/argmin, var/std,
// softmax/log_softmax and their backward helpers. References are plain double loops.
//
// The dims of a sample (and keepdim, unbiased, ...) travel as its last input, an int64
// tensor {keepdim, extra, dims...} that the harness passes through unchanged (a fixed-dtype
// input); the op and the reference both decode it, so one entry covers many dims variants.
#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "tests/support/op_info.h"

namespace {
using namespace kiln;
using namespace kiln::testing;

struct Params {
  std::vector<int64_t> dims;
  bool keepdim = false;
  int64_t extra = 0;  // var/std: unbiased; argmax/argmin: has a dim
};

Tensor encode(const Params& p) {
  std::vector<int64_t> v{p.keepdim, p.extra};
  v.insert(v.end(), p.dims.begin(), p.dims.end());
  return tensor<int64_t>(v);
}

Params decode(const Tensor& t) {
  const std::vector<int64_t> v = t.to(kCpu).contiguous().to_vector<int64_t>();
  return Params{std::vector<int64_t>(v.begin() + 2, v.end()), v[0] != 0, v[1]};
}

std::string describe(const Shape& shape, const Shape& expand_to, const Params& p) {
  std::string s = shape_str(shape);
  if (!expand_to.empty()) s += " expanded to " + shape_str(expand_to);
  s += " dims " + shape_str(p.dims) + (p.keepdim ? " keepdim" : "");
  return s;
}

// ---- reference machinery: the float64 values of x grouped by output position
struct Groups {
  Shape out_shape;
  std::vector<std::vector<double>> values;
};

Groups group(const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  const int64_t nd = x.dim();
  for (auto& d : dims) d = d < 0 ? d + std::max<int64_t>(nd, 1) : d;
  std::vector<bool> red(size_t(nd), dims.empty());
  for (int64_t d : dims)
    if (d < nd) red[size_t(d)] = true;
  Groups g;
  int64_t nout = 1;
  for (int64_t d = 0; d < nd; ++d) {
    if (!red[size_t(d)]) g.out_shape.push_back(x.size(d)), nout *= x.size(d);
    else if (keepdim) g.out_shape.push_back(1);
  }
  g.values.resize(size_t(nout));
  const double* v = ref_data(x);
  std::vector<int64_t> idx(size_t(nd), 0);
  for (int64_t i = 0; i < x.numel(); ++i) {
    int64_t o = 0;
    for (int64_t d = 0; d < nd; ++d)
      if (!red[size_t(d)]) o = o * x.size(d) + idx[size_t(d)];
    g.values[size_t(o)].push_back(v[i]);
    for (int64_t d = nd - 1; d >= 0; --d) {
      if (++idx[size_t(d)] < x.size(d)) break;
      idx[size_t(d)] = 0;
    }
  }
  return g;
}

// One double per group (f), as float64 or int64 (indices).
Tensor ref_reduce(const Tensor& x, const Params& p, const std::function<double(const std::vector<double>&)>& f,
                  DType dtype = DType::Float64) {
  const Groups g = group(x, p.dims, p.keepdim);
  Tensor out = ref_empty(g.out_shape, dtype);
  for (size_t i = 0; i < g.values.size(); ++i) {
    const double r = f(g.values[i]);
    if (dtype == DType::Int64) out.data<int64_t>()[i] = int64_t(r);
    else out.data<double>()[i] = r;
  }
  return out;
}

double r_sum(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s;
}
double r_mean(const std::vector<double>& v) { return r_sum(v) / double(v.size()); }
double r_var(const std::vector<double>& v, bool unbiased) {
  const double m = r_mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return s / std::max(0.0, double(v.size()) - (unbiased ? 1 : 0));
}
// Index of the first maximum (or minimum); the first NaN wins, as in PyTorch.
double r_arg(const std::vector<double>& v, bool is_max) {
  size_t b = 0;
  for (size_t k = 0; k < v.size(); ++k) {
    if (std::isnan(v[k])) return double(k);
    if (is_max ? v[k] > v[b] : v[k] < v[b]) b = k;
  }
  return double(b);
}
double r_extreme(const std::vector<double>& v, bool is_max) { return v[size_t(r_arg(v, is_max))]; }

// ---- samples
enum class DimsKind { Many, One, OneOrNone, All };

std::vector<Params> dims_variants(int64_t rank, DimsKind kind) {
  std::vector<std::vector<int64_t>> sets;
  if (kind == DimsKind::All) return {Params{{}, false, 0}};
  if (kind == DimsKind::Many) {
    sets = {{}};
    if (rank >= 1) sets.push_back({0}), sets.push_back({-1});
    if (rank >= 3) sets.push_back({0, 2}), sets.push_back({-1, 1});
    if (rank == 0) sets.push_back({0});
  } else {
    sets = {{0}, {-1}};
    if (rank >= 3) sets.push_back({1});
  }
  std::vector<Params> out;
  for (const auto& d : sets)
    for (bool keep : {false, true}) out.push_back(Params{d, keep, 1});
  if (kind == DimsKind::OneOrNone)
    for (bool keep : {false, true}) out.push_back(Params{{}, keep, 0});
  return out;
}

struct ShapeCase {
  Shape shape, expand_to;
};

std::vector<ShapeCase> shapes(Layout l, bool allow_empty) {
  switch (l) {
    case Layout::Contiguous: {
      std::vector<ShapeCase> s = {{{}}, {{7}}, {{3, 5}}, {{2, 3, 4}}};
      if (allow_empty) s.push_back({{0, 3}});
      return s;
    }
    case Layout::Transposed: return {{{3, 5}}, {{2, 3, 4}}};
    case Layout::Strided: return {{{7}}, {{3, 5}}, {{2, 2, 3}}};
    case Layout::Broadcast: return {{{3, 1}, {3, 4}}, {{2, 1, 4}, {2, 3, 4}}, {{1, 5}, {6, 5}}};
  }
  return {};
}

// Values in multiples of 0.5 within [-3, 3): exact in every floating dtype, distinct enough
// for int (truncated) and bool (zero or not) inputs, and with ties for the index rules.
Tensor halves(const Shape& s, Generator& g) {
  Tensor t = random_input(s, g, -6, 6);
  double* p = t.data<double>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = std::floor(p[i]) / 2;
  return t;
}

using Values = std::function<Tensor(const Shape&, Generator&)>;

std::function<std::vector<OpSample>(Layout, Generator&)> reduce_samples(DimsKind kind, bool allow_empty,
                                                                        Values values, int n_inputs = 1) {
  return [=](Layout l, Generator& g) {
    std::vector<OpSample> out;
    for (const ShapeCase& c : shapes(l, allow_empty)) {
      const int64_t rank = int64_t((c.expand_to.empty() ? c.shape : c.expand_to).size());
      for (const Params& p : dims_variants(rank, kind)) {
        OpSample s;
        for (int i = 0; i < n_inputs; ++i) s.inputs.push_back(values(c.shape, g));
        s.inputs.push_back(encode(p));
        s.description = describe(c.shape, c.expand_to, p);
        s.fixed_dtype_inputs = {n_inputs};
        if (!c.expand_to.empty()) s.expand_to = std::vector<Shape>(size_t(n_inputs), c.expand_to);
        out.push_back(std::move(s));
      }
    }
    return out;
  };
}

Values uniform(double lo, double hi) {
  return [=](const Shape& s, Generator& g) { return random_input(s, g, lo, hi); };
}

using ReduceFn = std::function<Tensor(const Tensor&, const Params&)>;
using GroupFn = std::function<double(const std::vector<double>&, const Params&)>;

OpInfo reduction(std::string name, DTypeSet dts, DimsKind kind, bool allow_empty, Values values, ReduceFn op,
                 GroupFn f, DType ref_dtype = DType::Float64) {
  OpInfo o;
  o.name = std::move(name);
  o.dtypes = dts;
  o.samples = reduce_samples(kind, allow_empty, values);
  o.op = [op](const std::vector<Tensor>& in) { return op(in[0], decode(in[1])); };
  o.reference = [f, ref_dtype](const std::vector<Tensor>& in) {
    const Params p = decode(in[1]);
    return ref_reduce(in[0], p, [&](const std::vector<double>& v) { return f(v, p); }, ref_dtype);
  };
  if (ref_dtype == DType::Int64) o.output_keeps_integer_dtype = true;
  return o;
}

std::optional<int64_t> dim_of(const Params& p) {
  return p.extra ? std::optional<int64_t>(p.dims[0]) : std::nullopt;
}

// argmax/argmin without a dim reduce the flattened tensor; keepdim gives all-ones shape.
Tensor ref_arg(const Tensor& x, const Params& p, bool is_max) {
  if (p.extra) return ref_reduce(x, p, [&](const std::vector<double>& v) { return r_arg(v, is_max); }, DType::Int64);
  Tensor out = ref_reduce(x, Params{{}, false, 0}, [&](const std::vector<double>& v) { return r_arg(v, is_max); },
                          DType::Int64);
  if (!p.keepdim) return out;
  Tensor kept = ref_empty(Shape(size_t(x.dim()), 1), DType::Int64);  // every dim size 1
  kept.data<int64_t>()[0] = out.data<int64_t>()[0];
  return kept;
}

// softmax over p.dims[0] of x ([outer, n, inner] loops), or its backward helpers.
enum class Soft { Softmax, LogSoftmax, SoftmaxBackward, LogSoftmaxBackward };
Tensor ref_softmax(const std::vector<Tensor>& in, Soft kind) {
  const bool backward = kind == Soft::SoftmaxBackward || kind == Soft::LogSoftmaxBackward;
  const Tensor& x = in[0];
  const int64_t dim0 = decode(in[backward ? 2 : 1]).dims[0];
  const int64_t nd = x.dim(), d = nd == 0 ? 0 : (dim0 < 0 ? dim0 + nd : dim0);
  int64_t outer = 1, n = nd == 0 ? 1 : x.size(d), inner = 1;
  for (int64_t k = 0; k < d && k < nd; ++k) outer *= x.size(k);
  for (int64_t k = d + 1; k < nd; ++k) inner *= x.size(k);
  Tensor out = ref_empty(x.shape());
  const double* a = ref_data(x);
  const double* b = backward ? ref_data(in[1]) : nullptr;
  double* y = out.data<double>();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < inner; ++j) {
      auto at = [&](int64_t i) { return (o * n + i) * inner + j; };
      if (kind == Soft::SoftmaxBackward) {  // a = grad, b = out: out * (grad - sum(grad * out))
        double s = 0;
        for (int64_t i = 0; i < n; ++i) s += a[at(i)] * b[at(i)];
        for (int64_t i = 0; i < n; ++i) y[at(i)] = b[at(i)] * (a[at(i)] - s);
        continue;
      }
      if (kind == Soft::LogSoftmaxBackward) {  // grad - exp(out) * sum(grad)
        double s = 0;
        for (int64_t i = 0; i < n; ++i) s += a[at(i)];
        for (int64_t i = 0; i < n; ++i) y[at(i)] = a[at(i)] - std::exp(b[at(i)]) * s;
        continue;
      }
      double m = -INFINITY, s = 0;
      for (int64_t i = 0; i < n; ++i) m = std::max(m, a[at(i)]);
      for (int64_t i = 0; i < n; ++i) s += std::exp(a[at(i)] - m);
      for (int64_t i = 0; i < n; ++i)
        y[at(i)] = kind == Soft::LogSoftmax ? a[at(i)] - m - std::log(s) : std::exp(a[at(i)] - m) / s;
    }
  return out;
}

OpInfo softmax_entry(std::string name, Soft kind) {
  OpInfo o;
  o.name = std::move(name);
  o.dtypes = kFloatingDTypes;
  const bool backward = kind == Soft::SoftmaxBackward || kind == Soft::LogSoftmaxBackward;
  o.samples = reduce_samples(DimsKind::One, true, backward ? uniform(-1, 1) : uniform(-4, 4), backward ? 2 : 1);
  o.op = [kind](const std::vector<Tensor>& in) {
    switch (kind) {
      case Soft::Softmax: return softmax(in[0], decode(in[1]).dims[0]);
      case Soft::LogSoftmax: return log_softmax(in[0], decode(in[1]).dims[0]);
      case Soft::SoftmaxBackward: return softmax_backward(in[0], in[1], decode(in[2]).dims[0]);
      case Soft::LogSoftmaxBackward: return log_softmax_backward(in[0], in[1], decode(in[2]).dims[0]);
    }
    return Tensor();
  };
  o.reference = [kind](const std::vector<Tensor>& in) { return ref_softmax(in, kind); };
  if (backward)  // grad - exp(out) * sum(grad) cancels: error relative to the terms, not the result
    o.tolerance = [](DType t) {
      return t == DType::Float32 ? Tolerance{1e-5, 1e-4} : t == DType::Float16 ? Tolerance{2e-3, 2e-2}
             : t == DType::BFloat16 ? Tolerance{1e-2, 2e-1} : Tolerance{1e-10, 1e-10};
    };
  return o;
}

std::vector<OpInfo> reduce_ops() {
  std::vector<OpInfo> ops;
  const Values h = halves, u = uniform(-3, 3);
  using P = const Params&;
  using V = const std::vector<double>&;
  const DTypeSet all = kAllDTypes, fl = kFloatingDTypes;

  OpInfo s = reduction("sum", all, DimsKind::Many, true, h,
                       [](const Tensor& a, P p) { return sum(a, p.dims, p.keepdim); }, [](V v, P) { return r_sum(v); });
  s.result_dtype = [](DType d) { return is_floating(d) ? d : DType::Int64; };
  ops.push_back(s);
  ops.push_back(reduction("mean", fl, DimsKind::Many, true, u,
                          [](const Tensor& a, P p) { return mean(a, p.dims, p.keepdim); },
                          [](V v, P) { return r_mean(v); }));
  for (bool unbiased : {true, false}) {
    const std::string sfx = unbiased ? "" : "_biased";
    ops.push_back(reduction("var" + sfx, fl, DimsKind::Many, true, u,
                            [unbiased](const Tensor& a, P p) { return var(a, p.dims, unbiased, p.keepdim); },
                            [unbiased](V v, P) { return r_var(v, unbiased); }));
    ops.push_back(reduction("std" + sfx, fl, DimsKind::Many, true, u,
                            [unbiased](const Tensor& a, P p) { return kiln::std(a, p.dims, unbiased, p.keepdim); },
                            [unbiased](V v, P) { return std::sqrt(r_var(v, unbiased)); }));
  }
  ops.push_back(reduction("amax", all, DimsKind::Many, false, h,
                          [](const Tensor& a, P p) { return amax(a, p.dims, p.keepdim); },
                          [](V v, P) { return r_extreme(v, true); }));
  ops.push_back(reduction("amin", all, DimsKind::Many, false, h,
                          [](const Tensor& a, P p) { return amin(a, p.dims, p.keepdim); },
                          [](V v, P) { return r_extreme(v, false); }));
  ops.push_back(reduction("max_all", all, DimsKind::All, false, h, [](const Tensor& a, P) { return max(a); },
                          [](V v, P) { return r_extreme(v, true); }));
  ops.push_back(reduction("min_all", all, DimsKind::All, false, h, [](const Tensor& a, P) { return min(a); },
                          [](V v, P) { return r_extreme(v, false); }));
  ops.push_back(reduction("max_dim_values", all, DimsKind::One, false, h,
                          [](const Tensor& a, P p) { return max(a, p.dims[0], p.keepdim).first; },
                          [](V v, P) { return r_extreme(v, true); }));
  ops.push_back(reduction("min_dim_values", all, DimsKind::One, false, h,
                          [](const Tensor& a, P p) { return min(a, p.dims[0], p.keepdim).first; },
                          [](V v, P) { return r_extreme(v, false); }));
  ops.push_back(reduction("max_dim_indices", all, DimsKind::One, false, h,
                          [](const Tensor& a, P p) { return max(a, p.dims[0], p.keepdim).second; },
                          [](V v, P) { return r_arg(v, true); }, DType::Int64));
  ops.push_back(reduction("min_dim_indices", all, DimsKind::One, false, h,
                          [](const Tensor& a, P p) { return min(a, p.dims[0], p.keepdim).second; },
                          [](V v, P) { return r_arg(v, false); }, DType::Int64));
  for (bool is_max : {true, false}) {
    OpInfo o = reduction(is_max ? "argmax" : "argmin", all, DimsKind::OneOrNone, false, h, {}, {}, DType::Int64);
    o.op = [is_max](const std::vector<Tensor>& in) {
      const Params p = decode(in[1]);
      return is_max ? argmax(in[0], dim_of(p), p.keepdim) : argmin(in[0], dim_of(p), p.keepdim);
    };
    o.reference = [is_max](const std::vector<Tensor>& in) { return ref_arg(in[0], decode(in[1]), is_max); };
    ops.push_back(o);
  }
  ops.push_back(softmax_entry("softmax", Soft::Softmax));
  ops.push_back(softmax_entry("log_softmax", Soft::LogSoftmax));
  ops.push_back(softmax_entry("softmax_backward", Soft::SoftmaxBackward));
  ops.push_back(softmax_entry("log_softmax_backward", Soft::LogSoftmaxBackward));
  return ops;
}

}  // namespace

namespace kiln::testing {
KILN_REGISTER_OPS(reduce_ops());
}  // namespace kiln::testing
