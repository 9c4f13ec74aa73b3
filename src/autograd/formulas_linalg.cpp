// Backward formulas of the linear-algebra ops. matmul, mm, bmm, mv and linear all reach
// the one batched product out = a @ b ([B?, M, K] x [B?, K, N]); their reshapes and
// transposes are views with their own formulas, so only the product is recorded here.
#include "kiln/ops.h"
#include "src/autograd/record.h"

namespace kiln::autograd {

void record_matmul(const Tensor& out, const Tensor& a, const Tensor& b) {
  if (!should_record({&a, &b})) return;
  // d a = g @ b^T, d b = a^T @ g; a batch of 1 broadcast over B is summed back by the engine.
  record("MatmulBackward", {out}, {a, b}, {a.requires_grad() ? b : Tensor(), b.requires_grad() ? a : Tensor()},
         [](BackwardCtx& c) {
           const Tensor& g = c.grad();
           Tensor ga, gb;
           if (c.needs(0)) ga = matmul(g, c.saved[0].transpose(-2, -1));
           if (c.needs(1)) gb = matmul(c.saved[1].transpose(-2, -1), g);
           return std::vector<Tensor>{ga, gb};
         });
}

}  // namespace kiln::autograd
