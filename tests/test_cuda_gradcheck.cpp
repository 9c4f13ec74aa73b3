// gradcheck on the GPU: float64 inputs go to CUDA inside the checked function, so the
// forward and every backward kernel run there, and central finite differences check the
// gradients autograd computes from them (tests/support/gradcheck.h). One test per op
// family; the per-family CPU gradchecks are in test_gradcheck.cpp. Skips without CUDA.
#include <gtest/gtest.h>

#include <vector>

#include "kiln/device_manager.h"
#include "kiln/nn/loss.h"
#include "kiln/ops.h"
#include "tests/support/gradcheck.h"
#include "tests/support/cuda_test.h"

using namespace kiln;
using kiln::testing::kGpu;
using kiln::testing::grad_input;
using kiln::testing::grad_input_away_from_zero;
using In = std::vector<Tensor>;

namespace {

Tensor gpu(const Tensor& t) { return t.to(kGpu); }

// fn on GPU copies of the inputs, its result brought back for the finite differences.
::testing::AssertionResult gradcheck_on_gpu(const std::function<Tensor(const In&)>& fn, const In& inputs,
                                            const kiln::testing::GradcheckOptions& opts = {}) {
  return kiln::testing::gradcheck(
      [&](const In& t) {
        In g;
        for (const Tensor& x : t) g.push_back(gpu(x));
        return fn(g).to(kCpu);
      },
      inputs, opts);
}

}  // namespace

TEST(CudaGradcheck, Elementwise) {
  REQUIRE_CUDA();
  EXPECT_TRUE(gradcheck_on_gpu([](const In& t) { return add(mul(t[0], t[1]), div(t[0], t[2])); },
                               {grad_input({3, 4}), grad_input({4}), grad_input_away_from_zero({3, 1})}));
  EXPECT_TRUE(gradcheck_on_gpu([](const In& t) { return add(tanh(t[0]), mul(sigmoid(t[0]), gelu(t[0]))); },
                               {grad_input({5, 3})}));
  EXPECT_TRUE(gradcheck_on_gpu([](const In& t) { return exp(relu(t[0])); }, {grad_input_away_from_zero({7})}));
}

TEST(CudaGradcheck, ReductionsAndSoftmax) {
  REQUIRE_CUDA();
  EXPECT_TRUE(gradcheck_on_gpu([](const In& t) { return sum(t[0], {1}); }, {grad_input({3, 4, 2})}));
  EXPECT_TRUE(gradcheck_on_gpu([](const In& t) { return mean(t[0], {0, 2}, true); }, {grad_input({3, 4, 2})}));
  EXPECT_TRUE(gradcheck_on_gpu([](const In& t) { return softmax(t[0], 1); }, {grad_input({4, 6})}));
  EXPECT_TRUE(gradcheck_on_gpu([](const In& t) { return log_softmax(t[0], 0); }, {grad_input({4, 6})}));
}

TEST(CudaGradcheck, MatmulAndLinear) {
  REQUIRE_CUDA();
  EXPECT_TRUE(gradcheck_on_gpu([](const In& t) { return matmul(t[0], t[1]); },
                               {grad_input({2, 3, 4}), grad_input({4, 5})}));
  EXPECT_TRUE(gradcheck_on_gpu([](const In& t) { return linear(t[0], t[1], t[2]); },
                               {grad_input({3, 4}), grad_input({5, 4}), grad_input({5})}));
}

TEST(CudaGradcheck, Convolutions) {
  REQUIRE_CUDA();
  EXPECT_TRUE(gradcheck_on_gpu([](const In& t) { return conv2d(t[0], t[1], t[2], {2, 1}, {1, 1}); },
                               {grad_input({2, 3, 5, 6}), grad_input({4, 3, 3, 2}), grad_input({4})}));
  EXPECT_TRUE(gradcheck_on_gpu([](const In& t) { return conv_transpose2d(t[0], t[1], t[2], {2, 2}, {1, 0}); },
                               {grad_input({1, 3, 4, 3}), grad_input({3, 2, 3, 3}), grad_input({2})}));
}

TEST(CudaGradcheck, Normalisation) {
  REQUIRE_CUDA();
  EXPECT_TRUE(gradcheck_on_gpu(
      [](const In& t) { return batch_norm(t[0], Tensor(), Tensor(), t[1], t[2], /*training=*/true); },
      {grad_input({4, 3, 2, 3}), grad_input({3}), grad_input({3})}));
  EXPECT_TRUE(gradcheck_on_gpu([](const In& t) { return layer_norm(t[0], {4}, t[1], t[2]); },
                               {grad_input({3, 4}), grad_input({4}), grad_input({4})}));
}

TEST(CudaGradcheck, AttentionEmbeddingAndLoss) {
  REQUIRE_CUDA();
  EXPECT_TRUE(gradcheck_on_gpu([](const In& t) { return scaled_dot_product_attention(t[0], t[1], t[2]); },
                               {grad_input({2, 3, 4}), grad_input({2, 5, 4}), grad_input({2, 5, 3})}));
  EXPECT_TRUE(gradcheck_on_gpu(
      [](const In& t) { return scaled_dot_product_attention(t[0], t[1], t[2], Tensor(), 0.0, true); },
      {grad_input({2, 4, 4}), grad_input({2, 4, 4}), grad_input({2, 4, 3})}));
  const Tensor idx = tensor<int64_t>({3, 0, 3, 1});
  EXPECT_TRUE(gradcheck_on_gpu([&](const In& t) { return embedding(t[0], gpu(idx)); }, {grad_input({4, 3})}));
  const Tensor target = tensor<int64_t>({2, 0, 1});
  EXPECT_TRUE(gradcheck_on_gpu([&](const In& t) { return nn::cross_entropy(t[0], gpu(target)); },
                               {grad_input({3, 4})}));
}
