// kiln::onnx::Model: registers a Graph's constants as parameters and buffers, and runs
// its nodes in order with each operator's implementation (op_context.h).
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "kiln/ops.h"
#include "kiln/onnx.h"
#include "src/onnx/graph.h"
#include "src/onnx/op_context.h"
#include "src/onnx/tensor_proto.h"

namespace kiln::onnx {

namespace {

constexpr const char* kRunOp = "onnx";

// A plain module that holds the nested part of dotted initializer names ("conv1.weight":
// a child "conv1" holding "weight"), so that state_dict() names equal ONNX's names.
class Holder : public nn::Module {
 public:
  std::string type_name() const override { return "onnx::Scope"; }
  Tensor add(const std::string& name, const Tensor& t, bool param, bool persistent) {
    return param ? register_parameter(name, t) : register_buffer(name, t, persistent);
  }
  std::shared_ptr<Holder> child(const std::string& name) {
    for (const auto& [n, m] : named_children()) {
      if (n == name) {
        auto h = std::dynamic_pointer_cast<Holder>(m);
        KILN_CHECK(h != nullptr, "onnx::load", "name '", name, "' is used twice");
        return h;
      }
    }
    return register_module(name, std::make_shared<Holder>());
  }
};

std::vector<std::string> split_name(const std::string& name) {
  std::vector<std::string> parts;
  std::string cur;
  for (char c : name) {
    if (c == '.') {
      parts.push_back(cur.empty() ? "_" : cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  parts.push_back(cur.empty() ? "_" : cur);
  return parts;
}

std::string read_file(const std::string& path, const char* op) {
  std::ifstream f(path, std::ios::binary);
  KILN_CHECK(f.good(), op, "cannot open '", path, "'");
  std::ostringstream ss;
  ss << f.rdbuf();
  KILN_CHECK(!f.bad(), op, "cannot read '", path, "'");
  return ss.str();
}

std::string dims_str(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? ", " : "") + (dims[i] < 0 ? std::string("?") : std::to_string(dims[i]));
  return s + "]";
}

void check_input(const ValueInfo& info, const Tensor& t) {
  KILN_CHECK(t.defined(), kRunOp, "input '", info.name, "' is undefined");
  // A floating input may be of any floating dtype: a model moved with to(DType) takes its new dtype.
  const std::string type = detail::onnx_type_name(detail::onnx_from_dtype(t.dtype()));
  const auto declared = detail::dtype_from_onnx(detail::onnx_type_code(info.type));
  KILN_CHECK(type == info.type || (declared && is_floating(*declared) && is_floating(t.dtype())), kRunOp, "input '",
             info.name, "' must be ", info.type, ", got ", dtype_name(t.dtype()));
  if (!info.has_shape) return;
  bool ok = int64_t(info.dims.size()) == t.dim();
  for (size_t d = 0; ok && d < info.dims.size(); ++d) ok = info.dims[d] < 0 || info.dims[d] == t.size(int64_t(d));
  KILN_CHECK(ok, kRunOp, "input '", info.name, "' must have shape ", dims_str(info.dims), ", got ",
             shape_str(t.shape()));
}

}  // namespace

Model::Model(std::shared_ptr<const detail::Graph> graph) : graph_(std::move(graph)) {
  for (const auto& c : graph_->constants) {
    const bool param = c.initializer && is_floating(c.value.dtype());
    const auto parts = split_name(c.name);
    Tensor handle;
    if (parts.size() == 1) {
      handle = param ? register_parameter(parts[0], c.value) : register_buffer(parts[0], c.value, c.initializer);
    } else {
      auto scope = [&] {
        std::shared_ptr<Holder> h;
        for (const auto& existing : named_children()) {
          if (existing.first == parts[0]) h = std::dynamic_pointer_cast<Holder>(existing.second);
        }
        return h ? h : register_module(parts[0], std::make_shared<Holder>());
      }();
      for (size_t i = 1; i + 1 < parts.size(); ++i) scope = scope->child(parts[i]);
      handle = scope->add(parts.back(), c.value, param, c.initializer);
    }
    constants_.emplace_back(c.name, handle);
  }
}

const std::vector<ValueInfo>& Model::inputs() const { return graph_->inputs; }
const std::vector<ValueInfo>& Model::outputs() const { return graph_->outputs; }
int64_t Model::opset() const { return graph_->opset; }
std::string Model::producer() const { return graph_->producer; }

std::vector<Tensor> Model::forward(const std::vector<Tensor>& inputs) {
  const auto& g = *graph_;
  KILN_CHECK(inputs.size() == g.inputs.size(), kRunOp, g.source, " takes ", g.inputs.size(), " inputs, got ",
             inputs.size());
  Device device = !constants_.empty() ? constants_[0].second.device()
                  : !inputs.empty() && inputs[0].defined() ? inputs[0].device()
                                                          : kCpu;
  std::unordered_map<std::string, Tensor> env;
  for (const auto& [name, t] : constants_) env[name] = t;
  for (size_t i = 0; i < inputs.size(); ++i) {
    check_input(g.inputs[i], inputs[i]);
    env[g.inputs[i].name] = inputs[i].to(device);
  }
  for (const auto& n : g.nodes) {
    std::vector<Tensor> args;
    args.reserve(n.inputs.size());
    for (const auto& name : n.inputs) args.push_back(name.empty() ? Tensor() : env.at(name));
    std::vector<Tensor> results;
    try {
      detail::OpContext ctx(n, g.opset, std::move(args), device);
      results = detail::find_op(n.op_type)->fn(ctx);
      for (size_t j = 0; j < n.outputs.size(); ++j) {
        if (n.outputs[j].empty()) continue;
        KILN_CHECK(j < results.size() && results[j].defined(), kRunOp, "output ", j, " is not produced");
      }
    } catch (const std::exception& e) {
      KILN_FAIL(kRunOp, "node '", n.name, "' (", n.op_type, "): ", e.what());
    }
    for (size_t j = 0; j < n.outputs.size(); ++j) {
      if (!n.outputs[j].empty()) env[n.outputs[j]] = results[j];
    }
    for (size_t v : n.free_after) env.erase(g.value_names[v]);
  }
  std::vector<Tensor> outs;
  for (const auto& o : g.outputs) {
    const Tensor& t = env.at(o.name);
    if (o.has_shape) {
      bool ok = int64_t(o.dims.size()) == t.dim();
      for (size_t d = 0; ok && d < o.dims.size(); ++d) ok = o.dims[d] < 0 || o.dims[d] == t.size(int64_t(d));
      KILN_CHECK(ok, kRunOp, g.source, ": output '", o.name, "' has shape ", shape_str(t.shape()),
                 ", the model declares ", dims_str(o.dims));
    }
    outs.push_back(t);
  }
  return outs;
}

std::map<std::string, Tensor> Model::forward(const std::map<std::string, Tensor>& inputs) {
  std::vector<Tensor> ordered;
  for (const auto& info : graph_->inputs) {
    const auto it = inputs.find(info.name);
    KILN_CHECK(it != inputs.end(), kRunOp, "input '", info.name, "' is missing");
    ordered.push_back(it->second);
  }
  KILN_CHECK(inputs.size() == ordered.size(), kRunOp, "got ", inputs.size(), " named inputs, the model takes ",
             ordered.size());
  const auto outs = forward(ordered);
  std::map<std::string, Tensor> named;
  for (size_t i = 0; i < outs.size(); ++i) named[graph_->outputs[i].name] = outs[i];
  return named;
}

Tensor Model::forward(const Tensor& x) {
  KILN_CHECK(graph_->inputs.size() == 1 && graph_->outputs.size() == 1, kRunOp, graph_->source, " has ",
             graph_->inputs.size(), " inputs and ", graph_->outputs.size(),
             " outputs; forward(Tensor) needs one of each (use forward(std::vector<Tensor>))");
  return forward(std::vector<Tensor>{x})[0];
}

std::shared_ptr<Model> load_from_bytes(const std::string& bytes, const std::string& name) {
  return std::make_shared<Model>(detail::parse_model(bytes, name));
}

std::shared_ptr<Model> load(const std::string& path) { return load_from_bytes(read_file(path, "onnx::load"), path); }

Tensor load_tensor(const std::string& path) {
  const std::string bytes = read_file(path, "onnx::load_tensor");
  ::onnx::TensorProto proto;
  KILN_CHECK(proto.ParseFromString(bytes), "onnx::load_tensor", path, ": not a TensorProto");
  return detail::tensor_from_proto(proto, "onnx::load_tensor", path);
}

std::vector<std::string> supported_operators() {
  auto ops = detail::registered_ops();
  ops.push_back("Constant");  // folded into buffers at load
  std::sort(ops.begin(), ops.end());
  return ops;
}

bool is_supported_operator(const std::string& op_type) {
  return op_type == "Constant" || detail::find_op(op_type) != nullptr;
}

}  // namespace kiln::onnx
