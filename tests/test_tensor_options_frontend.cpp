// libtorch's spellings of dtypes, devices, TensorOptions builders, x.options(),
// item<T>(), manual_seed and kiln::cuda; checked against the long kiln spellings.
#include <gtest/gtest.h>

#include "kiln/generator.h"
#include "kiln/nn/loss.h"
#include "kiln/ops.h"
#include "kiln/tensor_options.h"

using namespace kiln;

TEST(TensorOptionsFrontend, BuildersAndConstants) {
  const TensorOptions o = kiln::dtype(kFloat64).device(kCPU).requires_grad(true);
  const Tensor t = zeros({2, 3}, o);
  EXPECT_EQ(t.dtype(), DType::Float64);
  EXPECT_EQ(t.device(), kCpu);
  EXPECT_TRUE(t.requires_grad());
  EXPECT_EQ(kiln::dtype(kLong).dtype_, DType::Int64);
  EXPECT_EQ(kInt, DType::Int32);
  EXPECT_EQ(kBool, DType::Bool);
  EXPECT_EQ(kHalf, DType::Float16);
  EXPECT_EQ(Device(kCUDA, 1).str(), "cuda:1");
  EXPECT_TRUE(kiln::requires_grad().requires_grad_);
}

TEST(TensorOptionsFrontend, OptionsOfATensorMakeLikeTensors) {
  const Tensor x = ones({4}, kInt32).requires_grad_(false);
  const Tensor y = full({2}, 7, x.options());
  EXPECT_EQ(y.dtype(), DType::Int32);
  EXPECT_EQ(y.device(), x.device());
  EXPECT_EQ(y.to_vector<int32_t>(), (std::vector<int32_t>{7, 7}));
  EXPECT_EQ(x.scalar_type(), kInt);
  // options() does not carry requires_grad, as in libtorch.
  const Tensor w = randn({3}, kiln::dtype(kFloat).requires_grad(true));
  EXPECT_FALSE(w.options().requires_grad_);
}

TEST(TensorOptionsFrontend, ItemAndManualSeed) {
  EXPECT_EQ(scalar_tensor(2.5, kDouble).item<double>(), 2.5);
  EXPECT_EQ(full({1}, 3, kLong).item<int64_t>(), 3);
  kiln::manual_seed(7);
  const auto a = randn({5}).to_vector<float>();
  kiln::manual_seed(7);
  EXPECT_EQ(randn({5}).to_vector<float>(), a);
}

TEST(TensorOptionsFrontend, CudaQueriesAgreeWithTheDeviceManager) {
  EXPECT_EQ(cuda::is_available(), device_manager().is_available(DeviceType::Cuda));
  EXPECT_EQ(cuda::device_count(), device_manager().device_count(DeviceType::Cuda));
  if (!cuda::is_available()) {
    try {
      zeros({2}).to(Device(kCUDA));
      FAIL() << "expected kiln::Error";
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).rfind("[to] ", 0), 0u) << e.what();
      EXPECT_NE(std::string(e.what()).find("cuda"), std::string::npos) << e.what();
    }
  }
}

TEST(TensorOptionsFrontend, ReductionSpellings) {
  const Tensor a = tensor<double>({1, 2, 3}), b = zeros({3}, kDouble);
  EXPECT_DOUBLE_EQ(nn::mse_loss(a, b, kSum).item<double>(), 14.0);
  EXPECT_DOUBLE_EQ(nn::mse_loss(a, b, Reduction::Mean).item<double>(), 14.0 / 3.0);
  EXPECT_EQ(nn::l1_loss(a, b, kNone).shape(), (Shape{3}));
}
