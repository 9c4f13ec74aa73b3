#pragma once
// The validated form of an ONNX graph that Model runs: plain structs, no protobuf types,
// so the runtime never touches the parsed file again.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "kiln/onnx.h"
#include "kiln/tensor.h"

namespace kiln::onnx::detail {

// An attribute's value: int, float, string, tensor, or a list of ints/floats/strings.
struct Attribute {
  enum class Kind { Int, Float, String, Tensor, Ints, Floats, Strings };
  Kind kind = Kind::Int;
  int64_t i = 0;
  double f = 0;
  std::string s;
  kiln::Tensor t;
  std::vector<int64_t> ints;
  std::vector<double> floats;
  std::vector<std::string> strings;
};
const char* attribute_kind_name(Attribute::Kind k);

struct Node {
  std::string name;     // may be empty in the file; then "#<index>"
  std::string op_type;
  std::vector<std::string> inputs;   // "" = an omitted optional input
  std::vector<std::string> outputs;  // "" = an omitted optional output
  std::map<std::string, Attribute> attributes;
  std::vector<size_t> free_after;    // values no later node reads: dropped after this node
};

struct Graph {
  std::string source;     // the file name, for messages
  std::string producer;
  int64_t opset = 0;      // of the default domain
  std::vector<ValueInfo> inputs;   // graph inputs without an initializer
  std::vector<ValueInfo> outputs;
  // Initializers (trainable when floating) and Constant node values, registered on the
  // Model as parameters and buffers.
  struct Constant {
    std::string name;
    kiln::Tensor value;
    bool initializer = true;
  };
  std::vector<Constant> constants;
  std::vector<Node> nodes;
  std::vector<std::string> value_names;  // index -> name for Node::free_after
};

// Builds a Graph from the bytes of a model file (parse, ONNX checker, shape inference,
// kiln's validation). Throws kiln::Error "[onnx::load] <name>: ...".
std::shared_ptr<Graph> parse_model(const std::string& bytes, const std::string& name);

}  // namespace kiln::onnx::detail
