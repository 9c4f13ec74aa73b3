// The dispatcher: kernel lookup, placement by execution strategy, CPU fallback and
// staging, and the profiler hook. See include/kiln/dispatch.h.
#include "kiln/dispatch.h"

#include <atomic>
#include <vector>

#include "kiln/backend.h"
#include "kiln/device_manager.h"
#include "kiln/profiler.h"
#include "kiln/tensor.h"
#include "src/core/mem_overlap.h"

namespace kiln {

const char* op_name(OpId op) { return int(op) < kNumOps ? kOpSchema[int(op)].name : "unknown-op"; }

namespace {
const char* attrs_kind_name(AttrsKind k) {
  switch (k) {
#define KILN_X(A) case AttrsKind::A: return #A;
    KILN_ATTRS_LIST(KILN_X)
#undef KILN_X
  }
  return "?";
}
}  // namespace

void KernelArgs::check_attrs(AttrsKind k) const {
  KILN_CHECK(attrs != nullptr && op_schema(op).attrs == k, op_name(op), "internal error: a kernel read ",
             attrs_kind_name(k), " but the op declares ", attrs_kind_name(op_schema(op).attrs),
             attrs ? "" : " and none were passed");
}

std::string dtype_set_str(DTypeSet s) {
  std::string out;
  for (int t = 0; t < kNumDTypes; ++t)
    if (s & dtype_bit(DType(t))) out += (out.empty() ? "" : ", ") + std::string(dtype_name(DType(t)));
  return out;
}

void KernelRegistry::add(DeviceType device, OpId op, Kernel fn, DTypeSet subset) {
  table_[int(device)][int(op)] = Entry{fn, subset & op_dtypes(op)};
}

void KernelRegistry::remove_device(DeviceType device) {
  for (Entry& e : table_[int(device)]) e = Entry{};
}

Kernel KernelRegistry::find(DeviceType device, OpId op, DType dtype) const {
  const Entry& e = table_[int(device)][int(op)];
  return (e.fn && (e.dtypes & dtype_bit(dtype))) ? e.fn : nullptr;
}

std::string ExecutionStrategy::str() const {
  switch (kind) {
    case Kind::CpuOnly: return "CpuOnly";
    case Kind::GpuOnly: return "GpuOnly";
    case Kind::Hybrid:
      return gpu_threshold == INT64_MAX ? "Hybrid{gpu_threshold=inf}"
                                        : "Hybrid{gpu_threshold=" + std::to_string(gpu_threshold) + "}";
  }
  return "?";
}

namespace {
std::atomic<ExecutionStrategy::Kind> g_kind{ExecutionStrategy::Kind::Hybrid};
std::atomic<int64_t> g_threshold{INT64_MAX};

// Memory ops are how staging itself works, so no strategy relocates them.
bool relocatable(OpId op) { return op != OpId::Copy && op != OpId::Fill; }

std::optional<Device> preferred_gpu() {
  const Device cur = current_device();
  if (cur.is_gpu()) return cur;
  const Device best = device_manager().best_device();
  if (best.is_gpu()) return best;
  return std::nullopt;
}

Device choose_device(OpId op, DType key, Device home, int64_t work, bool has_inputs) {
  const KernelRegistry& reg = kernel_registry();
  const ExecutionStrategy s = execution_strategy();
  auto has = [&](Device d) { return reg.supports(d.type, op, key); };
  if (!relocatable(op)) return home;
  if (home.is_gpu()) {
    if (s.kind == ExecutionStrategy::Kind::CpuOnly) return kCpu;
    if (has(home)) return home;
    KILN_CHECK(s.kind != ExecutionStrategy::Kind::GpuOnly, op_name(op), "no ", device_type_name(home.type),
               " kernel for dtype ", dtype_name(key), " and the execution strategy is GpuOnly");
    return kCpu;  // fallback
  }
  const bool wants_gpu = has_inputs && (s.kind == ExecutionStrategy::Kind::GpuOnly ||
                                        (s.kind == ExecutionStrategy::Kind::Hybrid && work >= s.gpu_threshold));
  if (wants_gpu) {
    const auto gpu = preferred_gpu();
    if (gpu && has(*gpu)) return *gpu;
    KILN_CHECK(s.kind != ExecutionStrategy::Kind::GpuOnly, op_name(op),
               gpu ? "no GPU kernel for dtype " : "no GPU is available for dtype ", dtype_name(key),
               " and the execution strategy is GpuOnly");
  }
  return home;
}

void run_kernel(Kernel k, OpId op, Device device, std::span<const Tensor> in, std::span<Tensor> out,
                const void* attrs) {
  k(KernelArgs{op, device, in, out, attrs});
}
}  // namespace

ExecutionStrategy execution_strategy() { return ExecutionStrategy{g_kind.load(), g_threshold.load()}; }
void set_execution_strategy(ExecutionStrategy s) {
  KILN_CHECK(s.gpu_threshold >= 0, "set_execution_strategy", "gpu_threshold must be non-negative");
  g_kind = s.kind;
  g_threshold = s.gpu_threshold;
}

void dispatch(OpId op, std::span<const Tensor> inputs, std::span<Tensor> outputs) {
  dispatch_untyped(op, std::nullopt, inputs, outputs, nullptr, AttrsKind::NoAttrs);
}

void dispatch(OpId op, DType key, std::span<const Tensor> inputs, std::span<Tensor> outputs) {
  dispatch_untyped(op, key, inputs, outputs, nullptr, AttrsKind::NoAttrs);
}

void dispatch_untyped(OpId op, std::optional<DType> key_given, std::span<const Tensor> inputs,
                      std::span<Tensor> outputs, const void* attrs, AttrsKind kind) {
  KILN_CHECK(!inputs.empty() || !outputs.empty(), op_name(op), "dispatch needs a tensor");
  KILN_CHECK(attrs == nullptr || kind == op_schema(op).attrs, op_name(op), "internal error: dispatched with ",
             attrs_kind_name(kind), ", the op declares ", attrs_kind_name(op_schema(op).attrs));
  const DType key = key_given ? *key_given : inputs.empty() ? outputs[0].dtype() : inputs[0].dtype();
  KILN_CHECK(op_dtypes(op) & dtype_bit(key), op_name(op), "does not support dtype ", dtype_name(key),
             " (supported: ", dtype_set_str(op_dtypes(op)), ")");
  check_output_overlap(op_name(op), inputs, outputs);
  const Device home = inputs.empty() ? outputs[0].device() : inputs[0].device();
  int64_t work = 0;
  for (const Tensor& t : inputs) {
    KILN_CHECK(t.device() == home, op_name(op), "expected all tensors on ", home.str(), ", got one on ",
               t.device().str());
    work = std::max(work, t.numel());
  }
  for (const Tensor& t : outputs) {
    KILN_CHECK(t.device() == home, op_name(op), "expected all tensors on ", home.str(), ", got an output on ",
               t.device().str());
    work = std::max(work, t.numel());
  }
  const Device exec = choose_device(op, key, home, work, !inputs.empty());
  const Kernel k = kernel_registry().find(exec.type, op, key);
  KILN_CHECK(k != nullptr, op_name(op), "not implemented for dtype ", dtype_name(key), " on ",
             device_type_name(exec.type));
  // The profiler's record of this op (staging copies nest inside it); free when off.
  const profiler::OpScope profile_scope(op, home, exec, inputs, outputs);
  if (exec == home) {
    run_kernel(k, op, exec, inputs, outputs, attrs);
    return;
  }
  // Staging: copies of inputs and outputs on the executing device (outputs are copied,
  // not just allocated, because in-place kernels read them), then results copied back.
  std::vector<Tensor> in, out;
  in.reserve(inputs.size());
  out.reserve(outputs.size());
  for (const Tensor& t : inputs) in.push_back(t.detach().to(exec));
  for (const Tensor& t : outputs) out.push_back(t.detach().to(exec));  // keeps a dense layout (channels-last)
  run_kernel(k, op, exec, in, out, attrs);
  for (size_t i = 0; i < outputs.size(); ++i) {
    Tensor dst = outputs[i].detach();
    dst.copy_(out[i]);
  }
}

}  // namespace kiln
