// ONNX elementwise, activation, comparison, logical and cast operators on kiln's ops.
// ONNX broadcasting is numpy's, the same as kiln's; ONNX keeps the input type where
// PyTorch's promotion would widen it (integer Div, Pow), so results are cast back.
#include <cmath>
#include <limits>

#include "kiln/ops.h"
#include "src/onnx/op_context.h"
#include "src/onnx/tensor_proto.h"

namespace kiln::onnx::detail {

namespace {

using Outs = std::vector<Tensor>;

Outs one(Tensor t) { return {std::move(t)}; }

template <Tensor (*F)(const Tensor&)>
Outs unary(OpContext& c) {
  return one(F(c.input(0)));
}

// The second operand of a binary op. Before opset 7, broadcast=1 with an axis aligns b's
// dims with a's starting at axis (later opsets broadcast as numpy, from the right).
Tensor rhs(OpContext& c) {
  const Tensor &a = c.input(0), &b = c.input(1);
  if (c.opset() >= 7 || c.attr_int("broadcast", 0) == 0 || !c.has_attr("axis")) return b;
  const int64_t axis = norm_axis(c, c.attr_int("axis"), a.dim());
  c.check(axis + b.dim() <= a.dim(), "operand of shape ", shape_str(b.shape()), " does not fit shape ",
          shape_str(a.shape()), " at axis ", axis);
  Shape s = b.shape();
  s.resize(size_t(a.dim() - axis), 1);
  return b.reshape(s);
}

Outs add_op(OpContext& c) { return one(add(c.input(0), rhs(c))); }
Outs sub_op(OpContext& c) { return one(sub(c.input(0), rhs(c))); }
Outs mul_op(OpContext& c) { return one(mul(c.input(0), rhs(c))); }

Outs div_op(OpContext& c) {
  const Tensor &a = c.input(0), b = rhs(c);
  if (is_floating(a.dtype())) return one(div(a, b));
  // Integer division truncates toward zero, as C and ONNX do.
  c.check(a.dtype() == b.dtype(), "operands must share a type, got ", dtype_name(a.dtype()), " and ",
          dtype_name(b.dtype()));
  c.check(!any_zero(b), "integer division by zero");
  return one(div(a.to(DType::Float64), b.to(DType::Float64)).to(a.dtype()));
}

Outs pow_op(OpContext& c) {
  const Tensor& a = c.input(0);
  return one(pow(a, rhs(c)).to(a.dtype()));
}

// Max, Min, Sum, Mean: variadic with broadcasting.
template <Tensor (*F)(const Tensor&, const Tensor&)>
Outs fold(OpContext& c) {
  c.check(c.num_inputs() >= 1, "needs at least one input");
  Tensor acc = c.input(0);
  for (size_t i = 1; i < c.num_inputs(); ++i) acc = F(acc, c.input(i));
  return one(acc);
}
Tensor add2(const Tensor& a, const Tensor& b) { return add(a, b); }
Outs mean_op(OpContext& c) {
  Tensor s = fold<add2>(c)[0];
  return one(div(s, double(c.num_inputs())));
}

template <Tensor (*F)(const Tensor&, const Tensor&)>
Outs compare(OpContext& c) {
  return one(F(c.input(0), rhs(c)));
}
Tensor eq2(const Tensor& a, const Tensor& b) { return eq(a, b); }
Tensor lt2(const Tensor& a, const Tensor& b) { return lt(a, b); }
Tensor le2(const Tensor& a, const Tensor& b) { return le(a, b); }
Tensor gt2(const Tensor& a, const Tensor& b) { return gt(a, b); }
Tensor ge2(const Tensor& a, const Tensor& b) { return ge(a, b); }
Tensor xor2(const Tensor& a, const Tensor& b) { return ne(a, b); }
Tensor max2(const Tensor& a, const Tensor& b) { return maximum(a, b); }
Tensor min2(const Tensor& a, const Tensor& b) { return minimum(a, b); }

Outs where_op(OpContext& c) { return one(where(c.input(0), c.input(1), c.input(2))); }
Outs identity(OpContext& c) { return one(c.input(0)); }

// x where cond, else 0 (a zero of x's type), broadcasting.
Tensor keep_where(const Tensor& cond, const Tensor& x) { return where(cond, x, zeros({}, TensorOptions(x.dtype()).device(x.device()))); }

Outs tan_op(OpContext& c) { return one(div(sin(c.input(0)), cos(c.input(0)))); }
Outs sinh_op(OpContext& c) {
  const Tensor& x = c.input(0);
  return one(mul(sub(exp(x), exp(neg(x))), 0.5));
}
Outs cosh_op(OpContext& c) {
  const Tensor& x = c.input(0);
  return one(mul(add(exp(x), exp(neg(x))), 0.5));
}
Outs asinh_op(OpContext& c) {
  const Tensor& x = c.input(0);
  return one(log(add(x, sqrt(add(mul(x, x), 1.0)))));
}
Outs acosh_op(OpContext& c) {
  const Tensor& x = c.input(0);
  return one(log(add(x, sqrt(sub(mul(x, x), 1.0)))));
}
Outs atanh_op(OpContext& c) {
  const Tensor& x = c.input(0);
  return one(mul(log(div(add(x, 1.0), sub(neg(x), -1.0))), 0.5));
}
Outs softplus_op(OpContext& c) {
  // log(1 + e^x) = max(x, 0) + log(1 + e^-|x|): no overflow for large |x|
  const Tensor& x = c.input(0);
  return one(add(relu(x), log(add(exp(neg(abs(x))), 1.0))));
}
Outs softsign_op(OpContext& c) {
  const Tensor& x = c.input(0);
  return one(div(x, add(abs(x), 1.0)));
}
Outs elu_op(OpContext& c) {
  const Tensor& x = c.input(0);
  const double alpha = c.attr_float("alpha", 1.0);
  return one(where(gt(x, 0.0), x, mul(sub(exp(x), 1.0), alpha)));
}
Outs selu_op(OpContext& c) {
  const Tensor& x = c.input(0);
  const double alpha = c.attr_float("alpha", 1.67326319217681884765625);
  const double gamma = c.attr_float("gamma", 1.05070102214813232421875);
  return one(mul(where(gt(x, 0.0), x, mul(sub(exp(x), 1.0), alpha)), gamma));
}
Outs celu_op(OpContext& c) {
  const Tensor& x = c.input(0);
  const double alpha = c.attr_float("alpha", 1.0);
  return one(add(relu(x), minimum(zeros_like(x), mul(sub(exp(div(x, alpha)), 1.0), alpha))));
}
Outs leaky_relu_op(OpContext& c) {
  const Tensor& x = c.input(0);
  return one(where(ge(x, 0.0), x, mul(x, c.attr_float("alpha", 0.01))));
}
Outs prelu_op(OpContext& c) {
  const Tensor& x = c.input(0);
  Tensor slope = c.input(1);
  // Before opset 7 a 1-D slope of size C applies per channel (dim 1).
  if (c.opset() < 7 && slope.dim() == 1 && x.dim() > 2 && slope.size(0) == x.size(1) && slope.size(0) > 1) {
    Shape s(size_t(x.dim() - 1), 1);
    s[0] = slope.size(0);
    slope = slope.reshape(s);
  }
  return one(where(lt(x, 0.0), mul(x, slope), x));
}
Outs thresholded_relu_op(OpContext& c) {
  const Tensor& x = c.input(0);
  return one(keep_where(gt(x, c.attr_float("alpha", 1.0)), x));
}
Tensor hard_sigmoid(const Tensor& x, double alpha, double beta) {
  return clamp(add(mul(x, alpha), beta), Scalar(0.0), Scalar(1.0));
}
Outs hard_sigmoid_op(OpContext& c) {
  return one(hard_sigmoid(c.input(0), c.attr_float("alpha", 0.2), c.attr_float("beta", 0.5)));
}
Outs hard_swish_op(OpContext& c) {
  const Tensor& x = c.input(0);
  return one(mul(x, hard_sigmoid(x, 1.0 / 6.0, 0.5)));
}
Outs mish_op(OpContext& c) {
  const Tensor& x = c.input(0);
  return one(mul(x, tanh(add(relu(x), log(add(exp(neg(abs(x))), 1.0))))));
}
Outs relu_op(OpContext& c) { return one(relu(c.input(0))); }
Outs sign_op(OpContext& c) { return one(sign(c.input(0))); }
Outs not_op(OpContext& c) { return one(logical_not(c.input(0))); }

Outs clip_op(OpContext& c) {
  const Tensor& x = c.input(0);
  std::optional<Scalar> lo, hi;
  auto bound = [&](size_t i) -> std::optional<Scalar> {
    if (!c.has_input(i)) return std::nullopt;
    const Tensor& b = c.input(i);
    c.check(b.numel() == 1, "bound ", i, " must be a scalar, got shape ", shape_str(b.shape()));
    return is_floating(b.dtype()) ? Scalar(b.item<double>()) : Scalar(b.item<int64_t>());
  };
  if (c.opset() < 11) {
    lo = Scalar(c.attr_float("min", -std::numeric_limits<double>::infinity()));
    hi = Scalar(c.attr_float("max", std::numeric_limits<double>::infinity()));
  } else {
    lo = bound(1);
    hi = bound(2);
  }
  if (!lo && !hi) return one(x);
  // clamp's front end rejects min > max; ONNX then gives max everywhere (min first, then max).
  if (lo && hi && lo->to_double() > hi->to_double()) return one(full_like(x, *hi));
  return one(clamp(x, lo, hi));
}

Outs cast_op(OpContext& c) {
  const int64_t to = c.attr_int("to");
  const auto dtype = dtype_from_onnx(int32_t(to));
  c.check(dtype.has_value(), "cast to ", onnx_type_name(int32_t(to)), " is not supported by kiln");
  return one(c.input(0).to(*dtype));
}
Outs cast_like_op(OpContext& c) { return one(c.input(0).to(c.input(1).dtype())); }

Outs isnan_op(OpContext& c) { return one(ne(c.input(0), c.input(0))); }
Outs isinf_op(OpContext& c) {
  const Tensor& x = c.input(0);
  const bool pos = c.attr_int("detect_positive", 1) != 0, neg_ = c.attr_int("detect_negative", 1) != 0;
  const double inf = std::numeric_limits<double>::infinity();
  Tensor r = zeros(x.shape(), TensorOptions(DType::Bool).device(x.device()));
  if (pos) r = logical_or(r, eq(x, inf));
  if (neg_) r = logical_or(r, eq(x, -inf));
  return one(r);
}

Outs softmax_family(OpContext& c, Tensor (*f)(const Tensor&, int64_t)) {
  const Tensor& x = c.input(0);
  if (c.opset() >= 13) return one(f(x, norm_axis(c, c.attr_int("axis", -1), x.dim())));
  // Before opset 13 the input is coerced to 2-D at axis and normalised over the second dim.
  const int64_t axis = norm_axis(c, c.attr_int("axis", 1), x.dim());
  if (x.dim() == 0) return one(f(x.reshape({1, 1}), 1).reshape({}));
  const Tensor flat = x.reshape({numel_of(Shape(x.shape().begin(), x.shape().begin() + axis)), -1});
  return one(f(flat, 1).reshape(x.shape()));
}
Tensor hardmax_2(const Tensor& x, int64_t dim) {
  const Tensor idx = argmax(x, dim, true);
  return eq(idx, arange(x.size(dim), TensorOptions(DType::Int64).device(x.device()))
                     .reshape([&] { Shape s(size_t(x.dim()), 1); s[size_t(dim)] = x.size(dim); return s; }()))
      .to(x.dtype());
}
Tensor softmax2(const Tensor& x, int64_t d) { return softmax(x, d); }
Tensor log_softmax2(const Tensor& x, int64_t d) { return log_softmax(x, d); }
Outs softmax_op(OpContext& c) { return softmax_family(c, softmax2); }
Outs log_softmax_op(OpContext& c) { return softmax_family(c, log_softmax2); }
Outs hardmax_op(OpContext& c) { return softmax_family(c, hardmax_2); }

}  // namespace

bool any_zero(const Tensor& t) { return t.numel() > 0 && eq(t, 0).to(DType::Int64).sum().item<int64_t>() > 0; }

void register_elementwise_ops() {
  register_op("Add", add_op);
  register_op("Sub", sub_op);
  register_op("Mul", mul_op);
  register_op("Div", div_op);
  register_op("Pow", pow_op);
  register_op("Max", fold<max2>);
  register_op("Min", fold<min2>);
  register_op("Sum", fold<add2>);
  register_op("Mean", mean_op);
  register_op("Equal", compare<eq2>);
  register_op("Less", compare<lt2>);
  register_op("LessOrEqual", compare<le2>);
  register_op("Greater", compare<gt2>);
  register_op("GreaterOrEqual", compare<ge2>);
  register_op("And", compare<logical_and>);
  register_op("Or", compare<logical_or>);
  register_op("Xor", compare<xor2>);
  register_op("Not", not_op);
  register_op("Where", where_op);
  register_op("Identity", identity);
  register_op("Abs", unary<abs>);
  register_op("Neg", unary<neg>);
  register_op("Exp", unary<exp>);
  register_op("Log", unary<log>);
  register_op("Sqrt", unary<sqrt>);
  register_op("Reciprocal", unary<reciprocal>);
  register_op("Sin", unary<sin>);
  register_op("Cos", unary<cos>);
  register_op("Tan", tan_op);
  register_op("Sinh", sinh_op);
  register_op("Cosh", cosh_op);
  register_op("Asinh", asinh_op);
  register_op("Acosh", acosh_op);
  register_op("Atanh", atanh_op);
  register_op("Tanh", unary<tanh>);
  register_op("Sigmoid", unary<sigmoid>);
  register_op("Relu", relu_op);
  register_op("Sign", sign_op);
  register_op("Softplus", softplus_op);
  register_op("Softsign", softsign_op);
  register_op("Elu", elu_op);
  register_op("Selu", selu_op);
  register_op("Celu", celu_op);
  register_op("LeakyRelu", leaky_relu_op);
  register_op("PRelu", prelu_op);
  register_op("ThresholdedRelu", thresholded_relu_op);
  register_op("HardSigmoid", hard_sigmoid_op);
  register_op("HardSwish", hard_swish_op);
  register_op("Mish", mish_op);
  register_op("Clip", clip_op);
  register_op("Cast", cast_op);
  register_op("CastLike", cast_like_op);
  register_op("IsNaN", isnan_op);
  register_op("IsInf", isinf_op);
  register_op("Softmax", softmax_op);
  register_op("LogSoftmax", log_softmax_op);
  register_op("Hardmax", hardmax_op);
}

}  // namespace kiln::onnx::detail
