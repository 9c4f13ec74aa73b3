// Autograd engine semantics: chain rule, accumulation, retain_graph, non-scalar backward,
// grad modes, detach, retain_grad, the version check on saved tensors, in-place rules,
// gradients through views and broadcasting. Expected values come from the derivatives'
// definitions computed on host doubles, never from kiln itself.
#include <gtest/gtest.h>

#include <cmath>
#include <thread>

#include "kiln/autograd.h"
#include "kiln/ops.h"
#include "src/autograd/record.h"
#include "tests/support/gradcheck.h"

using namespace kiln;
using kiln::testing::grad_input;

namespace {
Tensor leaf(const std::vector<double>& v, const Shape& shape = {}) {
  return tensor<double>(v, shape.empty() ? Shape{int64_t(v.size())} : shape).requires_grad_();
}
std::vector<double> vec(const Tensor& t) { return t.to_vector<double>(); }
Tensor ones_of(const Tensor& t) { return ones(t.shape(), t.dtype()); }

void expect_near(const std::vector<double>& got, const std::vector<double>& want, double tol = 1e-12) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tol) << "element " << i;
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(Autograd, ChainRuleMatchesDerivative) {
  const std::vector<double> xs{-1.5, 0.25, 2.0};
  Tensor x = leaf(xs);
  Tensor y = x * x * 3.0 + exp(x) * sin(x);
  EXPECT_FALSE(y.is_leaf());
  EXPECT_TRUE(y.requires_grad());
  y.backward(ones_of(y));
  std::vector<double> want;
  for (double v : xs) want.push_back(6 * v + std::exp(v) * std::sin(v) + std::exp(v) * std::cos(v));
  expect_near(vec(x.grad()), want);
}

TEST(Autograd, GradientsAccumulateAcrossBackwardCalls) {
  Tensor x = leaf({1.0, 2.0});
  (x * 3.0).backward(ones({2}, DType::Float64));
  (x * x).backward(ones({2}, DType::Float64));
  expect_near(vec(x.grad()), {3 + 2 * 1.0, 3 + 2 * 2.0});
}

TEST(Autograd, ReusedTensorSumsAllPaths) {
  // y = x*x + x*x*x through a diamond of nodes: dy/dx = 2x + 3x^2
  Tensor x = leaf({0.5, -2.0});
  Tensor s = x * x;
  Tensor y = s + s * x;
  y.backward(ones_of(y));
  expect_near(vec(x.grad()), {2 * 0.5 + 3 * 0.25, 2 * -2.0 + 3 * 4.0});
}

TEST(Autograd, SecondBackwardNeedsRetainGraph) {
  Tensor x = leaf({0.3, 0.7});
  Tensor y = exp(x);  // saves its output
  y.backward(ones_of(y));
  const std::string err = error_of([&] { y.backward(ones_of(y)); });
  EXPECT_NE(err.find("[backward]"), std::string::npos) << err;
  EXPECT_NE(err.find("retain_graph"), std::string::npos) << err;

  Tensor x2 = leaf({0.3, 0.7});
  Tensor y2 = exp(x2);
  y2.backward(ones_of(y2), /*retain_graph=*/true);
  y2.backward(ones_of(y2));
  expect_near(vec(x2.grad()), {2 * std::exp(0.3), 2 * std::exp(0.7)});
}

TEST(Autograd, NonScalarOutputNeedsGradient) {
  Tensor x = leaf({1.0, 2.0, 3.0});
  Tensor y = x * 2.0;
  const std::string err = error_of([&] { y.backward(); });
  EXPECT_NE(err.find("[backward]"), std::string::npos);
  EXPECT_NE(err.find("scalar"), std::string::npos) << err;
  EXPECT_NE(err.find("[3]"), std::string::npos) << err;
  // A gradient of the wrong shape is refused too.
  EXPECT_THROW(y.backward(ones({2}, DType::Float64)), Error);
  // With a gradient: vector-Jacobian product.
  y.backward(tensor<double>({1.0, -1.0, 0.5}));
  expect_near(vec(x.grad()), {2.0, -2.0, 1.0});
  // One-element outputs need none.
  Tensor z = x.select(0, 1) * 5.0;
  z.backward();
  expect_near(vec(x.grad()), {2.0, 3.0, 1.0});
}

TEST(Autograd, BackwardOfTensorWithoutGradRaises) {
  Tensor a = ones({2}, DType::Float64);
  const std::string err = error_of([&] { a.backward(ones({2}, DType::Float64)); });
  EXPECT_NE(err.find("does not require grad"), std::string::npos) << err;
}

TEST(Autograd, NoGradGuardStopsRecording) {
  Tensor x = leaf({1.0, 2.0});
  {
    NoGradGuard g;
    EXPECT_FALSE(autograd::is_grad_enabled());
    Tensor y = x * 2.0;
    EXPECT_FALSE(y.requires_grad());
    EXPECT_TRUE(y.is_leaf());
    {
      EnableGradGuard e;
      EXPECT_TRUE((x * 2.0).requires_grad());
    }
    EXPECT_FALSE((x * 2.0).requires_grad());
    // Grad mode is per thread.
    bool other_thread_enabled = false;
    std::thread t([&] { other_thread_enabled = autograd::is_grad_enabled(); });
    t.join();
    EXPECT_TRUE(other_thread_enabled);
  }
  EXPECT_TRUE(autograd::is_grad_enabled());
  EXPECT_TRUE((x * 2.0).requires_grad());
}

TEST(Autograd, DetachCutsHistoryAndSharesStorage) {
  Tensor x = leaf({1.5, -0.5});
  Tensor d = x.detach();
  EXPECT_FALSE(d.requires_grad());
  EXPECT_TRUE(d.shares_storage(x));
  // y = x * detach(x): the detached factor is a constant, so dy/dx = x (not 2x).
  Tensor y = x * d;
  y.backward(ones_of(y));
  expect_near(vec(x.grad()), {1.5, -0.5});
}

TEST(Autograd, RetainGradKeepsNonLeafGradient) {
  Tensor x = leaf({1.0, -3.0});
  Tensor h = x * 2.0;
  Tensor k = h + 1.0;
  h.retain_grad();
  Tensor y = h * h + k;
  y.backward(ones_of(y));
  expect_near(vec(h.grad()), {2 * 2.0 + 1, 2 * -6.0 + 1});  // dy/dh = 2h + 1
  EXPECT_FALSE(k.grad().defined());                          // not retained
  expect_near(vec(x.grad()), {2 * (2 * 2.0 + 1), 2 * (2 * -6.0 + 1)});
}

TEST(Autograd, LeafGradientsAreNotShared) {
  Tensor a = leaf({1.0, 2.0}), b = leaf({3.0, 4.0});
  (a + b).backward(ones({2}, DType::Float64));
  EXPECT_FALSE(a.grad().shares_storage(b.grad()));
  {
    NoGradGuard g;
    a.grad().mul_(10.0);
  }
  expect_near(vec(b.grad()), {1.0, 1.0});
}

TEST(Autograd, ModifiedSavedTensorRaisesOnBackward) {
  Tensor x = leaf({0.1, 0.2});
  Tensor a = exp(x);
  Tensor b = sin(a);  // saves a
  a.add_(1.0);        // a is not a leaf: allowed, but b's saved copy is now stale
  const std::string err = error_of([&] { b.backward(ones_of(b)); });
  EXPECT_NE(err.find("[backward] a tensor saved for SinBackward was modified in place (version 1, saved 0)"),
            std::string::npos)
      << err;

  // Also for a saved tensor that does not require grad.
  Tensor w = tensor<double>({2.0, 3.0});
  Tensor y = x * w;
  w.mul_(2.0);
  EXPECT_NE(error_of([&] { y.backward(ones_of(y)); }).find("modified in place"), std::string::npos);
}

TEST(Autograd, InPlaceOnLeafRequiringGradRaises) {
  Tensor x = leaf({1.0, 2.0});
  const uint64_t v = x.version();
  const std::string err = error_of([&] { x.add_(1.0); });
  EXPECT_NE(err.find("[add_] a leaf tensor that requires grad"), std::string::npos) << err;
  expect_near(vec(x), {1.0, 2.0});
  EXPECT_EQ(x.version(), v);
  EXPECT_THROW(x.mul_(tensor<double>({2.0, 2.0})), Error);
  EXPECT_THROW(x.relu_(), Error);
  EXPECT_THROW(x.fill_(0), Error);
  EXPECT_THROW(x.copy_(tensor<double>({5.0, 5.0})), Error);
  EXPECT_NE(error_of([&] { x.select(0, 0).mul_(2.0); }).find("a view of a leaf tensor"), std::string::npos);
  expect_near(vec(x), {1.0, 2.0});
  {
    NoGradGuard g;
    x.add_(1.0);
    x.select(0, 0).mul_(2.0);
  }
  expect_near(vec(x), {4.0, 3.0});
  EXPECT_GT(x.version(), v);
}

TEST(Autograd, InPlaceOnNonLeafRecordsTheOp) {
  const std::vector<double> xs{0.5, -1.0, 2.0};
  Tensor x = leaf(xs);
  Tensor a = x * 2.0;
  a.mul_(x);      // 2x^2
  a.add_(x, 3);   // 2x^2 + 3x
  a.sub_(1.0 * x);  // 2x^2 + 2x
  a.relu_();
  a.backward(ones_of(a));
  std::vector<double> want;
  for (double v : xs) want.push_back(2 * v * v + 2 * v > 0 ? 4 * v + 2 : 0);
  expect_near(vec(x.grad()), want);

  // A tensor that did not require grad gains history from an in-place op with one that does.
  Tensor y = leaf({1.0, 2.0});
  Tensor buf = zeros({2}, DType::Float64);
  buf.add_(y * y);
  EXPECT_TRUE(buf.requires_grad());
  EXPECT_FALSE(buf.is_leaf());
  buf.backward(ones_of(buf));
  expect_near(vec(y.grad()), {2.0, 4.0});

  // copy_ from a tensor with history
  Tensor z = leaf({1.0, 2.0});
  Tensor dst = zeros({2, 2}, DType::Float64);
  dst.copy_(z * 3.0);  // broadcast over rows
  dst.backward(ones_of(dst));
  expect_near(vec(z.grad()), {6.0, 6.0});
}

TEST(Autograd, RequiresGradRules) {
  Tensor i = arange(3, DType::Int64);
  const std::string err = error_of([&] { i.requires_grad_(); });
  EXPECT_NE(err.find("[requires_grad_]"), std::string::npos);
  EXPECT_NE(err.find("int64"), std::string::npos);
  Tensor x = leaf({1.0});
  Tensor y = x * 2.0;
  EXPECT_THROW(y.requires_grad_(false), Error);
  EXPECT_NO_THROW(y.requires_grad_(true));
  x.requires_grad_(false);
  EXPECT_FALSE(x.requires_grad());
  EXPECT_TRUE(x.is_leaf());
  EXPECT_TRUE(zeros({2}, TensorOptions(DType::Float32).requires_grad()).requires_grad());
}

TEST(Autograd, GradientsThroughViews) {
  // x [2, 3] = 0..5; every view below feeds y = view * w with known w.
  Tensor x = arange(6, DType::Float64).view({2, 3}).requires_grad_();
  ASSERT_TRUE(x.is_leaf());

  Tensor w = tensor<double>({1, 2, 3, 4, 5, 6}, {3, 2});
  (x.t() * w).backward(ones({3, 2}, DType::Float64));  // grad = w^T
  expect_near(vec(x.grad()), {1, 3, 5, 2, 4, 6});
  x.set_grad(Tensor());

  (x.select(1, 2) * 4.0).backward(ones({2}, DType::Float64));
  expect_near(vec(x.grad()), {0, 0, 4, 0, 0, 4});
  x.set_grad(Tensor());

  (x.slice(1, 0, 3, 2) * 1.0).backward(tensor<double>({1, 2, 3, 4}, {2, 2}));
  expect_near(vec(x.grad()), {1, 0, 2, 3, 0, 4});
  x.set_grad(Tensor());

  (x.narrow(0, 1, 1).unsqueeze(0).squeeze() * 2.0).backward(ones({3}, DType::Float64));
  expect_near(vec(x.grad()), {0, 0, 0, 2, 2, 2});
  x.set_grad(Tensor());

  // expand: the gradient sums over the expanded dims
  Tensor r = x.narrow(0, 0, 1).expand({4, 3});
  (r * 1.0).backward(ones({4, 3}, DType::Float64));
  expect_near(vec(x.grad()), {4, 4, 4, 0, 0, 0});
  x.set_grad(Tensor());

  // reshape of a non-contiguous view copies; the gradient still flows back
  (x.t().reshape({6}) * tensor<double>({1, 2, 3, 4, 5, 6})).backward(ones({6}, DType::Float64));
  expect_near(vec(x.grad()), {1, 3, 5, 2, 4, 6});
  x.set_grad(Tensor());

  (x.permute({1, 0}).flatten() * 1.0).backward(arange(6, DType::Float64));
  expect_near(vec(x.grad()), {0, 2, 4, 1, 3, 5});
  x.set_grad(Tensor());

  // as_strided: the diagonal-ish view [0, 4] (offset 0, stride 4)
  (x.as_strided({2}, {4}, 0) * 3.0).backward(ones({2}, DType::Float64));
  expect_near(vec(x.grad()), {3, 0, 0, 0, 3, 0});
}

TEST(Autograd, GradientsThroughDtypeConversion) {
  Tensor x = tensor<float>({1.0f, 2.0f}).requires_grad_();
  Tensor y = x.to(DType::Float64) * tensor<double>({3.0, 4.0});
  y.backward(ones_of(y));
  EXPECT_EQ(x.grad().dtype(), DType::Float32);
  EXPECT_EQ(x.grad().to_vector<float>(), (std::vector<float>{3.0f, 4.0f}));
  // Mixed-dtype ops give each input a gradient of its own dtype.
  Tensor a = tensor<float>({1.0f, 2.0f}).requires_grad_();
  Tensor b = tensor<double>({0.5, 0.25}).requires_grad_();
  (a * b).backward(ones({2}, DType::Float64));
  EXPECT_EQ(a.grad().dtype(), DType::Float32);
  EXPECT_EQ(b.grad().dtype(), DType::Float64);
  expect_near(vec(b.grad()), {1.0, 2.0});
}

TEST(Autograd, BroadcastGradientsReduceToInputShape) {
  const std::vector<double> av{1, 2, 3, 4, 5, 6}, bv{10, 20, 30}, cv{-1, 2};
  Tensor a = leaf(av, {2, 3}), b = leaf(bv, {3}), c = leaf(cv, {2, 1});
  Tensor y = (a + b) * c;  // [2, 3]
  const std::vector<double> gv{1, -1, 2, 0.5, 3, -2};
  y.backward(tensor<double>(gv, {2, 3}));
  std::vector<double> ga(6), gb(3, 0.0), gc(2, 0.0);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j) {
      const double g = gv[size_t(i * 3 + j)];
      ga[size_t(i * 3 + j)] = g * cv[size_t(i)];
      gb[size_t(j)] += g * cv[size_t(i)];
      gc[size_t(i)] += g * (av[size_t(i * 3 + j)] + bv[size_t(j)]);
    }
  EXPECT_EQ(b.grad().shape(), (Shape{3}));
  EXPECT_EQ(c.grad().shape(), (Shape{2, 1}));
  expect_near(vec(a.grad()), ga);
  expect_near(vec(b.grad()), gb);
  expect_near(vec(c.grad()), gc);
  EXPECT_EQ(autograd::sum_to(ones({4, 2, 3}, DType::Float64), {2, 1}).to_vector<double>(),
            (std::vector<double>{12, 12}));
}

TEST(Autograd, GradcheckDetectsAWrongFormula) {
  // A deliberately wrong backward (2 instead of 3) must fail gradcheck: the checker is not vacuous.
  auto wrong = [](const std::vector<Tensor>& in) {
    Tensor out;
    {
      NoGradGuard g;
      out = in[0] * 3.0;
    }
    autograd::record("WrongBackward", {out}, {in[0]}, {},
                     [](autograd::BackwardCtx& c) { return std::vector<Tensor>{c.grad() * 2.0}; });
    return out;
  };
  EXPECT_FALSE(kiln::testing::gradcheck(wrong, {grad_input({3})}));
  auto right = [](const std::vector<Tensor>& in) { return in[0] * 3.0; };
  EXPECT_TRUE(kiln::testing::gradcheck(right, {grad_input({3})}));
}

TEST(Autograd, GraphIsFreedWithItsOutputs) {
  Tensor x = leaf({1.0, 2.0});
  std::weak_ptr<Node> fn;
  {
    Tensor y = exp(x * 2.0);
    fn = y.autograd_meta()->grad_fn;
    EXPECT_EQ(autograd::graph_size(y), 3u);  // Exp, Mul, AccumulateGrad
  }
  EXPECT_TRUE(fn.expired());
}

TEST(Autograd, ScalarLossThroughReductions) {
  // loss = mean((x @ w - y)^2): d loss / d w = 2/N x^T (x w - y), computed with loops.
  const std::vector<double> xv{1, 2, 3, 4, 5, 6}, wv{0.5, -1.0, 2.0}, yv{1.0, -2.0};
  Tensor x = tensor<double>(xv, {2, 3});
  Tensor w = tensor<double>(wv, {3, 1}).requires_grad_();
  Tensor y = tensor<double>(yv, {2, 1});
  Tensor loss = (matmul(x, w) - y).pow(2).mean();
  loss.backward();
  std::vector<double> r(2), want(3, 0.0);
  for (int i = 0; i < 2; ++i) {
    r[size_t(i)] = -yv[size_t(i)];
    for (int k = 0; k < 3; ++k) r[size_t(i)] += xv[size_t(i * 3 + k)] * wv[size_t(k)];
  }
  for (int k = 0; k < 3; ++k)
    for (int i = 0; i < 2; ++i) want[size_t(k)] += 2.0 / 2.0 * xv[size_t(i * 3 + k)] * r[size_t(i)];
  expect_near(vec(w.grad()), want, 1e-12);
}

TEST(Autograd, ErrorPathsNameTheOpAndChangeNothing) {
  Tensor x = leaf({1.0, 2.0});
  // retain_grad on a tensor without grad
  Tensor c = ones({2}, DType::Float64);
  EXPECT_NE(error_of([&] { c.retain_grad(); }).find("[retain_grad]"), std::string::npos);
  // set_grad with a mismatched gradient leaves the old one
  x.set_grad(ones({2}, DType::Float64));
  EXPECT_NE(error_of([&] { x.set_grad(ones({3}, DType::Float64)); }).find("[set_grad]"), std::string::npos);
  expect_near(vec(x.grad()), {1.0, 1.0});
  // requires_grad_(false) on a non-leaf
  Tensor y = x * 2.0;
  EXPECT_NE(error_of([&] { y.requires_grad_(false); }).find("[requires_grad_] you can only change requires_grad of leaf"),
            std::string::npos);
  EXPECT_TRUE(y.requires_grad());
  // autograd::backward with a wrong number of gradients runs nothing
  EXPECT_NE(error_of([&] { autograd::backward({y}, {ones({2}, DType::Float64), ones({2}, DType::Float64)}); })
                .find("[backward]"),
            std::string::npos);
  expect_near(vec(x.grad()), {1.0, 1.0});
  // a gradient of the wrong shape
  EXPECT_NE(error_of([&] { y.backward(ones({2, 1}, DType::Float64)); }).find("does not match the output"),
            std::string::npos);
  expect_near(vec(x.grad()), {1.0, 1.0});
  // as_strided with overlapping elements can't be differentiated
  Tensor z = leaf({1.0, 2.0, 3.0});
  const std::string err = error_of([&] { z.as_strided({2, 2}, {1, 1}, 0); });
  EXPECT_NE(err.find("[as_strided]"), std::string::npos) << err;
  EXPECT_NE(err.find("overlap"), std::string::npos) << err;
  {
    NoGradGuard g;  // without grad it is an ordinary view
    EXPECT_EQ(z.as_strided({2, 2}, {1, 1}, 0).to_vector<double>(), (std::vector<double>{1, 2, 2, 3}));
  }
  // in-place on a view of a non-contiguous tensor with history is refused before writing
  Tensor nc = empty_strided({2, 2}, {1, 2}, DType::Float64);
  nc.copy_(x.unsqueeze(1) * 1.0);  // nc now has history
  const std::vector<double> before = vec(nc);
  const std::string err2 = error_of([&] { nc.select(0, 0).mul_(2.0); });
  EXPECT_NE(err2.find("[mul_] in-place operation on a view of a non-contiguous tensor"), std::string::npos) << err2;
  EXPECT_EQ(vec(nc), before);
}

TEST(Autograd, ViewsSeeInPlaceChangesOfTheirBase) {
  // v is taken before h changes in place; its gradient must follow h's new history.
  Tensor x = leaf({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor h = x * 2.0;
  Tensor v = h.select(0, 0);
  h.mul_(3.0);
  (v * 1.0).backward(ones({3}, DType::Float64));
  expect_near(vec(x.grad()), {6, 6, 6, 0, 0, 0});

  // A sibling view modified in place: the other view's gradient is unaffected.
  Tensor y = leaf({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor k = y * 2.0;
  Tensor row0 = k.select(0, 0);
  k.select(0, 1).mul_(5.0);
  Tensor out = row0 * 1.0 + k.select(0, 1);
  out.backward(ones({3}, DType::Float64));
  expect_near(vec(y.grad()), {2, 2, 2, 10, 10, 10});
}

TEST(Autograd, GradReturnsGradientsWithoutAccumulating) {
  Tensor x = leaf({1.0, 2.0}), z = leaf({3.0});
  Tensor h = x * x;
  Tensor y = (h * 3.0).sum();
  auto g = autograd::grad({y}, {x, h, z}, {}, /*retain_graph=*/true);
  ASSERT_EQ(g.size(), 3u);
  expect_near(vec(g[0]), {6.0, 12.0});  // d/dx 3x^2
  expect_near(vec(g[1]), {3.0, 3.0});   // d/dh
  EXPECT_FALSE(g[2].defined());         // y does not depend on z
  EXPECT_FALSE(x.grad().defined());
  y.backward();
  expect_near(vec(x.grad()), {6.0, 12.0});
  EXPECT_NE(error_of([&] { autograd::grad({y}, {ones({2}, DType::Float64)}); }).find("[grad]"), std::string::npos);
}
