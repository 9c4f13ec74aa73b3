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
//
// Procedure per sample (tests/support/op_info.cpp, run_op_test):
//  1. inputs not in fixed_dtype_inputs are rounded to the tested dtype (x.to(dtype));
//  2. the reference runs on those rounded values converted back to float64 (fixed inputs:
//     their own dtype), contiguous, on the CPU, after expand_to is applied;
//  3. the rounded inputs go to the device and get the layout: Transposed stores every
//     input of rank >= 2 transposed in memory (same values), Strided takes every dim from
//     a buffer twice as large with step 2 (gaps hold NaN / sentinels), Broadcast passes
//     the size-1-dim samples as given (and stride-0 views where expand_to says);
//  4. the op runs; result dtype, device, shape and values are checked (floating results
//     against the reference rounded to the result dtype, within the tolerance; NaN
//     positions must match; integer and bool results exactly), and inputs must be unchanged.
#include <functional>
#include <string>
#include <vector>

#include "kiln/dispatch.h"
#include "kiln/generator.h"
#include "kiln/ops.h"

namespace kiln::testing {

enum class Layout { Contiguous, Transposed, Strided, Broadcast };
const char* layout_name(Layout l);  // "contiguous", "transposed", "strided", "broadcast"

struct OpSample {
  std::vector<Tensor> inputs;   // float64 CPU tensors (integer/bool inputs: their own dtype)
  std::string description;      // "[3, 4] x [4]"
  // Inputs at these positions keep their dtype (indices, masks): the harness doesn't cast them.
  std::vector<int> fixed_dtype_inputs = {};
  // Optional, per input: a shape to expand that input to (a stride-0 view) before the op
  // and the reference see it. An empty Shape (or a missing entry) leaves the input as is.
  std::vector<Shape> expand_to = {};
};

struct Tolerance { double rtol, atol; };  // passes when |got - want| <= atol + rtol * |want|

// Defaults by result dtype: float64 1e-10, float32 1e-5, float16 1e-3, bfloat16 1e-2 (rtol
// and atol alike); integer and bool results compare exactly.
Tolerance default_tolerance(DType result_dtype);

struct OpInfo {
  std::string name;             // unique test-suite name ("add", "add_scalar", ...)
  DTypeSet dtypes = kFloatingDTypes;
  // Samples for a layout; Layout::Broadcast samples carry inputs with size-1 dims to broadcast.
  // Return no samples for layouts that don't apply (the test is then skipped).
  std::function<std::vector<OpSample>(Layout, Generator&)> samples;
  // The op under test, on tensors of the dtype and device being tested.
  std::function<Tensor(const std::vector<Tensor>&)> op;
  // Reference: float64 contiguous CPU inputs -> float64 (or the op's integer/bool dtype) CPU output.
  std::function<Tensor(const std::vector<Tensor>&)> reference;
  // Per-dtype tolerance override (called with the tested dtype); empty uses default_tolerance.
  std::function<Tolerance(DType)> tolerance = {};
  bool output_keeps_integer_dtype = false;  // comparisons, argmax: result dtype is the reference's; exact
  // Result dtype for a tested dtype. Empty: the reference's dtype when it is not float64,
  // otherwise the tested dtype (so int32 add gives int32; give this for int -> float ops).
  std::function<DType(DType)> result_dtype = {};
  // In-place ops: inputs the op writes into (not checked for being unchanged).
  std::vector<int> modified_inputs = {};
};

std::vector<OpInfo>& op_registry();
struct OpRegistrar {
  explicit OpRegistrar(std::vector<OpInfo> ops) {
    for (auto& o : ops) op_registry().push_back(std::move(o));
  }
};

// Runs every sample of one generated case; reports failures through GoogleTest.
void run_op_test(const OpInfo& info, DType dtype, Layout layout, Device device);

// Helpers for writing references: element access on contiguous float64 CPU tensors.
inline const double* ref_data(const Tensor& t) { return t.data<double>(); }
Tensor ref_empty(const Shape& shape);  // float64 CPU
Tensor ref_empty(const Shape& shape, DType dtype);  // CPU, any dtype (bool/int results)
// Random float64 CPU tensor, values uniform in [lo, hi).
Tensor random_input(const Shape& shape, Generator& g, double lo = -2, double hi = 2);
// Random float64 CPU tensor of whole numbers uniform in [lo, hi] (exact in every dtype
// for small ranges; includes zeros for logical ops).
Tensor random_integers(const Shape& shape, Generator& g, int64_t lo, int64_t hi);

}  // namespace kiln::testing

#define KILN_OPINFO_CAT2(a, b) a##b
#define KILN_OPINFO_CAT(a, b) KILN_OPINFO_CAT2(a, b)
#define KILN_REGISTER_OPS(...) \
  static ::kiln::testing::OpRegistrar KILN_OPINFO_CAT(kiln_op_registrar_, __LINE__)(__VA_ARGS__)
