// gradcheck (see gradcheck.h).
#include "tests/support/gradcheck.h"

#include <cmath>
#include <sstream>

namespace kiln::testing {

namespace {
Generator& test_generator() {
  static Generator g(20260917);
  return g;
}

bool differentiable(const Tensor& t, size_t i, const GradcheckOptions& opts) {
  if (!t.defined() || !is_floating(t.dtype())) return false;
  for (size_t k : opts.no_grad)
    if (k == i) return false;
  return true;
}

// Storage offsets (in elements) of t's elements in row-major order.
std::vector<int64_t> element_offsets(const Tensor& t) {
  std::vector<int64_t> offs;
  offs.reserve(size_t(t.numel()));
  std::vector<int64_t> idx(size_t(t.dim()), 0);
  for (int64_t n = 0; n < t.numel(); ++n) {
    int64_t off = t.offset();
    for (int64_t d = 0; d < t.dim(); ++d) off += idx[size_t(d)] * t.stride(d);
    offs.push_back(off);
    for (int64_t d = t.dim() - 1; d >= 0; --d) {
      if (++idx[size_t(d)] < t.size(d)) break;
      idx[size_t(d)] = 0;
    }
  }
  return offs;
}

double contract(const std::vector<Tensor>& outs, const std::vector<Tensor>& weights) {
  double f = 0;
  for (size_t k = 0; k < outs.size(); ++k) {
    if (!weights[k].defined()) continue;
    const auto o = outs[k].to_vector<double>();
    const auto w = weights[k].to_vector<double>();
    for (size_t j = 0; j < o.size(); ++j) f += o[j] * w[j];
  }
  return f;
}

::testing::AssertionResult check_once(const MultiOutputFn& fn, const std::vector<Tensor>& inputs,
                                      const GradcheckOptions& opts, const char* layout) {
  std::vector<Tensor> leaves = inputs;
  for (size_t i = 0; i < leaves.size(); ++i)
    if (differentiable(leaves[i], i, opts)) leaves[i] = leaves[i].detach().requires_grad_();

  // Analytic: one backward of f = sum_k <w_k, out_k>.
  std::vector<Tensor> outs = fn(leaves);
  std::vector<Tensor> weights(outs.size()), roots, root_grads;
  for (size_t k = 0; k < outs.size(); ++k) {
    if (!outs[k].defined() || !is_floating(outs[k].dtype())) continue;
    weights[k] = randn(outs[k].shape(), DType::Float64, &test_generator());
    if (outs[k].requires_grad()) {
      roots.push_back(outs[k]);
      root_grads.push_back(weights[k]);
    }
  }
  if (!roots.empty()) autograd::backward(roots, root_grads);

  auto f = [&] {
    NoGradGuard no_grad;
    return contract(fn(leaves), weights);
  };
  for (size_t i = 0; i < leaves.size(); ++i) {
    if (!differentiable(leaves[i], i, opts)) continue;
    Tensor x = leaves[i];
    const Tensor g = x.grad();
    if (g.defined() && g.shape() != x.shape())
      return ::testing::AssertionFailure() << "input " << i << ": gradient shape " << shape_str(g.shape())
                                           << " differs from input shape " << shape_str(x.shape());
    const std::vector<double> analytic =
        g.defined() ? g.to_vector<double>() : std::vector<double>(size_t(x.numel()), 0.0);
    double* data = static_cast<double*>(x.storage()->data());
    const std::vector<int64_t> offs = element_offsets(x);
    for (size_t j = 0; j < offs.size(); ++j) {
      const double orig = data[offs[j]];
      data[offs[j]] = orig + opts.eps;
      const double fp = f();
      data[offs[j]] = orig - opts.eps;
      const double fm = f();
      data[offs[j]] = orig;
      const double numeric = (fp - fm) / (2 * opts.eps);
      if (!(std::abs(analytic[j] - numeric) <= opts.atol + opts.rtol * std::abs(numeric))) {
        std::ostringstream os;
        os << "(" << layout << " inputs) input " << i << " " << shape_str(x.shape()) << ", element " << j
           << ": analytic " << analytic[j] << " vs numeric " << numeric;
        return ::testing::AssertionFailure() << os.str();
      }
    }
  }
  return ::testing::AssertionSuccess();
}
}  // namespace

Tensor grad_input(const Shape& shape, double lo, double hi) {
  return rand(shape, DType::Float64, &test_generator()) * (hi - lo) + lo;
}

Tensor grad_input_away_from_zero(const Shape& shape, double lo, double hi) {
  Tensor mag = grad_input(shape, lo, hi);
  Tensor sgn = where(lt(grad_input(shape), 0.0), full({}, -1.0, DType::Float64), full({}, 1.0, DType::Float64));
  return mag * sgn;
}

Tensor strided_copy(const Tensor& t) {
  if (!t.defined() || t.dim() == 0) return t;
  // A buffer with every dim doubled, viewed with step 2 in each dim.
  Shape big = t.shape();
  for (auto& s : big) s *= 2;
  Tensor buf = zeros(big, TensorOptions(t.dtype()).device(t.device()));
  Tensor v = buf;
  for (int64_t d = 0; d < t.dim(); ++d) v = v.slice(d, 0, big[size_t(d)], 2);
  v.copy_(t);
  return v;
}

::testing::AssertionResult gradcheck_multi(const MultiOutputFn& fn, const std::vector<Tensor>& inputs,
                                           const GradcheckOptions& opts) {
  std::vector<Tensor> fresh;
  for (const Tensor& t : inputs) fresh.push_back(t.defined() ? t.clone() : t);
  auto r = check_once(fn, fresh, opts, "contiguous");
  if (!r || !opts.check_strided) return r;
  std::vector<Tensor> strided;
  for (size_t i = 0; i < inputs.size(); ++i)
    strided.push_back(inputs[i].defined() && inputs[i].numel() > 1 ? strided_copy(inputs[i]) : inputs[i]);
  return check_once(fn, strided, opts, "strided");
}

::testing::AssertionResult gradcheck(const OutputFn& fn, const std::vector<Tensor>& inputs,
                                     const GradcheckOptions& opts) {
  return gradcheck_multi([&](const std::vector<Tensor>& in) { return std::vector<Tensor>{fn(in)}; }, inputs, opts);
}

}  // namespace kiln::testing
