// Joining and indexing ops: cat, stack, split, chunk, index_select, gather, one_hot,
// embedding and the accumulations behind their backward (index_add, scatter_add,
// embedding_backward), against naive loops; every error path names the op and leaves
// the inputs unchanged.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "kiln/generator.h"
#include "kiln/ops.h"
#include "kiln/ops_nn_backward.h"
#include "tests/support/expect_error.h"

using kiln::testing::expect_error;

using namespace kiln;

namespace {

Tensor seq(const Shape& shape, DType dt = DType::Float64) {
  return arange(numel_of(shape), dt).view(shape);
}

// Element (flat row-major index) of a float64 copy.
std::vector<double> vals(const Tensor& t) { return t.to_vector<double>(); }


}  // namespace

TEST(Cat, MatchesLoopsAlongEachDim) {
  Tensor a = seq({2, 3, 4});
  Tensor b = seq({2, 1, 4}) + 100.0;
  Tensor c = cat({a, b}, 1);
  ASSERT_EQ(c.shape(), (Shape{2, 4, 4}));
  const auto va = vals(a), vb = vals(b), vc = vals(c);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j)
      for (int k = 0; k < 4; ++k) {
        const double want = j < 3 ? va[size_t(i * 12 + j * 4 + k)] : vb[size_t(i * 4 + k)];
        EXPECT_EQ(vc[size_t(i * 16 + j * 4 + k)], want);
      }
  // last dim, negative dim, strided (transposed) input
  Tensor t = seq({4, 2}).t();  // [2, 4] non-contiguous
  Tensor d = cat({t, seq({2, 1}, DType::Float64)}, -1);
  ASSERT_EQ(d.shape(), (Shape{2, 5}));
  const auto vt = vals(t), vd = vals(d);
  for (int i = 0; i < 2; ++i) {
    for (int k = 0; k < 4; ++k) EXPECT_EQ(vd[size_t(i * 5 + k)], vt[size_t(i * 4 + k)]);
    EXPECT_EQ(vd[size_t(i * 5 + 4)], double(i));
  }
}

TEST(Cat, PromotesDtypesAndSkipsLegacyEmpty) {
  Tensor a = tensor<int64_t>({1, 2});
  Tensor b = tensor<float>({0.5f});
  Tensor c = cat({a, empty({0}), b});
  EXPECT_EQ(c.dtype(), DType::Float32);
  EXPECT_EQ(c.to_vector<float>(), (std::vector<float>{1, 2, 0.5f}));
}

TEST(Cat, WorksForEveryDtype) {
  for (DType dt : {DType::Float32, DType::Float64, DType::Float16, DType::BFloat16, DType::Int32, DType::Int64,
                   DType::Bool}) {
    Tensor a = seq({2, 2}).to(dt), b = seq({2, 3}).to(dt);
    Tensor c = cat({a, b}, 1);
    const auto va = vals(a), vb = vals(b), vc = vals(c);
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 5; ++j)
        EXPECT_EQ(vc[size_t(i * 5 + j)], j < 2 ? va[size_t(i * 2 + j)] : vb[size_t(i * 3 + j - 2)]) << dt;
  }
}

TEST(Stack, InsertsANewDim) {
  Tensor a = seq({2, 3}), b = seq({2, 3}) * 10.0;
  Tensor s = stack({a, b}, 1);
  ASSERT_EQ(s.shape(), (Shape{2, 2, 3}));
  const auto va = vals(a), vb = vals(b), vs = vals(s);
  for (int i = 0; i < 2; ++i)
    for (int k = 0; k < 3; ++k) {
      EXPECT_EQ(vs[size_t(i * 6 + k)], va[size_t(i * 3 + k)]);
      EXPECT_EQ(vs[size_t(i * 6 + 3 + k)], vb[size_t(i * 3 + k)]);
    }
  EXPECT_EQ(stack({a, b}, -1).shape(), (Shape{2, 3, 2}));
}

TEST(Split, BySizeAndBySizesRoundTripThroughCat) {
  Tensor t = seq({7, 3});
  auto parts = split(t, 3);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[0].shape(), (Shape{3, 3}));
  EXPECT_EQ(parts[2].shape(), (Shape{1, 3}));
  EXPECT_TRUE(parts[1].shares_storage(t));  // views
  EXPECT_EQ(vals(cat(parts, 0)), vals(t));

  auto cols = split(t, std::vector<int64_t>{1, 0, 2}, 1);
  ASSERT_EQ(cols.size(), 3u);
  EXPECT_EQ(cols[1].shape(), (Shape{7, 0}));
  EXPECT_EQ(cols[2].shape(), (Shape{7, 2}));
  EXPECT_EQ(vals(cat(cols, 1)), vals(t));

  auto ch = chunk(t, 3, 0);  // ceil(7/3) = 3 -> sizes 3, 3, 1
  ASSERT_EQ(ch.size(), 3u);
  EXPECT_EQ(ch[2].shape(), (Shape{1, 3}));
  EXPECT_EQ(chunk(seq({6}), 4).size(), 3u);  // PyTorch: ceil(6/4) = 2 -> 3 chunks
  EXPECT_EQ(vals(cat(ch, 0)), vals(t));
}

TEST(IndexSelect, MatchesLoops) {
  Tensor t = seq({3, 4, 2});
  Tensor idx = tensor<int64_t>({3, 0, 3});
  Tensor o = index_select(t, 1, idx);
  ASSERT_EQ(o.shape(), (Shape{3, 3, 2}));
  const auto vt = vals(t), vo = vals(o);
  const int64_t id[] = {3, 0, 3};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 2; ++k) EXPECT_EQ(vo[size_t(i * 6 + j * 2 + k)], vt[size_t(i * 8 + id[j] * 2 + k)]);
  // int32 indices, first dim, strided input
  Tensor tt = seq({4, 3}).t();  // [3, 4]
  Tensor o2 = index_select(tt, 0, tensor<int32_t>({2, 1}));
  const auto v2 = vals(o2), vtt = vals(tt);
  for (int j = 0; j < 2; ++j)
    for (int k = 0; k < 4; ++k) EXPECT_EQ(v2[size_t(j * 4 + k)], vtt[size_t((2 - j) * 4 + k)]);
}

TEST(IndexAdd, AccumulatesRepeatedIndices) {
  Tensor self = ones({2, 4}, DType::Float64);
  Tensor src = seq({2, 3});
  Tensor idx = tensor<int64_t>({1, 3, 1});
  Tensor o = index_add(self, 1, idx, src);
  std::vector<double> want(8, 1.0);
  const auto vs = vals(src);
  const int64_t id[] = {1, 3, 1};
  for (int i = 0; i < 2; ++i)
    for (int q = 0; q < 3; ++q) want[size_t(i * 4 + id[q])] += vs[size_t(i * 3 + q)];
  EXPECT_EQ(vals(o), want);
  EXPECT_EQ(vals(self), std::vector<double>(8, 1.0));  // out of place
}

TEST(Gather, MatchesLoopsOnEachDim) {
  Tensor t = seq({3, 4});
  Tensor idx1 = tensor<int64_t>({3, 0, 1, 1, 2, 2}, {3, 2});
  Tensor g1 = gather(t, 1, idx1);  // out[i][j] = t[i][idx[i][j]]
  const auto vt = vals(t), v1 = vals(g1);
  const auto vi1 = idx1.to_vector<int64_t>();
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 2; ++j) EXPECT_EQ(v1[size_t(i * 2 + j)], vt[size_t(i * 4 + vi1[size_t(i * 2 + j)])]);
  Tensor idx0 = tensor<int32_t>({2, 0, 1, 2, 1, 1}, {2, 3});
  Tensor g0 = gather(t, 0, idx0);  // out[i][j] = t[idx[i][j]][j]
  const auto vi0 = idx0.to_vector<int64_t>();
  const auto v0 = vals(g0);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j) EXPECT_EQ(v0[size_t(i * 3 + j)], vt[size_t(vi0[size_t(i * 3 + j)] * 4 + j)]);
}

TEST(ScatterAdd, IsTheAdjointOfGather) {
  Tensor self = zeros({3, 4}, DType::Float64);
  Tensor idx = tensor<int64_t>({2, 0, 2, 1, 2, 0}, {2, 3});
  Tensor src = seq({2, 4}) + 1.0;  // larger than index: only [2, 3] is used
  Tensor o = scatter_add(self, 0, idx, src);
  std::vector<double> want(12, 0.0);
  const auto vi = idx.to_vector<int64_t>();
  const auto vs = vals(src);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j) want[size_t(vi[size_t(i * 3 + j)] * 4 + j)] += vs[size_t(i * 4 + j)];
  EXPECT_EQ(vals(o), want);
}

TEST(OneHot, InfersClassesAndIsInt64) {
  Tensor idx = tensor<int64_t>({2, 0, 3, 0}, {2, 2});
  Tensor o = one_hot(idx);
  EXPECT_EQ(o.dtype(), DType::Int64);
  ASSERT_EQ(o.shape(), (Shape{2, 2, 4}));
  const auto v = o.to_vector<int64_t>();
  const int64_t id[] = {2, 0, 3, 0};
  for (int i = 0; i < 4; ++i)
    for (int c = 0; c < 4; ++c) EXPECT_EQ(v[size_t(i * 4 + c)], c == id[i] ? 1 : 0);
  EXPECT_EQ(one_hot(tensor<int32_t>({1}), 5).to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 0, 0, 0}));
}

TEST(Embedding, LooksUpRowsForAnyIndexShape) {
  Tensor w = seq({5, 3}, DType::Float32);
  Tensor idx = tensor<int64_t>({4, 0, 4, 2}, {2, 2});
  Tensor e = embedding(w, idx);
  ASSERT_EQ(e.shape(), (Shape{2, 2, 3}));
  const auto vw = vals(w), ve = vals(e);
  const int64_t id[] = {4, 0, 4, 2};
  for (int i = 0; i < 4; ++i)
    for (int k = 0; k < 3; ++k) EXPECT_EQ(ve[size_t(i * 3 + k)], vw[size_t(id[i] * 3 + k)]);
}

TEST(Embedding, BackwardSumsRowsPerIndex) {
  for (DType dt : {DType::Float32, DType::Float64, DType::BFloat16}) {
    Tensor g = (seq({2, 2, 3}) * 0.25).to(dt);
    Tensor idx = tensor<int32_t>({4, 0, 4, 2}, {2, 2});
    Tensor gw = embedding_backward(g, idx, 6);
    ASSERT_EQ(gw.shape(), (Shape{6, 3}));
    std::vector<double> want(18, 0.0);
    const auto vg = vals(g);
    const int64_t id[] = {4, 0, 4, 2};
    for (int i = 0; i < 4; ++i)
      for (int k = 0; k < 3; ++k) want[size_t(id[i] * 3 + k)] += vg[size_t(i * 3 + k)];
    const auto v = vals(gw);
    for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(v[i], want[i], 1e-2 * std::abs(want[i])) << dt;
  }
}

// ---- errors: message names the op, inputs unchanged

TEST(IndexingErrors, CatShapeRankDtypeDevice) {
  Tensor a = seq({2, 3}), b = seq({3, 3});
  expect_error([&] { cat({a, b}, 1); }, "cat", "[2, 3]");
  expect_error([&] { cat({a, seq({6})}, 0); }, "cat", "rank");
  expect_error([&] { cat({}, 0); }, "cat");
  expect_error([&] { cat({a, b}, 2); }, "cat", "dim");
  expect_error([&] { cat({scalar_tensor(1.0), scalar_tensor(2.0)}, 0); }, "cat");
  expect_error([&] { stack({a, b}, 0); }, "stack", "[3, 3]");
  EXPECT_EQ(vals(a), vals(seq({2, 3})));
  EXPECT_EQ(vals(b), vals(seq({3, 3})));
}

TEST(IndexingErrors, SplitAndChunk) {
  Tensor t = seq({4, 2});
  expect_error([&] { split(t, 0); }, "split");
  expect_error([&] { split(t, std::vector<int64_t>{1, 2}); }, "split", "sum to 3");
  expect_error([&] { split(t, std::vector<int64_t>{5, -1}); }, "split");
  expect_error([&] { split(t, 1, 3); }, "split", "dim");
  expect_error([&] { chunk(t, 0); }, "chunk");
  EXPECT_EQ(vals(t), vals(seq({4, 2})));
}

TEST(IndexingErrors, OutOfRangeAndBadIndexDtype) {
  Tensor t = seq({3, 4});
  expect_error([&] { index_select(t, 1, tensor<int64_t>({0, 4})); }, "index_select", "4");
  expect_error([&] { index_select(t, 0, tensor<int64_t>({-1})); }, "index_select", "-1");
  expect_error([&] { index_select(t, 0, tensor<float>({0.f})); }, "index_select", "float32");
  expect_error([&] { index_select(t, 0, tensor<int64_t>({0, 1}, {1, 2})); }, "index_select", "[1, 2]");
  expect_error([&] { index_select(t, 2, tensor<int64_t>({0})); }, "index_select", "dim");
  expect_error([&] { gather(t, 1, tensor<int64_t>({0, 9}, {1, 2})); }, "gather", "9");
  expect_error([&] { gather(t, 1, tensor<int64_t>({0, 1}, {2})); }, "gather", "dimensions");
  expect_error([&] { gather(t, 1, zeros({4, 1}, DType::Int64)); }, "gather", "larger");
  expect_error([&] { gather(t, 0, tensor<double>({0.0}, {1, 1})); }, "gather", "float64");
  expect_error([&] { one_hot(tensor<int64_t>({0, 3}), 3); }, "one_hot", "3");
  expect_error([&] { one_hot(tensor<int64_t>({0, -2})); }, "one_hot", "-2");
  expect_error([&] { one_hot(tensor<float>({1.f})); }, "one_hot", "float32");
  expect_error([&] { one_hot(empty({0}, DType::Int64)); }, "one_hot", "empty");
  EXPECT_EQ(vals(t), vals(seq({3, 4})));
}

TEST(IndexingErrors, AccumulationsLeaveSelfUnchanged) {
  Tensor self = ones({3, 2}, DType::Float64);
  expect_error([&] { index_add(self, 0, tensor<int64_t>({5}), ones({1, 2}, DType::Float64)); }, "index_add", "5");
  expect_error([&] { index_add(self, 0, tensor<int64_t>({0}), ones({2, 2}, DType::Float64)); }, "index_add",
               "[2, 2]");
  expect_error([&] { scatter_add(self, 0, tensor<int64_t>({3}, {1, 1}), ones({1, 1}, DType::Float64)); },
               "scatter_add", "3");
  expect_error([&] { scatter_add(self, 0, zeros({2, 2}, DType::Int64), ones({1, 1}, DType::Float64)); },
               "scatter_add", "src");
  EXPECT_EQ(vals(self), std::vector<double>(6, 1.0));
}

TEST(IndexingErrors, Embedding) {
  Tensor w = seq({4, 2}, DType::Float32);
  expect_error([&] { embedding(w, tensor<int64_t>({1, 4})); }, "embedding", "4");
  expect_error([&] { embedding(w, tensor<double>({1.0})); }, "embedding", "float64");
  expect_error([&] { embedding(seq({4}), tensor<int64_t>({1})); }, "embedding", "weight");
  expect_error([&] { embedding_backward(ones({2, 3}), tensor<int64_t>({0, 7}), 4); }, "embedding_backward", "7");
  expect_error([&] { embedding_backward(ones({3, 3}), tensor<int64_t>({0, 1}), 4); }, "embedding_backward",
               "[3, 3]");
  EXPECT_EQ(vals(w), vals(seq({4, 2}, DType::Float32)));
}
