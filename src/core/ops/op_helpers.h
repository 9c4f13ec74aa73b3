#pragma once
// Checks and small utilities every op front end uses, so that errors read the same
// everywhere: "[op] <what> (shapes/dtypes/devices)".
#include <initializer_list>
#include <vector>

#include "kiln/dispatch.h"
#include "kiln/ops.h"
#include "kiln/tensor.h"

namespace kiln::detail {

inline void check_defined(const char* op, std::initializer_list<const Tensor*> ts) {
  int i = 0;
  for (const Tensor* t : ts) {
    KILN_CHECK(t->defined(), op, "argument ", i, " is an undefined tensor");
    ++i;
  }
}

// All defined tensors on one device; returns it. Undefined (optional) tensors are skipped.
inline Device common_device(const char* op, std::initializer_list<const Tensor*> ts) {
  const Tensor* first = nullptr;
  for (const Tensor* t : ts) {
    if (!t->defined()) continue;
    if (!first) {
      first = t;
      continue;
    }
    KILN_CHECK(t->device() == first->device(), op, "expected all tensors on the same device, got ",
               first->device().str(), " and ", t->device().str(), " (shapes ", shape_str(first->shape()), " and ",
               shape_str(t->shape()), ")");
  }
  KILN_CHECK(first != nullptr, op, "needs at least one tensor");
  return first->device();
}

inline void check_floating(const char* op, const Tensor& t, const char* what = "input") {
  KILN_CHECK(is_floating(t.dtype()), op, "expected a floating ", what, ", got ", dtype_name(t.dtype()),
             " of shape ", shape_str(t.shape()));
}

inline void check_dim(const char* op, const Tensor& t, int64_t rank, const char* what = "input") {
  KILN_CHECK(t.dim() == rank, op, "expected a ", rank, "-d ", what, ", got shape ", shape_str(t.shape()));
}

inline Tensor new_output(const Shape& shape, DType dtype, Device device) {
  return empty(shape, TensorOptions(dtype).device(device));
}

// The output of an op whose kernels write NCHW only (pooling, batch_norm) while its result
// keeps a channels-last input's layout, as in PyTorch: the kernel writes `kernel` (result
// itself when that is contiguous) and finish() copies it into `result`. That costs one
// copy per channels-last output (and the input's .contiguous() another); NHWC kernels
// would avoid both.
struct FormattedOutput {
  Tensor result, kernel;
  FormattedOutput(const Shape& shape, DType dtype, Device device, MemoryFormat fmt)
      : result(empty(shape, TensorOptions(dtype).device(device), shape.size() == 4 ? fmt : MemoryFormat::Contiguous)),
        kernel(result.is_contiguous() ? result : empty(shape, TensorOptions(dtype).device(device))) {}
  void finish() {
    if (!kernel.is_same(result)) result.copy_(kernel);
  }
};

// A 0-d tensor holding s for an op with tensor t: PyTorch's rule for a Python number
// operand (it does not widen the tensor's dtype within a category).
inline Tensor wrap_scalar(const Tensor& t, Scalar s) {
  DType dt = t.dtype();
  if (s.is_floating() && !is_floating(dt)) dt = DType::Float32;
  else if (s.is_integral() && dt == DType::Bool) dt = DType::Int64;
  return full({}, s, TensorOptions(dt).device(t.device()));
}

}  // namespace kiln::detail
