#pragma once
// What an ONNX operator implementation sees: the node's inputs as kiln tensors, typed
// attribute access with ONNX's defaults, and the opset. Implementations are plain
// functions registered by op type (register_op); they build their outputs from kiln's
// public ops only. Errors go through fail(), which the runner prefixes with the node and op.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kiln/error.h"
#include "kiln/tensor.h"
#include "src/onnx/graph.h"

namespace kiln::onnx::detail {

class OpContext {
 public:
  OpContext(const Node& node, int64_t opset, std::vector<Tensor> inputs, Device device)
      : node_(node), opset_(opset), inputs_(std::move(inputs)), device_(device) {}

  const Node& node() const { return node_; }
  int64_t opset() const { return opset_; }
  Device device() const { return device_; }
  size_t num_inputs() const { return inputs_.size(); }
  size_t num_outputs() const { return node_.outputs.size(); }
  bool output_wanted(size_t i) const { return i < node_.outputs.size() && !node_.outputs[i].empty(); }

  bool has_input(size_t i) const { return i < inputs_.size() && inputs_[i].defined(); }
  const Tensor& input(size_t i) const;                    // required: fails when absent
  Tensor input_or(size_t i, const Tensor& fallback) const { return has_input(i) ? inputs_[i] : fallback; }
  const std::vector<Tensor>& inputs() const { return inputs_; }
  // An integer tensor input read to the host (shapes, axes, pads, ...).
  std::vector<int64_t> input_ints(size_t i) const;
  std::vector<double> input_doubles(size_t i) const;

  bool has_attr(const std::string& name) const { return node_.attributes.count(name) != 0; }
  int64_t attr_int(const std::string& name) const;  // required
  int64_t attr_int(const std::string& name, int64_t fallback) const;
  double attr_float(const std::string& name, double fallback) const;
  std::string attr_string(const std::string& name, const std::string& fallback) const;
  std::vector<int64_t> attr_ints(const std::string& name) const;  // required
  std::vector<int64_t> attr_ints(const std::string& name, const std::vector<int64_t>& fallback) const;
  std::optional<std::vector<int64_t>> attr_ints_opt(const std::string& name) const;
  std::vector<double> attr_floats(const std::string& name, const std::vector<double>& fallback) const;
  Tensor attr_tensor(const std::string& name) const;  // required

  // A tensor of host values on this node's device.
  Tensor make_ints(const std::vector<int64_t>& v, const Shape& shape) const;
  Tensor scalar_like(double v, const Tensor& like) const;  // 0-d, like's dtype and device

  template <typename... Args>
  [[noreturn]] void fail(const Args&... args) const {
    std::ostringstream os;
    (os << ... << args);
    throw Error(os.str());  // the runner adds "[onnx] node 'n' (Op): "
  }
  template <typename... Args>
  void check(bool cond, const Args&... args) const {
    if (!cond) fail(args...);
  }

 private:
  const Attribute* find(const std::string& name, Attribute::Kind kind) const;
  const Node& node_;
  int64_t opset_;
  std::vector<Tensor> inputs_;
  Device device_;
};

using OpFn = std::vector<Tensor> (*)(OpContext&);

struct OpEntry {
  OpFn fn = nullptr;
  int64_t min_opset = 1;  // the oldest opset whose semantics fn implements
};

// Registers fn for op_type; each ops_<family>.cpp has one register_<family>_ops() that
// the registry calls on first use (explicit calls: a static library drops files that
// only hold static registrars).
void register_op(const char* op_type, OpFn fn, int64_t min_opset = 1);
const OpEntry* find_op(const std::string& op_type);
std::vector<std::string> registered_ops();
void register_elementwise_ops();
void register_reduce_ops();
void register_shape_ops();
void register_nn_ops();
void register_loss_ops();
void register_rounding_ops();
void register_resize_ops();

// Whether any element of t is zero (one host read).
bool any_zero(const Tensor& t);

// Axis normalisation with the node's error prefix: axis in [-rank, rank).
int64_t norm_axis(const OpContext& c, int64_t axis, int64_t rank);

}  // namespace kiln::onnx::detail

