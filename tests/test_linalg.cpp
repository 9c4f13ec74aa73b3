// matmul / mm / bmm / mv / linear: values against naive double loops, PyTorch's shape
// rules, layouts (transposed views without copies), dtypes, and every error path.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "kiln/generator.h"
#include "kiln/ops.h"
#include "tests/support/fake_backend.h"
#include "tests/support/expect_error.h"

using kiln::testing::expect_error;

using namespace kiln;

namespace {

std::vector<double> values(const Tensor& t) { return t.to(DType::Float64).contiguous().to_vector<double>(); }

// Naive batched product of row-major double matrices: c[b] = a[b or 0] @ b[b or 0].
std::vector<double> naive_bmm(const std::vector<double>& a, const std::vector<double>& b, int64_t ba, int64_t bb,
                              int64_t m, int64_t k, int64_t n) {
  const int64_t batch = std::max(ba, bb);
  std::vector<double> c(size_t(batch * m * n), 0.0);
  for (int64_t z = 0; z < batch; ++z)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t p = 0; p < k; ++p)
          s += a[size_t((ba == 1 ? 0 : z) * m * k + i * k + p)] * b[size_t((bb == 1 ? 0 : z) * k * n + p * n + j)];
        c[size_t(z * m * n + i * n + j)] = s;
      }
  return c;
}

void expect_near(const std::vector<double>& got, const std::vector<double>& want, double tol,
                 const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], tol * (1 + std::abs(want[i]))) << what << " at " << i;
}

Tensor rnd(const Shape& s, DType dt = DType::Float32) {
  static Generator gen(1234);
  return randn(s, TensorOptions(dt).device(kCpu), &gen);
}


}  // namespace

TEST(Matmul, TwoDFloat32AndFloat64) {
  for (DType dt : {DType::Float32, DType::Float64}) {
    Tensor a = rnd({5, 7}, dt), b = rnd({7, 3}, dt);
    Tensor c = matmul(a, b);
    EXPECT_EQ(c.shape(), (Shape{5, 3}));
    EXPECT_EQ(c.dtype(), dt);
    expect_near(values(c), naive_bmm(values(a), values(b), 1, 1, 5, 7, 3), dt == DType::Float64 ? 1e-12 : 1e-5,
                "matmul 2-D");
  }
}

TEST(Matmul, LargerThanOneBlock) {  // exercises the blocked loops and oneDNN's tiling
  for (DType dt : {DType::Float32, DType::Float64, DType::Int64}) {
    Tensor a = mul(rnd({37, 300}, DType::Float64), 3).to(dt), b = mul(rnd({300, 41}, DType::Float64), 3).to(dt);
    expect_near(values(matmul(a, b)), naive_bmm(values(a), values(b), 1, 1, 37, 300, 41),
                dt == DType::Float32 ? 1e-4 : 1e-12, "matmul 37x300x41");
  }
}

TEST(Matmul, DotAndVectorCases) {
  Tensor v = rnd({4}), w = rnd({4}), m = rnd({4, 3}), m2 = rnd({2, 4});
  Tensor d = matmul(v, w);
  EXPECT_EQ(d.dim(), 0);
  double want = 0;
  for (int i = 0; i < 4; ++i) want += values(v)[i] * values(w)[i];
  EXPECT_NEAR(d.item<double>(), want, 1e-5);

  Tensor vm = matmul(v, m);  // [4] @ [4,3] -> [3]
  EXPECT_EQ(vm.shape(), (Shape{3}));
  expect_near(values(vm), naive_bmm(values(v), values(m), 1, 1, 1, 4, 3), 1e-5, "1-D @ 2-D");

  Tensor mv_ = matmul(m2, v);  // [2,4] @ [4] -> [2]
  EXPECT_EQ(mv_.shape(), (Shape{2}));
  expect_near(values(mv_), naive_bmm(values(m2), values(v), 1, 1, 2, 4, 1), 1e-5, "2-D @ 1-D");
  expect_near(values(mv(m2, v)), values(mv_), 1e-6, "mv");

  Tensor b3 = rnd({2, 4, 3});
  Tensor vb = matmul(v, b3);  // [4] @ [2,4,3] -> [2,3]
  EXPECT_EQ(vb.shape(), (Shape{2, 3}));
  expect_near(values(vb), naive_bmm(values(v), values(b3), 1, 2, 1, 4, 3), 1e-5, "1-D @ 3-D");

  Tensor a3 = rnd({2, 5, 4});
  Tensor av = matmul(a3, v);  // [2,5,4] @ [4] -> [2,5]
  EXPECT_EQ(av.shape(), (Shape{2, 5}));
  expect_near(values(av), naive_bmm(values(a3), values(v), 1, 1, 10, 4, 1), 1e-5, "3-D @ 1-D");
}

TEST(Matmul, BatchedBroadcast) {
  Tensor a = rnd({2, 1, 3, 4}), b = rnd({5, 4, 6});
  Tensor c = matmul(a, b);
  ASSERT_EQ(c.shape(), (Shape{2, 5, 3, 6}));
  const auto va = values(a), vb = values(b), vc = values(c);
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 5; ++j) {
      std::vector<double> ai(va.begin() + i * 12, va.begin() + (i + 1) * 12);
      std::vector<double> bj(vb.begin() + j * 24, vb.begin() + (j + 1) * 24);
      std::vector<double> cij(vc.begin() + (i * 5 + j) * 18, vc.begin() + (i * 5 + j + 1) * 18);
      expect_near(cij, naive_bmm(ai, bj, 1, 1, 3, 4, 6), 1e-5, "broadcast batch");
    }
  // 3-D @ 2-D folds into one product
  Tensor x = rnd({3, 2, 4}), w = rnd({4, 5});
  expect_near(values(matmul(x, w)), naive_bmm(values(x), values(w), 3, 1, 2, 4, 5), 1e-5, "3-D @ 2-D");
  // 2-D @ 3-D broadcasts a
  Tensor y = rnd({2, 4});
  expect_near(values(matmul(y, b)), naive_bmm(values(y), values(b), 1, 5, 2, 4, 6), 1e-5, "2-D @ 3-D");
}

TEST(Matmul, TransposedAndStridedViews) {
  Tensor a = rnd({6, 5}), b = rnd({4, 6});
  // a^T [5,6] and b^T [6,4] are column-major views: used without copies
  Tensor c = matmul(a.t(), b.t());
  expect_near(values(c), naive_bmm(values(a.t()), values(b.t()), 1, 1, 5, 6, 4), 1e-5, "transposed");
  Tensor s = rnd({8, 10}).slice(0, 0, 8, 2).slice(1, 1, 10, 2);  // [4, 5] with gaps
  Tensor r = rnd({5, 3});
  expect_near(values(matmul(s, r)), naive_bmm(values(s), values(r), 1, 1, 4, 5, 3), 1e-5, "strided");
  Tensor bt = rnd({3, 4, 2}).transpose(1, 2);  // [3, 2, 4], column-major per batch
  Tensor q = rnd({3, 4, 5});
  expect_near(values(bmm(bt, q)), naive_bmm(values(bt), values(q), 3, 3, 2, 4, 5), 1e-5, "bmm transposed");
}

TEST(Matmul, HalfTypesAndIntegers) {
  Tensor a = rnd({4, 9}, DType::Float64), b = rnd({9, 3}, DType::Float64);
  for (DType dt : {DType::BFloat16, DType::Float16}) {
    Tensor ar = a.to(dt), br = b.to(dt);
    Tensor c = matmul(ar, br);
    EXPECT_EQ(c.dtype(), dt);
    expect_near(values(c), naive_bmm(values(ar), values(br), 1, 1, 4, 9, 3), dt == DType::BFloat16 ? 2e-2 : 2e-3,
                dtype_name(dt));
  }
  for (DType dt : {DType::Int32, DType::Int64}) {
    Tensor ai = mul(a, 3).to(dt), bi = mul(b, 3).to(dt);
    Tensor c = matmul(ai, bi);
    EXPECT_EQ(c.dtype(), dt);
    expect_near(values(c), naive_bmm(values(ai), values(bi), 1, 1, 4, 9, 3), 0, dtype_name(dt));
  }
}

TEST(Matmul, EmptyDims) {
  Tensor z = matmul(rnd({3, 0}), rnd({0, 4}));  // K = 0: zeros
  EXPECT_EQ(z.shape(), (Shape{3, 4}));
  for (double x : values(z)) EXPECT_EQ(x, 0.0);
  EXPECT_EQ(matmul(rnd({0, 3}), rnd({3, 4})).shape(), (Shape{0, 4}));
  EXPECT_EQ(bmm(rnd({0, 2, 3}), rnd({0, 3, 4})).shape(), (Shape{0, 2, 4}));
}

TEST(Matmul, MethodMmBmm) {
  Tensor a = rnd({3, 4}), b = rnd({4, 2});
  expect_near(values(a.matmul(b)), values(mm(a, b)), 1e-6, "method");
  Tensor x = rnd({2, 3, 4}), y = rnd({2, 4, 5});
  expect_near(values(bmm(x, y)), naive_bmm(values(x), values(y), 2, 2, 3, 4, 5), 1e-5, "bmm");
}

TEST(Linear, WithAndWithoutBias) {
  Tensor x = rnd({2, 3, 4}), w = rnd({5, 4}), bias = rnd({5});
  Tensor y = linear(x, w, bias);
  ASSERT_EQ(y.shape(), (Shape{2, 3, 5}));
  const auto vx = values(x), vw = values(w), vb = values(bias), vy = values(y);
  for (int64_t r = 0; r < 6; ++r)
    for (int64_t o = 0; o < 5; ++o) {
      double s = vb[size_t(o)];
      for (int64_t i = 0; i < 4; ++i) s += vx[size_t(r * 4 + i)] * vw[size_t(o * 4 + i)];
      EXPECT_NEAR(vy[size_t(r * 5 + o)], s, 1e-5);
    }
  Tensor y1 = linear(rnd({4}), w);
  EXPECT_EQ(y1.shape(), (Shape{5}));
}

TEST(Matmul, Tf32Flag) {
  EXPECT_FALSE(allow_tf32());
  set_allow_tf32(true);
  EXPECT_TRUE(allow_tf32());
  set_allow_tf32(false);
  EXPECT_FALSE(allow_tf32());
}

TEST(MatmulErrors, EveryPathNamesOpAndLeavesInputs) {
  Tensor a = rnd({2, 3}), b = rnd({4, 5}), v = rnd({3}), a3 = rnd({2, 3, 4}), b3 = rnd({3, 4, 5});
  const auto va = values(a), vb = values(b);
  expect_error([&] { matmul(a, b); }, "matmul", "[2, 3] and [4, 5]");
  expect_error([&] { matmul(a, scalar_tensor(1.0)); }, "matmul", "at least 1 dimension");
  expect_error([&] { matmul(a, rnd({3, 2}, DType::Float64)); }, "matmul", "same dtype");
  expect_error([&] { matmul(a.to(DType::Bool), a.t().to(DType::Bool)); }, "matmul", "bool");
  expect_error([&] { matmul(rnd({2, 2, 3}), rnd({3, 3, 4})); }, "matmul", "broadcast");
  expect_error([&] { matmul(Tensor(), a); }, "matmul", "undefined");
  expect_error([&] { mm(a3, b); }, "mm", "2-d");
  expect_error([&] { mm(a, b); }, "mm", "cannot be multiplied");
  expect_error([&] { bmm(a, b); }, "bmm", "3-d");
  expect_error([&] { bmm(a3, b3); }, "bmm", "batch");
  expect_error([&] { bmm(a3, rnd({2, 5, 4})); }, "bmm", "cannot be multiplied");
  expect_error([&] { mv(a, rnd({4})); }, "mv", "cannot be multiplied");
  expect_error([&] { mv(a, a); }, "mv", "1-d");
  expect_error([&] { linear(a, rnd({5, 4})); }, "linear", "features");
  expect_error([&] { linear(a, rnd({5, 3}), rnd({4})); }, "linear", "bias");
  expect_error([&] { linear(a, rnd({5, 3}), rnd({5}, DType::Float64)); }, "linear", "dtype");
  expect_error([&] { linear(a, v); }, "linear", "2-d weight");
  EXPECT_EQ(values(a), va);
  EXPECT_EQ(values(b), vb);
}

// A device without matmul kernels (the fake GPU of tests/support) falls back to the CPU
// and the result comes back to the device. Mixing devices is an error that names both.
// (The fake device has no Copy kernel, so only contiguous inputs can be staged from it.)
TEST(MatmulDevices, MismatchAndCpuFallback) {
  kiln::testing::FakeGpuScope scope;
  const Device gpu = kiln::testing::kFakeGpu;
  {
    Tensor a = rnd({4, 3}), b = rnd({4, 2}), v = rnd({3}), a2 = rnd({2, 4});
    Tensor ga = a.to(gpu), gb = b.to(gpu), gv = v.to(gpu);
    Tensor gd = matmul(a2.to(gpu), ga);  // [2, 4] @ [4, 3]
    EXPECT_EQ(gd.device(), gpu);
    expect_near(values(gd.to(kCpu)), naive_bmm(values(a2), values(a), 1, 1, 2, 4, 3), 1e-5, "fallback");
    expect_error([&] { matmul(a, gb); }, "matmul", "metal:0");
    expect_error([&] { mm(a.t(), gb); }, "mm", "metal:0");
    expect_error([&] { bmm(a.unsqueeze(0), gb.unsqueeze(0)); }, "bmm", "metal:0");
    expect_error([&] { mv(ga, v); }, "mv", "metal:0");
    expect_error([&] { linear(gv, a); }, "linear", "metal:0");
    expect_error([&] { linear(v, ga.t(), rnd({4})); }, "linear", "metal:0");
  }
}
