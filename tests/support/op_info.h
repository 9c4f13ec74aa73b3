#pragma once
// OpInfo: one table entry per op generates a test for every op x dtype x layout x device
// (tests/test_ops.cpp). Each op family registers its entries from its own file,
// tests/op_table_<family>.cpp, with KILN_REGISTER_OPS.
//
// An entry gives sample inputs (float64, on the CPU), the kiln call under test and an
// independent reference computed in double precision with plain loops (never with the
// kiln op it checks). The harness converts the samples to each dtype, lays them out
// (contiguous / transposed / strided / broadcast), moves them to the device, runs the op
// and compares with the reference, fed the same rounded inputs, within a per-dtype tolerance.
#include <functional>
#include <string>
#include <vector>

#include "kiln/dispatch.h"
#include "kiln/generator.h"
#include "kiln/ops.h"

namespace kiln::testing {

enum class Layout { Contiguous, Transposed, Strided, Broadcast };
const char* layout_name(Layout l);

struct OpSample {
  std::vector<Tensor> inputs;   // float64 CPU tensors (integer/bool inputs: their own dtype)
  std::string description;      // "[3, 4] x [4]"
  // Inputs at these positions keep their dtype (indices, masks): the harness doesn't cast them.
  std::vector<int> fixed_dtype_inputs = {};
};

struct Tolerance { double rtol, atol; };

struct OpInfo {
  std::string name;
  DTypeSet dtypes = kFloatingDTypes;
  // Samples for a layout; Layout::Broadcast samples carry inputs with size-1 dims to broadcast.
  // Return no samples for layouts that don't apply.
  std::function<std::vector<OpSample>(Layout, Generator&)> samples;
  // The op under test, on tensors of the dtype and device being tested.
  std::function<Tensor(const std::vector<Tensor>&)> op;
  // Reference: float64 contiguous CPU inputs -> float64 (or the op's integer/bool dtype) CPU output.
  std::function<Tensor(const std::vector<Tensor>&)> reference;
  // Per-dtype tolerance override; empty uses the harness defaults.
  std::function<Tolerance(DType)> tolerance = {};
  bool output_keeps_integer_dtype = false;  // comparisons, argmax: compare exactly
};

std::vector<OpInfo>& op_registry();
struct OpRegistrar {
  explicit OpRegistrar(std::vector<OpInfo> ops) {
    for (auto& o : ops) op_registry().push_back(std::move(o));
  }
};

// Helpers for writing references: element access on contiguous float64 CPU tensors.
inline const double* ref_data(const Tensor& t) { return t.data<double>(); }
Tensor ref_empty(const Shape& shape);  // float64 CPU
// Random float64 CPU tensor, values uniform in [lo, hi).
Tensor random_input(const Shape& shape, Generator& g, double lo = -2, double hi = 2);

}  // namespace kiln::testing

#define KILN_OPINFO_CAT2(a, b) a##b
#define KILN_OPINFO_CAT(a, b) KILN_OPINFO_CAT2(a, b)
#define KILN_REGISTER_OPS(...) \
  static ::kiln::testing::OpRegistrar KILN_OPINFO_CAT(kiln_op_registrar_, __LINE__)(__VA_ARGS__)
