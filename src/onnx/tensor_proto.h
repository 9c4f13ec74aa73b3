#pragma once
// ONNX TensorProto <-> kiln::Tensor, and ONNX element types <-> kiln dtypes.
#include <optional>
#include <string>

#include "kiln/tensor.h"
#include "onnx/onnx_pb.h"

namespace kiln::onnx::detail {

// kiln's dtype for an ONNX element type, or none when kiln has no such dtype.
std::optional<DType> dtype_from_onnx(int32_t elem_type);
int32_t onnx_from_dtype(DType t);
// "float", "uint8", ... (lower case, as ONNX's docs write them); "type <n>" when unknown.
std::string onnx_type_name(int32_t elem_type);
int32_t onnx_type_code(const std::string& name);  // the inverse; 0 (undefined) when unknown

// A CPU tensor with the proto's data. Validates dims, the element type, the amount of
// data against the dims; external data is refused. Errors: kiln::Error "[op] what: ...".
Tensor tensor_from_proto(const ::onnx::TensorProto& proto, const char* op, const std::string& what);
// Fills proto (name, type, dims, raw little-endian data) from t (any device).
void tensor_to_proto(const Tensor& t, const std::string& name, ::onnx::TensorProto& proto);

}  // namespace kiln::onnx::detail
