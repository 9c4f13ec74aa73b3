// The backward engine: counts how many edges lead into each node reachable from the
// roots, then runs nodes whose gradients are complete (later-created nodes first),
// summing the gradients each node receives, until every path has reached the leaves.
#include <queue>
#include <unordered_map>

#include "kiln/autograd.h"
#include "kiln/ops.h"
#include "src/autograd/record.h"

namespace kiln::autograd {

namespace {
// PyTorch's layout contract for .grad: it has the leaf's strides when the leaf is dense
// (a channels-last weight gets a channels-last grad, an NCHW one an NCHW grad, whatever
// layout the backward produced), else it is contiguous.
bool obeys_layout_contract(const Tensor& g, const Tensor& leaf) {
  if (!leaf.is_non_overlapping_and_dense()) return g.is_contiguous();
  for (int64_t d = 0; d < g.dim(); ++d) {
    if (g.size(d) != 1 && g.stride(d) != leaf.stride(d)) return false;
    if (g.size(d) == 1 && g.stride(d) == 0) return false;
  }
  return true;
}

Tensor clone_obeying_layout_contract(const Tensor& g, const Tensor& leaf) {
  if (!leaf.is_non_overlapping_and_dense()) return g.clone(MemoryFormat::Contiguous);
  Tensor out = empty_strided(leaf.shape(), leaf.strides(), TensorOptions(g.dtype()).device(g.device()));
  out.copy_(g);
  return out;
}


// Sink of a leaf's gradients: adds them into leaf.grad (accumulating across backward calls).
class AccumulateGrad final : public Node {
 public:
  explicit AccumulateGrad(std::shared_ptr<TensorImpl> leaf) : leaf_(std::move(leaf)) {
    output_geometry.emplace_back(Tensor(leaf_));
  }
  std::string name() const override { return "AccumulateGrad"; }
  std::vector<Tensor> apply(std::vector<Tensor>&& grads) override {
    Tensor g = std::move(grads[0]);
    AutogradMeta& m = *leaf_->autograd;
    const std::lock_guard<std::mutex> lock(m.mutex);  // other threads' backward() may feed this leaf too
    if (!m.grad.defined()) {
      // Take the gradient buffer when nothing else can see it; copy otherwise, so that two
      // leaves never share one .grad (optimizers and clipping update grads in place).
      const Tensor leaf(leaf_);
      const bool owned = g.impl_ptr().use_count() == 1 && g.storage().use_count() == 1 && g.offset() == 0 &&
                         g.is_non_overlapping_and_dense() && obeys_layout_contract(g, leaf) &&
                         g.nbytes() == g.storage()->nbytes();
      m.grad = owned ? g : clone_obeying_layout_contract(g, leaf);
    } else {
      m.grad.add_(g);
    }
    return {};
  }

 private:
  std::shared_ptr<TensorImpl> leaf_;
};

// Makes a node's gradient for one input look like that input: sum over broadcast dims,
// cast back to its dtype, move to its device.
Tensor conform(const Node& node, size_t i, Tensor g) {
  const TensorGeometry& geo = node.input_geometry[i];
  if (!geo.defined) return g;
  if (g.shape() != geo.shape) {
    bool expandable = g.dim() >= int64_t(geo.shape.size());
    for (size_t k = 0; expandable && k < geo.shape.size(); ++k) {
      const int64_t want = geo.shape[geo.shape.size() - 1 - k], have = g.shape()[g.shape().size() - 1 - k];
      expandable = want == have || want == 1;
    }
    KILN_CHECK(expandable, "backward", node.name(), " returned a gradient of shape ", shape_str(g.shape()),
               " for input ", i, " of shape ", shape_str(geo.shape));
    g = sum_to(g, geo.shape);
  }
  if (g.device() != geo.device) g = g.to(geo.device);
  if (g.dtype() != geo.dtype) g = g.to(geo.dtype);
  return g;
}

struct ByLatest {
  bool operator()(const Node* a, const Node* b) const { return a->sequence_nr < b->sequence_nr; }
};

}  // namespace

Edge gradient_edge(const Tensor& t) {
  if (!t.defined() || !t.autograd_meta()) return {};
  AutogradMeta& m = *t.impl().autograd;
  if (m.grad_fn && m.view_base.defined() && t.version() != m.view_version) refresh_view_history(t);
  if (m.grad_fn) return {m.grad_fn, m.output_nr};
  if (!m.requires_grad) return {};
  const std::lock_guard<std::mutex> lock(m.mutex);  // one accumulator per leaf, whichever thread asks first
  std::shared_ptr<Node> acc = m.grad_accumulator.lock();
  if (!acc) {
    acc = std::make_shared<AccumulateGrad>(t.impl_ptr());
    m.grad_accumulator = acc;
  }
  return {acc, 0};
}

namespace {
// Runs the graph from `tensors`. With `captures` (autograd::grad), gradients arriving at
// those edges are returned instead, and no leaf's .grad changes.
std::vector<Tensor> run_backward(const std::vector<Tensor>& tensors, const std::vector<Tensor>& grad_tensors,
                                 bool retain_graph, const std::vector<Edge>* captures) {
  KILN_CHECK(grad_tensors.empty() || grad_tensors.size() == tensors.size(), "backward", "got ", tensors.size(),
             " tensors but ", grad_tensors.size(), " gradients");
  std::vector<Edge> roots;
  std::vector<Tensor> root_grads;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    KILN_CHECK(t.defined(), "backward", "tensor ", i, " is undefined");
    KILN_CHECK(t.requires_grad(), "backward", "element ", i, " of tensors does not require grad and does not have a ",
               "grad_fn (", t.str(), ")");
    Tensor g = i < grad_tensors.size() ? grad_tensors[i] : Tensor();
    if (!g.defined()) {
      KILN_CHECK(t.numel() == 1, "backward", "grad can be implicitly created only for scalar outputs; pass a ",
                 "gradient for the output of shape ", shape_str(t.shape()));
      g = ones(t.shape(), TensorOptions(t.dtype()).device(t.device()));
    } else {
      KILN_CHECK(g.shape() == t.shape(), "backward", "gradient of shape ", shape_str(g.shape()),
                 " does not match the output of shape ", shape_str(t.shape()));
      g = g.detach().to(t.device()).to(t.dtype());
    }
    roots.push_back(gradient_edge(t));
    root_grads.push_back(std::move(g));
  }

  NoGradGuard no_grad;  // formulas are not themselves recorded (no create_graph)

  // Count the edges into every reachable node.
  std::unordered_map<Node*, int> deps;
  std::unordered_map<Node*, std::vector<Tensor>> buffers;
  std::vector<Node*> stack;
  for (const Edge& e : roots) {
    if (deps.emplace(e.fn.get(), 0).second) stack.push_back(e.fn.get());
  }
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (const Edge& e : n->next_edges) {
      if (!e.valid()) continue;
      auto [it, fresh] = deps.emplace(e.fn.get(), 0);
      ++it->second;
      if (fresh) stack.push_back(e.fn.get());
    }
  }

  auto add_to_buffer = [&](Node* n, uint32_t input_nr, Tensor g) {
    auto& buf = buffers[n];
    if (buf.empty()) buf.resize(n->output_geometry.size());
    Tensor& slot = buf[input_nr];
    slot = slot.defined() ? slot + g : std::move(g);
  };
  for (size_t i = 0; i < roots.size(); ++i) add_to_buffer(roots[i].fn.get(), roots[i].input_nr, root_grads[i]);
  root_grads.clear();

  std::priority_queue<Node*, std::vector<Node*>, ByLatest> ready;
  std::vector<Tensor> captured(captures ? captures->size() : 0);
  for (auto& [n, d] : deps)
    if (d == 0) ready.push(n);
  while (!ready.empty()) {
    Node* n = ready.top();
    ready.pop();
    std::vector<Tensor> grads = std::move(buffers[n]);
    buffers.erase(n);
    grads.resize(n->output_geometry.size());
    for (size_t i = 0; i < grads.size(); ++i) {
      if (grads[i].defined()) continue;
      const TensorGeometry& geo = n->output_geometry[i];
      grads[i] = zeros(geo.shape, TensorOptions(geo.dtype).device(geo.device));
    }
    for (auto& [output_nr, weak] : n->retained) {
      std::shared_ptr<TensorImpl> impl = weak.lock();
      if (!impl || !impl->autograd || impl->autograd->grad_fn.get() != n) continue;
      const std::lock_guard<std::mutex> lock(impl->autograd->mutex);
      Tensor& dst = impl->autograd->grad;
      dst = dst.defined() ? dst + grads[output_nr] : grads[output_nr].clone();
    }
    if (captures) {
      for (size_t k = 0; k < captures->size(); ++k)
        if ((*captures)[k].fn.get() == n) captured[k] = grads[(*captures)[k].input_nr];
      if (dynamic_cast<AccumulateGrad*>(n)) continue;
    }
    std::vector<Tensor> outs = n->apply(std::move(grads));
    if (!retain_graph) n->release_variables();
    KILN_CHECK(outs.size() == n->next_edges.size() || outs.empty(), "backward", n->name(), " returned ",
               outs.size(), " gradients for ", n->next_edges.size(), " inputs");
    for (size_t i = 0; i < outs.size(); ++i) {
      const Edge& e = n->next_edges[i];
      if (!e.valid()) continue;
      if (outs[i].defined()) add_to_buffer(e.fn.get(), e.input_nr, conform(*n, i, std::move(outs[i])));
      if (--deps[e.fn.get()] == 0) ready.push(e.fn.get());
    }
    if (outs.empty()) {
      for (const Edge& e : n->next_edges)
        if (e.valid() && --deps[e.fn.get()] == 0) ready.push(e.fn.get());
    }
  }
  return captured;
}
}  // namespace

void backward(const std::vector<Tensor>& tensors, const std::vector<Tensor>& grad_tensors, bool retain_graph) {
  run_backward(tensors, grad_tensors, retain_graph, nullptr);
}

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs, bool retain_graph) {
  std::vector<Edge> captures;
  for (size_t i = 0; i < inputs.size(); ++i) {
    KILN_CHECK(inputs[i].defined() && inputs[i].requires_grad(), "grad", "input ", i,
               " does not require grad");
    captures.push_back(gradient_edge(inputs[i]));
  }
  return run_backward(outputs, grad_outputs, retain_graph, &captures);
}

size_t graph_size(const Tensor& t) {
  if (!t.defined() || !t.autograd_meta() || !t.autograd_meta()->grad_fn) return 0;
  std::unordered_map<Node*, bool> seen;
  std::vector<Node*> stack{t.autograd_meta()->grad_fn.get()};
  seen[stack.back()] = true;
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (const Edge& e : n->next_edges)
      if (e.valid() && seen.emplace(e.fn.get(), true).second) stack.push_back(e.fn.get());
  }
  return seen.size();
}

}  // namespace kiln::autograd
