// From the bytes of a model file to a validated Graph: protobuf parse, ONNX's checker
// and shape inference (which reject malformed graphs and inconsistent shapes), then
// kiln's own checks, so that running the graph later only meets data-dependent errors.
#include <set>
#include <unordered_map>

#include "onnx/checker.h"
#include "onnx/shape_inference/implementation.h"
#include "src/onnx/graph.h"
#include "src/onnx/op_context.h"
#include "src/onnx/tensor_proto.h"

namespace kiln::onnx::detail {

namespace {

constexpr const char* kOp = "onnx::load";
constexpr int64_t kMinOpset = 6, kMaxOpset = 17;  // 6: the pytorch-converted test models

ValueInfo value_info(const ::onnx::ValueInfoProto& v, const std::string& source, const char* role) {
  ValueInfo out;
  out.name = v.name();
  KILN_CHECK(v.type().has_tensor_type(), kOp, source, ": graph ", role, " '", v.name(),
             "' is not a tensor (sequences, maps and optionals are not supported)");
  const auto& tt = v.type().tensor_type();
  out.type = onnx_type_name(tt.elem_type());
  KILN_CHECK(dtype_from_onnx(tt.elem_type()).has_value(), kOp, source, ": graph ", role, " '", v.name(),
             "' has element type ", out.type, ", which kiln does not support");
  if (tt.has_shape()) {
    out.has_shape = true;
    for (const auto& d : tt.shape().dim()) out.dims.push_back(d.has_dim_value() ? d.dim_value() : -1);
  }
  return out;
}

Attribute attribute(const ::onnx::AttributeProto& a, const std::string& where) {
  using AP = ::onnx::AttributeProto;
  Attribute out;
  switch (a.type()) {
    case AP::INT: out.kind = Attribute::Kind::Int; out.i = a.i(); break;
    case AP::FLOAT: out.kind = Attribute::Kind::Float; out.f = a.f(); break;
    case AP::STRING: out.kind = Attribute::Kind::String; out.s = a.s(); break;
    case AP::TENSOR:
      out.kind = Attribute::Kind::Tensor;
      out.t = tensor_from_proto(a.t(), kOp, where + ": attribute '" + a.name() + "'");
      break;
    case AP::INTS: out.kind = Attribute::Kind::Ints; out.ints.assign(a.ints().begin(), a.ints().end()); break;
    case AP::FLOATS: out.kind = Attribute::Kind::Floats; out.floats.assign(a.floats().begin(), a.floats().end()); break;
    case AP::STRINGS:
      out.kind = Attribute::Kind::Strings;
      out.strings.assign(a.strings().begin(), a.strings().end());
      break;
    case AP::GRAPH:
    case AP::GRAPHS:
      KILN_FAIL(kOp, where, ": attribute '", a.name(), "' is a subgraph; control flow is not supported");
    default:
      KILN_FAIL(kOp, where, ": attribute '", a.name(), "' has type ",
                AP::AttributeType_IsValid(a.type()) ? AP::AttributeType_Name(a.type()) : std::to_string(a.type()),
                ", which kiln does not read");
  }
  return out;
}

// A Constant node's value, computed once at load.
Tensor constant_value(const Node& n, const std::string& where) {
  KILN_CHECK(n.attributes.size() == 1, kOp, where, ": a Constant needs exactly one value attribute, got ",
             n.attributes.size());
  const auto& [name, a] = *n.attributes.begin();
  if (name == "value" && a.kind == Attribute::Kind::Tensor) return a.t;
  if (name == "value_float" && a.kind == Attribute::Kind::Float) return scalar_tensor(float(a.f), DType::Float32);
  if (name == "value_int" && a.kind == Attribute::Kind::Int) return scalar_tensor(a.i, DType::Int64);
  if (name == "value_floats" && a.kind == Attribute::Kind::Floats) {
    return tensor<float>(std::vector<float>(a.floats.begin(), a.floats.end()), {int64_t(a.floats.size())});
  }
  if (name == "value_ints" && a.kind == Attribute::Kind::Ints) return tensor<int64_t>(a.ints, {int64_t(a.ints.size())});
  KILN_FAIL(kOp, where, ": Constant attribute '", name, "' of type ", attribute_kind_name(a.kind),
            " is not supported (sparse and string constants are not)");
}

int64_t default_opset(const ::onnx::ModelProto& m, const std::string& source) {
  int64_t opset = -1;
  for (const auto& o : m.opset_import()) {
    if (o.domain().empty() || o.domain() == "ai.onnx") opset = o.version();
  }
  KILN_CHECK(opset >= 0, kOp, source, ": the model imports no ai.onnx opset");
  KILN_CHECK(opset >= kMinOpset && opset <= kMaxOpset, kOp, source, ": opset ", opset,
             " is outside the range kiln reads (", kMinOpset, " to ", kMaxOpset, ")");
  return opset;
}

}  // namespace

std::shared_ptr<Graph> parse_model(const std::string& bytes, const std::string& source) {
  ::onnx::ModelProto model;
  KILN_CHECK(model.ParseFromString(bytes), kOp, source, ": not a valid ONNX model (protobuf parse failed)");
  KILN_CHECK(model.has_graph(), kOp, source, ": the model has no graph");
  try {
    ::onnx::checker::check_model(model);
  } catch (const std::exception& e) {
    KILN_FAIL(kOp, source, ": the ONNX checker rejects the model: ", e.what());
  }
  auto g = std::make_shared<Graph>();
  g->source = source;
  g->producer = model.producer_name();
  g->opset = default_opset(model, source);
  // Nodes of other domains (and model-local functions) are refused below, so shape
  // inference only sees ai.onnx ops; strict mode turns any inconsistency into an error.
  try {
    ::onnx::ShapeInferenceOptions options(/*check_type=*/true, /*strict_mode=*/1, /*data_prop=*/false);
    ::onnx::shape_inference::InferShapes(model, ::onnx::OpSchemaRegistry::Instance(), options);
  } catch (const std::exception& e) {
    KILN_FAIL(kOp, source, ": shape inference finds the graph inconsistent: ", e.what());
  }

  const auto& graph = model.graph();
  KILN_CHECK(graph.sparse_initializer_size() == 0, kOp, source, ": sparse initializers are not supported");
  std::set<std::string> defined;  // values available so far, in graph order
  for (const auto& init : graph.initializer()) {
    KILN_CHECK(defined.insert(init.name()).second, kOp, source, ": initializer '", init.name(), "' is defined twice");
    g->constants.push_back({init.name(), tensor_from_proto(init, kOp, source + ": initializer '" + init.name() + "'"), true});
  }
  for (const auto& in : graph.input()) {
    if (defined.count(in.name())) continue;  // an initializer's default value (IR < 4)
    g->inputs.push_back(value_info(in, source, "input"));
    defined.insert(in.name());
  }
  for (const auto& out : graph.output()) g->outputs.push_back(value_info(out, source, "output"));

  for (int i = 0; i < graph.node_size(); ++i) {
    const auto& np = graph.node(i);
    Node n;
    n.name = np.name().empty() ? std::string(1, '#').append(std::to_string(i)) : np.name();
    n.op_type = np.op_type();
    const std::string where = source + ": node '" + n.name + "' (" + n.op_type + ")";
    KILN_CHECK(np.domain().empty() || np.domain() == "ai.onnx", kOp, where, ": domain '", np.domain(),
               "' is not supported (only ai.onnx)");
    if (n.op_type != "Constant") {
      const OpEntry* entry = find_op(n.op_type);
      KILN_CHECK(entry != nullptr, kOp, where, ": operator ", n.op_type, " is not supported");
      KILN_CHECK(g->opset >= entry->min_opset, kOp, where, ": kiln implements ", n.op_type, " from opset ",
                 entry->min_opset, ", the model uses opset ", g->opset);
    }
    for (const auto& a : np.attribute()) {
      KILN_CHECK(n.attributes.emplace(a.name(), attribute(a, where)).second, kOp, where, ": attribute '",
                 a.name(), "' is given twice");
    }
    for (const auto& in : np.input()) {
      KILN_CHECK(in.empty() || defined.count(in), kOp, where, ": input '", in,
                 "' is not defined by an earlier node, an input or an initializer");
      n.inputs.push_back(in);
    }
    for (const auto& out : np.output()) {
      KILN_CHECK(out.empty() || defined.insert(out).second, kOp, where, ": output '", out, "' is defined twice");
      n.outputs.push_back(out);
    }
    if (n.op_type == "Constant") {
      KILN_CHECK(n.outputs.size() == 1 && !n.outputs[0].empty(), kOp, where, ": a Constant has one output");
      g->constants.push_back({n.outputs[0], constant_value(n, where), false});
      continue;
    }
    g->nodes.push_back(std::move(n));
  }
  for (const auto& out : g->outputs) {
    KILN_CHECK(defined.count(out.name), kOp, source, ": graph output '", out.name, "' is never computed");
  }

  // Lifetimes: after its last reader, a node's intermediate value is dropped.
  std::unordered_map<std::string, size_t> last_use;
  for (size_t i = 0; i < g->nodes.size(); ++i) {
    for (const auto& in : g->nodes[i].inputs) {
      if (!in.empty()) last_use[in] = i;
    }
  }
  std::set<std::string> keep;
  for (const auto& out : g->outputs) keep.insert(out.name);
  for (const auto& c : g->constants) keep.insert(c.name);
  for (const auto& [name, idx] : last_use) {
    if (keep.count(name)) continue;
    g->nodes[idx].free_after.push_back(g->value_names.size());
    g->value_names.push_back(name);
  }
  return g;
}

}  // namespace kiln::onnx::detail
