// Factories (zeros/ones/full/arange/linspace/eye/rand/randn/randint/tensor), element
// access (item/at/to_vector) and printing, against values from their definitions.
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <sstream>

#include "kiln/generator.h"
#include "kiln/ops.h"

using namespace kiln;

namespace {
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }
std::string printed(const Tensor& t) {
  std::ostringstream os;
  os << t;
  return os.str();
}
}  // namespace

TEST(Factories, ZerosOnesFullInEveryDtype) {
  for (int k = 0; k < kNumDTypes; ++k) {
    const DType dt = DType(k);
    Tensor z = zeros({2, 3}, dt);
    EXPECT_EQ(z.dtype(), dt);
    EXPECT_EQ(z.shape(), (Shape{2, 3}));
    EXPECT_TRUE(z.is_contiguous());
    EXPECT_EQ(z.device(), kCpu);
    EXPECT_EQ(z.to_vector<double>(), std::vector<double>(6, 0.0)) << dtype_name(dt);
    EXPECT_EQ(ones({4}, dt).to_vector<double>(), std::vector<double>(4, 1.0)) << dtype_name(dt);
  }
  EXPECT_EQ(zeros({2}).dtype(), DType::Float32);  // PyTorch's default dtype
  EXPECT_EQ(full({3}, 2.5, DType::Float64).to_vector<double>(), (std::vector<double>{2.5, 2.5, 2.5}));
  EXPECT_EQ(full({2}, -7, DType::Int64).to_vector<int64_t>(), (std::vector<int64_t>{-7, -7}));
  EXPECT_EQ(full({2}, true, DType::Bool).to_vector<bool>(), (std::vector<bool>{true, true}));
  EXPECT_EQ(full({}, 3.0).dim(), 0);
  EXPECT_EQ(full({}, 3.0).item<double>(), 3.0);
  EXPECT_EQ(zeros({0, 5}).numel(), 0);
  Tensor like = full_like(zeros({2, 2}, DType::Int32), 4);
  EXPECT_EQ(like.dtype(), DType::Int32);
  EXPECT_EQ(like.to_vector<int32_t>(), (std::vector<int32_t>{4, 4, 4, 4}));
  EXPECT_EQ(ones_like(like).to_vector<int32_t>(), (std::vector<int32_t>{1, 1, 1, 1}));
  EXPECT_EQ(zeros_like(like).to_vector<int32_t>(), (std::vector<int32_t>{0, 0, 0, 0}));
  EXPECT_EQ(scalar_tensor(1.5, DType::Float64).item<double>(), 1.5);
}

TEST(Factories, Arange) {
  EXPECT_EQ(arange(5, DType::Int64).to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(arange(2, 11, 3, DType::Int32).to_vector<int32_t>(), (std::vector<int32_t>{2, 5, 8}));
  EXPECT_EQ(arange(5, 0, -2, DType::Int64).to_vector<int64_t>(), (std::vector<int64_t>{5, 3, 1}));
  EXPECT_EQ(arange(3, 3, 1, DType::Float32).numel(), 0);
  // float steps: ceil((end - start) / step) elements, start + i * step
  const auto f = arange(1.0, 2.5, 0.5, DType::Float64).to_vector<double>();
  EXPECT_EQ(f, (std::vector<double>{1.0, 1.5, 2.0}));
  const auto tenths = arange(0.0, 1.0, 0.1, DType::Float64).to_vector<double>();
  ASSERT_EQ(tenths.size(), 10u);
  for (size_t i = 0; i < 10; ++i) EXPECT_NEAR(tenths[i], 0.1 * double(i), 1e-12);
  const auto neg = arange(0.0, -1.0, -0.25, DType::Float32).to_vector<float>();
  EXPECT_EQ(neg, (std::vector<float>{0.0f, -0.25f, -0.5f, -0.75f}));
}

// PyTorch's dtype rule when none is given: int64 if start, end and step are all integers,
// the default dtype (float32) if any is floating; a given dtype always wins.
TEST(Factories, ArangeDTypeFollowsItsArguments) {
  Tensor five = arange(5);
  EXPECT_EQ(five.dtype(), DType::Int64);
  EXPECT_EQ(five.to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  Tensor evens = arange(0, 10, 2);
  EXPECT_EQ(evens.dtype(), DType::Int64);
  EXPECT_EQ(evens.to_vector<int64_t>(), (std::vector<int64_t>{0, 2, 4, 6, 8}));
  EXPECT_EQ(arange(int32_t(3), int64_t(-3), -2).to_vector<int64_t>(), (std::vector<int64_t>{3, 1, -1}));
  EXPECT_EQ(arange(3, 3).dtype(), DType::Int64);  // empty, still int64
  // any floating bound or step gives float32
  EXPECT_EQ(arange(5.0).dtype(), DType::Float32);
  EXPECT_EQ(arange(0.5, 3).to_vector<float>(), (std::vector<float>{0.5f, 1.5f, 2.5f}));
  EXPECT_EQ(arange(0, 3.0f).dtype(), DType::Float32);
  EXPECT_EQ(arange(0, 2, 0.5).to_vector<float>(), (std::vector<float>{0.0f, 0.5f, 1.0f, 1.5f}));
  // a dtype in the options wins either way; options without one still infer
  EXPECT_EQ(arange(4, DType::Float64).to_vector<double>(), (std::vector<double>{0, 1, 2, 3}));
  EXPECT_EQ(arange(0.0, 3.0, 1.0, DType::Int32).to_vector<int32_t>(), (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(arange(4, TensorOptions(kCpu)).dtype(), DType::Int64);
  EXPECT_EQ(arange(4, TensorOptions(kCpu).requires_grad(false)).dtype(), DType::Int64);
  EXPECT_EQ(arange(1.5, TensorOptions(kCpu)).dtype(), DType::Float32);
  // integer results index and compare like PyTorch's: arange(n) selects rows
  Tensor t = tensor<float>({10, 11, 12, 13}, {4});
  EXPECT_EQ(index_select(t, 0, arange(1, 4, 2)).to_vector<float>(), (std::vector<float>{11, 13}));
}

TEST(Factories, LinspaceAndEye) {
  const auto l = linspace(0, 1, 5, DType::Float64).to_vector<double>();
  ASSERT_EQ(l.size(), 5u);
  for (size_t i = 0; i < 5; ++i) EXPECT_NEAR(l[i], 0.25 * double(i), 1e-15);
  const auto d = linspace(3, -3, 4, DType::Float32).to_vector<float>();
  EXPECT_EQ(d, (std::vector<float>{3, 1, -1, -3}));
  EXPECT_EQ(linspace(2, 9, 1, DType::Float64).to_vector<double>(), (std::vector<double>{2}));
  EXPECT_EQ(linspace(0, 1, 0).numel(), 0);

  EXPECT_EQ(eye(3, -1, DType::Int64).to_vector<int64_t>(), (std::vector<int64_t>{1, 0, 0, 0, 1, 0, 0, 0, 1}));
  Tensor r = eye(2, 4, DType::Float64);
  EXPECT_EQ(r.shape(), (Shape{2, 4}));
  EXPECT_EQ(r.to_vector<double>(), (std::vector<double>{1, 0, 0, 0, 0, 1, 0, 0}));
  EXPECT_EQ(eye(3, 2).to_vector<float>(), (std::vector<float>{1, 0, 0, 1, 0, 0}));
}

TEST(Factories, RandIsUniformOnZeroOne) {
  Generator g(1234);
  const int64_t n = 100000;
  const auto v = rand({n}, DType::Float64, &g).to_vector<double>();
  double sum = 0, sq = 0, lo = 1, hi = 0;
  for (double x : v) {
    sum += x;
    sq += x * x;
    lo = std::min(lo, x);
    hi = std::max(hi, x);
  }
  const double mean = sum / double(n), var = sq / double(n) - mean * mean;
  EXPECT_GE(lo, 0.0);
  EXPECT_LT(hi, 1.0);
  EXPECT_NEAR(mean, 0.5, 0.005);        // sd of the mean: 0.0009
  EXPECT_NEAR(var, 1.0 / 12.0, 0.002);  // sd of the variance: 0.0002
  // each tenth of [0, 1) holds about a tenth of the samples
  std::vector<int> bins(10, 0);
  for (double x : v) ++bins[size_t(x * 10)];
  for (int b : bins) EXPECT_NEAR(b, n / 10, 600);
  const auto f = rand({1000}, DType::Float32, &g).to_vector<float>();
  for (float x : f) {
    EXPECT_GE(x, 0.0f);
    EXPECT_LT(x, 1.0f);
  }
  EXPECT_EQ(rand({2, 3}, DType::BFloat16, &g).dtype(), DType::BFloat16);
}

TEST(Factories, RandnHasMeanZeroStdOne) {
  Generator g(99);
  const int64_t n = 100000;
  const auto v = randn({n}, DType::Float64, &g).to_vector<double>();
  double sum = 0, sq = 0;
  int within1 = 0;
  for (double x : v) {
    sum += x;
    sq += x * x;
    within1 += std::abs(x) < 1.0;
  }
  const double mean = sum / double(n), sd = std::sqrt(sq / double(n) - mean * mean);
  EXPECT_NEAR(mean, 0.0, 0.02);  // sd of the mean: 0.003
  EXPECT_NEAR(sd, 1.0, 0.02);    // sd of the sd: 0.0022
  EXPECT_NEAR(double(within1) / double(n), 0.6827, 0.01);  // P(|Z| < 1)
}

TEST(Factories, RandintCoversTheHalfOpenRange) {
  Generator g(7);
  Tensor r = randint(-3, 4, {5000}, DType::Int64, &g);
  EXPECT_EQ(r.dtype(), DType::Int64);
  std::set<int64_t> seen;
  for (int64_t x : r.to_vector<int64_t>()) {
    EXPECT_GE(x, -3);
    EXPECT_LT(x, 4);
    seen.insert(x);
  }
  EXPECT_EQ(seen.size(), 7u);
  EXPECT_EQ(randint(0, 10, {3}).dtype(), DType::Int64);  // the default dtype
  for (int32_t x : randint(5, 6, {20}, DType::Int32, &g).to_vector<int32_t>()) EXPECT_EQ(x, 5);
}

TEST(Factories, SameSeedSameNumbers) {
  Generator a(42), b(42), c(43);
  const auto x = rand({64}, DType::Float32, &a).to_vector<float>();
  const auto y = rand({64}, DType::Float32, &b).to_vector<float>();
  const auto z = rand({64}, DType::Float32, &c).to_vector<float>();
  EXPECT_EQ(x, y);
  EXPECT_NE(x, z);
  // the stream advances: the next draw differs from the first
  EXPECT_NE(rand({64}, DType::Float32, &a).to_vector<float>(), x);
  (void)rand({64}, DType::Float32, &b);  // b catches up with a: same seed, same offset
  EXPECT_EQ(randn({16}, DType::Float64, &a).to_vector<double>(), randn({16}, DType::Float64, &b).to_vector<double>());
  manual_seed(5);
  const auto d1 = randn({32}, DType::Float64).to_vector<double>();
  manual_seed(5);
  const auto d2 = randn({32}, DType::Float64).to_vector<double>();
  EXPECT_EQ(d1, d2);
  a.manual_seed(42);
  Generator fresh(42);
  EXPECT_EQ(randint(0, 1000, {8}, DType::Int64, &a).to_vector<int64_t>(),
            randint(0, 1000, {8}, DType::Int64, &fresh).to_vector<int64_t>());
}

TEST(Factories, TensorFromVectors) {
  Tensor f = tensor<float>({1.5f, -2.0f, 3.25f, 0.0f, 5.0f, 6.0f}, {2, 3});
  EXPECT_EQ(f.dtype(), DType::Float32);
  EXPECT_EQ(f.shape(), (Shape{2, 3}));
  EXPECT_EQ(f.at({0, 2}).to_double(), 3.25);
  EXPECT_EQ(tensor<double>({1, 2}).dtype(), DType::Float64);
  EXPECT_EQ(tensor<double>({1, 2}).shape(), (Shape{2}));  // 1-D by default
  EXPECT_EQ(tensor<int32_t>({7, -8}).to_vector<int32_t>(), (std::vector<int32_t>{7, -8}));
  EXPECT_EQ(tensor<int64_t>({int64_t(1) << 40}).item<int64_t>(), int64_t(1) << 40);
  Tensor b = tensor<bool>({true, false, false, true}, {2, 2});
  EXPECT_EQ(b.dtype(), DType::Bool);
  EXPECT_EQ(b.to_vector<bool>(), (std::vector<bool>{true, false, false, true}));
  EXPECT_EQ(b.to_vector<int32_t>(), (std::vector<int32_t>{1, 0, 0, 1}));
  // with options: converted to the asked dtype
  Tensor h = tensor<double>({0.5, 1.0 / 3.0}, {}, TensorOptions(DType::Float16));
  EXPECT_EQ(h.dtype(), DType::Float16);
  EXPECT_EQ(h.to_vector<float>()[0], 0.5f);
  EXPECT_EQ(h.to_vector<float>()[1], float(Half(1.0f / 3.0f)));
  EXPECT_EQ(tensor<float>(std::vector<float>{}).numel(), 0);
}

TEST(Factories, ItemAtAndToVector) {
  Tensor t = tensor<double>({1.25, -2.5, 3.75, 4.0}, {2, 2});
  EXPECT_EQ(t.at({1, 0}).to_double(), 3.75);
  EXPECT_EQ(t.select(0, 1).select(0, 1).item<double>(), 4.0);
  EXPECT_EQ(t.select(0, 0).select(0, 1).item<int64_t>(), -2);  // truncation toward zero
  EXPECT_EQ(t.t().to_vector<double>(), (std::vector<double>{1.25, 3.75, -2.5, 4.0}));
  EXPECT_EQ(t.to_vector<int32_t>(), (std::vector<int32_t>{1, -2, 3, 4}));
  EXPECT_EQ(full({}, 7, DType::Int32).item().to_int(), 7);
  EXPECT_TRUE(full({1, 1}, true, DType::Bool).item<bool>());
  EXPECT_TRUE(full({}, 3, DType::Int64).item().is_integral());
}

TEST(Factories, PrintingShowsTheValues) {
  const std::string f = printed(tensor<float>({1.5f, -2.0f, 3.25f, 4.0f}, {2, 2}));
  EXPECT_TRUE(contains(f, "tensor(")) << f;
  for (const char* v : {"1.5000", "-2.0000", "3.2500", "4.0000"}) EXPECT_TRUE(contains(f, v)) << f;
  EXPECT_FALSE(contains(f, "dtype")) << f;  // float32 is the default, as in PyTorch

  const std::string d = printed(tensor<double>({0.125}));
  EXPECT_TRUE(contains(d, "0.1250")) << d;
  EXPECT_TRUE(contains(d, "float64")) << d;

  const std::string i = printed(tensor<int32_t>({3, -14}));
  EXPECT_TRUE(contains(i, "3")) << i;
  EXPECT_TRUE(contains(i, "-14")) << i;
  EXPECT_TRUE(contains(i, "int32")) << i;

  const std::string b = printed(tensor<bool>({true, false}));
  EXPECT_TRUE(contains(b, "True")) << b;
  EXPECT_TRUE(contains(b, "False")) << b;

  const std::string s = printed(full({}, 2.5));
  EXPECT_TRUE(contains(s, "2.5000")) << s;

  const std::string big = printed(arange(5000, DType::Int64));
  EXPECT_TRUE(contains(big, "...")) << big.substr(0, 200);
  EXPECT_TRUE(contains(big, "4999")) << big.substr(0, 200);
  EXPECT_LT(big.size(), 200u);

  EXPECT_TRUE(contains(zeros({2, 3}).str(), "[2, 3]"));
  EXPECT_TRUE(contains(zeros({2, 3}).str(), "float32"));
}

TEST(Factories, FromBlobWrapsWithoutCopyingAndRunsTheDeleter) {
  std::vector<float> host = {1, 2, 3, 4, 5, 6};
  int deleted = 0;
  {
    Tensor t = from_blob(host.data(), {2, 3}, DType::Float32, kCpu, [&](void* p) {
      EXPECT_EQ(p, static_cast<void*>(host.data()));
      ++deleted;
    });
    EXPECT_EQ(t.data_ptr(), static_cast<void*>(host.data()));
    EXPECT_EQ(t.at({1, 0}).to_double(), 4.0);
    t.select(0, 0).fill_(-1);  // writes land in the caller's memory
    EXPECT_EQ(host[2], -1.0f);
    Tensor view = t.t();  // a view keeps the memory alive
    t = Tensor();
    EXPECT_EQ(deleted, 0);
    EXPECT_EQ(view.at({2, 1}).to_double(), 6.0);
  }
  EXPECT_EQ(deleted, 1);
  // without a deleter the memory is borrowed and never freed by kiln
  Tensor b = from_blob(host.data(), {6}, DType::Float32);
  EXPECT_EQ(b.to_vector<float>(), host);
}

TEST(Factories, EmptyStridedAndDetach) {
  Tensor s = empty_strided({2, 3}, {1, 2}, DType::Float64);
  EXPECT_EQ(s.shape(), (Shape{2, 3}));
  EXPECT_EQ(s.strides(), (Strides{1, 2}));
  EXPECT_FALSE(s.is_contiguous());
  s.copy_(tensor<double>({0, 1, 2, 3, 4, 5}, {2, 3}));
  EXPECT_EQ(s.to_vector<double>(), (std::vector<double>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(s.at({1, 2}).to_double(), 5.0);
  Tensor d = s.detach();
  EXPECT_TRUE(d.shares_storage(s));
  EXPECT_EQ(d.strides(), s.strides());
  Tensor moved = s.to(kCpu, DType::Float32);
  EXPECT_EQ(moved.dtype(), DType::Float32);
  EXPECT_EQ(moved.to_vector<float>(), (std::vector<float>{0, 1, 2, 3, 4, 5}));
}
