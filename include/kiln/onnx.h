#pragma once
// ONNX import and export (built when libonnx-dev is present: the kiln::onnx target).
//
//   auto model = kiln::onnx::load("model.onnx");   // validated; a kiln::Error otherwise
//   model->to(Device::parse("cuda:0"));             // initializers move like any parameter
//   std::vector<Tensor> y = model->forward({x});    // runs the graph with kiln's ops
//   kiln::onnx::save(my_module, {example_x}, "out.onnx");  // opset 17, with the weights
//
// An imported model is an nn::Module: floating initializers are parameters (so it can be
// fine-tuned), other initializers and Constant values are buffers; names keep ONNX's dots
// as module nesting, so state_dict() names match the ONNX initializer names.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kiln/nn/module.h"
#include "kiln/tensor.h"

namespace kiln::onnx {

namespace detail {
struct Graph;  // src/onnx/graph.h: the validated graph, free of protobuf types
}

// One graph input or output: its name, element type (when kiln has it) and the static
// dims the model declares (-1 where a dim is symbolic or unknown).
struct ValueInfo {
  std::string name;
  std::string type;  // ONNX's element type name: "float", "int64", ...
  std::vector<int64_t> dims;
  bool has_shape = false;
};

class Model : public nn::Module {
 public:
  explicit Model(std::shared_ptr<const detail::Graph> graph);
  std::string type_name() const override { return "onnx::Model"; }

  // Runs the graph. Inputs are given in the order of inputs() (graph inputs that have an
  // initializer are defaults and not listed); they move to the model's device (that of
  // its parameters and buffers, else the first input's). Outputs follow outputs().
  std::vector<Tensor> forward(const std::vector<Tensor>& inputs);
  std::map<std::string, Tensor> forward(const std::map<std::string, Tensor>& inputs);
  Tensor forward(const Tensor& x) override;  // one input, one output

  const std::vector<ValueInfo>& inputs() const;
  const std::vector<ValueInfo>& outputs() const;
  int64_t opset() const;  // of the default (ai.onnx) domain
  std::string producer() const;

 private:
  std::shared_ptr<const detail::Graph> graph_;
  std::vector<std::pair<std::string, Tensor>> constants_;  // initializer/Constant name -> handle
};

// Reads, checks (ONNX's checker and shape inference, then kiln's own validation: every
// operator supported at the model's opset, every attribute and constant well formed) and
// builds a module on the CPU. Any problem is a kiln::Error starting "[onnx::load]" that
// names the file and, for a node, the node and its op.
std::shared_ptr<Model> load(const std::string& path);
// The same from the bytes of a model file; name is used in messages.
std::shared_ptr<Model> load_from_bytes(const std::string& bytes, const std::string& name = "<memory>");

// Reads a TensorProto file (the inputs/outputs of ONNX's test data) into a CPU tensor.
Tensor load_tensor(const std::string& path);

// The operators the importer runs (ai.onnx domain), sorted.
std::vector<std::string> supported_operators();
bool is_supported_operator(const std::string& op_type);

// Traces module's forward on example_inputs (each forward call of its known layers
// becomes ONNX nodes) and writes an opset-17 model with the weights as initializers; the
// result passes ONNX's checker. Raises kiln::Error "[onnx::save]" naming any layer it
// cannot express.
void save(nn::Module& module, const std::vector<Tensor>& example_inputs, const std::string& path);

}  // namespace kiln::onnx
