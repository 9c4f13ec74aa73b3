#pragma once
// Op dispatch: one kernel table keyed by [device type][op], filled by each backend's
// register_kernels(), and the one place that decides where an op runs (execution
// strategy, CPU fallback) and that the profiler hooks into.
//
// Kernels are "boxed": every kernel has the signature void(const KernelArgs&). The
// op's front end (src/core/ops/*) has already validated inputs, inferred output
// shapes/dtypes and allocated the outputs, so a kernel only computes. Boxing is what
// lets the dispatcher stage any op onto another device without knowing the op.
#include <array>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <utility>

#include "kiln/device.h"
#include "kiln/dtype.h"
#include "kiln/op_attrs.h"

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

// ---- the op schema (include/kiln/ops.def) ----
// Kernel families: one name per family on every backend.
enum class OpFamily : uint8_t {
  Memory, Random, Unary, Binary, Compare, Where, Softmax, Reduce, Linalg, Conv, Pool, Norm, Attention,
  Index, Dropout, Optim
};
// How an elementwise op's result dtype follows its (promoted) inputs; Custom: the front end says.
enum class ResultRule : uint8_t { Promote, Float, Bool, Custom };
// Where an op's gradient comes from: none, a hand-written autograd formula, or generated
// from the derivative in its math definition.
enum class GradRule : uint8_t { NoGrad, Formula, Math };

enum class OpId : uint16_t {
#define KILN_OP(id, name, accepted, family, attrs, grad) id,
#include "kiln/ops.def"
#undef KILN_OP
  Count_
};
inline constexpr int kNumOps = int(OpId::Count_);
const char* op_name(OpId op);

// Everything ops.def declares about one op, at compile time.
template <OpId Op> struct OpTraits;
#define KILN_OP(id, name_, accepted, family_, attrs_, grad_)                        \
  template <> struct OpTraits<OpId::id> {                                           \
    using Attrs = attrs_;                                                           \
    static constexpr const char* name = name_;                                      \
    static constexpr DTypeSet dtypes = k##accepted##DTypes;                         \
    static constexpr OpFamily family = OpFamily::family_;                           \
    static constexpr ResultRule result = ResultRule::Custom;                        \
    static constexpr GradRule grad = GradRule::grad_;                               \
  };
#define KILN_POINTWISE(id, name_, family_, accepted, attrs_, result_, grad_)        \
  template <> struct OpTraits<OpId::id> {                                           \
    using Attrs = attrs_;                                                           \
    static constexpr const char* name = #name_;                                     \
    static constexpr DTypeSet dtypes = k##accepted##DTypes;                         \
    static constexpr OpFamily family = OpFamily::family_;                           \
    static constexpr ResultRule result = ResultRule::result_;                       \
    static constexpr GradRule grad = GradRule::grad_;                               \
  };
#include "kiln/ops.def"
#undef KILN_POINTWISE
#undef KILN_OP

// The same facts at run time, indexed by op.
struct OpSchema {
  const char* name;
  DTypeSet dtypes;
  OpFamily family;
  AttrsKind attrs;
  ResultRule result;
  GradRule grad;
};
inline constexpr OpSchema kOpSchema[kNumOps] = {
#define KILN_OP(id_, name_, accepted_, family_, attrs_, grad_)                                                   \
  {OpTraits<OpId::id_>::name, OpTraits<OpId::id_>::dtypes, OpTraits<OpId::id_>::family, attrs_kind_v<attrs_>, \
   OpTraits<OpId::id_>::result, OpTraits<OpId::id_>::grad},
#include "kiln/ops.def"
#undef KILN_OP
};
constexpr const OpSchema& op_schema(OpId op) { return kOpSchema[int(op)]; }
// The key dtypes op accepts, as ops.def declares them (the same on every device).
constexpr DTypeSet op_dtypes(OpId op) { return kOpSchema[int(op)].dtypes; }
constexpr OpFamily op_family(OpId op) { return kOpSchema[int(op)].family; }

// The ops of a family, in ops.def order: backends register a family's kernels from this
// list (a new op of the family needs no registration line).
template <OpFamily F>
inline constexpr auto kFamilyOps = [] {
  constexpr int n = [] {
    int c = 0;
    for (const OpSchema& s : kOpSchema) c += s.family == F;
    return c;
  }();
  std::array<OpId, n> ops{};
  int k = 0;
  for (int i = 0; i < kNumOps; ++i)
    if (kOpSchema[i].family == F) ops[size_t(k++)] = OpId(i);
  return ops;
}();

// Calls f.template operator()<Op>() for every op of family F (a compile-time loop, so that
// each op's kernel is its own instantiation).
template <OpFamily F, class Fn>
constexpr void for_each_family_op(Fn&& f) {
  [&]<size_t... I>(std::index_sequence<I...>) {
    (f.template operator()<kFamilyOps<F>[I]>(), ...);
  }(std::make_index_sequence<kFamilyOps<F>.size()>{});
}

struct KernelArgs {
  OpId op;
  Device device;                     // where the kernel runs; all tensors live there
  std::span<const Tensor> inputs;
  std::span<Tensor> outputs;
  const void* attrs = nullptr;       // the op's attribute struct (ops.def's Attrs column, op_attrs.h)
  // The attributes as A; raises when A is not the struct ops.def declares for op (kernels
  // shared by several ops name the type; see attrs_of for a compile-time check).
  template <class A> const A& attr() const {
    check_attrs(attrs_kind_v<A>);
    return *static_cast<const A*>(attrs);
  }
  // The attributes of Op, typed by the schema at compile time.
  template <OpId Op> const typename OpTraits<Op>::Attrs& attrs_of() const {
    static_assert(!std::is_same_v<typename OpTraits<Op>::Attrs, NoAttrs>, "the op declares no attributes");
    return *static_cast<const typename OpTraits<Op>::Attrs*>(attrs);
  }
  void check_attrs(AttrsKind k) const;  // [op] internal error unless k is op's kind and attrs is set
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
// attrs must be the struct ops.def declares for op (checked at run time; a mismatch is an
// internal error naming the op), or null.
void dispatch(OpId op, std::span<const Tensor> inputs, std::span<Tensor> outputs);
void dispatch(OpId op, DType key, std::span<const Tensor> inputs, std::span<Tensor> outputs);
template <class A>
void dispatch(OpId op, std::span<const Tensor> inputs, std::span<Tensor> outputs, const A* attrs) {
  dispatch_untyped(op, std::nullopt, inputs, outputs, attrs, attrs_kind_v<A>);
}
template <class A>
void dispatch(OpId op, DType key, std::span<const Tensor> inputs, std::span<Tensor> outputs, const A* attrs) {
  dispatch_untyped(op, key, inputs, outputs, attrs, attrs_kind_v<A>);
}
void dispatch_untyped(OpId op, std::optional<DType> key, std::span<const Tensor> inputs, std::span<Tensor> outputs,
                      const void* attrs, AttrsKind kind);

}  // namespace kiln
