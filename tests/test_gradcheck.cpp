// gradcheck of every differentiable op: analytic gradients against central finite
// differences in float64 on fresh random inputs, each also with strided inputs; broadcast
// shapes and keepdim reductions have their own cases.
#include <gtest/gtest.h>

#include "kiln/autograd.h"
#include "kiln/ops.h"
#include "kiln/ops_nn_backward.h"
#include "tests/support/gradcheck.h"

using namespace kiln;
using kiln::testing::gradcheck;
using kiln::testing::gradcheck_multi;
using kiln::testing::GradcheckOptions;
using kiln::testing::grad_input;
using kiln::testing::grad_input_away_from_zero;
using In = std::vector<Tensor>;

namespace {
Tensor positive(const Shape& s) { return grad_input(s, 0.3, 2.0); }
}  // namespace

// ---- elementwise binary, same shape and broadcast
TEST(Gradcheck, Add) {
  EXPECT_TRUE(gradcheck([](const In& x) { return add(x[0], x[1], 2.5); }, {grad_input({3, 4}), grad_input({3, 4})}));
  EXPECT_TRUE(gradcheck([](const In& x) { return x[0] + x[1]; }, {grad_input({3, 4}), grad_input({4})}));
  EXPECT_TRUE(gradcheck([](const In& x) { return x[0] + 1.5; }, {grad_input({2, 3})}));
}
TEST(Gradcheck, Sub) {
  EXPECT_TRUE(gradcheck([](const In& x) { return sub(x[0], x[1], 0.5); }, {grad_input({2, 3}), grad_input({2, 1})}));
  EXPECT_TRUE(gradcheck([](const In& x) { return x[0] - 2.0; }, {grad_input({2, 3})}));
}
TEST(Gradcheck, Mul) {
  EXPECT_TRUE(gradcheck([](const In& x) { return x[0] * x[1]; }, {grad_input({3, 1, 2}), grad_input({4, 1})}));
  EXPECT_TRUE(gradcheck([](const In& x) { return x[0] * -3.0; }, {grad_input({5})}));
  EXPECT_TRUE(gradcheck([](const In& x) { return square(x[0]); }, {grad_input({2, 3})}));
}
TEST(Gradcheck, Div) {
  EXPECT_TRUE(gradcheck([](const In& x) { return x[0] / x[1]; },
                        {grad_input({2, 3}), grad_input_away_from_zero({3})}));
  EXPECT_TRUE(gradcheck([](const In& x) { return x[0] / 4.0; }, {grad_input({2, 3})}));
}
TEST(Gradcheck, Pow) {
  EXPECT_TRUE(gradcheck([](const In& x) { return pow(x[0], x[1]); }, {positive({2, 3}), grad_input({2, 3})}));
  EXPECT_TRUE(gradcheck([](const In& x) { return pow(x[0], x[1]); }, {positive({2, 3}), grad_input({1, 3})}));
  EXPECT_TRUE(gradcheck([](const In& x) { return pow(x[0], 3); }, {grad_input({2, 3})}));
  EXPECT_TRUE(gradcheck([](const In& x) { return pow(x[0], 0.5); }, {positive({4})}));
  EXPECT_TRUE(gradcheck([](const In& x) { return x[0].pow(-1.5); }, {positive({4})}));
}
TEST(Gradcheck, MaximumMinimum) {
  EXPECT_TRUE(gradcheck([](const In& x) { return maximum(x[0], x[1]); }, {grad_input({3, 4}), grad_input({4})}));
  EXPECT_TRUE(gradcheck([](const In& x) { return minimum(x[0], x[1]); }, {grad_input({3, 4}), grad_input({3, 1})}));
}
TEST(Gradcheck, Where) {
  Tensor cond = gt(grad_input({3, 4}), 0.0);
  EXPECT_TRUE(gradcheck([](const In& x) { return where(x[0], x[1], x[2]); },
                        {cond, grad_input({3, 4}), grad_input({4})}));
}

// ---- elementwise unary and activations
TEST(Gradcheck, Unary) {
  const Shape s{3, 4};
  EXPECT_TRUE(gradcheck([](const In& x) { return neg(x[0]); }, {grad_input(s)}));
  EXPECT_TRUE(gradcheck([](const In& x) { return -x[0]; }, {grad_input(s)}));
  EXPECT_TRUE(gradcheck([](const In& x) { return abs(x[0]); }, {grad_input_away_from_zero(s)}));
  EXPECT_TRUE(gradcheck([](const In& x) { return sign(x[0]); }, {grad_input_away_from_zero(s)}));
  EXPECT_TRUE(gradcheck([](const In& x) { return exp(x[0]); }, {grad_input(s)}));
  EXPECT_TRUE(gradcheck([](const In& x) { return log(x[0]); }, {positive(s)}));
  EXPECT_TRUE(gradcheck([](const In& x) { return sqrt(x[0]); }, {positive(s)}));
  EXPECT_TRUE(gradcheck([](const In& x) { return rsqrt(x[0]); }, {positive(s)}));
  EXPECT_TRUE(gradcheck([](const In& x) { return reciprocal(x[0]); }, {grad_input_away_from_zero(s)}));
  EXPECT_TRUE(gradcheck([](const In& x) { return sin(x[0]); }, {grad_input(s)}));
  EXPECT_TRUE(gradcheck([](const In& x) { return cos(x[0]); }, {grad_input(s)}));
}
TEST(Gradcheck, Activations) {
  const Shape s{3, 5};
  EXPECT_TRUE(gradcheck([](const In& x) { return tanh(x[0]); }, {grad_input(s, -3, 3)}));
  EXPECT_TRUE(gradcheck([](const In& x) { return sigmoid(x[0]); }, {grad_input(s, -3, 3)}));
  EXPECT_TRUE(gradcheck([](const In& x) { return relu(x[0]); }, {grad_input_away_from_zero(s)}));
  EXPECT_TRUE(gradcheck([](const In& x) { return gelu(x[0]); }, {grad_input(s, -3, 3)}));
  EXPECT_TRUE(gradcheck([](const In& x) { return gelu(x[0], "tanh"); }, {grad_input(s, -3, 3)}));
  EXPECT_TRUE(gradcheck([](const In& x) { return silu(x[0]); }, {grad_input(s, -3, 3)}));
}
TEST(Gradcheck, Clamp) {
  // values kept away from the bounds (the kinks)
  Tensor x = grad_input_away_from_zero({4, 3}, 0.1, 2.0) + 0.5;
  EXPECT_TRUE(gradcheck([](const In& t) { return clamp(t[0], Scalar(0.5), Scalar(1.5)); }, {x}));
  EXPECT_TRUE(gradcheck([](const In& t) { return clamp(t[0], Scalar(0.5), std::nullopt); }, {x}));
  EXPECT_TRUE(gradcheck([](const In& t) { return clamp(t[0], std::nullopt, Scalar(0.5)); }, {x}));
}

// ---- in-place ops on non-leaf tensors
TEST(Gradcheck, InPlaceOps) {
  EXPECT_TRUE(gradcheck([](const In& x) { Tensor a = x[0] * 1.0; a.mul_(x[1]); return a; },
                        {grad_input({2, 3}), grad_input({3})}));
  EXPECT_TRUE(gradcheck([](const In& x) { Tensor a = x[0] * 1.0; a.add_(x[1], -2); return a; },
                        {grad_input({2, 3}), grad_input({2, 1})}));
  EXPECT_TRUE(gradcheck([](const In& x) { Tensor a = sin(x[0]); a.div_(x[1]); return a; },
                        {grad_input({2, 3}), grad_input_away_from_zero({2, 3})}));
  EXPECT_TRUE(gradcheck([](const In& x) { Tensor a = x[0] * 1.0; a.sub_(x[1]).mul_(3.0).relu_(); return a; },
                        {grad_input_away_from_zero({2, 3}, 0.2, 1.0), grad_input_away_from_zero({2, 3}, 1.5, 2.0)}));
  EXPECT_TRUE(gradcheck([](const In& x) { Tensor a = x[0] * 2.0; a.clamp_(Scalar(-1.0), Scalar(1.0)); return a; },
                        {grad_input_away_from_zero({6}, 0.1, 0.4)}));
  EXPECT_TRUE(gradcheck([](const In& x) { Tensor a = zeros({2, 3}, DType::Float64); a.copy_(x[0] * 2.0); return a; },
                        {grad_input({3})}));
}

// ---- in-place ops on views of non-leaf tensors (the base's history is rebased)
TEST(Gradcheck, InPlaceOnViews) {
  EXPECT_TRUE(gradcheck([](const In& x) { Tensor a = x[0] * 1.0; a.select(0, 1).mul_(x[1]); return a; },
                        {grad_input({3, 4}), grad_input({4})}));
  EXPECT_TRUE(gradcheck(
      [](const In& x) {
        Tensor a = x[0] * 1.0;
        Tensor v = a.narrow(1, 1, 2);
        v.add_(x[1]);
        return cat({v * v, a}, 1);  // the view and its base both carry the new history
      },
      {grad_input({3, 4}), grad_input({3, 1})}));
  EXPECT_TRUE(gradcheck([](const In& x) { Tensor a = sin(x[0]); a.t().mul_(2.0); return a; }, {grad_input({2, 3})}));
}

// ---- views and copies
TEST(Gradcheck, Views) {
  const Tensor x = grad_input({2, 3, 4});
  EXPECT_TRUE(gradcheck([](const In& t) { return t[0].reshape({6, 4}); }, {x}));
  EXPECT_TRUE(gradcheck([](const In& t) { return t[0].contiguous().view({4, -1}); }, {x}));
  EXPECT_TRUE(gradcheck([](const In& t) { return t[0].permute({2, 0, 1}); }, {x}));
  EXPECT_TRUE(gradcheck([](const In& t) { return t[0].transpose(0, 2); }, {x}));
  EXPECT_TRUE(gradcheck([](const In& t) { return t[0].narrow(2, 1, 2); }, {x}));
  EXPECT_TRUE(gradcheck([](const In& t) { return t[0].slice(2, 0, 4, 3); }, {x}));
  EXPECT_TRUE(gradcheck([](const In& t) { return t[0].select(1, -1); }, {x}));
  EXPECT_TRUE(gradcheck([](const In& t) { return t[0].flatten(1); }, {x}));
  EXPECT_TRUE(gradcheck([](const In& t) { return t[0].unflatten(2, {2, 2}); }, {x}));
  EXPECT_TRUE(gradcheck([](const In& t) { return t[0].unsqueeze(1).squeeze(); }, {x}));
  EXPECT_TRUE(gradcheck([](const In& t) { return t[0].clone(); }, {x}));
  EXPECT_TRUE(gradcheck([](const In& t) { return t[0].t(); }, {grad_input({3, 2})}));
  EXPECT_TRUE(gradcheck([](const In& t) { return t[0].expand({4, 2, 3}); }, {grad_input({2, 1})}));
  EXPECT_TRUE(gradcheck([](const In& t) { return t[0].squeeze(1); }, {grad_input({3, 1, 2})}));
  GradcheckOptions contiguous_only;  // as_strided addresses storage directly
  contiguous_only.check_strided = false;
  EXPECT_TRUE(gradcheck([](const In& t) { return t[0].as_strided({3, 2}, {1, 4}, 1); }, {grad_input({3, 4})},
                        contiguous_only));
  // dtype round trip: float32 rounding needs a larger step and tolerance
  EXPECT_TRUE(gradcheck([](const In& t) { return t[0].to(DType::Float32).to(DType::Float64) * 2.0; }, {x},
                        {.eps = 1e-2, .atol = 1e-3, .rtol = 1e-3}));
  EXPECT_TRUE(gradcheck([](const In& t) { return t[0].to(kCpu).contiguous(); }, {x}));
  // A chain of views into one op.
  EXPECT_TRUE(gradcheck([](const In& t) { return t[0].t().narrow(0, 1, 2) * t[0].select(0, 0).unsqueeze(0); },
                        {grad_input({3, 3})}));
}

// ---- reductions (with and without keepdim, one dim, several dims, all dims)
TEST(Gradcheck, SumMean) {
  const Tensor x = grad_input({3, 4, 2});
  for (bool keep : {false, true}) {
    EXPECT_TRUE(gradcheck([keep](const In& t) { return sum(t[0], {1}, keep); }, {x}));
    EXPECT_TRUE(gradcheck([keep](const In& t) { return sum(t[0], {0, 2}, keep); }, {x}));
    EXPECT_TRUE(gradcheck([keep](const In& t) { return sum(t[0], {}, keep); }, {x}));
    EXPECT_TRUE(gradcheck([keep](const In& t) { return mean(t[0], {-1}, keep); }, {x}));
    EXPECT_TRUE(gradcheck([keep](const In& t) { return mean(t[0], {0, 1}, keep); }, {x}));
  }
  EXPECT_TRUE(gradcheck([](const In& t) { return t[0].sum(); }, {x}));
  EXPECT_TRUE(gradcheck([](const In& t) { return t[0].mean(); }, {x}));
}
TEST(Gradcheck, AmaxAmin) {
  const Tensor x = grad_input({3, 5});
  for (bool keep : {false, true}) {
    EXPECT_TRUE(gradcheck([keep](const In& t) { return amax(t[0], {1}, keep); }, {x}));
    EXPECT_TRUE(gradcheck([keep](const In& t) { return amin(t[0], {0}, keep); }, {x}));
  }
  EXPECT_TRUE(gradcheck([](const In& t) { return max(t[0]); }, {x}));
  EXPECT_TRUE(gradcheck([](const In& t) { return min(t[0]); }, {x}));
}
TEST(Gradcheck, AmaxTiesShareTheGradient) {
  // Not a finite-difference case (the max is not differentiable at a tie): PyTorch's rule.
  Tensor x = tensor<double>({1.0, 3.0, 3.0, 2.0}).requires_grad_();
  amax(x).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{0, 0.5, 0.5, 0}));
}
TEST(Gradcheck, MaxMinOverDim) {
  const Tensor x = grad_input({4, 3});
  for (bool keep : {false, true}) {
    EXPECT_TRUE(gradcheck([keep](const In& t) { return max(t[0], 1, keep).first; }, {x}));
    EXPECT_TRUE(gradcheck([keep](const In& t) { return min(t[0], 0, keep).first; }, {x}));
  }
}
TEST(Gradcheck, VarStd) {
  const Tensor x = grad_input({3, 4});
  for (bool keep : {false, true})
    for (bool unbiased : {false, true}) {
      EXPECT_TRUE(gradcheck([=](const In& t) { return var(t[0], {1}, unbiased, keep); }, {x}));
      EXPECT_TRUE(gradcheck([=](const In& t) { return kiln::std(t[0], {0}, unbiased, keep); }, {x}));
    }
  EXPECT_TRUE(gradcheck([](const In& t) { return var(t[0]); }, {x}));
  EXPECT_TRUE(gradcheck([](const In& t) { return kiln::std(t[0]); }, {x}));
}
TEST(Gradcheck, SoftmaxLogSoftmax) {
  const Tensor x = grad_input({3, 5}, -2, 2);
  for (int64_t d : {0, 1, -1}) {
    EXPECT_TRUE(gradcheck([d](const In& t) { return softmax(t[0], d); }, {x}));
    EXPECT_TRUE(gradcheck([d](const In& t) { return log_softmax(t[0], d); }, {x}));
  }
  EXPECT_TRUE(gradcheck([](const In& t) { return t[0].softmax(1); }, {grad_input({2, 3, 4})}));
}

// ---- linear algebra
TEST(Gradcheck, Matmul) {
  auto mmf = [](const In& t) { return matmul(t[0], t[1]); };
  EXPECT_TRUE(gradcheck(mmf, {grad_input({3, 4}), grad_input({4, 2})}));
  EXPECT_TRUE(gradcheck(mmf, {grad_input({4}), grad_input({4})}));
  EXPECT_TRUE(gradcheck(mmf, {grad_input({3, 4}), grad_input({4})}));
  EXPECT_TRUE(gradcheck(mmf, {grad_input({4}), grad_input({4, 2})}));
  EXPECT_TRUE(gradcheck(mmf, {grad_input({2, 3, 4}), grad_input({4, 2})}));
  EXPECT_TRUE(gradcheck(mmf, {grad_input({3, 4}), grad_input({2, 4, 2})}));
  EXPECT_TRUE(gradcheck(mmf, {grad_input({2, 1, 3, 4}), grad_input({3, 4, 2})}));  // broadcast batch
  EXPECT_TRUE(gradcheck([](const In& t) { return mm(t[0], t[1]); }, {grad_input({2, 3}), grad_input({3, 4})}));
  EXPECT_TRUE(gradcheck([](const In& t) { return bmm(t[0], t[1]); }, {grad_input({2, 2, 3}), grad_input({2, 3, 2})}));
  EXPECT_TRUE(gradcheck([](const In& t) { return mv(t[0], t[1]); }, {grad_input({2, 3}), grad_input({3})}));
  EXPECT_TRUE(gradcheck([](const In& t) { return mm(t[0].t(), t[1]); }, {grad_input({3, 2}), grad_input({3, 4})}));
}
TEST(Gradcheck, Linear) {
  auto lin = [](const In& t) { return linear(t[0], t[1], t[2]); };
  EXPECT_TRUE(gradcheck(lin, {grad_input({4, 3}), grad_input({5, 3}), grad_input({5})}));
  EXPECT_TRUE(gradcheck(lin, {grad_input({2, 2, 3}), grad_input({5, 3}), grad_input({5})}));
  EXPECT_TRUE(gradcheck([](const In& t) { return linear(t[0], t[1]); }, {grad_input({3}), grad_input({2, 3})}));
}

// ---- joining and indexing
TEST(Gradcheck, CatStackSplit) {
  EXPECT_TRUE(gradcheck([](const In& t) { return cat({t[0], t[1], t[2]}, 1); },
                        {grad_input({2, 3}), grad_input({2, 1}), grad_input({2, 2})}));
  EXPECT_TRUE(gradcheck([](const In& t) { return cat({t[0], t[1]}, 0); }, {grad_input({1, 3}), grad_input({2, 3})}));
  EXPECT_TRUE(gradcheck([](const In& t) { return stack({t[0], t[1]}, 1); }, {grad_input({2, 3}), grad_input({2, 3})}));
  EXPECT_TRUE(gradcheck_multi([](const In& t) { return split(t[0], 2, 1); }, {grad_input({3, 5})}));
  EXPECT_TRUE(gradcheck_multi([](const In& t) { return split(t[0], std::vector<int64_t>{1, 3}, 0); },
                              {grad_input({4, 2})}));
  EXPECT_TRUE(gradcheck_multi([](const In& t) { return chunk(t[0], 3, 0); }, {grad_input({5, 2})}));
  // only some outputs used: the others get no gradient
  EXPECT_TRUE(gradcheck([](const In& t) { return split(t[0], 2, 0)[1] * 2.0; }, {grad_input({4, 2})}));
}
TEST(Gradcheck, IndexSelectGather) {
  const Tensor idx = tensor<int64_t>({2, 0, 2, 1});  // repeats: gradients accumulate
  EXPECT_TRUE(gradcheck([idx](const In& t) { return index_select(t[0], 0, idx); }, {grad_input({3, 4})}));
  EXPECT_TRUE(gradcheck([idx](const In& t) { return index_select(t[0], 1, idx); }, {grad_input({2, 3})}));
  const Tensor gidx = tensor<int64_t>({0, 2, 2, 1, 0, 0}, {2, 3});
  EXPECT_TRUE(gradcheck([gidx](const In& t) { return gather(t[0], 1, gidx); }, {grad_input({2, 4})}));
  EXPECT_TRUE(gradcheck([gidx](const In& t) { return gather(t[0], 0, gidx.narrow(0, 0, 1) - gidx.narrow(0, 0, 1)); },
                        {grad_input({3, 3})}));
}
TEST(Gradcheck, Embedding) {
  const Tensor idx = tensor<int64_t>({1, 4, 1, 0, 3, 1}, {2, 3});
  EXPECT_TRUE(gradcheck([idx](const In& t) { return embedding(t[0], idx); }, {grad_input({5, 3})}));
}

// ---- normalisation
TEST(Gradcheck, BatchNorm) {
  const Tensor x = grad_input({3, 2, 2, 2}), w = grad_input({2}, 0.5, 1.5), b = grad_input({2});
  // training: batch statistics (running stats updated on the side, not differentiated)
  EXPECT_TRUE(gradcheck([](const In& t) { return batch_norm(t[0], Tensor(), Tensor(), t[1], t[2], true); }, {x, w, b}));
  EXPECT_TRUE(gradcheck([](const In& t) { return batch_norm(t[0], Tensor(), Tensor(), Tensor(), Tensor(), true); },
                        {grad_input({4, 3})}));
  EXPECT_TRUE(gradcheck(
      [](const In& t) {
        Tensor rm = zeros({2}, DType::Float64), rv = ones({2}, DType::Float64);
        return batch_norm(t[0], rm, rv, t[1], t[2], true, 0.1, 1e-5);
      },
      {x, w, b}));
  // eval: running statistics are constants
  EXPECT_TRUE(gradcheck([](const In& t) { return batch_norm(t[0], t[3], t[4], t[1], t[2], false); },
                        {x, w, b, grad_input({2}), grad_input({2}, 0.5, 2.0)}, {.no_grad = {3, 4}}));
}
TEST(Gradcheck, LayerNorm) {
  const Tensor x = grad_input({3, 4});
  EXPECT_TRUE(gradcheck([](const In& t) { return layer_norm(t[0], {4}, t[1], t[2]); },
                        {x, grad_input({4}, 0.5, 1.5), grad_input({4})}));
  EXPECT_TRUE(gradcheck([](const In& t) { return layer_norm(t[0], {3, 2}); }, {grad_input({2, 3, 2})}));
  EXPECT_TRUE(gradcheck([](const In& t) { return layer_norm(t[0], {3, 2}, t[1], Tensor()); },
                        {grad_input({2, 3, 2}), grad_input({3, 2})}));
}

// ---- attention and dropout
TEST(Gradcheck, ScaledDotProductAttention) {
  const Tensor q = grad_input({2, 3, 4}), k = grad_input({2, 5, 4}), v = grad_input({2, 5, 3});
  EXPECT_TRUE(gradcheck([](const In& t) { return scaled_dot_product_attention(t[0], t[1], t[2]); }, {q, k, v}));
  EXPECT_TRUE(gradcheck([](const In& t) { return scaled_dot_product_attention(t[0], t[1], t[2], Tensor(), 0.0, true); },
                        {grad_input({2, 4, 4}), grad_input({2, 4, 4}), grad_input({2, 4, 3})}));
  const Tensor bool_mask = gt(grad_input({3, 5}), -0.5);
  EXPECT_TRUE(gradcheck([](const In& t) { return scaled_dot_product_attention(t[0], t[1], t[2], t[3]); },
                        {q, k, v, bool_mask}));
  EXPECT_TRUE(gradcheck([](const In& t) { return scaled_dot_product_attention(t[0], t[1], t[2], t[3], 0.0, false, 0.7); },
                        {q, k, v, grad_input({2, 3, 5})}, {.no_grad = {3}}));
  // attention dropout: the same generator state in every evaluation gives the same mask
  EXPECT_TRUE(gradcheck(
      [](const In& t) {
        Generator g(99);
        return scaled_dot_product_attention_forward(t[0], t[1], t[2], Tensor(), 0.3, false, {}, &g).output;
      },
      {q, k, v}));
  // broadcast batch: k and v shared by every head
  EXPECT_TRUE(gradcheck([](const In& t) { return scaled_dot_product_attention(t[0], t[1], t[2]); },
                        {grad_input({2, 2, 3, 4}), grad_input({1, 5, 4}), grad_input({5, 3})}));
}
TEST(Gradcheck, Dropout) {
  // The mask must be the same in every evaluation: a fresh generator with one seed per call.
  auto f = [](const In& t) {
    Generator g(1234);
    return dropout(t[0], 0.4, true, &g);
  };
  EXPECT_TRUE(gradcheck(f, {grad_input({4, 5})}));
  EXPECT_TRUE(gradcheck([](const In& t) { return dropout(t[0], 0.5, false); }, {grad_input({3})}));
}

// ---- convolutions
TEST(Gradcheck, Conv2d) {
  auto conv = [](Pair stride, Pair padding, Pair dilation, int64_t groups) {
    return [=](const In& t) { return conv2d(t[0], t[1], t[2], stride, padding, dilation, groups); };
  };
  EXPECT_TRUE(gradcheck(conv({1, 1}, {0, 0}, {1, 1}, 1), {grad_input({2, 2, 5, 4}), grad_input({3, 2, 3, 2}), grad_input({3})}));
  EXPECT_TRUE(gradcheck(conv({2, 1}, {1, 1}, {1, 1}, 1), {grad_input({1, 2, 5, 5}), grad_input({2, 2, 3, 3}), grad_input({2})}));
  EXPECT_TRUE(gradcheck(conv({1, 1}, {1, 0}, {2, 1}, 1), {grad_input({1, 1, 6, 4}), grad_input({2, 1, 2, 2}), Tensor()}));
  EXPECT_TRUE(gradcheck(conv({1, 1}, {0, 0}, {1, 1}, 2), {grad_input({1, 4, 3, 3}), grad_input({2, 2, 2, 2}), grad_input({2})}));
  EXPECT_TRUE(gradcheck(conv({1, 1}, {1, 1}, {1, 1}, 1), {grad_input({2, 3, 3}), grad_input({2, 2, 3, 3}), grad_input({2})}));  // unbatched
}
TEST(Gradcheck, ConvTranspose2d) {
  auto convt = [](Pair stride, Pair padding, Pair output_padding, int64_t groups, Pair dilation) {
    return [=](const In& t) { return conv_transpose2d(t[0], t[1], t[2], stride, padding, output_padding, groups, dilation); };
  };
  EXPECT_TRUE(gradcheck(convt({1, 1}, {0, 0}, {0, 0}, 1, {1, 1}), {grad_input({2, 2, 3, 3}), grad_input({2, 3, 2, 2}), grad_input({3})}));
  EXPECT_TRUE(gradcheck(convt({2, 2}, {1, 0}, {1, 0}, 1, {1, 1}), {grad_input({1, 2, 3, 3}), grad_input({2, 2, 3, 2}), grad_input({2})}));
  EXPECT_TRUE(gradcheck(convt({1, 1}, {0, 0}, {0, 0}, 2, {2, 1}), {grad_input({1, 4, 3, 3}), grad_input({4, 1, 2, 2}), Tensor()}));
}

// ---- pools
TEST(Gradcheck, MaxPool2d) {
  const Tensor x = grad_input({2, 2, 5, 6});  // random values: no ties within a window
  EXPECT_TRUE(gradcheck([](const In& t) { return max_pool2d(t[0], {2, 2}); }, {x}));
  EXPECT_TRUE(gradcheck([](const In& t) { return max_pool2d(t[0], {3, 2}, {2, 1}, {1, 1}); }, {x}));
  EXPECT_TRUE(gradcheck([](const In& t) { return max_pool2d(t[0], {2, 2}, {2, 2}, {0, 0}, {2, 1}, true); }, {x}));
  EXPECT_TRUE(gradcheck([](const In& t) { return max_pool2d_with_indices(t[0], {2, 2}).first; }, {grad_input({2, 4, 4})}));
}
TEST(Gradcheck, AvgPool2d) {
  const Tensor x = grad_input({2, 2, 5, 6});
  EXPECT_TRUE(gradcheck([](const In& t) { return avg_pool2d(t[0], {2, 2}); }, {x}));
  EXPECT_TRUE(gradcheck([](const In& t) { return avg_pool2d(t[0], {3, 3}, {2, 2}, {1, 1}, false, true); }, {x}));
  EXPECT_TRUE(gradcheck([](const In& t) { return avg_pool2d(t[0], {3, 3}, {2, 2}, {1, 1}, true, false); }, {x}));
  EXPECT_TRUE(gradcheck([](const In& t) { return adaptive_avg_pool2d(t[0], {2, 3}); }, {x}));
  EXPECT_TRUE(gradcheck([](const In& t) { return adaptive_avg_pool2d(t[0], {1, 1}); }, {grad_input({3, 4, 4})}));
}
TEST(Gradcheck, SmallCnnEndToEnd) {
  // conv -> batch_norm -> relu -> max_pool -> flatten -> linear -> log_softmax -> nll, as the main job's model
  const Tensor target = tensor<int64_t>({1, 0, 2}, {3, 1});
  auto net = [target](const In& t) {
    Tensor h = conv2d(t[0], t[1], t[2], {1, 1}, {1, 1});
    h = relu(batch_norm(h, Tensor(), Tensor(), t[3], t[4], true));
    h = max_pool2d(h, {2, 2}).flatten(1);
    Tensor logp = log_softmax(linear(h, t[5], t[6]), 1);
    return neg(gather(logp, 1, target)).mean();
  };
  EXPECT_TRUE(gradcheck(net, {grad_input({3, 1, 4, 4}), grad_input({2, 1, 3, 3}), grad_input({2}),
                              grad_input({2}, 0.5, 1.5), grad_input({2}), grad_input({3, 8}), grad_input({3})}));
}
TEST(Gradcheck, IndexAddScatterAdd) {
  const Tensor idx = tensor<int64_t>({2, 0, 2});
  EXPECT_TRUE(gradcheck([idx](const In& t) { return index_add(t[0], 1, idx, t[1]); },
                        {grad_input({2, 4}), grad_input({2, 3})}));
  const Tensor sidx = tensor<int64_t>({0, 2, 2, 1}, {2, 2});
  EXPECT_TRUE(gradcheck([sidx](const In& t) { return scatter_add(t[0], 1, sidx, t[1]); },
                        {grad_input({2, 3}), grad_input({2, 2})}));
  EXPECT_TRUE(gradcheck([sidx](const In& t) { return scatter_add(t[0], 1, sidx, t[1]); },  // src larger than index
                        {grad_input({3, 3}), grad_input({3, 4})}));
}
