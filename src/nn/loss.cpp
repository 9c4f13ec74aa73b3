// Loss functions, composed of dispatched ops (autograd differentiates them).
#include "kiln/nn/loss.h"

#include "kiln/ops.h"

namespace kiln::nn {

namespace {

Tensor reduce(const Tensor& loss, Reduction r) {
  switch (r) {
    case Reduction::None: return loss;
    case Reduction::Sum: return sum(loss);
    case Reduction::Mean: return mean(loss);
  }
  return loss;
}

void check_pair(const char* op, const Tensor& input, const Tensor& target) {
  KILN_CHECK(input.defined() && target.defined(), op, "input and target must be defined");
  KILN_CHECK(is_floating(input.dtype()), op, "expected a floating input, got ", dtype_name(input.dtype()),
             " of shape ", shape_str(input.shape()));
  KILN_CHECK(input.device() == target.device(), op, "input on ", input.device().str(), " and target on ",
             target.device().str());
  KILN_CHECK(broadcast_shapes(op, input.shape(), target.shape()) == input.shape(), op, "target of shape ",
             shape_str(target.shape()), " does not broadcast to input of shape ", shape_str(input.shape()));
}

// The class weights of each target as [N, d...] (ignored positions 0), in input's dtype.
Tensor target_weights(const Tensor& safe_target, const Tensor& mask, const Tensor& weight, DType dtype) {
  const Tensor m = mask.to(dtype);
  if (!weight.defined()) return m;
  const Tensor w = index_select(weight.to(dtype), 0, safe_target.reshape({-1})).view(safe_target.shape());
  return w * m;
}

// Validates class-index targets and weight; returns (log-probs-shaped input, target)
// with a batch dim added to unbatched [C] input.
struct IndexTargets {
  Tensor input, target, mask, safe_target;
  int64_t classes;
  const char* op;
  Shape input_shape;
  int64_t ignore_index;
};

IndexTargets index_targets(const char* op, const Tensor& input, const Tensor& target, const Tensor& weight,
                           int64_t ignore_index) {
  KILN_CHECK(input.defined() && target.defined(), op, "input and target must be defined");
  KILN_CHECK(is_floating(input.dtype()), op, "expected a floating input, got ", dtype_name(input.dtype()));
  KILN_CHECK(input.dim() >= 1, op, "expected input of shape [C] or [N, C, ...], got ", shape_str(input.shape()));
  KILN_CHECK(is_integral(target.dtype()), op, "expected integer class indices, got target ",
             dtype_name(target.dtype()), " of shape ", shape_str(target.shape()));
  KILN_CHECK(input.device() == target.device(), op, "input on ", input.device().str(), " and target on ",
             target.device().str());
  IndexTargets r;
  r.input = input.dim() == 1 ? input.unsqueeze(0) : input;
  r.target = (input.dim() == 1 ? target.unsqueeze(0) : target).to(DType::Int64);
  r.classes = r.input.size(1);
  Shape expected = r.input.shape();
  expected.erase(expected.begin() + 1);
  KILN_CHECK(r.target.shape() == expected, op, "input ", shape_str(input.shape()), " needs target of shape ",
             shape_str(input.dim() == 1 ? Shape{} : expected), ", got ", shape_str(target.shape()));
  if (weight.defined())
    KILN_CHECK(weight.dim() == 1 && weight.size(0) == r.classes && weight.device() == input.device(), op,
               "weight must be a [", r.classes, "] tensor on ", input.device().str(), ", got ",
               shape_str(weight.shape()), " on ", weight.device().str());
  r.op = op;
  r.input_shape = input.shape();
  r.ignore_index = ignore_index;
  // Targets out of [0, classes) are caught by gather's range check in picked_nll, which
  // the loss's own message then replaces: no separate check, so no host synchronisation.
  r.mask = ne(r.target, ignore_index);
  r.safe_target = where(r.mask, r.target, zeros_like(r.target));
  return r;
}

// Raises the loss's error for the first target out of range, if there is one (a host
// scan, on the error path only).
void raise_if_target_out_of_range(const IndexTargets& r) {
  const Tensor t = r.target.cpu().contiguous();
  const int64_t* v = t.data<int64_t>();
  for (int64_t i = 0; i < t.numel(); ++i)
    if (v[i] != r.ignore_index && (v[i] < 0 || v[i] >= r.classes))
      KILN_FAIL(r.op, "target ", v[i], " is out of range for ", r.classes, " classes (input ", shape_str(r.input_shape),
                ")");
}

// -log p[target] per position, times the target's class weight; and the weights.
std::pair<Tensor, Tensor> picked_nll(const IndexTargets& t, const Tensor& logp, const Tensor& weight) {
  Tensor picked;
  try {
    picked = gather(logp, 1, t.safe_target.unsqueeze(1)).squeeze(1);
  } catch (const Error&) {
    raise_if_target_out_of_range(t);
    throw;
  }
  const Tensor w = target_weights(t.safe_target, t.mask, weight, logp.dtype());
  return {neg(picked) * w, w};
}

Tensor finish(const Tensor& loss, const Tensor& weights_for_mean, Reduction r, bool unbatched) {
  switch (r) {
    case Reduction::None: return unbatched ? loss.squeeze(0) : loss;
    case Reduction::Sum: return sum(loss);
    case Reduction::Mean: return sum(loss) / sum(weights_for_mean);
  }
  return loss;
}

}  // namespace

Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  check_pair("mse_loss", input, target);
  const Tensor d = input - target;
  return reduce(d * d, reduction);
}

Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  check_pair("l1_loss", input, target);
  return reduce(abs(input - target), reduction);
}

Tensor nll_loss(const Tensor& input, const Tensor& target, const Tensor& weight, int64_t ignore_index,
                Reduction reduction) {
  const IndexTargets t = index_targets("nll_loss", input, target, weight, ignore_index);
  auto [loss, w] = picked_nll(t, t.input, weight);
  return finish(loss, w, reduction, input.dim() == 1);
}

Tensor cross_entropy(const Tensor& input, const Tensor& target, const Tensor& weight, int64_t ignore_index,
                     Reduction reduction, double label_smoothing) {
  const char* op = "cross_entropy";
  KILN_CHECK(label_smoothing >= 0.0 && label_smoothing <= 1.0, op, "label_smoothing must be in [0, 1], got ",
             label_smoothing);
  KILN_CHECK(input.defined() && target.defined(), op, "input and target must be defined");
  if (is_floating(target.dtype())) {  // class probabilities
    KILN_CHECK(is_floating(input.dtype()) && input.dim() >= 1, op, "expected a floating input of shape [C] or [N, C, ...], got ",
               dtype_name(input.dtype()), " ", shape_str(input.shape()));
    KILN_CHECK(target.shape() == input.shape(), op, "probability targets must have input's shape ",
               shape_str(input.shape()), ", got ", shape_str(target.shape()));
    KILN_CHECK(input.device() == target.device(), op, "input on ", input.device().str(), " and target on ",
               target.device().str());
    const int64_t cdim = input.dim() == 1 ? 0 : 1;
    const int64_t classes = input.size(cdim);
    if (weight.defined())
      KILN_CHECK(weight.dim() == 1 && weight.size(0) == classes && weight.device() == input.device(), op,
                 "weight must be a [", classes, "] tensor on ", input.device().str(), ", got ",
                 shape_str(weight.shape()));
    const Tensor logp = log_softmax(input, cdim);
    Tensor p = target.to(input.dtype());
    if (label_smoothing > 0) p = p * (1.0 - label_smoothing) + label_smoothing / double(classes);
    Tensor terms = logp * p;
    if (weight.defined()) {
      Shape wshape(size_t(input.dim()), 1);
      wshape[size_t(cdim)] = classes;
      terms = terms * weight.to(input.dtype()).view(wshape);
    }
    const Tensor loss = neg(sum(terms, {cdim}));
    if (reduction == Reduction::Mean) return mean(loss);
    return reduce(loss, reduction);
  }

  const IndexTargets t = index_targets(op, input, target, weight, ignore_index);
  const Tensor logp = log_softmax(t.input, 1);
  auto [nll, w] = picked_nll(t, logp, weight);
  if (label_smoothing == 0.0) return finish(nll, w, reduction, input.dim() == 1);

  // Smoothing: e / C times the (class-weighted) sum of -log p over all classes.
  Tensor all = logp;
  if (weight.defined()) {
    Shape wshape(size_t(logp.dim()), 1);
    wshape[1] = t.classes;
    all = all * weight.to(logp.dtype()).view(wshape);
  }
  const Tensor smooth = neg(sum(all, {1})) * t.mask.to(logp.dtype());
  const double e = label_smoothing, c = double(t.classes);
  if (reduction == Reduction::None) {
    const Tensor loss = nll * (1.0 - e) + smooth * (e / c);
    return input.dim() == 1 ? loss.squeeze(0) : loss;
  }
  const Tensor nll_r = finish(nll, w, reduction, false);
  const Tensor smooth_r = finish(smooth, w, reduction, false);
  return nll_r * (1.0 - e) + smooth_r * (e / c);
}

Tensor binary_cross_entropy_with_logits(const Tensor& input, const Tensor& target, const Tensor& weight,
                                        Reduction reduction, const Tensor& pos_weight) {
  const char* op = "binary_cross_entropy_with_logits";
  check_pair(op, input, target);
  KILN_CHECK(target.shape() == input.shape(), op, "target shape ", shape_str(target.shape()),
             " must equal input shape ", shape_str(input.shape()));
  const Tensor y = target.to(input.dtype());
  // log(1 + exp(-x)) = m + log(exp(-m) + exp(-x - m)) with m = max(-x, 0): both
  // exponents are <= 0 (no overflow), and the gradient is exact everywhere (m cancels;
  // the |x| form would give 0 instead of -1/2 at x = 0).
  const Tensor m = relu(neg(input));
  const Tensor softplus_neg = m + log(exp(neg(m)) + exp(neg(input) - m));
  Tensor loss;
  const Tensor one_minus_y = add(neg(y), 1.0);
  if (pos_weight.defined()) {
    KILN_CHECK(pos_weight.device() == input.device(), op, "pos_weight on ", pos_weight.device().str(),
               ", input on ", input.device().str());
    KILN_CHECK(broadcast_shapes(op, input.shape(), pos_weight.shape()) == input.shape(), op, "pos_weight of shape ",
               shape_str(pos_weight.shape()), " does not broadcast to input ", shape_str(input.shape()));
    const Tensor log_weight = add(sub(pos_weight.to(input.dtype()), 1.0) * y, 1.0);
    loss = one_minus_y * input + log_weight * softplus_neg;
  } else {
    loss = one_minus_y * input + softplus_neg;
  }
  if (weight.defined()) {
    KILN_CHECK(weight.device() == input.device(), op, "weight on ", weight.device().str(), ", input on ",
               input.device().str());
    KILN_CHECK(broadcast_shapes(op, input.shape(), weight.shape()) == input.shape(), op, "weight of shape ",
               shape_str(weight.shape()), " does not broadcast to input ", shape_str(input.shape()));
    loss = loss * weight.to(input.dtype());
  }
  return reduce(loss, reduction);
}

}  // namespace kiln::nn
