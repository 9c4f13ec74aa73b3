// TensorProto <-> Tensor. A tensor's data comes either as raw little-endian bytes or as
// one of the typed repeated fields; both are checked against the dims before anything
// is allocated, so a hostile file cannot make us allocate more than it holds.
#include "src/onnx/tensor_proto.h"

#include <cctype>
#include <cstring>
#include <limits>

#include "kiln/ops.h"

namespace kiln::onnx::detail {

using ::onnx::TensorProto;

std::optional<DType> dtype_from_onnx(int32_t elem_type) {
  switch (elem_type) {
    case TensorProto::FLOAT: return DType::Float32;
    case TensorProto::DOUBLE: return DType::Float64;
    case TensorProto::FLOAT16: return DType::Float16;
    case TensorProto::BFLOAT16: return DType::BFloat16;
    case TensorProto::INT32: return DType::Int32;
    case TensorProto::INT64: return DType::Int64;
    case TensorProto::BOOL: return DType::Bool;
    default: return std::nullopt;
  }
}

int32_t onnx_from_dtype(DType t) {
  switch (t) {
    case DType::Float32: return TensorProto::FLOAT;
    case DType::Float64: return TensorProto::DOUBLE;
    case DType::Float16: return TensorProto::FLOAT16;
    case DType::BFloat16: return TensorProto::BFLOAT16;
    case DType::Int32: return TensorProto::INT32;
    case DType::Int64: return TensorProto::INT64;
    case DType::Bool: return TensorProto::BOOL;
  }
  return TensorProto::UNDEFINED;
}

std::string onnx_type_name(int32_t elem_type) {
  if (!::onnx::TensorProto_DataType_IsValid(elem_type)) return "type " + std::to_string(elem_type);
  std::string s = ::onnx::TensorProto_DataType_Name(static_cast<::onnx::TensorProto_DataType>(elem_type));
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

int32_t onnx_type_code(const std::string& name) {
  std::string upper = name;
  for (char& c : upper) c = char(std::toupper(static_cast<unsigned char>(c)));
  ::onnx::TensorProto_DataType t;
  return ::onnx::TensorProto_DataType_Parse(upper, &t) ? int32_t(t) : 0;
}

namespace {

// Copies n values of the typed field into the tensor's elements, converting.
template <typename Dst, typename Field>
void copy_field(const Field& field, Tensor& t) {
  Dst* out = t.data<Dst>();
  for (int i = 0; i < field.size(); ++i) out[i] = static_cast<Dst>(field.Get(i));
}

}  // namespace

Tensor tensor_from_proto(const TensorProto& proto, const char* op, const std::string& what) {
  KILN_CHECK(proto.data_location() != TensorProto::EXTERNAL && proto.external_data_size() == 0, op, what,
             ": tensor '", proto.name(), "' keeps its data in an external file, which kiln does not read");
  KILN_CHECK(!proto.has_segment(), op, what, ": tensor '", proto.name(), "' is segmented, which kiln does not read");
  const auto dtype = dtype_from_onnx(proto.data_type());
  KILN_CHECK(dtype.has_value(), op, what, ": tensor '", proto.name(), "' has element type ",
             onnx_type_name(proto.data_type()), ", which kiln does not support");
  Shape shape;
  int64_t numel = 1;
  for (int64_t d : proto.dims()) {
    KILN_CHECK(d >= 0, op, what, ": tensor '", proto.name(), "' has a negative dim ", d);
    KILN_CHECK(d == 0 || numel <= std::numeric_limits<int64_t>::max() / d, op, what, ": tensor '", proto.name(),
               "' has more elements than fit in int64");
    numel *= d;
    shape.push_back(d);
  }
  const size_t esize = element_size(*dtype);
  Tensor t;
  if (proto.has_raw_data()) {
    const std::string& raw = proto.raw_data();
    KILN_CHECK(numel <= int64_t(raw.size()) && raw.size() == size_t(numel) * esize, op, what, ": tensor '",
               proto.name(), "' of shape ", shape_str(shape), " and type ", dtype_name(*dtype), " needs ",
               numel, " elements, its raw data holds ", raw.size(), " bytes");
    t = empty(shape, *dtype);
    if (numel > 0) std::memcpy(t.data_ptr(), raw.data(), raw.size());
    if (*dtype == DType::Bool) {  // any non-zero byte is true; kiln's bools must be 0 or 1
      auto* b = static_cast<uint8_t*>(t.data_ptr());
      for (int64_t i = 0; i < numel; ++i) b[i] = b[i] != 0;
    }
    return t;
  }
  int64_t have = 0;
  switch (proto.data_type()) {
    case TensorProto::FLOAT: have = proto.float_data_size(); break;
    case TensorProto::DOUBLE: have = proto.double_data_size(); break;
    case TensorProto::INT64: have = proto.int64_data_size(); break;
    default: have = proto.int32_data_size(); break;  // int32, bool, float16, bfloat16
  }
  KILN_CHECK(have == numel, op, what, ": tensor '", proto.name(), "' of shape ", shape_str(shape), " needs ",
             numel, " values, it holds ", have);
  t = empty(shape, *dtype);
  switch (proto.data_type()) {
    case TensorProto::FLOAT: copy_field<float>(proto.float_data(), t); break;
    case TensorProto::DOUBLE: copy_field<double>(proto.double_data(), t); break;
    case TensorProto::INT64: copy_field<int64_t>(proto.int64_data(), t); break;
    case TensorProto::INT32: copy_field<int32_t>(proto.int32_data(), t); break;
    case TensorProto::BOOL: {
      bool* out = t.data<bool>();
      for (int64_t i = 0; i < numel; ++i) out[i] = proto.int32_data(int(i)) != 0;
      break;
    }
    default: {  // float16/bfloat16: the low 16 bits of each int32 are the bits
      auto* out = static_cast<uint16_t*>(t.data_ptr());
      for (int64_t i = 0; i < numel; ++i) out[i] = uint16_t(proto.int32_data(int(i)) & 0xffff);
      break;
    }
  }
  return t;
}

void tensor_to_proto(const Tensor& t, const std::string& name, TensorProto& proto) {
  const Tensor c = t.detach().to(kCpu).contiguous();
  proto.set_name(name);
  proto.set_data_type(onnx_from_dtype(c.dtype()));
  for (int64_t d : c.shape()) proto.add_dims(d);
  proto.set_raw_data(std::string(static_cast<const char*>(c.data_ptr()), c.nbytes()));
}

}  // namespace kiln::onnx::detail
