// OpInfo entries for the elementwise ops of include/kiln/ops.h: binary (with alpha and
// scalar forms), comparisons, logical ops, where, unary math and activations, clamp,
// in-place forms, dtype casts and copy_. References are plain double loops with the
// definitions from <cmath>, broadcasting by index arithmetic.
#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "tests/support/op_info.h"

namespace {
using namespace kiln;
using namespace kiln::testing;

constexpr DTypeSet kNumeric = kAllDTypes & ~dtype_bit(DType::Bool);
constexpr DTypeSet kIntegers = dtypes({DType::Int32, DType::Int64});
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// ---- reference machinery ---------------------------------------------------------

double read(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DType::Float64: return t.data<double>()[i];
    case DType::Bool: return t.data<bool>()[i] ? 1.0 : 0.0;
    case DType::Int64: return double(t.data<int64_t>()[i]);
    case DType::Int32: return double(t.data<int32_t>()[i]);
    default: ADD_FAILURE() << "reference input of unexpected dtype " << dtype_name(t.dtype()); return kNaN;
  }
}

Shape broadcast_all(const std::vector<Tensor>& in) {
  size_t rank = 0;
  for (const Tensor& t : in) rank = std::max(rank, size_t(t.dim()));
  Shape out(rank, 1);
  for (const Tensor& t : in)
    for (size_t k = 0; k < size_t(t.dim()); ++k) {
      const int64_t n = t.shape()[size_t(t.dim()) - 1 - k];
      int64_t& o = out[rank - 1 - k];
      if (o == 1) o = n;
    }
  return out;
}

// Output of broadcasting in through f (values as doubles); Bool outputs store f != 0.
template <typename F>
Tensor ref_map(const std::vector<Tensor>& in, DType out_dtype, F f) {
  const Shape shape = broadcast_all(in);
  Tensor out = ref_empty(shape, out_dtype);
  const size_t rank = shape.size();
  std::vector<int64_t> idx(rank, 0);
  std::vector<double> x(in.size());
  for (int64_t flat = 0; flat < out.numel(); ++flat) {
    int64_t rem = flat;
    for (size_t d = rank; d-- > 0;) {
      idx[d] = rem % shape[d];
      rem /= shape[d];
    }
    for (size_t k = 0; k < in.size(); ++k) {
      const Tensor& t = in[k];
      const size_t r = size_t(t.dim());
      int64_t off = 0;
      for (size_t d = 0; d < r; ++d) {
        const int64_t n = t.shape()[d];
        off = off * n + (n == 1 ? 0 : idx[rank - r + d]);
      }
      x[k] = read(t, off);
    }
    const double v = f(x.data());
    if (out_dtype == DType::Bool) out.data<bool>()[flat] = v != 0;
    else out.data<double>()[flat] = v;
  }
  return out;
}

// ---- sample shapes ---------------------------------------------------------------

using Values = std::function<Tensor(const Shape&, Generator&)>;
Values uniform(double lo, double hi) {
  return [=](const Shape& s, Generator& g) { return random_input(s, g, lo, hi); };
}
Values integers(int64_t lo, int64_t hi) {
  return [=](const Shape& s, Generator& g) { return random_integers(s, g, lo, hi); };
}
// Magnitudes in [lo, hi) with random signs: keeps denominators away from zero.
Values signed_magnitude(double lo, double hi) {
  return [=](const Shape& s, Generator& g) {
    Tensor t = random_input(s, g, lo, hi);
    Tensor sign = random_integers(s, g, 0, 1);
    double* p = t.data<double>();
    const double* q = sign.data<double>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = q[i] ? p[i] : -p[i];
    return t;
  };
}

struct ShapeCase {
  std::vector<Shape> shapes;
  std::vector<Shape> expand_to = {};
};

std::vector<ShapeCase> unary_shapes(Layout l) {
  switch (l) {
    case Layout::Contiguous: return {{{{}}}, {{{7}}}, {{{3, 5}}}, {{{2, 3, 4}}}, {{{0, 3}}}};
    case Layout::Transposed: return {{{{3, 5}}}, {{{2, 3, 4}}}};
    case Layout::Strided: return {{{{7}}}, {{{3, 5}}}, {{{2, 2, 3}}}};
    case Layout::Broadcast: return {{{{3, 1}}, {{3, 4}}}, {{{1}}, {{5}}}, {{{}}, {{2, 3}}}};
  }
  return {};
}

std::vector<ShapeCase> binary_shapes(Layout l) {
  switch (l) {
    case Layout::Contiguous: return {{{{}, {}}}, {{{3, 5}, {3, 5}}}, {{{2, 3, 4}, {2, 3, 4}}}, {{{0, 3}, {0, 3}}}};
    case Layout::Transposed: return {{{{3, 5}, {3, 5}}}, {{{2, 3, 4}, {2, 3, 4}}}, {{{4, 3}, {3}}}};
    case Layout::Strided: return {{{{7}, {7}}}, {{{3, 5}, {3, 5}}}, {{{2, 2, 3}, {2, 2, 3}}}};
    case Layout::Broadcast:
      return {{{{3, 1}, {1, 4}}},
              {{{2, 3, 4}, {4}}},
              {{{}, {3, 4}}},
              {{{3, 4}, {3, 1}}},
              {{{3, 1}, {3, 4}}, {{3, 4}, {}}}};  // a stride-0 view of a [3, 1] buffer
  }
  return {};
}

// In-place ops write into input 0: it must already have the broadcast shape.
std::vector<ShapeCase> inplace_shapes(Layout l) {
  if (l != Layout::Broadcast) return binary_shapes(l);
  return {{{{3, 4}, {4}}}, {{{3, 4}, {3, 1}}}, {{{2, 3, 4}, {}}}, {{{3, 4}, {3, 1}}, {{}, {3, 4}}}};
}

std::string describe(const ShapeCase& c) {
  std::string s;
  for (size_t i = 0; i < c.shapes.size(); ++i) {
    if (i) s += " x ";
    s += shape_str(c.shapes[i]);
    if (i < c.expand_to.size() && !c.expand_to[i].empty()) s += " expanded to " + shape_str(c.expand_to[i]);
  }
  return s;
}

std::function<std::vector<OpSample>(Layout, Generator&)> make_samples(
    std::function<std::vector<ShapeCase>(Layout)> shapes, std::vector<Values> values,
    std::vector<int> fixed = {}, std::vector<DType> fixed_dtypes = {}) {
  return [=](Layout l, Generator& g) {
    std::vector<OpSample> out;
    for (const ShapeCase& c : shapes(l)) {
      OpSample s;
      for (size_t i = 0; i < c.shapes.size(); ++i) {
        Tensor t = values[i](c.shapes[i], g);
        for (size_t k = 0; k < fixed.size(); ++k)
          if (fixed[k] == int(i)) t = t.to(fixed_dtypes[k]);
        s.inputs.push_back(t);
      }
      s.description = describe(c);
      s.fixed_dtype_inputs = fixed;
      s.expand_to = c.expand_to;
      out.push_back(std::move(s));
    }
    return out;
  };
}

// ---- entry builders ----------------------------------------------------------------

enum class Result { Same, FloatOrF32, Bool };  // result dtype for a tested dtype

void set_result(OpInfo& o, Result r) {
  if (r == Result::FloatOrF32) o.result_dtype = [](DType d) { return is_floating(d) ? d : DType::Float32; };
  if (r == Result::Bool) o.output_keeps_integer_dtype = true;
}
DType ref_dtype(Result r) { return r == Result::Bool ? DType::Bool : DType::Float64; }

OpInfo unary(std::string name, DTypeSet dts, Values v, std::function<Tensor(const Tensor&)> op,
             std::function<double(double)> f, Result r = Result::Same) {
  OpInfo o;
  o.name = std::move(name);
  o.dtypes = dts;
  o.samples = make_samples(unary_shapes, {v});
  o.op = [op](const std::vector<Tensor>& in) { return op(in[0]); };
  o.reference = [f, r](const std::vector<Tensor>& in) {
    return ref_map(in, ref_dtype(r), [&](const double* x) { return f(x[0]); });
  };
  set_result(o, r);
  return o;
}

// Special values (NaN, infinities, signed zeros), floating dtypes only.
OpInfo unary_special(std::string name, std::function<Tensor(const Tensor&)> op, std::function<double(double)> f) {
  OpInfo o = unary(std::move(name), kFloatingDTypes, uniform(0, 1), std::move(op), std::move(f));
  o.samples = [](Layout l, Generator&) -> std::vector<OpSample> {
    if (l != Layout::Contiguous) return {};
    Tensor t = ref_empty({8});
    const double v[] = {kNaN, kInf, -kInf, 0.0, -0.0, 1.0, -1.0, 0.5};
    std::copy(v, v + 8, t.data<double>());
    return {OpSample{{t}, "[nan, inf, -inf, 0, -0, 1, -1, 0.5]"}};
  };
  return o;
}

OpInfo binary(std::string name, DTypeSet dts, Values va, Values vb,
              std::function<Tensor(const Tensor&, const Tensor&)> op, std::function<double(double, double)> f,
              Result r = Result::Same) {
  OpInfo o;
  o.name = std::move(name);
  o.dtypes = dts;
  o.samples = make_samples(binary_shapes, {va, vb});
  o.op = [op](const std::vector<Tensor>& in) { return op(in[0], in[1]); };
  o.reference = [f, r](const std::vector<Tensor>& in) {
    return ref_map(in, ref_dtype(r), [&](const double* x) { return f(x[0], x[1]); });
  };
  set_result(o, r);
  return o;
}

// a op= b: the op writes into input 0, which is returned.
OpInfo inplace(std::string name, DTypeSet dts, Values va, Values vb, std::function<void(Tensor&, const Tensor&)> op,
               std::function<double(double, double)> f) {
  OpInfo o = binary(std::move(name), dts, va, vb, {}, std::move(f));
  o.samples = make_samples(inplace_shapes, {va, vb});
  o.op = [op](const std::vector<Tensor>& in) {
    Tensor a = in[0];
    op(a, in[1]);
    return a;
  };
  o.modified_inputs = {0};
  return o;
}

double sigmoid_ref(double x) { return 1.0 / (1.0 + std::exp(-x)); }
double gelu_ref(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }
double gelu_tanh_ref(double x) {
  const double k = std::sqrt(2.0 / M_PI);
  return 0.5 * x * (1.0 + std::tanh(k * (x + 0.044715 * x * x * x)));
}
double sign_ref(double x) { return x > 0 ? 1.0 : (x < 0 ? -1.0 : 0.0); }
double trunc_to(DType t, double x) { return t == DType::Bool ? double(x != 0) : is_floating(t) ? x : std::trunc(x); }

// ---- the table -------------------------------------------------------------------

std::vector<OpInfo> elementwise_ops() {
  std::vector<OpInfo> ops;
  const Values any = uniform(-3, 3), small_ints = integers(-9, 9), logic = integers(-1, 1);
  const Values positive = uniform(0.1, 4), nonzero = signed_magnitude(0.25, 2);
  using T = const Tensor&;

  // arithmetic
  ops.push_back(binary("add", kNumeric, any, any, [](T a, T b) { return add(a, b); }, std::plus<double>()));
  ops.push_back(binary("add_alpha", kFloatingDTypes, any, any, [](T a, T b) { return add(a, b, 2.5); },
                       [](double a, double b) { return a + 2.5 * b; }));
  ops.push_back(binary("add_alpha_int", kIntegers, small_ints, small_ints, [](T a, T b) { return add(a, b, 3); },
                       [](double a, double b) { return a + 3 * b; }));
  ops.push_back(binary("sub", kNumeric, any, any, [](T a, T b) { return sub(a, b); }, std::minus<double>()));
  ops.push_back(binary("sub_alpha", kFloatingDTypes, any, any, [](T a, T b) { return sub(a, b, -0.5); },
                       [](double a, double b) { return a + 0.5 * b; }));
  ops.push_back(binary("sub_alpha_int", kIntegers, small_ints, small_ints, [](T a, T b) { return sub(a, b, 2); },
                       [](double a, double b) { return a - 2 * b; }));
  ops.push_back(binary("mul", kAllDTypes, any, any, [](T a, T b) { return mul(a, b); }, std::multiplies<double>()));
  ops.push_back(binary("div", kAllDTypes, any, nonzero, [](T a, T b) { return div(a, b); },
                       std::divides<double>(), Result::FloatOrF32));
  ops.push_back(binary("pow", kFloatingDTypes, uniform(0.5, 2.5), uniform(-2, 2), [](T a, T b) { return pow(a, b); },
                       [](double a, double b) { return std::pow(a, b); }));
  ops.push_back(binary("pow_int", kNumeric, integers(-3, 3), integers(0, 3), [](T a, T b) { return pow(a, b); },
                       [](double a, double b) { return std::pow(a, b); }));
  ops.push_back(binary("maximum", kAllDTypes, any, any, [](T a, T b) { return maximum(a, b); },
                       [](double a, double b) { return std::max(a, b); }));
  ops.push_back(binary("minimum", kAllDTypes, any, any, [](T a, T b) { return minimum(a, b); },
                       [](double a, double b) { return std::min(a, b); }));
  ops.push_back(unary("square", kNumeric, any, [](T a) { return square(a); }, [](double x) { return x * x; }));

  // scalar forms (PyTorch's rule: a Python number does not widen the tensor's dtype category)
  ops.push_back(unary("add_scalar", kNumeric, any, [](T a) { return add(a, Scalar(3)); },
                      [](double x) { return x + 3; }));
  ops.push_back(unary("add_scalar_float", kAllDTypes, any, [](T a) { return add(a, Scalar(1.5)); },
                      [](double x) { return x + 1.5; }, Result::FloatOrF32));
  ops.push_back(unary("sub_scalar", kNumeric, any, [](T a) { return sub(a, Scalar(2)); },
                      [](double x) { return x - 2; }));
  ops.push_back(unary("mul_scalar", kNumeric, any, [](T a) { return mul(a, Scalar(-2)); },
                      [](double x) { return -2 * x; }));
  ops.push_back(unary("mul_scalar_float", kAllDTypes, any, [](T a) { return a * Scalar(0.75); },
                      [](double x) { return 0.75 * x; }, Result::FloatOrF32));
  ops.push_back(unary("div_scalar", kAllDTypes, any, [](T a) { return div(a, Scalar(4)); },
                      [](double x) { return x / 4; }, Result::FloatOrF32));
  ops.push_back(unary("pow_scalar", kNumeric, integers(-4, 4), [](T a) { return pow(a, Scalar(2)); },
                      [](double x) { return x * x; }));
  ops.push_back(unary("pow_scalar_float", kFloatingDTypes, positive, [](T a) { return pow(a, Scalar(0.5)); },
                      [](double x) { return std::sqrt(x); }));
  ops.push_back(unary("rsub_operator", kNumeric, any, [](T a) { return Scalar(2) * a - Scalar(1); },
                      [](double x) { return 2 * x - 1; }));
  ops.push_back(unary("neg_operator", kNumeric, any, [](T a) { return -a; }, [](double x) { return -x; }));

  // Tensor methods (the same ops through tensor.h)
  ops.push_back(binary("method_add", kFloatingDTypes, any, any, [](T a, T b) { return a.add(b, 0.5); },
                       [](double a, double b) { return a + 0.5 * b; }));
  ops.push_back(binary("method_sub", kNumeric, any, any, [](T a, T b) { return a.sub(b); }, std::minus<double>()));
  ops.push_back(binary("method_mul", kNumeric, any, any, [](T a, T b) { return a.mul(b); },
                       std::multiplies<double>()));
  ops.push_back(binary("method_div", kFloatingDTypes, any, nonzero, [](T a, T b) { return a.div(b); },
                       std::divides<double>()));
  ops.push_back(unary("method_pow", kFloatingDTypes, positive, [](T a) { return a.pow(3); },
                      [](double x) { return x * x * x; }));
  ops.push_back(unary("method_neg_abs", kNumeric, any, [](T a) { return a.neg().abs(); },
                      [](double x) { return std::abs(x); }));
  // chains round once per op: allow a few roundings of the dtype
  const auto chained = [](DType t) {
    const Tolerance d = default_tolerance(t);
    return Tolerance{4 * d.rtol, 4 * d.atol};
  };
  ops.push_back(unary("method_exp_log", kFloatingDTypes, positive, [](T a) { return a.log().exp(); },
                      [](double x) { return x; }));
  ops.back().tolerance = chained;
  ops.push_back(unary("method_sqrt", kFloatingDTypes, positive, [](T a) { return a.sqrt(); },
                      [](double x) { return std::sqrt(x); }));
  ops.push_back(unary("method_activations", kFloatingDTypes, any,
                      [](T a) { return add(add(a.relu(), a.sigmoid()), a.tanh()); },
                      [](double x) { return (x > 0 ? x : 0.0) + sigmoid_ref(x) + std::tanh(x); }));
  ops.back().tolerance = chained;

  // comparisons and logic (bool results, exact)
  const std::pair<const char*, std::function<Tensor(T, T)>> cmp_ops[] = {
      {"eq", [](T a, T b) { return eq(a, b); }}, {"ne", [](T a, T b) { return ne(a, b); }},
      {"lt", [](T a, T b) { return lt(a, b); }}, {"le", [](T a, T b) { return le(a, b); }},
      {"gt", [](T a, T b) { return gt(a, b); }}, {"ge", [](T a, T b) { return ge(a, b); }}};
  const std::function<double(double, double)> cmp_refs[] = {
      [](double a, double b) { return double(a == b); }, [](double a, double b) { return double(a != b); },
      [](double a, double b) { return double(a < b); },  [](double a, double b) { return double(a <= b); },
      [](double a, double b) { return double(a > b); },  [](double a, double b) { return double(a >= b); }};
  for (int k = 0; k < 6; ++k) {
    ops.push_back(binary(cmp_ops[k].first, kAllDTypes, integers(-2, 2), integers(-2, 2), cmp_ops[k].second,
                         cmp_refs[k], Result::Bool));
    const double s = k < 2 ? 1.0 : 0.5;  // eq/ne against a whole number, order against a fraction
    auto fn = cmp_ops[k].second;
    auto ref = cmp_refs[k];
    ops.push_back(unary(
        std::string(cmp_ops[k].first) + "_scalar", kAllDTypes, integers(-2, 2),
        [fn, s, k](T a) {
          const Scalar sc = k < 2 ? Scalar(int64_t(s)) : Scalar(s);
          switch (k) {
            case 0: return eq(a, sc);
            case 1: return ne(a, sc);
            case 2: return lt(a, sc);
            case 3: return le(a, sc);
            case 4: return gt(a, sc);
            default: return ge(a, sc);
          }
        },
        [ref, s](double x) { return ref(x, s); }, Result::Bool));
  }
  ops.push_back(binary("logical_and", kAllDTypes, logic, logic, [](T a, T b) { return logical_and(a, b); },
                       [](double a, double b) { return double(a != 0 && b != 0); }, Result::Bool));
  ops.push_back(binary("logical_or", kAllDTypes, logic, logic, [](T a, T b) { return logical_or(a, b); },
                       [](double a, double b) { return double(a != 0 || b != 0); }, Result::Bool));
  ops.push_back(unary("logical_not", kAllDTypes, logic, [](T a) { return logical_not(a); },
                      [](double x) { return double(x == 0); }, Result::Bool));

  // where(cond, a, b): cond is a bool input of its own
  {
    OpInfo o;
    o.name = "where";
    o.dtypes = kAllDTypes;
    auto shapes = [](Layout l) {
      std::vector<ShapeCase> out;
      for (ShapeCase c : binary_shapes(l)) {
        ShapeCase w;
        w.shapes = {l == Layout::Broadcast ? Shape{3, 1} : c.shapes[0], c.shapes[0], c.shapes[1]};
        if (l == Layout::Broadcast && c.shapes[0].size() == 3) w.shapes[0] = {3, 1};
        out.push_back(w);
      }
      return out;
    };
    o.samples = make_samples(shapes, {integers(0, 1), any, any}, {0}, {DType::Bool});
    o.op = [](const std::vector<Tensor>& in) { return where(in[0], in[1], in[2]); };
    o.reference = [](const std::vector<Tensor>& in) {
      return ref_map(in, DType::Float64, [](const double* x) { return x[0] != 0 ? x[1] : x[2]; });
    };
    ops.push_back(o);
  }

  // unary math
  ops.push_back(unary("neg", kNumeric, any, [](T a) { return neg(a); }, [](double x) { return -x; }));
  ops.push_back(unary("abs", kNumeric, any, [](T a) { return abs(a); }, [](double x) { return std::abs(x); }));
  ops.push_back(unary("sign", kNumeric, integers(-2, 2), [](T a) { return sign(a); }, sign_ref));
  ops.push_back(unary("sign_float", kFloatingDTypes, any, [](T a) { return sign(a); }, sign_ref));
  const DTypeSet all = kAllDTypes;
  const Result F = Result::FloatOrF32;
  ops.push_back(unary("exp", all, any, [](T a) { return exp(a); }, [](double x) { return std::exp(x); }, F));
  ops.push_back(unary("log", all, positive, [](T a) { return log(a); }, [](double x) { return std::log(x); }, F));
  ops.push_back(unary("sqrt", all, uniform(0, 4), [](T a) { return sqrt(a); }, [](double x) { return std::sqrt(x); }, F));
  ops.push_back(unary("rsqrt", all, positive, [](T a) { return rsqrt(a); },
                      [](double x) { return 1 / std::sqrt(x); }, F));
  ops.push_back(unary("reciprocal", all, nonzero, [](T a) { return reciprocal(a); }, [](double x) { return 1 / x; }, F));
  ops.push_back(unary("sin", all, uniform(-4, 4), [](T a) { return sin(a); }, [](double x) { return std::sin(x); }, F));
  ops.push_back(unary("cos", all, uniform(-4, 4), [](T a) { return cos(a); }, [](double x) { return std::cos(x); }, F));
  ops.push_back(unary("tanh", all, any, [](T a) { return tanh(a); }, [](double x) { return std::tanh(x); }, F));
  ops.push_back(unary("sigmoid", all, uniform(-6, 6), [](T a) { return sigmoid(a); }, sigmoid_ref, F));
  ops.push_back(unary("relu", kNumeric, any, [](T a) { return relu(a); }, [](double x) { return x > 0 ? x : 0.0; }));
  ops.push_back(unary("gelu", all, uniform(-4, 4), [](T a) { return gelu(a); }, gelu_ref, F));
  ops.push_back(unary("gelu_tanh", all, uniform(-4, 4), [](T a) { return gelu(a, "tanh"); }, gelu_tanh_ref, F));
  ops.push_back(unary("silu", all, uniform(-6, 6), [](T a) { return silu(a); },
                      [](double x) { return x * sigmoid_ref(x); }, F));
  ops.push_back(unary("clamp", kFloatingDTypes, any, [](T a) { return clamp(a, Scalar(-0.5), Scalar(1.25)); },
                      [](double x) { return std::min(std::max(x, -0.5), 1.25); }));
  ops.push_back(unary("clamp_min", kFloatingDTypes, any, [](T a) { return clamp(a, Scalar(0.25), std::nullopt); },
                      [](double x) { return std::max(x, 0.25); }));
  ops.push_back(unary("clamp_max", kFloatingDTypes, any, [](T a) { return clamp(a, std::nullopt, Scalar(-0.25)); },
                      [](double x) { return std::min(x, -0.25); }));
  ops.push_back(unary("clamp_int", kIntegers, small_ints, [](T a) { return clamp(a, Scalar(-2), Scalar(3)); },
                      [](double x) { return std::min(std::max(x, -2.0), 3.0); }));

  // special values: NaN propagates, infinities and signed zeros follow the definitions
  ops.push_back(unary_special("exp_special", [](T a) { return exp(a); }, [](double x) { return std::exp(x); }));
  ops.push_back(unary_special("log_special", [](T a) { return log(a); }, [](double x) { return std::log(x); }));
  ops.push_back(unary_special("sqrt_special", [](T a) { return sqrt(a); }, [](double x) { return std::sqrt(x); }));
  ops.push_back(unary_special("tanh_special", [](T a) { return tanh(a); }, [](double x) { return std::tanh(x); }));
  ops.push_back(unary_special("sigmoid_special", [](T a) { return sigmoid(a); }, sigmoid_ref));
  ops.push_back(unary_special("abs_special", [](T a) { return abs(a); }, [](double x) { return std::abs(x); }));
  ops.push_back(unary_special("reciprocal_special", [](T a) { return reciprocal(a); }, [](double x) { return 1 / x; }));
  ops.push_back(unary_special("relu_special", [](T a) { return relu(a); },
                              [](double x) { return std::isnan(x) ? x : (x > 0 ? x : 0.0); }));
  ops.push_back(unary_special("maximum_special", [](T a) { return maximum(a, full({}, 0.25, TensorOptions(a.dtype()).device(a.device()))); },
                              [](double x) { return std::isnan(x) ? x : std::max(x, 0.25); }));
  ops.push_back(unary_special("minimum_special", [](T a) { return minimum(a, full({}, 0.25, TensorOptions(a.dtype()).device(a.device()))); },
                              [](double x) { return std::isnan(x) ? x : std::min(x, 0.25); }));

  // in place
  ops.push_back(inplace("add_", kNumeric, any, any, [](Tensor& a, T b) { add_(a, b); }, std::plus<double>()));
  ops.push_back(inplace("add_alpha_", kFloatingDTypes, any, any, [](Tensor& a, T b) { add_(a, b, 0.5); },
                        [](double a, double b) { return a + 0.5 * b; }));
  ops.push_back(inplace("sub_", kNumeric, any, any, [](Tensor& a, T b) { sub_(a, b); }, std::minus<double>()));
  ops.push_back(inplace("mul_", kNumeric, any, any, [](Tensor& a, T b) { mul_(a, b); }, std::multiplies<double>()));
  ops.push_back(inplace("div_", kFloatingDTypes, any, nonzero, [](Tensor& a, T b) { div_(a, b); },
                        std::divides<double>()));
  ops.push_back(inplace("method_add_", kFloatingDTypes, any, any, [](Tensor& a, T b) { a.add_(b, 2); },
                        [](double a, double b) { return a + 2 * b; }));
  {
    auto scalar_inplace = [&](std::string name, DTypeSet dts, std::function<void(Tensor&)> op,
                              std::function<double(double)> f) {
      OpInfo o = unary(std::move(name), dts, any, {}, std::move(f));
      o.samples = make_samples(
          [](Layout l) {
            if (l == Layout::Broadcast) return std::vector<ShapeCase>{};  // the destination can't be a broadcast view
            return unary_shapes(l);
          },
          {any});
      o.op = [op](const std::vector<Tensor>& in) {
        Tensor a = in[0];
        op(a);
        return a;
      };
      o.modified_inputs = {0};
      ops.push_back(o);
    };
    scalar_inplace("add_scalar_", kNumeric, [](Tensor& a) { add_(a, Scalar(2)); }, [](double x) { return x + 2; });
    scalar_inplace("mul_scalar_", kNumeric, [](Tensor& a) { mul_(a, Scalar(-3)); }, [](double x) { return -3 * x; });
    scalar_inplace("div_scalar_", kFloatingDTypes, [](Tensor& a) { div_(a, Scalar(4)); },
                   [](double x) { return x / 4; });
    scalar_inplace("clamp_", kFloatingDTypes, [](Tensor& a) { clamp_(a, Scalar(-1), Scalar(0.5)); },
                   [](double x) { return std::min(std::max(x, -1.0), 0.5); });
    scalar_inplace("relu_", kNumeric, [](Tensor& a) { relu_(a); }, [](double x) { return x > 0 ? x : 0.0; });
  }

  // casts: to(dtype) from every dtype (truncation toward zero for integers, != 0 for bool)
  for (int t = 0; t < kNumDTypes; ++t) {
    const DType target = DType(t);
    OpInfo o = unary(std::string("to_") + dtype_name(target), kAllDTypes, {}, {}, {});
    // halves and whole numbers in [-2, 2]: exact in every dtype, and truncation shows
    o.samples = make_samples(unary_shapes, {[](const Shape& s, Generator& g) {
                               Tensor x = random_integers(s, g, -4, 4);
                               double* p = x.data<double>();
                               for (int64_t i = 0; i < x.numel(); ++i) p[i] *= 0.5;
                               return x;
                             }});
    o.op = [target](const std::vector<Tensor>& in) { return in[0].to(target); };
    o.reference = [target](const std::vector<Tensor>& in) {
      return ref_map(in, target == DType::Bool ? DType::Bool : DType::Float64,
                     [target](const double* x) { return trunc_to(target, x[0]); });
    };
    o.result_dtype = [target](DType) { return target; };
    ops.push_back(o);
  }

  // copy_: into a destination of the same dtype (any layout), broadcasting the source
  {
    OpInfo o = inplace("copy_", kAllDTypes, any, any, [](Tensor& dst, T src) { dst.copy_(src); },
                       [](double, double s) { return s; });
    ops.push_back(o);
    // casting copies: tested dtype -> float64 destination, and float64 source -> tested dtype
    OpInfo to64 = o;
    to64.name = "copy_into_float64";
    to64.samples = make_samples(inplace_shapes, {any, any}, {0}, {DType::Float64});
    to64.result_dtype = [](DType) { return DType::Float64; };
    ops.push_back(to64);
    OpInfo from64 = o;
    from64.name = "copy_from_float64";
    from64.dtypes = kNumeric;  // whole-number sources: exact in every numeric dtype
    from64.samples = make_samples(inplace_shapes, {any, small_ints}, {1}, {DType::Float64});
    ops.push_back(from64);
  }

  // Large tensors (just above the CPU kernels' parallel grain of 32768 elements), so the
  // multithreaded paths are checked too; a few dtypes each, to keep the suite fast.
  {
    auto large_unary = [](Layout l) -> std::vector<ShapeCase> {
      switch (l) {
        case Layout::Contiguous: return {{{{182, 181}}}};
        case Layout::Transposed: return {{{{181, 182}}}};
        case Layout::Strided: return {{{{182, 181}}}};
        case Layout::Broadcast: return {{{{182, 1}}, {{182, 181}}}};
      }
      return {};
    };
    auto large_binary = [](Layout l) -> std::vector<ShapeCase> {
      if (l == Layout::Broadcast) return {{{{182, 1}, {1, 181}}}};
      const Shape s = l == Layout::Strided ? Shape{182, 181} : Shape{181, 182};
      return {{{s, s}}};
    };
    auto large_inplace = [](Layout l) -> std::vector<ShapeCase> {
      if (l == Layout::Broadcast) return {{{{182, 181}, {1, 181}}}};
      const Shape s = l == Layout::Strided ? Shape{182, 181} : Shape{181, 182};
      return {{{s, s}}};
    };
    OpInfo add_large = binary("add_large", dtypes({DType::Float32, DType::Int64}), any, any, [](T a, T b) { return add(a, b); }, std::plus<double>());
    add_large.samples = make_samples(large_binary, {any, any});
    ops.push_back(add_large);
    OpInfo gt_large = binary("gt_large", dtypes({DType::Float32, DType::Bool}), integers(-2, 2), integers(-2, 2),
                             [](T a, T b) { return gt(a, b); }, [](double a, double b) { return double(a > b); },
                             Result::Bool);
    gt_large.samples = make_samples(large_binary, {integers(-2, 2), integers(-2, 2)});
    ops.push_back(gt_large);
    OpInfo gelu_large = unary("gelu_large", dtypes({DType::Float32, DType::BFloat16}), any, [](T a) { return gelu(a); }, gelu_ref);
    gelu_large.samples = make_samples(large_unary, {any});
    ops.push_back(gelu_large);
    OpInfo relu_large = unary("relu_large", dtypes({DType::Float32}), any, [](T a) { return relu(a); },
                              [](double x) { return x > 0 ? x : 0.0; });
    relu_large.samples = make_samples(large_unary, {any});
    ops.push_back(relu_large);
    OpInfo cast_large = unary("to_float16_large", dtypes({DType::Float32, DType::Int32}), any, [](T a) { return a.to(DType::Float16); },
                              [](double x) { return x; });
    cast_large.result_dtype = [](DType) { return DType::Float16; };
    cast_large.samples = make_samples(large_unary, {integers(-9, 9)});
    ops.push_back(cast_large);
    OpInfo copy_large = inplace("copy_large", dtypes({DType::Float64, DType::Float16}), any, any, [](Tensor& dst, T src) { dst.copy_(src); },
                                [](double, double s) { return s; });
    copy_large.samples = make_samples(large_inplace, {any, any});
    ops.push_back(copy_large);
    OpInfo mul_large_ = inplace("mul_large_", dtypes({DType::Float32}), any, any, [](Tensor& a, T b) { mul_(a, b); },
                                std::multiplies<double>());
    mul_large_.samples = make_samples(large_inplace, {any, any});
    ops.push_back(mul_large_);
  }
  return ops;
}

KILN_REGISTER_OPS(elementwise_ops());

}  // namespace
