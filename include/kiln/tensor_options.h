#pragma once
// libtorch's spellings of dtypes, devices and TensorOptions builders:
//   auto opts = kiln::dtype(kiln::kFloat).device(kiln::kCUDA).requires_grad(true);
//   Tensor w = kiln::randn({3, 4}, opts);   Tensor z = kiln::zeros({3}, w.options());
//   if (kiln::cuda::is_available()) ...
#include "kiln/device_manager.h"
#include "kiln/tensor.h"

namespace kiln {

// dtypes (c10::ScalarType names)
inline constexpr DType kFloat = DType::Float32, kFloat32 = DType::Float32;
inline constexpr DType kDouble = DType::Float64, kFloat64 = DType::Float64;
inline constexpr DType kHalf = DType::Float16, kFloat16 = DType::Float16, kBFloat16 = DType::BFloat16;
inline constexpr DType kInt = DType::Int32, kInt32 = DType::Int32;
inline constexpr DType kLong = DType::Int64, kInt64 = DType::Int64;
inline constexpr DType kBool = DType::Bool;

// device types (c10::DeviceType names); Device(kCUDA, 1) names a card
inline constexpr DeviceType kCPU = DeviceType::Cpu;
inline constexpr DeviceType kCUDA = DeviceType::Cuda;

// TensorOptions starting from one field, as torch::dtype(...), torch::device(...).
inline TensorOptions dtype(DType t) { return TensorOptions().dtype(t); }
inline TensorOptions device(Device d) { return TensorOptions().device(d); }
inline TensorOptions requires_grad(bool r = true) { return TensorOptions().requires_grad(r); }

namespace cuda {
inline bool is_available() { return device_manager().is_available(DeviceType::Cuda); }
inline int device_count() { return device_manager().device_count(DeviceType::Cuda); }
}  // namespace cuda

}  // namespace kiln
