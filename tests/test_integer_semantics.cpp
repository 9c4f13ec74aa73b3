// Integer semantics and Scalar conversions (issue 10), against PyTorch's documented
// behaviour: integer tensors to negative integer powers raise; clamp's bounds take part
// in type promotion; a Scalar keeps an integer form only when it is exact, and float to
// integer conversions are defined for NaN, infinities and out-of-range values.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "kiln/ops.h"
#include "tests/support/expect_error.h"

using namespace kiln;
using kiln::testing::expect_error;

TEST(IntegerSemantics, IntegerTensorToNegativeIntegerPowerRaises) {
  Tensor a = tensor(std::vector<int64_t>{0, 2});
  // Used to return [0, 0].
  expect_error([&] { (void)pow(a, -1); }, "pow", "Integers to negative integer powers are not allowed");
  expect_error([&] { (void)pow(tensor(std::vector<int32_t>{3}), -2); }, "pow", "negative integer powers");
  EXPECT_EQ(pow(a, 3).to_vector<int64_t>(), (std::vector<int64_t>{0, 8}));
  // A floating exponent promotes instead (PyTorch: int tensor ** -1.0 is float).
  const auto f = pow(a, -1.0).to_vector<float>();
  EXPECT_TRUE(std::isinf(f[0]));
  EXPECT_FLOAT_EQ(f[1], 0.5f);
}

TEST(IntegerSemantics, ClampBoundsPromoteLikePythonNumbers) {
  Tensor a = arange(5);  // int64 [0, 1, 2, 3, 4]
  // PyTorch: clamp(int64, 0.5, 3.5) is float32 [0.5, 1, 2, 3, 3.5].
  Tensor c = clamp(a, 0.5, 3.5);
  EXPECT_EQ(c.dtype(), DType::Float32);
  std::vector<float> want;
  for (int i = 0; i < 5; ++i) want.push_back(std::min(std::max(float(i), 0.5f), 3.5f));
  EXPECT_EQ(c.to_vector<float>(), want);
  // ... and in place the float result can't be written into int64 (it used to leave 0 below the minimum).
  expect_error([&] { a.clamp_(0.5, 3.5); }, "clamp_", "can't be cast");
  EXPECT_EQ(a.to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  // Integer bounds keep the dtype.
  a.clamp_(1, 3);
  EXPECT_EQ(a.to_vector<int64_t>(), (std::vector<int64_t>{1, 1, 2, 3, 3}));
  // Bool tensors with integer bounds become int64, as in PyTorch.
  EXPECT_EQ(clamp(tensor(std::vector<bool>{true, false}), 0, 1).dtype(), DType::Int64);
  expect_error([] { (void)clamp(tensor(std::vector<int32_t>{1}), int64_t(1) << 40, std::nullopt); }, "clamp",
               "without overflow");
}

TEST(IntegerSemantics, ScalarKeepsAnIntegerFormOnlyWhenExact) {
  const double lo = -9223372036854775808.0;
  EXPECT_EQ(Scalar(7.9).to_int(), 7);
  EXPECT_EQ(Scalar(-7.9).to_int(), -7);
  EXPECT_EQ(Scalar(lo).to_int(), std::numeric_limits<int64_t>::min());
  // Used to be undefined behaviour (UBSan: "nan is outside the range of representable values").
  for (double v : {double(NAN), double(INFINITY), -double(INFINITY), 1e30, -1e30, -lo}) {
    EXPECT_EQ(Scalar(v).to_int(), std::numeric_limits<int64_t>::min()) << v;
    EXPECT_EQ(Scalar(v).to<int32_t>(), std::numeric_limits<int32_t>::min()) << v;
    EXPECT_TRUE(Scalar(v).is_floating());
  }
  EXPECT_EQ(Scalar(3e9).to<int32_t>(), std::numeric_limits<int32_t>::min());
  EXPECT_EQ(Scalar(int64_t(5)).to_int(), 5);
  EXPECT_TRUE(std::isnan(Scalar(NAN).to<float>()));
  EXPECT_TRUE(Scalar(NAN).to<bool>());
}

TEST(IntegerSemantics, NanAndInfinityFillFloatTensorsAndAreRejectedForIntegers) {
  Tensor f = zeros({3});
  f.fill_(NAN);
  for (float v : f.to_vector<float>()) EXPECT_TRUE(std::isnan(v));
  EXPECT_TRUE(std::isnan(full({2}, NAN).to_vector<float>()[1]));
  const auto m = mul(ones({2}), NAN).to_vector<float>();
  EXPECT_TRUE(std::isnan(m[0]) && std::isnan(m[1]));
  EXPECT_TRUE(std::isinf(full({1}, INFINITY, DType::Float64).to_vector<double>()[0]));
  // PyTorch: "value cannot be converted to type int64_t without overflow".
  Tensor i = zeros({2}, DType::Int64);
  expect_error([&] { i.fill_(INFINITY); }, "fill_", "without overflow");
  expect_error([&] { i.fill_(1e30); }, "fill_", "without overflow");
  expect_error([&] { i.fill_(NAN); }, "fill_", "without overflow");
  expect_error([] { (void)full({2}, int64_t(1) << 40, DType::Int32); }, "full", "without overflow");
  EXPECT_EQ(i.to_vector<int64_t>(), (std::vector<int64_t>{0, 0}));
  i.fill_(-7.9);
  EXPECT_EQ(i.to_vector<int64_t>(), (std::vector<int64_t>{-7, -7}));
}

TEST(IntegerSemantics, FloatToIntegerCastsAreDefined) {
  Tensor f = tensor(std::vector<float>{1e30f, -1e30f, NAN, INFINITY, 2.9f, -2.9f, 2147483520.f, 3e9f});
  const int64_t l = std::numeric_limits<int64_t>::min();
  EXPECT_EQ(f.to(DType::Int64).to_vector<int64_t>(),
            (std::vector<int64_t>{l, l, l, l, 2, -2, 2147483520, 3000000000}));
  const int32_t m = std::numeric_limits<int32_t>::min();
  EXPECT_EQ(f.to(DType::Int32).to_vector<int32_t>(), (std::vector<int32_t>{m, m, m, m, 2, -2, 2147483520, m}));
  Tensor d = tensor(std::vector<double>{9.3e18, -9.3e18, 9.2e18});
  EXPECT_EQ(d.to(DType::Int64).to_vector<int64_t>(), (std::vector<int64_t>{l, l, 9200000000000000000}));
}
