#pragma once
// Op dispatch: one kernel table keyed by [device type][op], filled by each backend's
// register_kernels(), and the one place that decides where an op runs (execution
// strategy, CPU fallback) and that the profiler hooks into.
//
// Kernels are "boxed": every kernel has the signature void(const KernelArgs&). The
// op's front end (src/core/ops/*) has already validated inputs, inferred output
// shapes/dtypes and allocated the outputs, so a kernel only computes. Boxing is what
// lets the dispatcher stage any op onto another device without knowing the op.
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>

#include "kiln/device.h"
#include "kiln/dtype.h"

namespace kiln {

class Tensor;

// Bitmask of dtypes (an op's or a kernel's accepted key dtypes).
using DTypeSet = uint32_t;
constexpr DTypeSet dtype_bit(DType t) { return 1u << unsigned(t); }
constexpr DTypeSet dtypes(std::initializer_list<DType> ts) {
  DTypeSet s = 0;
  for (DType t : ts) s |= dtype_bit(t);
  return s;
}
// The sets ops.def declares ops with (its third column names them without k...DTypes).
inline constexpr DTypeSet kAllDTypes = (1u << kNumDTypes) - 1;
inline constexpr DTypeSet kNumericDTypes = kAllDTypes & ~dtype_bit(DType::Bool);
inline constexpr DTypeSet kFloatingDTypes =
    dtypes({DType::Float32, DType::Float64, DType::Float16, DType::BFloat16});
inline constexpr DTypeSet kBoolDTypes = dtype_bit(DType::Bool);
inline constexpr DTypeSet kIndexDTypes = dtypes({DType::Int32, DType::Int64});
std::string dtype_set_str(DTypeSet s);  // "float32, float64" (in DType order)

enum class OpId : uint16_t {
#define KILN_OP(id, name, accepted) id,
#include "kiln/ops.def"
#undef KILN_OP
  Count_
};
inline constexpr int kNumOps = int(OpId::Count_);
const char* op_name(OpId op);

// The key dtypes op accepts, as ops.def declares them (the same on every device).
inline constexpr DTypeSet kOpDTypes[kNumOps] = {
#define KILN_OP(id, name, accepted) k##accepted##DTypes,
#include "kiln/ops.def"
#undef KILN_OP
};
constexpr DTypeSet op_dtypes(OpId op) { return kOpDTypes[int(op)]; }

struct KernelArgs {
  OpId op;
  Device device;                     // where the kernel runs; all tensors live there
  std::span<const Tensor> inputs;
  std::span<Tensor> outputs;
  const void* attrs = nullptr;       // the op's attribute struct (see ops_attrs.h)
  template <class A> const A& attr() const { return *static_cast<const A*>(attrs); }
};
using Kernel = void (*)(const KernelArgs&);

class KernelRegistry {
 public:
  // Registers fn for op on device type, for every dtype the op declares (op_dtypes), or
  // for a subset of them (the dispatcher falls back to the CPU for the rest). Dtypes
  // outside the declaration are never registered.
  void add(DeviceType device, OpId op, Kernel fn) { add(device, op, fn, op_dtypes(op)); }
  void add(DeviceType device, OpId op, Kernel fn, DTypeSet subset);
  // The kernel for op on device and dtype, or null.
  Kernel find(DeviceType device, OpId op, DType dtype) const;
  bool supports(DeviceType device, OpId op, DType dtype) const { return find(device, op, dtype) != nullptr; }
  // Drops every kernel of a device type (set_backend_for_testing).
  void remove_device(DeviceType device);

 private:
  struct Entry {
    Kernel fn = nullptr;
    DTypeSet dtypes = 0;
  };
  Entry table_[kNumDeviceTypes][kNumOps]{};
};

KernelRegistry& kernel_registry();

// Spec §2.4: where an op runs when the caller has not said.
//  - CpuOnly: compute on the CPU, staging GPU inputs through host memory.
//  - GpuOnly: compute on a GPU; an op without a GPU kernel raises kiln::Error.
//  - Hybrid{gpu_threshold}: GPU-resident data computes on its device; CPU-resident work
//    of at least gpu_threshold elements moves to the current GPU when one is present.
//    A GPU without a kernel for the op falls back to the CPU.
// Results always come back on the inputs' device: a strategy changes speed, never meaning.
struct ExecutionStrategy {
  enum class Kind : uint8_t { CpuOnly, GpuOnly, Hybrid };
  Kind kind = Kind::Hybrid;
  int64_t gpu_threshold = INT64_MAX;  // the default: compute where the data lives

  static ExecutionStrategy cpu_only() { return {Kind::CpuOnly, 0}; }
  static ExecutionStrategy gpu_only() { return {Kind::GpuOnly, 0}; }
  static ExecutionStrategy hybrid(int64_t threshold) { return {Kind::Hybrid, threshold}; }
  std::string str() const;
};

ExecutionStrategy execution_strategy();
void set_execution_strategy(ExecutionStrategy s);

// Runs op on the device its inputs live on (or where the strategy sends it). The key
// dtype (which kernel entry applies) is inputs[0]'s, or outputs[0]'s when there are no
// inputs, unless given. A key dtype outside op_dtypes(op) raises kiln::Error
// "[op] does not support dtype ..." on every device.
void dispatch(OpId op, std::span<const Tensor> inputs, std::span<Tensor> outputs,
              const void* attrs = nullptr);
void dispatch(OpId op, DType key, std::span<const Tensor> inputs, std::span<Tensor> outputs,
              const void* attrs = nullptr);

}  // namespace kiln
