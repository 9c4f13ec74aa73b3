// OpContext's input and attribute access, and the operator registry.
#include "src/onnx/op_context.h"

#include <algorithm>
#include <map>

#include "kiln/ops.h"

namespace kiln::onnx::detail {

const char* attribute_kind_name(Attribute::Kind k) {
  switch (k) {
    case Attribute::Kind::Int: return "int";
    case Attribute::Kind::Float: return "float";
    case Attribute::Kind::String: return "string";
    case Attribute::Kind::Tensor: return "tensor";
    case Attribute::Kind::Ints: return "ints";
    case Attribute::Kind::Floats: return "floats";
    case Attribute::Kind::Strings: return "strings";
  }
  return "?";
}

const Tensor& OpContext::input(size_t i) const {
  check(has_input(i), "input ", i, " is required and missing");
  return inputs_[i];
}

std::vector<int64_t> OpContext::input_ints(size_t i) const {
  const Tensor& t = input(i);
  check(t.dtype() == DType::Int64 || t.dtype() == DType::Int32, "input ", i, " ('", node_.inputs[i],
        "') must be int32 or int64, got ", dtype_name(t.dtype()));
  check(t.dim() <= 1, "input ", i, " ('", node_.inputs[i], "') must be a scalar or 1-D, got shape ",
        shape_str(t.shape()));
  return t.to_vector<int64_t>();
}

std::vector<double> OpContext::input_doubles(size_t i) const {
  const Tensor& t = input(i);
  return t.to_vector<double>();
}

const Attribute* OpContext::find(const std::string& name, Attribute::Kind kind) const {
  const auto it = node_.attributes.find(name);
  if (it == node_.attributes.end()) return nullptr;
  check(it->second.kind == kind, "attribute '", name, "' must be of type ", attribute_kind_name(kind), ", got ",
        attribute_kind_name(it->second.kind));
  return &it->second;
}

int64_t OpContext::attr_int(const std::string& name) const {
  const Attribute* a = find(name, Attribute::Kind::Int);
  check(a != nullptr, "attribute '", name, "' is required");
  return a->i;
}
int64_t OpContext::attr_int(const std::string& name, int64_t fallback) const {
  const Attribute* a = find(name, Attribute::Kind::Int);
  return a ? a->i : fallback;
}
double OpContext::attr_float(const std::string& name, double fallback) const {
  const Attribute* a = find(name, Attribute::Kind::Float);
  return a ? a->f : fallback;
}
std::string OpContext::attr_string(const std::string& name, const std::string& fallback) const {
  const Attribute* a = find(name, Attribute::Kind::String);
  return a ? a->s : fallback;
}
std::vector<int64_t> OpContext::attr_ints(const std::string& name) const {
  const Attribute* a = find(name, Attribute::Kind::Ints);
  check(a != nullptr, "attribute '", name, "' is required");
  return a->ints;
}
std::vector<int64_t> OpContext::attr_ints(const std::string& name, const std::vector<int64_t>& fallback) const {
  const Attribute* a = find(name, Attribute::Kind::Ints);
  return a ? a->ints : fallback;
}
std::optional<std::vector<int64_t>> OpContext::attr_ints_opt(const std::string& name) const {
  const Attribute* a = find(name, Attribute::Kind::Ints);
  if (!a) return std::nullopt;
  return a->ints;
}
std::vector<double> OpContext::attr_floats(const std::string& name, const std::vector<double>& fallback) const {
  const Attribute* a = find(name, Attribute::Kind::Floats);
  return a ? a->floats : fallback;
}
Tensor OpContext::attr_tensor(const std::string& name) const {
  const Attribute* a = find(name, Attribute::Kind::Tensor);
  check(a != nullptr, "attribute '", name, "' is required");
  return a->t;
}

Tensor OpContext::make_ints(const std::vector<int64_t>& v, const Shape& shape) const {
  return tensor<int64_t>(v, shape).to(device_);
}

Tensor OpContext::scalar_like(double v, const Tensor& like) const {
  return full({}, v, TensorOptions(like.dtype()).device(like.device()));
}

int64_t norm_axis(const OpContext& c, int64_t axis, int64_t rank) {
  const int64_t lo = rank == 0 ? -1 : -rank, hi = rank == 0 ? 1 : rank;
  c.check(axis >= lo && axis < hi, "axis ", axis, " is out of range for rank ", rank);
  return axis < 0 ? axis + std::max<int64_t>(rank, 1) : axis;
}

namespace {
std::map<std::string, OpEntry>& entries() {
  static std::map<std::string, OpEntry> r;
  return r;
}
const std::map<std::string, OpEntry>& registry() {
  static const bool filled = [] {
    register_elementwise_ops();
    register_reduce_ops();
    register_shape_ops();
    register_nn_ops();
    register_loss_ops();
    register_rounding_ops();
    register_resize_ops();
    return true;
  }();
  (void)filled;
  return entries();
}
}  // namespace

void register_op(const char* op_type, OpFn fn, int64_t min_opset) { entries()[op_type] = OpEntry{fn, min_opset}; }

const OpEntry* find_op(const std::string& op_type) {
  const auto it = registry().find(op_type);
  return it == registry().end() ? nullptr : &it->second;
}

std::vector<std::string> registered_ops() {
  std::vector<std::string> names;
  for (const auto& [k, v] : registry()) names.push_back(k);
  return names;
}

}  // namespace kiln::onnx::detail
