// Losses against double-precision loops written from their definitions (PyTorch's
// formulas for weights, ignore_index, label smoothing and reductions).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kiln/nn/loss.h"
#include "kiln/ops.h"

using namespace kiln;
using namespace kiln::nn;

namespace {

std::vector<double> log_softmax_rows(const std::vector<double>& x, int64_t n, int64_t c) {
  std::vector<double> out(x.size());
  for (int64_t i = 0; i < n; ++i) {
    double mx = -INFINITY, s = 0;
    for (int64_t j = 0; j < c; ++j) mx = std::max(mx, x[size_t(i * c + j)]);
    for (int64_t j = 0; j < c; ++j) s += std::exp(x[size_t(i * c + j)] - mx);
    for (int64_t j = 0; j < c; ++j) out[size_t(i * c + j)] = x[size_t(i * c + j)] - mx - std::log(s);
  }
  return out;
}

// Reference cross entropy over rows of [n, c] logits with class-index targets.
struct CeRef {
  std::vector<double> none;
  double sum = 0, mean = 0;
};
CeRef ce_ref(const std::vector<double>& x, const std::vector<int64_t>& t, int64_t n, int64_t c,
             const std::vector<double>& w, int64_t ignore, double eps) {
  const auto lp = log_softmax_rows(x, n, c);
  CeRef r;
  double wsum = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (t[size_t(i)] == ignore) {
      r.none.push_back(0);
      continue;
    }
    const double wt = w.empty() ? 1.0 : w[size_t(t[size_t(i)])];
    double smooth = 0;
    for (int64_t j = 0; j < c; ++j) smooth -= (w.empty() ? 1.0 : w[size_t(j)]) * lp[size_t(i * c + j)];
    const double nll = -wt * lp[size_t(i * c + t[size_t(i)])];
    r.none.push_back((1 - eps) * nll + eps / double(c) * smooth);
    wsum += wt;
  }
  for (double v : r.none) r.sum += v;
  r.mean = r.sum / wsum;
  return r;
}

const std::vector<double> kLogits = {0.2, -1.0, 3.0, 0.5,  1.5, 1.5,  -0.3, 2.0, -2.0, 0.0,
                                     0.7, 0.1,  4.0, -3.0, 0.0, 0.25, 1.0,  1.0, 1.0,  -1.0};
const std::vector<int64_t> kTargets = {2, 0, -100, 3, 1};

void expect_vec_near(const std::vector<double>& got, const std::vector<double>& want, double tol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tol) << "i=" << i;
}

}  // namespace

TEST(Losses, CrossEntropyClassIndicesAllOptions) {
  const Tensor x = tensor<double>(kLogits, {5, 4});
  const Tensor t = tensor<int64_t>(kTargets);
  const std::vector<double> wv = {1.0, 2.0, 0.5, 1.5};
  const Tensor w = tensor<double>(wv);
  for (double eps : {0.0, 0.1, 0.3})
    for (bool weighted : {false, true}) {
      const auto ref = ce_ref(kLogits, kTargets, 5, 4, weighted ? wv : std::vector<double>{}, -100, eps);
      const Tensor wt = weighted ? w : Tensor();
      SCOPED_TRACE(testing::Message() << "eps=" << eps << " weighted=" << weighted);
      expect_vec_near(cross_entropy(x, t, wt, -100, Reduction::None, eps).to_vector<double>(), ref.none, 1e-12);
      EXPECT_NEAR(cross_entropy(x, t, wt, -100, Reduction::Sum, eps).item<double>(), ref.sum, 1e-12);
      EXPECT_NEAR(cross_entropy(x, t, wt, -100, Reduction::Mean, eps).item<double>(), ref.mean, 1e-12);
    }
  // A different ignore_index: target 3 ignored, -100 now out of range.
  const std::vector<int64_t> t2 = {2, 0, 1, 3, 1};
  const auto ref = ce_ref(kLogits, t2, 5, 4, {}, 3, 0.0);
  EXPECT_NEAR(cross_entropy(x, tensor<int64_t>(t2), Tensor(), 3).item<double>(), ref.mean, 1e-12);
}

TEST(Losses, CrossEntropyFloat32AndInt32Targets) {
  const Tensor x = tensor<double>(kLogits, {5, 4}, DType::Float32);
  const std::vector<int64_t> t = {2, 0, 1, 3, 1};
  const auto ref = ce_ref(kLogits, t, 5, 4, {}, -100, 0.0);
  const Tensor loss = cross_entropy(x, tensor<int32_t>({2, 0, 1, 3, 1}));
  EXPECT_EQ(loss.dtype(), DType::Float32);
  EXPECT_EQ(loss.dim(), 0);
  EXPECT_NEAR(loss.item<double>(), ref.mean, 1e-5);
}

TEST(Losses, CrossEntropySpatialAndUnbatched) {
  // [N=1, C=4, 5] with targets [1, 5]: the same rows as kLogits, transposed into dim 1.
  const Tensor rows = tensor<double>(kLogits, {5, 4});
  const Tensor x = rows.t().unsqueeze(0);  // strided input
  const std::vector<int64_t> tv = {2, 0, 1, 3, 1};
  const auto ref = ce_ref(kLogits, tv, 5, 4, {}, -100, 0.2);
  const Tensor t = tensor<int64_t>(tv, {1, 5});
  const Tensor none = cross_entropy(x, t, Tensor(), -100, Reduction::None, 0.2);
  EXPECT_EQ(none.shape(), (Shape{1, 5}));
  expect_vec_near(none.to_vector<double>(), ref.none, 1e-12);
  EXPECT_NEAR(cross_entropy(x, t, Tensor(), -100, Reduction::Mean, 0.2).item<double>(), ref.mean, 1e-12);

  // Unbatched: [C] input, 0-d target.
  const Tensor row = rows.select(0, 3);
  const Tensor un = cross_entropy(row, scalar_tensor(int64_t(3), DType::Int64), Tensor(), -100, Reduction::None);
  EXPECT_EQ(un.dim(), 0);
  const std::vector<double> r3(kLogits.begin() + 12, kLogits.begin() + 16);
  EXPECT_NEAR(un.item<double>(), ce_ref(r3, {3}, 1, 4, {}, -100, 0.0).none[0], 1e-12);
}

TEST(Losses, CrossEntropyClassProbabilities) {
  const Tensor x = tensor<double>(kLogits, {5, 4});
  std::vector<double> p(20);
  for (size_t i = 0; i < 20; ++i) p[i] = double((i * 7) % 5 + 1);
  for (int i = 0; i < 5; ++i) {  // normalise rows
    double s = 0;
    for (int j = 0; j < 4; ++j) s += p[size_t(i * 4 + j)];
    for (int j = 0; j < 4; ++j) p[size_t(i * 4 + j)] /= s;
  }
  const std::vector<double> wv = {1.0, 2.0, 0.5, 1.5};
  const auto lp = log_softmax_rows(kLogits, 5, 4);
  for (double eps : {0.0, 0.25}) {
    std::vector<double> ref(5);
    double total = 0;
    for (int i = 0; i < 5; ++i) {
      for (int j = 0; j < 4; ++j)
        ref[size_t(i)] -= wv[size_t(j)] * ((1 - eps) * p[size_t(i * 4 + j)] + eps / 4) * lp[size_t(i * 4 + j)];
      total += ref[size_t(i)];
    }
    const Tensor pt = tensor<double>(p, {5, 4});
    const Tensor w = tensor<double>(wv);
    expect_vec_near(cross_entropy(x, pt, w, -100, Reduction::None, eps).to_vector<double>(), ref, 1e-12);
    EXPECT_NEAR(cross_entropy(x, pt, w, -100, Reduction::Sum, eps).item<double>(), total, 1e-12);
    EXPECT_NEAR(cross_entropy(x, pt, w, -100, Reduction::Mean, eps).item<double>(), total / 5, 1e-12);
  }
}

TEST(Losses, NllLossWithWeightAndIgnore) {
  const Tensor lp = tensor<double>(kLogits, {5, 4});  // any numbers: nll_loss just picks
  const std::vector<double> wv = {1.0, 2.0, 0.5, 1.5};
  double sum = 0, wsum = 0;
  std::vector<double> none;
  for (int i = 0; i < 5; ++i) {
    const int64_t t = kTargets[size_t(i)];
    if (t == -100) {
      none.push_back(0);
      continue;
    }
    none.push_back(-wv[size_t(t)] * kLogits[size_t(i * 4 + t)]);
    sum += none.back();
    wsum += wv[size_t(t)];
  }
  const Tensor t = tensor<int64_t>(kTargets), w = tensor<double>(wv);
  expect_vec_near(nll_loss(lp, t, w, -100, Reduction::None).to_vector<double>(), none, 1e-12);
  EXPECT_NEAR(nll_loss(lp, t, w, -100, Reduction::Sum).item<double>(), sum, 1e-12);
  EXPECT_NEAR(nll_loss(lp, t, w).item<double>(), sum / wsum, 1e-12);
}

TEST(Losses, MseAndL1) {
  const std::vector<double> a = {1.0, -2.0, 3.5, 0.0, 2.0, -1.0}, b = {0.5, 1.0, 3.0, -1.0, 2.0, 4.0};
  double se = 0, ae = 0;
  std::vector<double> sq, ab;
  for (size_t i = 0; i < a.size(); ++i) {
    sq.push_back((a[i] - b[i]) * (a[i] - b[i]));
    ab.push_back(std::abs(a[i] - b[i]));
    se += sq.back();
    ae += ab.back();
  }
  const Tensor x = tensor<double>(a, {2, 3}), y = tensor<double>(b, {2, 3});
  expect_vec_near(mse_loss(x, y, Reduction::None).to_vector<double>(), sq, 1e-15);
  EXPECT_NEAR(mse_loss(x, y, Reduction::Sum).item<double>(), se, 1e-12);
  EXPECT_NEAR(mse_loss(x, y).item<double>(), se / 6, 1e-12);
  expect_vec_near(l1_loss(x, y, Reduction::None).to_vector<double>(), ab, 1e-15);
  EXPECT_NEAR(l1_loss(x, y).item<double>(), ae / 6, 1e-12);
  // The target broadcasts to the input.
  EXPECT_NEAR(mse_loss(x, zeros({3}, DType::Float64), Reduction::Sum).item<double>(), 1 + 4 + 12.25 + 0 + 4 + 1,
              1e-12);
}

TEST(Losses, BinaryCrossEntropyWithLogitsIsStable) {
  const std::vector<double> xs = {-120.0, -3.0, -0.5, 0.0, 0.7, 5.0, 90.0, 2.0};
  const std::vector<double> ys = {0.0, 1.0, 0.3, 1.0, 0.0, 1.0, 0.0, 0.5};
  const std::vector<double> pw = {1.0, 3.0, 0.5, 2.0};  // per class (last dim 4)
  const std::vector<double> wv = {2.0, 1.0, 1.0, 0.5, 1.0, 1.0, 3.0, 1.0};
  // Reference in long double with the textbook formula where it does not overflow:
  // -[p y log s(x) + (1-y) log(1 - s(x))], log s(x) = -log1p(exp(-x)).
  auto ref = [&](bool with_pw, bool with_w) {
    std::vector<double> out;
    for (size_t i = 0; i < xs.size(); ++i) {
      const long double x = xs[i], y = ys[i], p = with_pw ? pw[i % 4] : 1.0;
      const long double log_s = x >= 0 ? -std::log1p(std::exp(-x)) : x - std::log1p(std::exp(x));
      const long double log_1ms = x >= 0 ? -x - std::log1p(std::exp(-x)) : -std::log1p(std::exp(x));
      out.push_back(double(-(p * y * log_s + (1 - y) * log_1ms) * (with_w ? wv[i] : 1.0)));
    }
    return out;
  };
  const Tensor x = tensor<double>(xs, {2, 4}), y = tensor<double>(ys, {2, 4});
  const Tensor p = tensor<double>(pw), w = tensor<double>(wv, {2, 4});
  expect_vec_near(binary_cross_entropy_with_logits(x, y, Tensor(), Reduction::None).to_vector<double>(),
                  ref(false, false), 1e-12);
  expect_vec_near(binary_cross_entropy_with_logits(x, y, w, Reduction::None, p).to_vector<double>(), ref(true, true),
                  1e-12);
  double s = 0;
  for (double v : ref(true, false)) s += v;
  EXPECT_NEAR(binary_cross_entropy_with_logits(x, y, Tensor(), Reduction::Mean, p).item<double>(), s / 8, 1e-12);
  // float32 stays finite at extreme logits.
  const Tensor xf = tensor<double>(xs, {2, 4}, DType::Float32), yf = tensor<double>(ys, {2, 4}, DType::Float32);
  const auto vf = binary_cross_entropy_with_logits(xf, yf, Tensor(), Reduction::None).to_vector<double>();
  const auto vr = ref(false, false);
  for (size_t i = 0; i < vf.size(); ++i) EXPECT_NEAR(vf[i], vr[i], 1e-4 * (1 + std::abs(vr[i])));
}

TEST(Losses, ErrorsNameTheLossAndLeaveInputsUnchanged) {
  const Tensor x = tensor<double>(kLogits, {5, 4});
  const auto before = x.to_vector<double>();
  auto expect_error = [&](auto fn, const char* op, const char* fragment) {
    try {
      fn();
      ADD_FAILURE() << "expected kiln::Error from " << op;
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_EQ(msg.rfind(std::string("[") + op + "]", 0), 0u) << msg;
      EXPECT_NE(msg.find(fragment), std::string::npos) << msg;
    }
  };
  expect_error([&] { cross_entropy(x, tensor<int64_t>({0, 1, 4, 0, 0})); }, "cross_entropy", "target 4 is out of range");
  expect_error([&] { cross_entropy(x, tensor<int64_t>({0, 1, -1, 0, 0})); }, "cross_entropy", "target -1");
  expect_error([&] { cross_entropy(x, tensor<int64_t>({0, 1})); }, "cross_entropy", "[5, 4]");
  expect_error([&] { cross_entropy(x, zeros({5, 3}, DType::Float64)); }, "cross_entropy", "[5, 3]");
  expect_error([&] { cross_entropy(x, tensor<int64_t>({0, 1, 2, 3, 0}), zeros({3}, DType::Float64)); },
               "cross_entropy", "weight");
  expect_error([&] { cross_entropy(x, tensor<int64_t>({0, 1, 2, 3, 0}), Tensor(), -100, Reduction::Mean, 1.5); },
               "cross_entropy", "label_smoothing");
  expect_error([&] { nll_loss(x, tensor<double>({0, 1, 2, 3, 0})); }, "nll_loss", "integer class indices");
  expect_error([&] { mse_loss(x, zeros({4, 4}, DType::Float64)); }, "mse_loss", "[4, 4]");
  expect_error([&] { l1_loss(tensor<int64_t>({1, 2}), tensor<int64_t>({1, 2})); }, "l1_loss", "floating");
  expect_error([&] { binary_cross_entropy_with_logits(x, zeros({5}, DType::Float64)); },
               "binary_cross_entropy_with_logits", "[5]");
  EXPECT_EQ(x.to_vector<double>(), before);
}

// ---- gradients through autograd against the closed forms
TEST(Losses, CrossEntropyGradientIsSoftmaxMinusSmoothedTarget) {
  // d/dx mean CE = (softmax(x) - q) / count over non-ignored rows, q = (1-e) onehot + e/C.
  const double eps = 0.1;
  Tensor x = tensor<double>(kLogits, {5, 4}).requires_grad_();
  cross_entropy(x, tensor<int64_t>(kTargets), Tensor(), -100, Reduction::Mean, eps).backward();
  const auto lp = log_softmax_rows(kLogits, 5, 4);
  const auto g = x.grad().to_vector<double>();
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 4; ++j) {
      const int64_t t = kTargets[size_t(i)];
      const double q = t == -100 ? 0 : (1 - eps) * (t == j) + eps / 4;
      const double want = t == -100 ? 0.0 : (std::exp(lp[size_t(i * 4 + j)]) - q) / 4.0;  // 4 counted rows
      EXPECT_NEAR(g[size_t(i * 4 + j)], want, 1e-12) << i << "," << j;
    }
}

TEST(Losses, MseAndBceGradients) {
  const std::vector<double> a = {1.0, -2.0, 3.5, 0.0}, b = {0.5, 1.0, 3.0, -1.0};
  Tensor x = tensor<double>(a).requires_grad_();
  mse_loss(x, tensor<double>(b)).backward();
  auto g = x.grad().to_vector<double>();
  for (size_t i = 0; i < 4; ++i) EXPECT_NEAR(g[i], 2 * (a[i] - b[i]) / 4, 1e-12);

  // d/dx = sigmoid(x) - y, also at x = 0 and at extreme logits.
  const std::vector<double> zs = {-120.0, 90.0, 0.0, 3.5}, ys = {0.0, 1.0, 1.0, 0.3};
  Tensor z = tensor<double>(zs).requires_grad_();
  binary_cross_entropy_with_logits(z, tensor<double>(ys), Tensor(), Reduction::Sum).backward();
  g = z.grad().to_vector<double>();
  for (size_t i = 0; i < 4; ++i) EXPECT_NEAR(g[i], 1 / (1 + std::exp(-zs[i])) - ys[i], 1e-12) << zs[i];
}
