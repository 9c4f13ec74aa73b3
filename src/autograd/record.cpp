// Recording: builds FunctionNodes on op outputs, and runs in-place ops through autograd.
#include "src/autograd/record.h"
#include "src/core/mem_overlap.h"

#include "kiln/ops.h"

namespace kiln::autograd {

namespace {
AutogradMeta& ensure_meta(const Tensor& t) {
  auto& m = t.impl().autograd;
  if (!m) m = std::make_shared<AutogradMeta>();
  return *m;
}
}  // namespace

bool should_record(std::initializer_list<const Tensor*> inputs) {
  if (!is_grad_enabled()) return false;
  for (const Tensor* t : inputs)
    if (t->defined() && t->requires_grad()) return true;
  return false;
}

bool should_record(const std::vector<Tensor>& inputs) {
  if (!is_grad_enabled()) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

FunctionNode::FunctionNode(std::string name, std::vector<Tensor> saved, Formula formula)
    : name_(std::move(name)), formula_(std::move(formula)) {
  saved_.reserve(saved.size());
  for (const Tensor& t : saved) saved_.emplace_back(t);
}

std::vector<Tensor> FunctionNode::apply(std::vector<Tensor>&& grad_outputs) {
  BackwardCtx ctx;
  ctx.grads = std::move(grad_outputs);
  ctx.node = this;
  ctx.saved.reserve(saved_.size());
  for (const SavedVariable& s : saved_) ctx.saved.push_back(s.unpack(name_));
  std::vector<Tensor> grads = formula_(ctx);
  grads.resize(next_edges.size());
  return grads;
}

void FunctionNode::release_variables() {
  for (SavedVariable& s : saved_) s.release();
}

std::shared_ptr<Node> record(const char* name, const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                             std::vector<Tensor> saved, Formula formula) {
  if (!should_record(inputs)) return nullptr;
  auto node = std::make_shared<FunctionNode>(name, std::move(saved), std::move(formula));
  node->next_edges.reserve(inputs.size());
  for (const Tensor& in : inputs) {
    node->next_edges.push_back(gradient_edge(in));
    node->input_geometry.emplace_back(in);
  }
  for (size_t i = 0; i < outputs.size(); ++i) {
    const Tensor& o = outputs[i];
    node->output_geometry.emplace_back(o);
    if (!o.defined() || !is_floating(o.dtype())) continue;
    bool aliases_input = false;  // an op that returned its input unchanged records nothing on it
    for (const Tensor& in : inputs) aliases_input |= in.defined() && in.is_same(o);
    if (aliases_input) continue;
    AutogradMeta& m = ensure_meta(o);
    m.grad_fn = node;
    m.output_nr = uint32_t(i);
    m.requires_grad = false;
    m.retains_grad = false;
    m.grad_accumulator.reset();
  }
  return node;
}

void check_inplace(const char* op, const Tensor& self) {
  if (!is_grad_enabled() || !self.autograd_meta()) return;
  const AutogradMeta& m = *self.autograd_meta();
  KILN_CHECK(!(m.requires_grad && !m.grad_fn), op, "a leaf tensor that requires grad (", self.str(),
             ") is being used in an in-place operation; do the update under NoGradGuard");
  if (m.view_base.defined() && m.view_base.requires_grad()) {
    KILN_CHECK(!m.view_base.is_leaf(), op, "a view of a leaf tensor that requires grad (", m.view_base.str(),
               ") is being used in an in-place operation; do the update under NoGradGuard");
    KILN_CHECK(m.view_base.is_contiguous(), op, "in-place operation on a view of a non-contiguous tensor (",
               m.view_base.str(), ") that requires grad is not supported");
  }
}

namespace {
// The layout of view inside a contiguous tensor shaped like its base.
struct Region {
  Shape shape;
  Strides strides;
  int64_t offset;
  Tensor of(const Tensor& full) const { return full.as_strided(shape, strides, full.offset() + offset); }
};

// The history of `view` as "its region of base": the gradient is scattered into zeros
// shaped like the base and sent to base's (current) history.
void set_view_of_base_history(const Tensor& view, const Tensor& base) {
  const Region region{view.shape(), view.strides(), view.offset() - base.offset()};
  const Shape base_shape = base.shape();
  auto as_view = std::make_shared<FunctionNode>("AsStridedBackward", std::vector<Tensor>{}, [=](BackwardCtx& c) {
    Tensor g = zeros(base_shape, TensorOptions(c.grad().dtype()).device(c.grad().device()));
    region.of(g).copy_(c.grad());
    return std::vector<Tensor>{g};
  });
  as_view->next_edges = {gradient_edge(base)};
  as_view->input_geometry = {TensorGeometry(base)};
  as_view->output_geometry = {TensorGeometry(view)};
  AutogradMeta& vm = ensure_meta(view);
  vm.grad_fn = as_view;
  vm.output_nr = 0;
  vm.requires_grad = false;
  vm.view_version = view.version();
  if (vm.retains_grad) as_view->retained.emplace_back(0, std::weak_ptr<TensorImpl>(view.impl_ptr()));
}

// After an in-place op wrote `r` into a view of `base`: the base's new history is its old
// history outside the view's region and r's history inside it (PyTorch's CopySlices), and
// the view's own history becomes "that region of the base".
void rebase_view_history(Tensor& view, const Tensor& base, const Tensor& r) {
  const Region region{view.shape(), view.strides(), view.offset() - base.offset()};
  auto slices = std::make_shared<FunctionNode>("CopySlices", std::vector<Tensor>{}, [region](BackwardCtx& c) {
    // region's strides are relative to a contiguous base.
    Tensor g_base = c.grad().clone(MemoryFormat::Contiguous);
    Tensor g_r = c.needs(1) ? region.of(g_base).clone() : Tensor();
    region.of(g_base).fill_(0);
    return std::vector<Tensor>{g_base, g_r};
  });
  slices->next_edges = {gradient_edge(base), gradient_edge(r)};
  slices->input_geometry = {TensorGeometry(base), TensorGeometry(r)};
  slices->output_geometry = {TensorGeometry(base)};
  AutogradMeta& bm = ensure_meta(base);
  bm.grad_fn = slices;
  bm.output_nr = 0;
  bm.requires_grad = false;
  set_view_of_base_history(view, base);
}
}  // namespace

void refresh_view_history(const Tensor& view) {
  AutogradMeta& m = *view.impl().autograd;
  if (!m.view_base.is_contiguous() || !m.view_base.requires_grad()) {
    m.view_version = view.version();
    return;
  }
  set_view_of_base_history(view, m.view_base);
}

bool inplace_through_autograd(const char* op, Tensor& self, std::initializer_list<const Tensor*> others,
                              const std::function<Tensor(const Tensor&)>& fn, bool needs_old_value) {
  if (!is_grad_enabled()) return false;
  bool any = self.requires_grad();
  for (const Tensor* o : others) any |= o->defined() && o->requires_grad();
  if (!any) return false;
  check_inplace(op, self);
  {  // the same overlap rules as the dispatcher applies when no graph is recorded
    std::vector<Tensor> inputs;
    for (const Tensor* o : others)
      if (o->defined()) inputs.push_back(*o);
    check_output_overlap(op, inputs, std::span<const Tensor>(&self, 1));
  }
  // The old value is copied because the formula may need it after self is overwritten.
  Tensor r = fn(needs_old_value ? self.clone() : self);
  if (r.dtype() != self.dtype()) r = r.to(self.dtype());
  {
    NoGradGuard no_grad;
    self.copy_(r);
  }
  if (self.autograd_meta() && self.autograd_meta()->view_base.defined() &&
      self.autograd_meta()->view_base.requires_grad()) {
    rebase_view_history(self, self.autograd_meta()->view_base, r);
    return true;
  }
  AutogradMeta& m = ensure_meta(self);
  const AutogradMeta* rm = r.autograd_meta();
  m.grad_fn = rm ? rm->grad_fn : nullptr;
  m.output_nr = rm ? rm->output_nr : 0;
  if (m.grad_fn) {
    m.requires_grad = false;
    if (m.retains_grad) m.grad_fn->retained.emplace_back(m.output_nr, std::weak_ptr<TensorImpl>(self.impl_ptr()));
  }
  return true;
}

}  // namespace kiln::autograd
