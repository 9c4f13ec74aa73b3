// CPU kernel of dropout: element i is dropped when Philox(seed, offset + i) word 0, as a
// unit float, is below p (the contract in ops.def, shared with the other backends).
#include "kiln/generator.h"
#include "kiln/op_attrs.h"
#include "src/backend/cpu/loops.h"
#include "src/backend/cpu/nn_kernels.h"

namespace kiln::cpu {

namespace {
template <typename T>
void dropout_typed(const KernelArgs& a) {
  using A = compute_t<T>;
  const DropoutAttrs& at = a.attr<DropoutAttrs>();
  const T* x = a.inputs[0].data<T>();
  T* y = a.outputs[0].data<T>();
  bool* keep = a.outputs[1].data<bool>();
  const int64_t n = a.inputs[0].numel();
  const float p = float(at.p);
  const A scale = at.p < 1.0 ? A(1.0 / (1.0 - at.p)) : A(0);
#pragma omp parallel for if (n > kParallelGrain / 8)
  for (int64_t i = 0; i < n; ++i) {
    uint32_t w[4];
    Philox4x32::generate(at.seed, at.offset + uint64_t(i), w);
    const bool k = Philox4x32::to_unit(w[0]) >= p;
    keep[i] = k;
    y[i] = k ? T(A(x[i]) * scale) : T(A(0));
  }
}
}  // namespace

void register_nn_dropout(KernelRegistry& r) {
  r.add(DeviceType::Cpu, OpId::Dropout, [](const KernelArgs& a) {
    KILN_DISPATCH_FLOATING(a.inputs[0].dtype(), "dropout", [&]<typename T>() { dropout_typed<T>(a); });
  });
}

}  // namespace kiln::cpu
