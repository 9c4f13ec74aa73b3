// OpInfo entries of the nn and indexing family: cat, stack, split, chunk, index_select,
// gather, one_hot, embedding, batch_norm (eval, training), layer_norm,
// scaled_dot_product_attention (plain, causal, float and bool masks), dropout, and the
// accumulations behind their backward (index_add, scatter_add, embedding_backward).
// References are naive loops in double over contiguous float64 CPU inputs.
#include <cmath>
#include <limits>

#include "kiln/generator.h"
#include "kiln/ops_nn_backward.h"
#include "tests/support/op_info.h"

namespace kiln::testing {
namespace {

constexpr DTypeSet kValueDTypes = kFloatingDTypes | dtypes({DType::Int32, DType::Int64});

// An input of the sample: a float64 value tensor, or an index tensor (its own dtype).
struct In {
  Tensor t;
  bool fixed = false;
  Shape expand = {};
};

OpSample make(const std::vector<In>& ins, const std::string& what = "") {
  OpSample s;
  for (size_t i = 0; i < ins.size(); ++i) {
    s.inputs.push_back(ins[i].t);
    if (ins[i].fixed) s.fixed_dtype_inputs.push_back(int(i));
    s.expand_to.push_back(ins[i].expand);
    s.description += (i ? " x " : "") + shape_str(ins[i].t.shape());
    if (!ins[i].expand.empty()) s.description += " expanded to " + shape_str(ins[i].expand);
  }
  if (!what.empty()) s.description += " " + what;
  return s;
}

In val(const Shape& shape, Generator& g, double lo = -2, double hi = 2) { return {random_input(shape, g, lo, hi)}; }
In idx(const Shape& shape, Generator& g, int64_t n, DType dt = DType::Int64) {
  return {random_integers(shape, g, 0, n - 1).to(dt), true};
}

// Value of a shape's row-major element, for references over contiguous float64 inputs.
std::vector<int64_t> unravel(int64_t flat, const Shape& shape) {
  std::vector<int64_t> ix(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    ix[d] = flat % shape[d];
    flat /= shape[d];
  }
  return ix;
}
int64_t ravel(const std::vector<int64_t>& ix, const Shape& shape) {
  int64_t f = 0;
  for (size_t d = 0; d < shape.size(); ++d) f = f * shape[d] + ix[d];
  return f;
}
std::vector<int64_t> index_values(const Tensor& t) { return t.to_vector<int64_t>(); }

Tensor ref_cat(const std::vector<Tensor>& in, int64_t dim) {
  Shape shape = in[0].shape();
  shape[size_t(dim)] = 0;
  for (const Tensor& t : in) shape[size_t(dim)] += t.size(dim);
  Tensor out = ref_empty(shape);
  double* o = out.data<double>();
  for (int64_t f = 0; f < out.numel(); ++f) {
    std::vector<int64_t> ix = unravel(f, shape);
    size_t part = 0;
    while (ix[size_t(dim)] >= in[part].size(dim)) ix[size_t(dim)] -= in[part++].size(dim);
    o[f] = ref_data(in[part])[ravel(ix, in[part].shape())];
  }
  return out;
}

Tensor ref_narrow(const Tensor& t, int64_t dim, int64_t start, int64_t len) {
  Shape shape = t.shape();
  shape[size_t(dim)] = len;
  Tensor out = ref_empty(shape);
  for (int64_t f = 0; f < out.numel(); ++f) {
    std::vector<int64_t> ix = unravel(f, shape);
    ix[size_t(dim)] += start;
    out.data<double>()[f] = ref_data(t)[ravel(ix, t.shape())];
  }
  return out;
}

Tensor ref_gather(const Tensor& t, int64_t dim, const Tensor& index) {
  const auto iv = index_values(index);
  Tensor out = ref_empty(index.shape());
  for (int64_t f = 0; f < out.numel(); ++f) {
    std::vector<int64_t> ix = unravel(f, index.shape());
    ix[size_t(dim)] = iv[size_t(f)];
    out.data<double>()[f] = ref_data(t)[ravel(ix, t.shape())];
  }
  return out;
}

Tensor ref_index_select(const Tensor& t, int64_t dim, const Tensor& index) {
  const auto iv = index_values(index);
  Shape shape = t.shape();
  shape[size_t(dim)] = int64_t(iv.size());
  Tensor out = ref_empty(shape);
  for (int64_t f = 0; f < out.numel(); ++f) {
    std::vector<int64_t> ix = unravel(f, shape);
    ix[size_t(dim)] = iv[size_t(ix[size_t(dim)])];
    out.data<double>()[f] = ref_data(t)[ravel(ix, t.shape())];
  }
  return out;
}

// batch_norm over x [N, C, *] with per-channel mean/var (batch stats when mean is null).
Tensor ref_batch_norm(const Tensor& x, const double* mean_in, const double* var_in, const double* w, const double* b,
                      double eps) {
  const int64_t n = x.size(0), c = x.size(1), hw = x.numel() / std::max<int64_t>(n * c, 1);
  Tensor out = ref_empty(x.shape());
  const double* px = ref_data(x);
  for (int64_t k = 0; k < c; ++k) {
    double mean, var;
    if (mean_in) {
      mean = mean_in[k];
      var = var_in[k];
    } else {
      double s = 0, q = 0;
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < hw; ++j) s += px[(i * c + k) * hw + j];
      mean = s / double(n * hw);
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < hw; ++j) q += std::pow(px[(i * c + k) * hw + j] - mean, 2);
      var = q / double(n * hw);
    }
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < hw; ++j) {
        const int64_t p = (i * c + k) * hw + j;
        out.data<double>()[p] = (px[p] - mean) / std::sqrt(var + eps) * (w ? w[k] : 1.0) + (b ? b[k] : 0.0);
      }
  }
  return out;
}

Tensor ref_layer_norm(const Tensor& x, int64_t n, const double* w, const double* b, double eps) {
  Tensor out = ref_empty(x.shape());
  const double* px = ref_data(x);
  for (int64_t r = 0; r < x.numel() / n; ++r) {
    double m = 0, v = 0;
    for (int64_t j = 0; j < n; ++j) m += px[r * n + j];
    m /= double(n);
    for (int64_t j = 0; j < n; ++j) v += std::pow(px[r * n + j] - m, 2);
    v /= double(n);
    for (int64_t j = 0; j < n; ++j)
      out.data<double>()[r * n + j] = (px[r * n + j] - m) / std::sqrt(v + eps) * (w ? w[j] : 1.0) + (b ? b[j] : 0.0);
  }
  return out;
}

// q [B, L, E], k [B, S, E], v [B, S, Ev]; mask null, bool (as 0/1, fixed dtype) or additive [L, S].
Tensor ref_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, bool causal) {
  const int64_t B = q.size(0), L = q.size(1), E = q.size(2), S = k.size(1), Ev = v.size(2);
  const double scale = 1 / std::sqrt(double(E));
  const bool is_bool = mask.defined() && mask.dtype() == DType::Bool;
  const std::vector<double> mv = mask.defined() ? mask.to(DType::Float64).contiguous().to_vector<double>()
                                                : std::vector<double>{};
  Tensor out = ref_empty({B, L, Ev});
  const double *pq = ref_data(q), *pk = ref_data(k), *pv = ref_data(v);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < L; ++i) {
      std::vector<double> s(static_cast<size_t>(S));
      double mx = -INFINITY;
      for (int64_t j = 0; j < S; ++j) {
        double x = 0;
        for (int64_t t = 0; t < E; ++t) x += pq[(b * L + i) * E + t] * pk[(b * S + j) * E + t];
        x *= scale;
        if (mask.defined()) {
          const double m = mv[size_t(i * S + j)];
          if (is_bool) x = m != 0 ? x : -INFINITY;
          else x += m;
        }
        if (causal && j > i) x = -INFINITY;
        s[size_t(j)] = x;
        mx = std::max(mx, x);
      }
      double z = 0;
      for (double& x : s) z += (x = mx == -INFINITY ? 0.0 : std::exp(x - mx));
      for (int64_t t = 0; t < Ev; ++t) {
        double acc = 0;
        for (int64_t j = 0; j < S; ++j) acc += (z > 0 ? s[size_t(j)] / z : 0.0) * pv[(b * S + j) * Ev + t];
        out.data<double>()[(b * L + i) * Ev + t] = acc;
      }
    }
  return out;
}

Tolerance norm_tol(DType t) {
  switch (t) {
    case DType::Float32: return {1e-4, 1e-4};
    case DType::Float16: return {1e-2, 1e-2};
    case DType::BFloat16: return {5e-2, 5e-2};
    default: return {1e-9, 1e-9};
  }
}

const double* opt(const Tensor& t) { return t.defined() ? ref_data(t) : nullptr; }

std::vector<OpInfo> join_ops() {
  std::vector<OpInfo> ops;
  ops.push_back(OpInfo{
      .name = "cat",
      .dtypes = kAllDTypes,
      .samples = [](Layout l, Generator& g) {
        if (l == Layout::Broadcast)
          return std::vector<OpSample>{make({val({1, 3}, g), val({2, 3}, g), {random_input({1, 3}, g), false, {4, 3}}},
                                            "dim 0")};
        return std::vector<OpSample>{make({val({2, 3}, g), val({4, 3}, g), val({1, 3}, g)}, "dim 0"),
                                     make({val({2, 3, 4}, g), val({2, 1, 4}, g), val({2, 2, 4}, g)}, "dim 1")};
      },
      .op = [](const std::vector<Tensor>& in) { return cat({in[0], in[1], in[2]}, in[0].dim() == 3 ? 1 : 0); },
      .reference = [](const std::vector<Tensor>& in) { return ref_cat({in[0], in[1], in[2]}, in[0].dim() == 3 ? 1 : 0); },
  });
  ops.push_back(OpInfo{
      .name = "stack",
      .dtypes = kAllDTypes,
      .samples = [](Layout l, Generator& g) {
        if (l == Layout::Broadcast)
          return std::vector<OpSample>{make({{random_input({1, 4}, g), false, {3, 4}}, val({3, 4}, g)}, "dim 1")};
        return std::vector<OpSample>{make({val({3, 4}, g), val({3, 4}, g)}, "dim 1")};
      },
      .op = [](const std::vector<Tensor>& in) { return stack({in[0], in[1]}, 1); },
      .reference = [](const std::vector<Tensor>& in) {
        return ref_cat({in[0].reshape({3, 1, 4}), in[1].reshape({3, 1, 4})}, 1);
      },
  });
  ops.push_back(OpInfo{
      .name = "split_sizes",
      .dtypes = kAllDTypes,
      .samples = [](Layout l, Generator& g) {
        if (l == Layout::Broadcast) return std::vector<OpSample>{make({{random_input({1, 6}, g), false, {4, 6}}})};
        return std::vector<OpSample>{make({val({4, 6}, g)}, "sizes {1, 3, 2} along dim 1, part 1")};
      },
      .op = [](const std::vector<Tensor>& in) { return split(in[0], std::vector<int64_t>{1, 3, 2}, 1)[1]; },
      .reference = [](const std::vector<Tensor>& in) { return ref_narrow(in[0], 1, 1, 3); },
  });
  ops.push_back(OpInfo{
      .name = "chunk",
      .dtypes = kAllDTypes,
      .samples = [](Layout l, Generator& g) {
        if (l == Layout::Broadcast) return std::vector<OpSample>{};
        return std::vector<OpSample>{make({val({7, 3}, g)}, "3 chunks along dim 0, the last")};
      },
      .op = [](const std::vector<Tensor>& in) { return chunk(in[0], 3, 0)[2]; },
      .reference = [](const std::vector<Tensor>& in) { return ref_narrow(in[0], 0, 6, 1); },
  });
  return ops;
}

std::vector<OpInfo> index_ops() {
  std::vector<OpInfo> ops;
  ops.push_back(OpInfo{
      .name = "index_select",
      .dtypes = kAllDTypes,
      .samples = [](Layout l, Generator& g) {
        if (l == Layout::Broadcast)
          return std::vector<OpSample>{make({{random_input({1, 5}, g), false, {4, 5}}, idx({3}, g, 5)}, "dim 1")};
        return std::vector<OpSample>{make({val({4, 5}, g), idx({6}, g, 5)}, "dim 1"),
                                     make({val({3, 2, 4}, g), idx({2}, g, 3, DType::Int32)}, "dim 0")};
      },
      .op = [](const std::vector<Tensor>& in) { return index_select(in[0], in[0].dim() == 3 ? 0 : 1, in[1]); },
      .reference = [](const std::vector<Tensor>& in) { return ref_index_select(in[0], in[0].dim() == 3 ? 0 : 1, in[1]); },
  });
  ops.push_back(OpInfo{
      .name = "gather",
      .dtypes = kAllDTypes,
      .samples = [](Layout l, Generator& g) {
        if (l == Layout::Broadcast)
          return std::vector<OpSample>{make({{random_input({1, 4}, g), false, {3, 4}}, idx({3, 2}, g, 4)}, "dim 1")};
        return std::vector<OpSample>{make({val({3, 4}, g), idx({3, 2}, g, 4)}, "dim 1"),
                                     make({val({3, 4, 2}, g), idx({5, 3, 2}, g, 3, DType::Int32)}, "dim 0")};
      },
      .op = [](const std::vector<Tensor>& in) { return gather(in[0], in[0].dim() == 3 ? 0 : 1, in[1]); },
      .reference = [](const std::vector<Tensor>& in) { return ref_gather(in[0], in[0].dim() == 3 ? 0 : 1, in[1]); },
  });
  ops.push_back(OpInfo{
      .name = "embedding",
      .dtypes = kValueDTypes,
      .samples = [](Layout l, Generator& g) {
        if (l == Layout::Broadcast)
          return std::vector<OpSample>{make({{random_input({1, 4}, g), false, {6, 4}}, idx({2, 3}, g, 6)})};
        return std::vector<OpSample>{make({val({6, 4}, g), idx({2, 3}, g, 6)}), make({val({5, 3}, g), idx({7}, g, 5)})};
      },
      .op = [](const std::vector<Tensor>& in) { return embedding(in[0], in[1]); },
      .reference = [](const std::vector<Tensor>& in) {
        Tensor rows = ref_index_select(in[0], 0, in[1].reshape({-1}));
        Shape shape = in[1].shape();
        shape.push_back(in[0].size(1));
        return rows.reshape(shape);
      },
  });
  ops.push_back(OpInfo{
      .name = "one_hot",
      .dtypes = dtypes({DType::Int32, DType::Int64}),
      .samples = [](Layout l, Generator& g) {
        if (l == Layout::Broadcast) return std::vector<OpSample>{};
        OpSample s;
        s.inputs = {random_integers({3, 4}, g, 0, 4)};
        s.description = "[3, 4] values in [0, 4], 5 classes";
        return std::vector<OpSample>{s};
      },
      .op = [](const std::vector<Tensor>& in) { return one_hot(in[0], 5); },
      .reference = [](const std::vector<Tensor>& in) {
        Shape shape = in[0].shape();
        shape.push_back(5);
        Tensor out = ref_empty(shape, DType::Int64);
        for (int64_t f = 0; f < in[0].numel(); ++f)
          for (int64_t c = 0; c < 5; ++c) out.data<int64_t>()[f * 5 + c] = int64_t(ref_data(in[0])[f]) == c;
        return out;
      },
      .output_keeps_integer_dtype = true,
  });
  // The accumulations that are the backward of index_select, gather and embedding.
  ops.push_back(OpInfo{
      .name = "index_add",
      .dtypes = kValueDTypes,
      .samples = [](Layout l, Generator& g) {
        if (l == Layout::Broadcast)
          return std::vector<OpSample>{make({{random_input({1, 5}, g), false, {3, 5}}, idx({4}, g, 5), val({3, 4}, g)})};
        return std::vector<OpSample>{make({val({3, 5}, g), idx({4}, g, 5), val({3, 4}, g)}, "dim 1")};
      },
      .op = [](const std::vector<Tensor>& in) { return index_add(in[0], 1, in[1], in[2]); },
      .reference = [](const std::vector<Tensor>& in) {
        Tensor out = in[0].clone();
        const auto iv = index_values(in[1]);
        for (int64_t i = 0; i < 3; ++i)
          for (size_t q = 0; q < iv.size(); ++q) out.data<double>()[i * 5 + iv[q]] += ref_data(in[2])[i * 4 + int64_t(q)];
        return out;
      },
  });
  ops.push_back(OpInfo{
      .name = "scatter_add",
      .dtypes = kValueDTypes,
      .samples = [](Layout l, Generator& g) {
        if (l == Layout::Broadcast) return std::vector<OpSample>{};
        return std::vector<OpSample>{make({val({3, 4}, g), idx({5, 4}, g, 3), val({5, 4}, g)}, "dim 0"),
                                     make({val({3, 4}, g), idx({3, 2}, g, 4), val({3, 3}, g)}, "dim 1, src larger")};
      },
      .op = [](const std::vector<Tensor>& in) { return scatter_add(in[0], in[1].size(0) == 5 ? 0 : 1, in[1], in[2]); },
      .reference = [](const std::vector<Tensor>& in) {
        const int64_t dim = in[1].size(0) == 5 ? 0 : 1;
        Tensor out = in[0].clone();
        const auto iv = index_values(in[1]);
        for (int64_t f = 0; f < in[1].numel(); ++f) {
          std::vector<int64_t> ix = unravel(f, in[1].shape());
          const double v = ref_data(in[2])[ravel(ix, in[2].shape())];
          ix[size_t(dim)] = iv[size_t(f)];
          out.data<double>()[ravel(ix, in[0].shape())] += v;
        }
        return out;
      },
  });
  ops.push_back(OpInfo{
      .name = "embedding_backward",
      .samples = [](Layout l, Generator& g) {
        if (l == Layout::Broadcast) return std::vector<OpSample>{};
        return std::vector<OpSample>{make({val({2, 3, 4}, g), idx({2, 3}, g, 5)}, "5 rows")};
      },
      .op = [](const std::vector<Tensor>& in) { return embedding_backward(in[0], in[1], 5); },
      .reference = [](const std::vector<Tensor>& in) {
        Tensor out = ref_empty({5, 4});
        for (int64_t i = 0; i < 20; ++i) out.data<double>()[i] = 0;
        const auto iv = index_values(in[1]);
        for (size_t r = 0; r < iv.size(); ++r)
          for (int64_t j = 0; j < 4; ++j) out.data<double>()[iv[r] * 4 + j] += ref_data(in[0])[int64_t(r) * 4 + j];
        return out;
      },
      .tolerance = norm_tol,
  });
  return ops;
}

std::vector<OpInfo> norm_ops() {
  std::vector<OpInfo> ops;
  ops.push_back(OpInfo{
      .name = "batch_norm_eval",
      .samples = [](Layout l, Generator& g) {
        if (l == Layout::Broadcast)
          return std::vector<OpSample>{make({{random_input({3, 1, 2, 2}, g), false, {3, 4, 2, 2}}, val({4}, g),
                                             val({4}, g, 0.5, 2), val({4}, g), val({4}, g)})};
        return std::vector<OpSample>{
            make({val({3, 4, 2, 2}, g), val({4}, g), val({4}, g, 0.5, 2), val({4}, g), val({4}, g)}, "affine"),
            make({val({5, 3}, g), val({3}, g), val({3}, g, 0.5, 2)}, "2-d, no affine")};
      },
      .op = [](const std::vector<Tensor>& in) {
        return batch_norm(in[0], in[1], in[2], in.size() > 3 ? in[3] : Tensor(), in.size() > 4 ? in[4] : Tensor(), false);
      },
      .reference = [](const std::vector<Tensor>& in) {
        return ref_batch_norm(in[0], ref_data(in[1]), ref_data(in[2]), in.size() > 3 ? ref_data(in[3]) : nullptr,
                              in.size() > 4 ? ref_data(in[4]) : nullptr, 1e-5);
      },
      .tolerance = norm_tol,
  });
  ops.push_back(OpInfo{
      .name = "batch_norm_train",
      .samples = [](Layout l, Generator& g) {
        if (l == Layout::Broadcast) return std::vector<OpSample>{};
        return std::vector<OpSample>{
            make({val({3, 4, 2, 2}, g), val({4}, g), val({4}, g, 0.5, 2), val({4}, g), val({4}, g)}, "affine"),
            make({val({6, 2}, g, -1, 3), val({2}, g), val({2}, g, 0.5, 2)}, "2-d, no affine")};
      },
      .op = [](const std::vector<Tensor>& in) {
        return batch_norm(in[0], in[1], in[2], in.size() > 3 ? in[3] : Tensor(), in.size() > 4 ? in[4] : Tensor(), true);
      },
      .reference = [](const std::vector<Tensor>& in) {
        return ref_batch_norm(in[0], nullptr, nullptr, in.size() > 3 ? ref_data(in[3]) : nullptr,
                              in.size() > 4 ? ref_data(in[4]) : nullptr, 1e-5);
      },
      .tolerance = norm_tol,
      .modified_inputs = {1, 2},  // running statistics
  });
  ops.push_back(OpInfo{
      .name = "layer_norm",
      .samples = [](Layout l, Generator& g) {
        if (l == Layout::Broadcast)
          return std::vector<OpSample>{make({{random_input({1, 4, 5}, g), false, {3, 4, 5}}, val({4, 5}, g), val({4, 5}, g)})};
        return std::vector<OpSample>{make({val({3, 4, 5}, g, -1, 3), val({4, 5}, g), val({4, 5}, g)}, "over [4, 5]"),
                                     make({val({6, 8}, g)}, "over [8], no affine")};
      },
      .op = [](const std::vector<Tensor>& in) {
        if (in.size() == 1) return layer_norm(in[0], {8});
        return layer_norm(in[0], {4, 5}, in[1], in[2]);
      },
      .reference = [](const std::vector<Tensor>& in) {
        if (in.size() == 1) return ref_layer_norm(in[0], 8, nullptr, nullptr, 1e-5);
        return ref_layer_norm(in[0], 20, ref_data(in[1]), ref_data(in[2]), 1e-5);
      },
      .tolerance = norm_tol,
  });
  return ops;
}

std::vector<OpInfo> attention_ops() {
  std::vector<OpInfo> ops;
  auto qkv = [](Generator& g) { return std::vector<In>{val({2, 3, 4}, g), val({2, 5, 4}, g), val({2, 5, 3}, g)}; };
  ops.push_back(OpInfo{
      .name = "scaled_dot_product_attention",
      .samples = [qkv](Layout l, Generator& g) {
        if (l == Layout::Broadcast)  // one key/value head shared by both batch entries
          return std::vector<OpSample>{make({val({2, 3, 4}, g), {random_input({1, 5, 4}, g), false, {2, 5, 4}},
                                             {random_input({1, 5, 3}, g), false, {2, 5, 3}}})};
        return std::vector<OpSample>{make(qkv(g)), make({val({1, 6, 8}, g), val({1, 6, 8}, g), val({1, 6, 8}, g)})};
      },
      .op = [](const std::vector<Tensor>& in) { return scaled_dot_product_attention(in[0], in[1], in[2]); },
      .reference = [](const std::vector<Tensor>& in) { return ref_attention(in[0], in[1], in[2], Tensor(), false); },
      .tolerance = norm_tol,
  });
  ops.push_back(OpInfo{
      .name = "scaled_dot_product_attention_causal",
      .samples = [](Layout l, Generator& g) {
        if (l == Layout::Broadcast) return std::vector<OpSample>{};
        return std::vector<OpSample>{make({val({2, 5, 4}, g), val({2, 5, 4}, g), val({2, 5, 3}, g)}),
                                     make({val({1, 3, 2}, g), val({1, 6, 2}, g), val({1, 6, 2}, g)}, "L < S")};
      },
      .op = [](const std::vector<Tensor>& in) {
        return scaled_dot_product_attention(in[0], in[1], in[2], Tensor(), 0.0, true);
      },
      .reference = [](const std::vector<Tensor>& in) { return ref_attention(in[0], in[1], in[2], Tensor(), true); },
      .tolerance = norm_tol,
  });
  ops.push_back(OpInfo{
      .name = "scaled_dot_product_attention_float_mask",
      .samples = [qkv](Layout l, Generator& g) {
        std::vector<In> ins = qkv(g);
        ins.push_back(val({3, 5}, g));  // [L, S], broadcast over the batch
        if (l == Layout::Broadcast) ins.back() = {random_input({1, 5}, g), false, {3, 5}};
        return std::vector<OpSample>{make(ins)};
      },
      .op = [](const std::vector<Tensor>& in) { return scaled_dot_product_attention(in[0], in[1], in[2], in[3]); },
      .reference = [](const std::vector<Tensor>& in) { return ref_attention(in[0], in[1], in[2], in[3], false); },
      .tolerance = norm_tol,
  });
  ops.push_back(OpInfo{
      .name = "scaled_dot_product_attention_bool_mask",
      .samples = [qkv](Layout l, Generator& g) {
        if (l == Layout::Broadcast) return std::vector<OpSample>{};
        std::vector<In> ins = qkv(g);
        Tensor m = random_integers({3, 5}, g, 0, 1).to(DType::Bool);
        m.select(0, 1).fill_(false);  // a query that sees nothing gives 0
        ins.push_back({m, true});
        return std::vector<OpSample>{make(ins)};
      },
      .op = [](const std::vector<Tensor>& in) { return scaled_dot_product_attention(in[0], in[1], in[2], in[3]); },
      .reference = [](const std::vector<Tensor>& in) { return ref_attention(in[0], in[1], in[2], in[3], false); },
      .tolerance = norm_tol,
  });
  ops.push_back(OpInfo{
      .name = "dropout",
      .samples = [](Layout l, Generator& g) {
        if (l == Layout::Broadcast) return std::vector<OpSample>{make({{random_input({1, 8}, g), false, {5, 8}}})};
        return std::vector<OpSample>{make({val({5, 8}, g)}, "p 0.25, seed 5")};
      },
      .op = [](const std::vector<Tensor>& in) {
        Generator gen(5);
        return dropout(in[0], 0.25, true, &gen);
      },
      .reference = [](const std::vector<Tensor>& in) {  // the Philox keep rule of ops.def
        Tensor out = ref_empty(in[0].shape());
        for (int64_t i = 0; i < out.numel(); ++i) {
          uint32_t w[4];
          Philox4x32::generate(5, uint64_t(i), w);
          out.data<double>()[i] = Philox4x32::to_unit(w[0]) < 0.25f ? 0.0 : ref_data(in[0])[i] / 0.75;
        }
        return out;
      },
      .tolerance = norm_tol,
  });
  return ops;
}

}  // namespace

KILN_REGISTER_OPS(join_ops());
KILN_REGISTER_OPS(index_ops());
KILN_REGISTER_OPS(norm_ops());
KILN_REGISTER_OPS(attention_ops());

}  // namespace kiln::testing
