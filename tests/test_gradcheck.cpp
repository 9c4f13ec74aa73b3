// gradcheck of every differentiable op: analytic gradients against central finite
// differences in float64 on fresh random inputs, each also with strided inputs; broadcast
// shapes and keepdim reductions have their own cases.
#include <gtest/gtest.h>

#include "kiln/autograd.h"
#include "kiln/ops.h"
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
  // A chain of views into one op.
  EXPECT_TRUE(gradcheck([](const In& t) { return t[0].t().narrow(0, 1, 2) * t[0].select(0, 0).unsqueeze(0); },
                        {grad_input({3, 3})}));
}
