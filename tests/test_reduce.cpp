// Reductions and the softmax family on the CPU, against naive double-precision loops:
// dims (negative, several, all), keepdim shapes, strided and expanded inputs, every dtype
// that applies, the parallel paths (long rows, tall columns), NaN propagation, index
// results, the softmax backward kernels, and every error path.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "kiln/generator.h"
#include "kiln/ops.h"

using namespace kiln;

namespace {

// ---- reference machinery: values of a tensor (any layout) gathered per output position
std::vector<double> values(const Tensor& t) { return t.to(DType::Float64).contiguous().to_vector<double>(); }

// Groups the elements of a (row-major) by output position of a reduction over dims.
std::vector<std::vector<double>> groups(const Tensor& a, std::vector<int64_t> dims) {
  const int64_t nd = a.dim();
  for (auto& d : dims) d = d < 0 ? d + nd : d;
  std::vector<bool> red(size_t(nd), dims.empty());
  for (int64_t d : dims) red[size_t(d)] = true;
  int64_t nout = 1;
  for (int64_t d = 0; d < nd; ++d)
    if (!red[size_t(d)]) nout *= a.size(d);
  std::vector<std::vector<double>> g(static_cast<size_t>(nout));
  const std::vector<double> v = values(a);
  std::vector<int64_t> idx(size_t(nd), 0);
  for (size_t i = 0; i < v.size(); ++i) {
    int64_t o = 0;
    for (int64_t d = 0; d < nd; ++d)
      if (!red[size_t(d)]) o = o * a.size(d) + idx[size_t(d)];
    g[size_t(o)].push_back(v[i]);
    for (int64_t d = nd - 1; d >= 0; --d) {
      if (++idx[size_t(d)] < a.size(d)) break;
      idx[size_t(d)] = 0;
    }
  }
  return g;
}

double ref_sum(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s;
}
double ref_mean(const std::vector<double>& v) { return ref_sum(v) / double(v.size()); }
double ref_var(const std::vector<double>& v, int64_t correction) {
  const double m = ref_mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return s / double(int64_t(v.size()) - correction);
}
double ref_max(const std::vector<double>& v) {
  double m = -INFINITY;
  for (double x : v) {
    if (std::isnan(x)) return x;
    m = x > m ? x : m;
  }
  return m;
}
double ref_min(const std::vector<double>& v) {
  double m = INFINITY;
  for (double x : v) {
    if (std::isnan(x)) return x;
    m = x < m ? x : m;
  }
  return m;
}

Shape ref_shape(const Tensor& a, std::vector<int64_t> dims, bool keepdim) {
  for (auto& d : dims) d = d < 0 ? d + a.dim() : d;
  Shape s;
  for (int64_t d = 0; d < a.dim(); ++d) {
    const bool r = dims.empty() || std::find(dims.begin(), dims.end(), d) != dims.end();
    if (!r) s.push_back(a.size(d));
    else if (keepdim) s.push_back(1);
  }
  return s;
}

double tol_for(DType t) {
  switch (t) {
    case DType::Float32: return 1e-5;
    case DType::Float16: return 5e-3;
    case DType::BFloat16: return 3e-2;
    default: return 1e-12;
  }
}

void expect_close(const Tensor& got, const std::vector<double>& want, double tol, const std::string& what) {
  const std::vector<double> g = values(got);
  ASSERT_EQ(g.size(), want.size()) << what;
  for (size_t i = 0; i < g.size(); ++i) {
    if (std::isnan(want[i])) {
      EXPECT_TRUE(std::isnan(g[i])) << what << " at " << i;
      continue;
    }
    EXPECT_NEAR(g[i], want[i], tol * (1 + std::fabs(want[i]))) << what << " at " << i;
  }
}

// Inputs of one shape in several layouts: contiguous, transposed, strided slice, expanded.
std::vector<std::pair<std::string, Tensor>> layouts(DType dt, Generator& g) {
  std::vector<std::pair<std::string, Tensor>> out;
  auto r = [&](const Shape& s) { return (randn(s, DType::Float64, &g) * 3.0).to(dt); };
  out.emplace_back("contiguous", r({3, 4, 5}));
  out.emplace_back("transposed", r({5, 4, 3}).permute({2, 1, 0}));
  out.emplace_back("strided", r({6, 4, 10}).slice(0, 0, 6, 2).slice(2, 1, 10, 2));
  out.emplace_back("expanded", r({3, 1, 5}).expand({3, 4, 5}));
  return out;
}

const std::vector<std::vector<int64_t>> kDimSets = {{}, {0}, {1}, {2}, {-1}, {0, 2}, {-3, 1}, {0, 1, 2}, {2, 0}};

std::string describe(const std::string& op, DType dt, const std::string& layout, const std::vector<int64_t>& dims,
                     bool keepdim) {
  std::string s = op + " " + dtype_name(dt) + " " + layout + " dims[";
  for (int64_t d : dims) s += std::to_string(d) + ",";
  return s + "] keepdim=" + std::to_string(keepdim);
}

}  // namespace

TEST(Reduce, SumMeanVarStdMatchLoopsOnEveryLayout) {
  Generator g(1);
  for (DType dt : {DType::Float32, DType::Float64, DType::Float16, DType::BFloat16}) {
    for (auto& [lname, a] : layouts(dt, g)) {
      for (const auto& dims : kDimSets) {
        for (bool keep : {false, true}) {
          const auto grp = groups(a, dims);
          const Shape shape = ref_shape(a, dims, keep);
          std::vector<double> s, m, v, sd, vb;
          for (const auto& x : grp) {
            s.push_back(ref_sum(x));
            m.push_back(ref_mean(x));
            v.push_back(ref_var(x, 1));
            vb.push_back(ref_var(x, 0));
            sd.push_back(std::sqrt(ref_var(x, 1)));
          }
          const double tol = tol_for(dt);
          Tensor ts = sum(a, dims, keep), tm = mean(a, dims, keep), tv = var(a, dims, true, keep),
                 tvb = var(a, dims, false, keep), tsd = kiln::std(a, dims, true, keep);
          for (const Tensor* t : {&ts, &tm, &tv, &tvb, &tsd}) {
            EXPECT_EQ(t->shape(), shape) << describe("shape", dt, lname, dims, keep);
            EXPECT_EQ(t->dtype(), dt);
          }
          expect_close(ts, s, tol * 4, describe("sum", dt, lname, dims, keep));
          expect_close(tm, m, tol * 4, describe("mean", dt, lname, dims, keep));
          expect_close(tv, v, tol * 4, describe("var", dt, lname, dims, keep));
          expect_close(tvb, vb, tol * 4, describe("var biased", dt, lname, dims, keep));
          expect_close(tsd, sd, tol * 4, describe("std", dt, lname, dims, keep));
        }
      }
    }
  }
}

TEST(Reduce, AmaxAminMatchLoopsForEveryDType) {
  Generator g(2);
  for (DType dt : {DType::Float32, DType::Float64, DType::Float16, DType::BFloat16, DType::Int32, DType::Int64,
                   DType::Bool}) {
    for (auto& [lname, a0] : layouts(DType::Float64, g)) {
      const Tensor a = dt == DType::Bool ? gt(a0, Scalar(0.5)) : a0.to(dt);
      for (const auto& dims : kDimSets) {
        for (bool keep : {false, true}) {
          std::vector<double> mx, mn;
          for (const auto& x : groups(a, dims)) mx.push_back(ref_max(x)), mn.push_back(ref_min(x));
          Tensor tx = amax(a, dims, keep), tn = amin(a, dims, keep);
          EXPECT_EQ(tx.shape(), ref_shape(a, dims, keep));
          EXPECT_EQ(tx.dtype(), dt);
          expect_close(tx, mx, 0, describe("amax", dt, lname, dims, keep));
          expect_close(tn, mn, 0, describe("amin", dt, lname, dims, keep));
        }
      }
    }
  }
}

TEST(Reduce, IntegerAndBoolSumsGiveInt64) {
  Tensor a = tensor<int32_t>({1, -2, 3, 2000000000, 2000000000, 7}, {2, 3});
  Tensor s = sum(a);
  EXPECT_EQ(s.dtype(), DType::Int64);
  EXPECT_EQ(s.item<int64_t>(), 4000000009LL);  // would overflow int32
  Tensor s1 = sum(a, {1});
  EXPECT_EQ(s1.to_vector<int64_t>(), (std::vector<int64_t>{2, 4000000007LL}));
  Tensor s0 = sum(a, {0}, true);
  EXPECT_EQ(s0.shape(), (Shape{1, 3}));
  EXPECT_EQ(s0.to_vector<int64_t>(), (std::vector<int64_t>{2000000001LL, 1999999998LL, 10}));
  Tensor b = tensor<bool>({true, false, true, true}, {2, 2});
  EXPECT_EQ(sum(b).dtype(), DType::Int64);
  EXPECT_EQ(sum(b).item<int64_t>(), 3);
  EXPECT_EQ(sum(b, {0}).to_vector<int64_t>(), (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(a.sum().item<int64_t>(), 4000000009LL);
}

TEST(Reduce, LargeFloatSumIsAccurateOnEveryParallelPath) {
  Generator g(3);
  // Everything (one long row split across threads), long rows, tall columns, wide columns.
  struct Case { Shape shape; std::vector<int64_t> dims; };
  const std::vector<Case> cases = {{{1 << 20}, {}}, {{2, 100000}, {1}}, {{50000, 3}, {0}},
                                   {{3, 20000, 2}, {1}}, {{300, 700}, {0}}, {{700, 300}, {1}}};
  for (const auto& c : cases) {
    Tensor a = rand(c.shape, DType::Float32, &g) + 0.1;
    std::vector<double> s, mx;
    const auto grp = groups(a, c.dims);
    for (const auto& x : grp) s.push_back(ref_sum(x)), mx.push_back(ref_max(x));
    expect_close(sum(a, c.dims), s, 2e-6, "sum " + shape_str(c.shape));
    expect_close(amax(a, c.dims), mx, 0, "amax " + shape_str(c.shape));
    std::vector<double> v;
    for (const auto& x : grp) v.push_back(ref_var(x, 1));
    expect_close(var(a, c.dims), v, 1e-5, "var " + shape_str(c.shape));
  }
}

TEST(Reduce, VarOfLargeOffsetDataIsStable) {
  // Values 1e4 + small noise: a one-pass sum-of-squares formula loses every digit in float.
  Generator g(4);
  Tensor a = rand({4096}, DType::Float64, &g) + 1e4;
  Tensor af = a.to(DType::Float32);
  const double want = ref_var(values(af), 1);
  EXPECT_NEAR(var(af).item<double>(), want, 1e-4 * want);
}

TEST(Reduce, EmptyReductions) {
  Tensor e = zeros({0, 3});
  Tensor s = sum(e, {0});
  EXPECT_EQ(s.shape(), (Shape{3}));
  EXPECT_EQ(values(s), (std::vector<double>{0, 0, 0}));
  EXPECT_EQ(sum(e).item<double>(), 0.0);
  EXPECT_TRUE(std::isnan(mean(e).item<double>()));
  EXPECT_EQ(sum(e, {1}).shape(), (Shape{0}));
  EXPECT_EQ(amax(e, {1}).shape(), (Shape{0}));  // reduced dim is non-empty: fine
  Tensor one = tensor<float>({2.5f});
  EXPECT_TRUE(std::isnan(var(one).item<double>()));  // N - 1 = 0
  EXPECT_EQ(var(one, {}, false).item<double>(), 0.0);
  Tensor z = full({}, 4.0);  // 0-d: dim 0 and -1 mean its one element
  EXPECT_EQ(sum(z, {0}).item<double>(), 4.0);
  EXPECT_EQ(sum(z, {-1}, true).shape(), Shape{});
}

TEST(Reduce, MaxMinOverDimGiveValuesAndFirstIndices) {
  // Ties: the first index wins, as in PyTorch.
  Tensor a = tensor<float>({1, 5, 5, 2, /**/ 7, 7, -1, 0, /**/ -3, -3, -3, -3}, {3, 4});
  auto [v, i] = max(a, 1);
  EXPECT_EQ(v.to_vector<float>(), (std::vector<float>{5, 7, -3}));
  EXPECT_EQ(i.dtype(), DType::Int64);
  EXPECT_EQ(i.to_vector<int64_t>(), (std::vector<int64_t>{1, 0, 0}));
  auto [vn, in] = min(a, -1, true);
  EXPECT_EQ(vn.shape(), (Shape{3, 1}));
  EXPECT_EQ(vn.to_vector<float>(), (std::vector<float>{1, -1, -3}));
  EXPECT_EQ(in.to_vector<int64_t>(), (std::vector<int64_t>{0, 2, 0}));
  auto [v0, i0] = max(a, 0);
  EXPECT_EQ(v0.to_vector<float>(), (std::vector<float>{7, 7, 5, 2}));
  EXPECT_EQ(i0.to_vector<int64_t>(), (std::vector<int64_t>{1, 1, 0, 0}));
  EXPECT_EQ(argmax(a).item<int64_t>(), 4);
  EXPECT_EQ(argmin(a).item<int64_t>(), 8);
  EXPECT_EQ(argmax(a, std::nullopt, true).shape(), (Shape{1, 1}));
  EXPECT_EQ(argmax(a, 0, true).shape(), (Shape{1, 4}));
  EXPECT_EQ(argmin(a, 0).to_vector<int64_t>(), (std::vector<int64_t>{2, 2, 2, 2}));
  EXPECT_EQ(a.argmax(1).to_vector<int64_t>(), (std::vector<int64_t>{1, 0, 0}));
  EXPECT_EQ(a.argmax().item<int64_t>(), 4);
  EXPECT_EQ(a.max().item<float>(), 7.0f);
  EXPECT_EQ(a.min().item<float>(), -3.0f);
  EXPECT_EQ(max(a).shape(), Shape{});
}

TEST(Reduce, ArgReductionsMatchLoopsOnLayoutsAndDTypes) {
  Generator g(5);
  for (DType dt : {DType::Float32, DType::Float64, DType::Float16, DType::BFloat16, DType::Int32, DType::Int64,
                   DType::Bool}) {
    for (auto& [lname, a0] : layouts(DType::Float64, g)) {
      const Tensor a = dt == DType::Bool ? gt(a0, Scalar(0.5)) : a0.to(dt);
      for (int64_t dim : {0, 1, 2, -1, -2}) {
        for (bool keep : {false, true}) {
          const auto grp = groups(a, {dim});
          std::vector<double> mxv, mnv, mxi, mni;
          for (const auto& x : grp) {
            size_t bi = 0, si = 0;
            for (size_t k = 1; k < x.size(); ++k) {
              if (x[k] > x[bi]) bi = k;
              if (x[k] < x[si]) si = k;
            }
            mxv.push_back(x[bi]), mxi.push_back(double(bi)), mnv.push_back(x[si]), mni.push_back(double(si));
          }
          const std::string d = describe("argmax", dt, lname, {dim}, keep);
          auto [v, i] = max(a, dim, keep);
          EXPECT_EQ(v.shape(), ref_shape(a, {dim}, keep)) << d;
          EXPECT_EQ(v.dtype(), dt) << d;
          expect_close(v, mxv, 0, d);
          expect_close(i, mxi, 0, d);
          auto [vn, in] = min(a, dim, keep);
          expect_close(vn, mnv, 0, d);
          expect_close(in, mni, 0, d);
          expect_close(argmax(a, dim, keep), mxi, 0, d);
          expect_close(argmin(a, dim, keep), mni, 0, d);
        }
      }
    }
  }
}

TEST(Reduce, LargeArgmaxOverColumnsAndRows) {
  Generator g(6);
  for (const Shape& s : {Shape{20000, 3}, Shape{3, 20000}, Shape{600, 300}}) {
    Tensor a = randn(s, DType::Float32, &g);
    for (int64_t dim : {0, 1}) {
      std::vector<double> mi;
      for (const auto& x : groups(a, {dim})) {
        size_t bi = 0;
        for (size_t k = 1; k < x.size(); ++k)
          if (x[k] > x[bi]) bi = k;
        mi.push_back(double(bi));
      }
      expect_close(max(a, dim).second, mi, 0, "max dim " + shape_str(s));
    }
  }
}

TEST(Reduce, TiesInLongRowsAndColumnsGiveTheFirstIndex) {
  // Equal extremes in different blocks of the vectorised paths: the first one wins.
  Tensor row = zeros({5000});
  row.narrow(0, 4000, 1).fill_(2.0);
  row.narrow(0, 1500, 1).fill_(2.0);
  row.narrow(0, 3000, 1).fill_(-1.0);
  row.narrow(0, 4500, 1).fill_(-1.0);
  EXPECT_EQ(argmax(row).item<int64_t>(), 1500);
  EXPECT_EQ(argmin(row).item<int64_t>(), 3000);
  Tensor big = zeros({100000});  // split across threads
  big.narrow(0, 99000, 1).fill_(5.0);
  big.narrow(0, 60000, 1).fill_(5.0);
  EXPECT_EQ(argmax(big).item<int64_t>(), 60000);
  Tensor col = zeros({40000, 3}, DType::Int32);  // tall columns: the reduced range is split
  col.select(1, 1).narrow(0, 30000, 1).fill_(7);
  col.select(1, 1).narrow(0, 25000, 1).fill_(7);
  auto [v, i] = max(col, 0);
  EXPECT_EQ(v.to_vector<int32_t>(), (std::vector<int32_t>{0, 7, 0}));
  EXPECT_EQ(i.to_vector<int64_t>(), (std::vector<int64_t>{0, 25000, 0}));
  auto [vn, in] = min(col, 0);
  EXPECT_EQ(in.to_vector<int64_t>(), (std::vector<int64_t>{0, 0, 0}));
}

TEST(Reduce, NaNPropagatesThroughMaxMinAndArgmax) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Tensor a = tensor<float>({1, nan, 3, nan, /**/ 4, 5, 6, 7}, {2, 4});
  EXPECT_TRUE(std::isnan(amax(a).item<float>()));
  EXPECT_TRUE(std::isnan(amin(a).item<float>()));
  EXPECT_TRUE(std::isnan(max(a).item<float>()));
  Tensor r = amax(a, {1});
  EXPECT_TRUE(std::isnan(r.to_vector<float>()[0]));
  EXPECT_EQ(r.to_vector<float>()[1], 7.0f);
  Tensor c = amin(a, {0});
  const auto cv = c.to_vector<float>();
  EXPECT_EQ(cv[0], 1.0f);
  EXPECT_TRUE(std::isnan(cv[1]));
  EXPECT_EQ(cv[2], 3.0f);
  EXPECT_TRUE(std::isnan(cv[3]));
  auto [v, i] = max(a, 1);
  EXPECT_TRUE(std::isnan(v.to_vector<float>()[0]));
  EXPECT_EQ(i.to_vector<int64_t>(), (std::vector<int64_t>{1, 3}));  // the first NaN
  EXPECT_EQ(argmax(a).item<int64_t>(), 1);
  EXPECT_EQ(argmin(a).item<int64_t>(), 1);
  // A NaN deep in a long row, on the vectorised and threaded path.
  Tensor big = ones({100000});
  big.narrow(0, 77777, 1).fill_(nan);
  EXPECT_TRUE(std::isnan(amax(big).item<float>()));
  EXPECT_EQ(argmax(big).item<int64_t>(), 77777);
  Tensor col = ones({50000, 2});
  col.select(0, 40000).select(0, 1).fill_(nan);
  const auto cm = amax(col, {0}).to_vector<float>();
  EXPECT_EQ(cm[0], 1.0f);
  EXPECT_TRUE(std::isnan(cm[1]));
}

// ---- softmax family
namespace {
std::vector<double> ref_softmax(const Tensor& a, int64_t dim, bool log) {
  const int64_t nd = a.dim(), d = dim < 0 ? dim + nd : dim;
  int64_t outer = 1, n = a.size(d), inner = 1;
  for (int64_t k = 0; k < d; ++k) outer *= a.size(k);
  for (int64_t k = d + 1; k < nd; ++k) inner *= a.size(k);
  const std::vector<double> x = values(a);
  std::vector<double> y(x.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < inner; ++j) {
      auto at = [&](int64_t i) { return size_t((o * n + i) * inner + j); };
      double m = -INFINITY;
      for (int64_t i = 0; i < n; ++i) m = std::max(m, x[at(i)]);
      double s = 0;
      for (int64_t i = 0; i < n; ++i) s += std::exp(x[at(i)] - m);
      for (int64_t i = 0; i < n; ++i) y[at(i)] = log ? x[at(i)] - m - std::log(s) : std::exp(x[at(i)] - m) / s;
    }
  return y;
}
}  // namespace

TEST(Softmax, MatchesLoopsOnEveryDimLayoutAndDType) {
  Generator g(7);
  for (DType dt : {DType::Float32, DType::Float64, DType::Float16, DType::BFloat16}) {
    for (auto& [lname, a] : layouts(dt, g)) {
      for (int64_t dim : {0, 1, 2, -1, -3}) {
        const std::string d = describe("softmax", dt, lname, {dim}, false);
        Tensor s = softmax(a, dim), ls = log_softmax(a, dim);
        EXPECT_EQ(s.shape(), a.shape());
        EXPECT_EQ(s.dtype(), dt);
        expect_close(s, ref_softmax(a, dim, false), tol_for(dt) * 2, d);
        expect_close(ls, ref_softmax(a, dim, true), tol_for(dt) * 4, "log_" + d);
      }
    }
  }
}

TEST(Softmax, RowsSumToOneAndLargeInputsDoNotOverflow) {
  Generator g(8);
  // Wide rows and many columns, on the threaded paths; values near 1000 overflow a naive exp.
  for (const Shape& s : {Shape{64, 1000}, Shape{1000, 70}, Shape{5, 300, 40}}) {
    Tensor a = randn(s, DType::Float32, &g) * 10.0 + 1000.0;
    for (int64_t dim : {0, -1}) {
      Tensor y = softmax(a, dim);
      expect_close(y, ref_softmax(a, dim, false), 1e-5, "softmax " + shape_str(s));
      expect_close(sum(y, {dim}), std::vector<double>(size_t(a.numel() / a.size(dim)), 1.0), 1e-5, "row sums");
      expect_close(log_softmax(a, dim), ref_softmax(a, dim, true), 1e-5, "log_softmax " + shape_str(s));
    }
  }
  // A long row and a tall column: sums over 200000 terms stay accurate in float.
  // Outputs are ~5e-6 here, so compare relative errors.
  auto expect_relative = [](const Tensor& got, const std::vector<double>& want, const char* what) {
    const std::vector<double> v = values(got);
    double worst = 0;
    for (size_t i = 0; i < v.size(); ++i) worst = std::max(worst, std::fabs(v[i] - want[i]) / std::fabs(want[i]));
    EXPECT_LT(worst, 2e-6) << what;
  };
  Tensor wide = rand({1, 200000}, DType::Float32, &g);
  expect_relative(softmax(wide, 1), ref_softmax(wide, 1, false), "softmax wide row");
  expect_relative(log_softmax(wide, 1), ref_softmax(wide, 1, true), "log_softmax wide row");
  Tensor tall = rand({200000, 2}, DType::Float32, &g);
  expect_relative(softmax(tall, 0), ref_softmax(tall, 0, false), "softmax tall column");
  // -inf entries (masks) get exactly 0; a NaN poisons its row only.
  Tensor m = tensor<float>({0, -INFINITY, 0, 1, NAN, 2}, {2, 3});
  const auto y = softmax(m, 1).to_vector<float>();
  EXPECT_FLOAT_EQ(y[0], 0.5f);
  EXPECT_EQ(y[1], 0.0f);
  EXPECT_FLOAT_EQ(y[2], 0.5f);
  for (int k = 3; k < 6; ++k) EXPECT_TRUE(std::isnan(y[size_t(k)]));
  EXPECT_EQ(softmax(full({}, 3.0f), 0).item<float>(), 1.0f);
  EXPECT_EQ(m.softmax(-1).shape(), m.shape());
  EXPECT_EQ(m.log_softmax(0).shape(), m.shape());
}

TEST(Softmax, BackwardKernelsMatchAnalyticGradients) {
  Generator g(9);
  for (DType dt : {DType::Float32, DType::Float64, DType::Float16, DType::BFloat16}) {
    for (const Shape& s : {Shape{4, 7}, Shape{3, 5, 6}, Shape{200, 300}}) {
      for (int64_t dim : {0, -1}) {
        Tensor x = randn(s, DType::Float64, &g).to(dt);
        Tensor gr = randn(s, DType::Float64, &g).to(dt);
        Tensor y = softmax(x, dim), ly = log_softmax(x, dim);
        // Jacobian of softmax: dy_i/dx_k = y_i (delta_ik - y_k), so gx_k = y_k (g_k - sum_i g_i y_i).
        // Of log_softmax: dly_i/dx_k = delta_ik - y_k, so gx_k = g_k - y_k sum_i g_i.
        const auto yv = values(y), lyv = values(ly), gv = values(gr);
        const auto gy = groups(gr.mul(y), {dim}), gs = groups(gr, {dim});
        const int64_t d = dim < 0 ? dim + x.dim() : dim;
        int64_t inner = 1;
        for (int64_t k = d + 1; k < x.dim(); ++k) inner *= x.size(k);
        std::vector<double> want(yv.size()), lwant(yv.size());
        for (size_t i = 0; i < yv.size(); ++i) {
          const int64_t o = int64_t(i) / (inner * x.size(d)), j = int64_t(i) % inner;
          const size_t grp = size_t(o * inner + j);
          want[i] = yv[i] * (gv[i] - ref_sum(gy[grp]));
          lwant[i] = gv[i] - std::exp(lyv[i]) * ref_sum(gs[grp]);
        }
        const std::string what = std::string(dtype_name(dt)) + " " + shape_str(s) + " dim " + std::to_string(dim);
        const double tol = dt == DType::Float64 ? 1e-12 : dt == DType::Float32 ? 1e-5 : 3e-2;
        expect_close(softmax_backward(gr, y, dim), want, tol, "softmax_backward " + what);
        expect_close(log_softmax_backward(gr, ly, dim), lwant, tol, "log_softmax_backward " + what);
      }
    }
  }
}

// ---- whole-tensor comparisons
TEST(Compare, AllcloseAndEqual) {
  Tensor a = tensor<float>({1, 2, 3});
  EXPECT_TRUE(equal(a, tensor<float>({1, 2, 3})));
  EXPECT_FALSE(equal(a, tensor<float>({1, 2, 4})));
  EXPECT_FALSE(equal(a, tensor<float>({1, 2, 3}, {3, 1})));
  EXPECT_TRUE(equal(a, tensor<int64_t>({1, 2, 3})));
  EXPECT_FALSE(equal(tensor<float>({NAN}), tensor<float>({NAN})));
  EXPECT_TRUE(allclose(a, tensor<float>({1, 2, 3.00001f})));
  EXPECT_FALSE(allclose(a, tensor<float>({1, 2, 3.1f})));
  EXPECT_TRUE(allclose(a, tensor<float>({1, 2, 3.1f}), 0, 0.2));
  EXPECT_TRUE(allclose(tensor<float>({INFINITY}), tensor<float>({INFINITY})));
  EXPECT_FALSE(allclose(tensor<float>({INFINITY}), tensor<float>({-INFINITY})));
  EXPECT_FALSE(allclose(tensor<float>({NAN}), tensor<float>({NAN})));
  EXPECT_TRUE(allclose(full({2, 3}, 1.0), ones({3})));  // broadcasts
  EXPECT_TRUE(allclose(a.t(), a));
}

// ---- errors: message names the op, inputs unchanged
namespace {
template <typename F>
void expect_error(F f, const std::string& op, const std::string& part, const Tensor& input) {
  const std::vector<double> before = values(input);
  try {
    f();
    ADD_FAILURE() << "no error for " << op << " (" << part << ")";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind("[" + op + "]", 0), 0u) << msg;
    EXPECT_NE(msg.find(part), std::string::npos) << msg;
  }
  const std::vector<double> after = values(input);
  ASSERT_EQ(before.size(), after.size());
  for (size_t i = 0; i < before.size(); ++i) EXPECT_EQ(before[i], after[i]);
}
}  // namespace

TEST(ReduceErrors, EveryBadInputRaisesNamingTheOp) {
  Tensor a = arange(24, DType::Float32).view({2, 3, 4});
  Tensor ai = arange(6, DType::Int64);
  expect_error([&] { sum(a, {3}); }, "sum", "dim 3 out of range", a);
  expect_error([&] { sum(a, {-4}); }, "sum", "out of range", a);
  expect_error([&] { sum(a, {1, -2}); }, "sum", "more than once", a);
  expect_error([&] { mean(a, {0, 0}); }, "mean", "more than once", a);
  expect_error([&] { amax(a, {5}); }, "amax", "out of range", a);
  expect_error([&] { amin(a, {2, 2}); }, "amin", "more than once", a);
  expect_error([&] { var(a, {7}); }, "var", "out of range", a);
  expect_error([&] { kiln::std(a, {1, 1}); }, "std", "more than once", a);
  expect_error([&] { mean(ai); }, "mean", "int64", ai);
  expect_error([&] { var(ai); }, "var", "int64", ai);
  expect_error([&] { kiln::std(ai); }, "std", "int64", ai);
  expect_error([&] { mean(tensor<bool>({true})); }, "mean", "bool", ai);
  expect_error([&] { max(a, 3); }, "max", "out of range", a);
  expect_error([&] { min(a, -4); }, "min", "out of range", a);
  expect_error([&] { argmax(a, 3); }, "argmax", "out of range", a);
  expect_error([&] { argmin(a, -5); }, "argmin", "out of range", a);
  Tensor e = zeros({2, 0});
  expect_error([&] { max(e); }, "max", "empty", e);
  expect_error([&] { min(e); }, "min", "empty", e);
  expect_error([&] { amax(e); }, "amax", "[2, 0]", e);
  expect_error([&] { amin(e, {1}); }, "amin", "non-zero size", e);
  expect_error([&] { max(e, 1); }, "max", "non-zero size", e);
  expect_error([&] { argmax(e); }, "argmax", "non-zero size", e);
  expect_error([&] { argmin(e, 1); }, "argmin", "non-zero size", e);
  expect_error([&] { sum(Tensor()); }, "sum", "undefined", a);
  expect_error([&] { allclose(a, ones({5})); }, "allclose", "[2, 3, 4]", a);
  expect_error([&] { allclose(a, a, -1); }, "allclose", "non-negative", a);
}

TEST(SoftmaxErrors, EveryBadInputRaisesNamingTheOp) {
  Tensor a = arange(6, DType::Float32).view({2, 3});
  Tensor ai = arange(6, DType::Int64);
  expect_error([&] { softmax(a, 2); }, "softmax", "out of range", a);
  expect_error([&] { log_softmax(a, -3); }, "log_softmax", "out of range", a);
  expect_error([&] { softmax(ai, 0); }, "softmax", "int64", ai);
  expect_error([&] { log_softmax(ai, 0); }, "log_softmax", "int64", ai);
  expect_error([&] { softmax_backward(a, ones({3, 2}), 0); }, "softmax_backward", "[3, 2]", a);
  expect_error([&] { log_softmax_backward(a, a.to(DType::Float64), 0); }, "log_softmax_backward", "float64", a);
  expect_error([&] { softmax_backward(a, a, 2); }, "softmax_backward", "out of range", a);
  expect_error([&] { softmax_backward(ai, ai, 0); }, "softmax_backward", "int64", ai);
}
