// Tensor core: views share storage, contiguous copies only when it must, factories,
// dtype conversion, errors leave inputs unchanged.
#include <gtest/gtest.h>

#include "kiln/ops.h"

using namespace kiln;

TEST(TensorCore, ViewsShareStorageAndSeeWrites) {
  Tensor a = arange(12, DType::Float32).view({3, 4});
  Tensor t = a.t();
  EXPECT_TRUE(t.shares_storage(a));
  EXPECT_FALSE(t.is_contiguous());
  Tensor row = a.select(0, 1);
  row.fill_(-1);
  EXPECT_EQ(a.at({1, 2}).to_double(), -1);
  EXPECT_EQ(t.at({2, 1}).to_double(), -1);
  Tensor n = a.narrow(1, 1, 2);
  EXPECT_EQ(n.shape(), (Shape{3, 2}));
  EXPECT_EQ(n.at({2, 0}).to_double(), 9);
}

TEST(TensorCore, ContiguousCopiesOnlyWhenItMust) {
  Tensor a = arange(6, DType::Float32).view({2, 3});
  EXPECT_TRUE(a.contiguous().is_same(a));
  Tensor t = a.t().contiguous();
  EXPECT_FALSE(t.shares_storage(a));
  EXPECT_EQ(t.to_vector<float>(), (std::vector<float>{0, 3, 1, 4, 2, 5}));
}

TEST(TensorCore, BroadcastAddMatchesLoops) {
  Tensor a = arange(6, DType::Float64).view({2, 3});
  Tensor b = tensor<double>({10, 20, 30});
  Tensor c = a + b;
  const auto v = c.to_vector<double>();
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j) EXPECT_EQ(v[size_t(i * 3 + j)], double(i * 3 + j) + 10.0 * (j + 1));
}

TEST(TensorCore, ShapeMismatchRaisesAndLeavesInputs) {
  Tensor a = ones({2, 3});
  Tensor b = ones({4});
  try {
    (void)(a + b);
    FAIL() << "expected kiln::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[add]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[2, 3]"), std::string::npos) << e.what();
  }
  EXPECT_EQ(a.to_vector<float>(), std::vector<float>(6, 1.0f));
}
