// Views share storage and see each other's writes in both directions; contiguous()
// and reshape() copy only when they must; copy_ broadcasts and casts. Expected values
// come from the row-major index arithmetic of the base tensor (base[i] = i).
#include <gtest/gtest.h>

#include <vector>

#include "kiln/ops.h"

using namespace kiln;

namespace {
// base[i] = i, float64, as the given shape.
Tensor iota(const Shape& shape) {
  const int64_t n = numel_of(shape);
  std::vector<double> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = double(i);
  return tensor(v, {n}).view(shape);  // (tensor() with an empty shape means 1-D)
}

double get(const Tensor& t, std::initializer_list<int64_t> idx) { return t.at(idx).to_double(); }

// Writes one element through t (a view) by selecting down to it.
void put(const Tensor& t, std::initializer_list<int64_t> idx, double v) {
  Tensor e = t;
  for (int64_t i : idx) e = e.select(0, i);
  e.fill_(v);
}

// Row-major flat index of base shape [.., .., ..].
int64_t flat(const Shape& shape, std::initializer_list<int64_t> idx) {
  int64_t f = 0;
  size_t d = 0;
  for (int64_t i : idx) f = f * shape[d++] + i;
  return f;
}
}  // namespace

TEST(Views, ViewInfersMinusOneAndSharesStorage) {
  Tensor base = iota({24});
  Tensor v = base.view({-1, 6});
  EXPECT_EQ(v.shape(), (Shape{4, 6}));
  EXPECT_EQ(v.strides(), (Strides{6, 1}));
  EXPECT_TRUE(v.shares_storage(base));
  EXPECT_EQ(get(v, {2, 3}), 15.0);
  put(v, {1, 2}, -7);  // view -> base
  EXPECT_EQ(get(base, {8}), -7.0);
  put(base, {23}, 100);  // base -> view
  EXPECT_EQ(get(v, {3, 5}), 100.0);
  EXPECT_EQ(base.view({2, -1, 3}).shape(), (Shape{2, 4, 3}));
  EXPECT_EQ(iota({0, 4}).view({-1}).shape(), (Shape{0}));
}

TEST(Views, ViewOfNonContiguousNeedsCompatibleStrides) {
  Tensor base = iota({4, 6});
  // Rows of a column-sliced tensor can't be merged, but splitting a dim always works.
  Tensor cols = base.narrow(1, 0, 3);
  EXPECT_THROW((void)cols.view({12}), Error);
  Tensor split = cols.view({2, 2, 3});
  EXPECT_TRUE(split.shares_storage(base));
  EXPECT_EQ(get(split, {1, 1, 2}), double(flat({4, 6}, {3, 2})));
  // A transposed tensor viewed as its own transposed shape doesn't need contiguity.
  Tensor tt = base.t().view({6, 4});
  EXPECT_EQ(get(tt, {5, 3}), double(flat({4, 6}, {3, 5})));
}

TEST(Views, ReshapeCopiesOnlyWhenItMust) {
  Tensor base = iota({3, 4});
  Tensor r = base.reshape({4, 3});
  EXPECT_TRUE(r.shares_storage(base));
  put(r, {3, 2}, -1);
  EXPECT_EQ(get(base, {2, 3}), -1.0);
  put(base, {2, 3}, 11);

  Tensor rows = base.narrow(0, 1, 2);  // contiguous rows: still a view
  Tensor rr = rows.reshape({-1});
  EXPECT_TRUE(rr.shares_storage(base));
  EXPECT_EQ(get(rr, {0}), 4.0);

  Tensor t = base.t();  // [4, 3] transposed: flattening needs a copy
  Tensor c = t.reshape({12});
  EXPECT_FALSE(c.shares_storage(base));
  for (int64_t i = 0; i < 12; ++i) EXPECT_EQ(get(c, {i}), double((i % 3) * 4 + i / 3)) << i;
  put(c, {0}, 99);  // the copy is independent
  EXPECT_EQ(get(base, {0, 0}), 0.0);
}

TEST(Views, PermuteTransposeAndT) {
  const Shape s{2, 3, 4};
  Tensor base = iota(s);
  Tensor p = base.permute({2, 0, 1});
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  EXPECT_EQ(p.strides(), (Strides{1, 12, 4}));
  EXPECT_TRUE(p.shares_storage(base));
  EXPECT_FALSE(p.is_contiguous());
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 3; ++j)
      for (int64_t k = 0; k < 4; ++k) EXPECT_EQ(get(p, {k, i, j}), double(flat(s, {i, j, k})));
  put(p, {3, 1, 2}, -5);
  EXPECT_EQ(get(base, {1, 2, 3}), -5.0);

  Tensor tr = base.transpose(0, -1);
  EXPECT_EQ(tr.shape(), (Shape{4, 3, 2}));
  put(base, {0, 1, 2}, 42);
  EXPECT_EQ(get(tr, {2, 1, 0}), 42.0);

  Tensor m = iota({2, 5});
  Tensor mt = m.t();
  EXPECT_EQ(mt.shape(), (Shape{5, 2}));
  put(mt, {4, 1}, 7.5);
  EXPECT_EQ(get(m, {1, 4}), 7.5);
  Tensor v = iota({5});
  EXPECT_EQ(v.t().shape(), (Shape{5}));  // 1-D: unchanged
}

TEST(Views, NarrowSliceWithStepAndSelect) {
  const Shape s{4, 6};
  Tensor base = iota(s);
  Tensor n = base.narrow(1, 2, 3);
  EXPECT_EQ(n.shape(), (Shape{4, 3}));
  EXPECT_EQ(n.offset(), 2);
  EXPECT_EQ(get(n, {3, 2}), double(flat(s, {3, 4})));
  put(n, {0, 0}, -1);
  EXPECT_EQ(get(base, {0, 2}), -1.0);

  Tensor sl = base.slice(1, 1, 6, 2);  // columns 1, 3, 5
  EXPECT_EQ(sl.shape(), (Shape{4, 3}));
  EXPECT_EQ(sl.strides(), (Strides{6, 2}));
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 3; ++j) EXPECT_EQ(get(sl, {i, j}), double(flat(s, {i, 1 + 2 * j})));
  put(base, {2, 5}, 55);
  EXPECT_EQ(get(sl, {2, 2}), 55.0);
  put(sl, {3, 1}, -3);
  EXPECT_EQ(get(base, {3, 3}), -3.0);
  EXPECT_EQ(base.slice(0, 1, 100).shape(), (Shape{3, 6}));   // end clamps, as in PyTorch
  EXPECT_EQ(base.slice(1, -2, 6).shape(), (Shape{4, 2}));    // negative start counts from the end
  EXPECT_EQ(base.slice(1, 0, 6, 4).shape(), (Shape{4, 2}));  // ceil(6 / 4)
  EXPECT_EQ(base.slice(0, 3, 1).shape(), (Shape{0, 6}));     // empty

  Tensor row = base.select(0, -1);
  EXPECT_EQ(row.shape(), (Shape{6}));
  EXPECT_EQ(get(row, {0}), double(flat(s, {3, 0})));
  Tensor col = base.select(1, 4);
  put(col, {1}, 0.5);
  EXPECT_EQ(get(base, {1, 4}), 0.5);
  EXPECT_EQ(base[2].shape(), (Shape{6}));
}

TEST(Views, ExpandUsesStrideZeroAndSeesTheBase) {
  Tensor base = iota({3, 1});
  Tensor e = base.expand({2, 3, 4});
  EXPECT_EQ(e.shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(e.strides(), (Strides{0, 1, 0}));
  EXPECT_TRUE(e.shares_storage(base));
  put(base, {1, 0}, 9);
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t k = 0; k < 4; ++k) EXPECT_EQ(get(e, {b, 1, k}), 9.0);
  EXPECT_EQ(base.expand({-1, 5}).shape(), (Shape{3, 5}));
  EXPECT_EQ(iota({4}).expand_as(iota({2, 4})).strides(), (Strides{0, 1}));
}

TEST(Views, SqueezeUnsqueezeFlattenUnflatten) {
  Tensor base = iota({2, 1, 3, 1});
  EXPECT_EQ(base.squeeze().shape(), (Shape{2, 3}));
  EXPECT_EQ(base.squeeze(1).shape(), (Shape{2, 3, 1}));
  EXPECT_EQ(base.squeeze(0).shape(), (Shape{2, 1, 3, 1}));  // not size 1: unchanged
  EXPECT_EQ(base.squeeze(-1).shape(), (Shape{2, 1, 3}));
  Tensor sq = base.squeeze();
  EXPECT_TRUE(sq.shares_storage(base));
  put(sq, {1, 2}, -4);
  EXPECT_EQ(get(base, {1, 0, 2, 0}), -4.0);

  Tensor v = iota({2, 3});
  EXPECT_EQ(v.unsqueeze(0).shape(), (Shape{1, 2, 3}));
  EXPECT_EQ(v.unsqueeze(1).shape(), (Shape{2, 1, 3}));
  EXPECT_EQ(v.unsqueeze(-1).shape(), (Shape{2, 3, 1}));
  Tensor u = v.unsqueeze(1);
  put(u, {1, 0, 2}, 8);
  EXPECT_EQ(get(v, {1, 2}), 8.0);
  EXPECT_EQ(iota({}).unsqueeze(0).shape(), (Shape{1}));

  Tensor c = iota({2, 3, 4});
  Tensor f = c.flatten(1, 2);
  EXPECT_EQ(f.shape(), (Shape{2, 12}));
  EXPECT_TRUE(f.shares_storage(c));
  EXPECT_EQ(c.flatten().shape(), (Shape{24}));
  EXPECT_EQ(c.flatten(0, 1).shape(), (Shape{6, 4}));
  EXPECT_EQ(iota({}).flatten().shape(), (Shape{1}));
  put(f, {1, 11}, -2);
  EXPECT_EQ(get(c, {1, 2, 3}), -2.0);
  Tensor ft = c.transpose(0, 2).flatten();  // non-contiguous: a copy with the permuted order
  EXPECT_EQ(get(ft, {1}), double(flat({2, 3, 4}, {1, 0, 0})));

  Tensor uf = f.unflatten(1, {3, -1});
  EXPECT_EQ(uf.shape(), (Shape{2, 3, 4}));
  EXPECT_TRUE(uf.shares_storage(c));
  EXPECT_EQ(get(uf, {0, 2, 1}), double(flat({2, 3, 4}, {0, 2, 1})));
}

TEST(Views, AsStridedMakesWindowsOverTheStorage) {
  Tensor base = iota({10});
  Tensor w = base.as_strided({4, 3}, {2, 1}, 1);  // windows of 3, hop 2, from element 1
  EXPECT_TRUE(w.shares_storage(base));
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 3; ++j) EXPECT_EQ(get(w, {i, j}), double(1 + 2 * i + j));
  put(base, {3}, -1);  // element 3 appears in windows 0 (j=2) and 1 (j=0)
  EXPECT_EQ(get(w, {0, 2}), -1.0);
  EXPECT_EQ(get(w, {1, 0}), -1.0);
  put(w, {3, 2}, 77);
  EXPECT_EQ(get(base, {9}), 77.0);
}

TEST(Views, ContiguousCopiesOnlyWhenItMust) {
  Tensor base = iota({3, 4});
  EXPECT_TRUE(base.is_contiguous());
  EXPECT_TRUE(base.contiguous().is_same(base));
  Tensor rows = base.narrow(0, 1, 2);
  EXPECT_TRUE(rows.is_contiguous());
  EXPECT_TRUE(rows.contiguous().is_same(rows));
  Tensor one = base.narrow(1, 2, 1);  // [3, 1] with stride 4: not contiguous
  EXPECT_FALSE(one.is_contiguous());
  Tensor u = iota({4}).unsqueeze(0);  // size-1 dims don't matter
  EXPECT_TRUE(u.is_contiguous());
  EXPECT_TRUE(u.contiguous().is_same(u));

  Tensor t = base.t();
  Tensor tc = t.contiguous();
  EXPECT_FALSE(tc.shares_storage(base));
  EXPECT_TRUE(tc.is_contiguous());
  EXPECT_EQ(tc.shape(), (Shape{4, 3}));
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 3; ++j) EXPECT_EQ(get(tc, {i, j}), double(j * 4 + i));

  Tensor e = iota({3}).expand({2, 3}).contiguous();  // materialises the broadcast
  EXPECT_EQ(e.strides(), (Strides{3, 1}));
  EXPECT_EQ(e.to_vector<double>(), (std::vector<double>{0, 1, 2, 0, 1, 2}));
}

TEST(Views, CloneIsIndependent) {
  Tensor base = iota({2, 3});
  Tensor c = base.t().clone();
  EXPECT_FALSE(c.shares_storage(base));
  EXPECT_EQ(c.shape(), (Shape{3, 2}));
  put(c, {0, 1}, -9);
  EXPECT_EQ(get(base, {1, 0}), 3.0);
}

TEST(Views, CopyBroadcastsCastsAndWritesThroughViews) {
  Tensor dst = zeros({2, 3}, DType::Float64);
  dst.copy_(tensor<int32_t>({4, -5, 6}));  // broadcast over rows, int32 -> float64
  EXPECT_EQ(dst.to_vector<double>(), (std::vector<double>{4, -5, 6, 4, -5, 6}));
  dst.copy_(tensor<bool>({true, false, true}, {3}).unsqueeze(0));
  EXPECT_EQ(dst.to_vector<double>(), (std::vector<double>{1, 0, 1, 1, 0, 1}));

  // float -> int truncates toward zero, as in PyTorch
  Tensor idst = zeros({4}, DType::Int32);
  idst.copy_(tensor<double>({1.7, -1.7, 2.5, -0.5}));
  EXPECT_EQ(idst.to_vector<int32_t>(), (std::vector<int32_t>{1, -1, 2, 0}));

  // Into a transposed view: the base sees the transposed values.
  Tensor base = zeros({3, 2}, DType::Float32);
  base.t().copy_(iota({2, 3}));
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 2; ++j) EXPECT_EQ(get(base, {i, j}), double(j * 3 + i));

  // Into a strided slice: only the slice changes.
  Tensor buf = zeros({8}, DType::Float64);
  buf.slice(0, 1, 8, 2).copy_(full({4}, 3.0, DType::Float64));
  EXPECT_EQ(buf.to_vector<double>(), (std::vector<double>{0, 3, 0, 3, 0, 3, 0, 3}));

  // From a non-contiguous source with a cast.
  Tensor h = zeros({3, 2}, DType::Float16);
  h.copy_(iota({2, 3}).t());
  EXPECT_EQ(h.to_vector<float>(), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  // copy_ bumps the version counter (autograd uses it to detect in-place changes)
  const uint64_t v0 = h.version();
  h.copy_(zeros({3, 2}));
  EXPECT_GT(h.version(), v0);
}

TEST(Views, ToDtypeReturnsSelfWhenNothingChanges) {
  Tensor a = iota({3});
  EXPECT_TRUE(a.to(DType::Float64).is_same(a));
  EXPECT_TRUE(a.to(kCpu).is_same(a));
  Tensor f = a.to(DType::Float32);
  EXPECT_FALSE(f.shares_storage(a));
  EXPECT_EQ(f.dtype(), DType::Float32);
  EXPECT_EQ(f.to_vector<float>(), (std::vector<float>{0, 1, 2}));
}
