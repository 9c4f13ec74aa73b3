#pragma once
// Reverse-mode autograd, with PyTorch's design: every op whose input requires grad
// records a Node (its backward formula) on its outputs; backward() walks the graph
// from the outputs in dependency order and accumulates gradients into the leaves' .grad.
//
//   Tensor w = randn({3, 4}).requires_grad_();
//   Tensor loss = (x.matmul(w.t()) - y).pow(2).mean();
//   loss.backward();                  // w.grad() now holds d loss / d w
//   { NoGradGuard g; w.sub_(w.grad() * 0.1); }   // updates outside the graph
//
// Backward formulas are built from the same dispatched kiln ops as the forward, so the
// backward pass runs on whatever device the forward ran on.
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "kiln/tensor.h"

namespace kiln {

class Node;

// One input of a Node: the gradient for output `input_nr` of `fn`'s forward op.
struct Edge {
  std::shared_ptr<Node> fn;
  uint32_t input_nr = 0;
  bool valid() const { return fn != nullptr; }
};

// What a gradient must look like: the shape, dtype and device of the forward tensor.
struct TensorGeometry {
  Shape shape;
  DType dtype = DType::Float32;
  Device device = kCpu;
  bool defined = false;
  TensorGeometry() = default;
  explicit TensorGeometry(const Tensor& t);
};

// A tensor saved for backward, with its storage version at the time it was saved.
// unpack() raises kiln::Error when the tensor was modified in place since, or when the
// graph's saved tensors were already freed by an earlier backward.
class SavedVariable {
 public:
  SavedVariable() = default;
  explicit SavedVariable(const Tensor& t);  // t may be undefined (an absent optional input)
  Tensor unpack(const std::string& node_name) const;
  void release() { data_ = Tensor(); released_ = true; }
  bool defined() const { return was_defined_; }

 private:
  Tensor data_;               // detached: shares storage, holds no autograd history (no cycles)
  uint64_t saved_version_ = 0;
  bool was_defined_ = false;
  bool released_ = false;
};

// A backward function in the graph. next_edges[i] receives the gradient for the forward
// op's input i; apply() gets one gradient per forward output.
class Node {
 public:
  Node();
  virtual ~Node() = default;
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  virtual std::string name() const = 0;
  // grad_outputs[i] is the gradient of forward output i (zeros when nothing flowed into it).
  // Returns one gradient per next edge; undefined means "no gradient" for that input.
  virtual std::vector<Tensor> apply(std::vector<Tensor>&& grad_outputs) = 0;
  // Frees saved tensors after a backward without retain_graph.
  virtual void release_variables() {}

  bool needs_input_grad(size_t i) const { return i < next_edges.size() && next_edges[i].valid(); }

  std::vector<Edge> next_edges;
  std::vector<TensorGeometry> input_geometry;   // per next edge: its forward input
  std::vector<TensorGeometry> output_geometry;  // per forward output
  uint64_t sequence_nr = 0;                     // creation order; later nodes run first
  // Non-leaf tensors that asked for retain_grad(): (forward output index, tensor).
  std::vector<std::pair<uint32_t, std::weak_ptr<TensorImpl>>> retained;
};

// Per-tensor autograd state (TensorImpl::autograd), created on first use.
struct AutogradMeta {
  bool requires_grad = false;         // set by the user, on leaves
  Tensor grad;                        // accumulated gradient (leaves, or retain_grad())
  std::shared_ptr<Node> grad_fn;      // the node that produced this tensor; null for leaves
  uint32_t output_nr = 0;             // which output of grad_fn this tensor is
  bool retains_grad = false;
  std::weak_ptr<Node> grad_accumulator;  // leaves: the AccumulateGrad node feeding .grad
  // Serialises what concurrent backward() calls do to this tensor (as PyTorch's per-leaf
  // lock): creating grad_accumulator and accumulating into grad.
  std::mutex mutex;
  // A view recorded under autograd: the tensor whose storage it shares (never itself a view),
  // and the storage version when its history was set. A later in-place change of the base
  // (or of a sibling view) makes the view take its gradient through the base's new history.
  Tensor view_base;
  uint64_t view_version = 0;
};

namespace autograd {

// Grad mode (thread-local): when off, ops record nothing, as under torch.no_grad().
bool is_grad_enabled();
void set_grad_enabled(bool enabled);

class NoGradGuard {
 public:
  NoGradGuard() : prev_(is_grad_enabled()) { set_grad_enabled(false); }
  ~NoGradGuard() { set_grad_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

class EnableGradGuard {
 public:
  EnableGradGuard() : prev_(is_grad_enabled()) { set_grad_enabled(true); }
  ~EnableGradGuard() { set_grad_enabled(prev_); }
  EnableGradGuard(const EnableGradGuard&) = delete;
  EnableGradGuard& operator=(const EnableGradGuard&) = delete;

 private:
  bool prev_;
};

// Backward from several outputs at once (torch.autograd.backward). grad_tensors[i] is
// the gradient of tensors[i]; it may be omitted (or undefined) only for one-element outputs.
void backward(const std::vector<Tensor>& tensors, const std::vector<Tensor>& grad_tensors = {},
              bool retain_graph = false);

// The gradients of outputs with respect to inputs (torch.autograd.grad): returned, not
// accumulated into any .grad; undefined for an input the outputs do not depend on.
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs = {}, bool retain_graph = false);

// The edge a gradient for t flows into: t's grad_fn, its leaf accumulator, or invalid.
Edge gradient_edge(const Tensor& t);

// Sums grad over the dims that broadcasting expanded, so that it has `shape`
// (leading dims dropped, size-1 dims kept with size 1).
Tensor sum_to(const Tensor& grad, const Shape& shape);

// Number of nodes reachable from t's grad_fn (for tests and debugging).
size_t graph_size(const Tensor& t);

}  // namespace autograd

using autograd::EnableGradGuard;
using autograd::NoGradGuard;

}  // namespace kiln
