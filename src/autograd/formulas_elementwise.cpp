// Backward formulas of the elementwise ops and activations. Gradients are returned in
// the broadcast shape; the engine sums them back to each input's shape (sum_to).
#include "kiln/ops.h"
#include "src/autograd/functions.h"
#include "src/autograd/record.h"

namespace kiln::autograd {

namespace {
Tensor zero_like_scalar(const Tensor& g) { return zeros({}, TensorOptions(g.dtype()).device(g.device())); }
Tensor mask_as(const Tensor& m, const Tensor& like) { return m.to(like.dtype()); }
}  // namespace

void record_binary(OpId op, const Tensor& out, const Tensor& a, const Tensor& b, Scalar alpha) {
  if (!is_floating(out.dtype()) || !should_record({&a, &b})) return;
  const std::vector<Tensor> in{a, b};
  switch (op) {
    case OpId::Add:
    case OpId::Sub: {
      const double sign = op == OpId::Sub ? -1.0 : 1.0;
      const double scale = sign * alpha.to_double();
      record(op == OpId::Add ? "AddBackward" : "SubBackward", {out}, in, {}, [scale](BackwardCtx& c) {
        const Tensor& g = c.grad();
        return std::vector<Tensor>{c.needs(0) ? g : Tensor(),
                                   c.needs(1) ? (scale == 1.0 ? g : g * scale) : Tensor()};
      });
      return;
    }
    case OpId::Mul:
      record("MulBackward", {out}, in, {a.requires_grad() ? b : Tensor(), b.requires_grad() ? a : Tensor()},
             [](BackwardCtx& c) {
               const Tensor& g = c.grad();
               return std::vector<Tensor>{c.needs(0) ? g * c.saved[0] : Tensor(), c.needs(1) ? g * c.saved[1] : Tensor()};
             });
      return;
    case OpId::Div:
      record("DivBackward", {out}, in, {a, b}, [](BackwardCtx& c) {
        const Tensor &g = c.grad(), &x = c.saved[0], &y = c.saved[1];
        return std::vector<Tensor>{c.needs(0) ? g / y : Tensor(), c.needs(1) ? -(g * x) / (y * y) : Tensor()};
      });
      return;
    case OpId::Pow:
      record("PowBackward", {out}, in, {a, b, out}, [](BackwardCtx& c) {
        const Tensor &g = c.grad(), &x = c.saved[0], &e = c.saved[1], &y = c.saved[2];
        Tensor ga, gb;
        // d/dx x^e = e x^(e-1) (zero where e == 0, as PyTorch); d/de x^e = x^e log x (zero where x == 0, e >= 0)
        if (c.needs(0)) ga = where(eq(e, 0), zero_like_scalar(g), g * e * pow(x, e - 1));
        if (c.needs(1)) gb = where(logical_and(eq(x, 0), ge(e, 0)), zero_like_scalar(g), g * y * log(x));
        return std::vector<Tensor>{ga, gb};
      });
      return;
    case OpId::Maximum:
    case OpId::Minimum:
      // The larger (smaller) input takes the gradient; ties split it evenly, as PyTorch.
      record(op == OpId::Maximum ? "MaximumBackward" : "MinimumBackward", {out}, in, {a, b},
             [op](BackwardCtx& c) {
               const Tensor &g = c.grad(), &x = c.saved[0], &y = c.saved[1];
               const Tensor wins = op == OpId::Maximum ? gt(x, y) : lt(x, y);
               const Tensor w = mask_as(wins, g) + mask_as(eq(x, y), g) * 0.5;
               return std::vector<Tensor>{c.needs(0) ? g * w : Tensor(), c.needs(1) ? g - g * w : Tensor()};
             });
      return;
    default:
      return;  // comparisons and logical ops have no gradient
  }
}

void record_unary(OpId op, const Tensor& out, const Tensor& a, const void* attrs) {
  if (!is_floating(out.dtype()) || !should_record({&a})) return;
  const std::vector<Tensor> in{a};
  using V = std::vector<Tensor>;
  switch (op) {
    case OpId::Neg: record("NegBackward", {out}, in, {}, [](BackwardCtx& c) { return V{-c.grad()}; }); return;
    case OpId::Abs:
      record("AbsBackward", {out}, in, {a}, [](BackwardCtx& c) { return V{c.grad() * sign(c.saved[0])}; });
      return;
    case OpId::Sign:
      record("SignBackward", {out}, in, {}, [](BackwardCtx& c) { return V{zeros_like(c.grad())}; });
      return;
    case OpId::Exp: record("ExpBackward", {out}, in, {out}, [](BackwardCtx& c) { return V{c.grad() * c.saved[0]}; }); return;
    case OpId::Log: record("LogBackward", {out}, in, {a}, [](BackwardCtx& c) { return V{c.grad() / c.saved[0]}; }); return;
    case OpId::Sqrt:
      record("SqrtBackward", {out}, in, {out}, [](BackwardCtx& c) { return V{c.grad() / (c.saved[0] * 2.0)}; });
      return;
    case OpId::Rsqrt:  // d/dx x^(-1/2) = -1/2 y^3
      record("RsqrtBackward", {out}, in, {out}, [](BackwardCtx& c) {
        const Tensor& y = c.saved[0];
        return V{c.grad() * (y * y * y) * -0.5};
      });
      return;
    case OpId::Reciprocal:
      record("ReciprocalBackward", {out}, in, {out}, [](BackwardCtx& c) {
        const Tensor& y = c.saved[0];
        return V{-(c.grad() * y * y)};
      });
      return;
    case OpId::Sin: record("SinBackward", {out}, in, {a}, [](BackwardCtx& c) { return V{c.grad() * cos(c.saved[0])}; }); return;
    case OpId::Cos: record("CosBackward", {out}, in, {a}, [](BackwardCtx& c) { return V{-(c.grad() * sin(c.saved[0]))}; }); return;
    case OpId::Tanh:
      record("TanhBackward", {out}, in, {out},
             [](BackwardCtx& c) { return V{activation_backward(OpId::TanhBackward, c.grad(), c.saved[0])}; });
      return;
    case OpId::Sigmoid:
      record("SigmoidBackward", {out}, in, {out},
             [](BackwardCtx& c) { return V{activation_backward(OpId::SigmoidBackward, c.grad(), c.saved[0])}; });
      return;
    case OpId::Relu:
      record("ReluBackward", {out}, in, {out},
             [](BackwardCtx& c) { return V{activation_backward(OpId::ReluBackward, c.grad(), c.saved[0])}; });
      return;
    case OpId::Gelu:
    case OpId::GeluTanh:
    case OpId::Silu: {
      const OpId bw = op == OpId::Gelu ? OpId::GeluBackward : op == OpId::GeluTanh ? OpId::GeluTanhBackward : OpId::SiluBackward;
      const char* name = op == OpId::Silu ? "SiluBackward" : "GeluBackward";
      record(name, {out}, in, {a}, [bw](BackwardCtx& c) { return V{activation_backward(bw, c.grad(), c.saved[0])}; });
      return;
    }
    case OpId::Clamp: {
      // The gradient passes where the input lies within [min, max] (bounds included, as PyTorch).
      const ClampAttrs at = *static_cast<const ClampAttrs*>(attrs);
      record("ClampBackward", {out}, in, {a}, [at](BackwardCtx& c) {
        const Tensor& x = c.saved[0];
        Tensor keep;
        if (at.has_min) keep = ge(x, at.min);
        if (at.has_max) keep = keep.defined() ? logical_and(keep, le(x, at.max)) : le(x, at.max);
        return V{where(keep, c.grad(), zero_like_scalar(c.grad()))};
      });
      return;
    }
    default:
      return;
  }
}

void record_where(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b) {
  if (!is_floating(out.dtype()) || !should_record({&a, &b})) return;
  record("WhereBackward", {out}, {cond, a, b}, {cond}, [](BackwardCtx& c) {
    const Tensor &g = c.grad(), &m = c.saved[0];
    const Tensor z = zero_like_scalar(g);
    return std::vector<Tensor>{Tensor(), c.needs(1) ? where(m, g, z) : Tensor(), c.needs(2) ? where(m, z, g) : Tensor()};
  });
}

}  // namespace kiln::autograd
