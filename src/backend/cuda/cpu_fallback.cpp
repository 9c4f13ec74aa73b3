// run_on_cpu: the CUDA backend's way out for argument combinations its kernels do not
// cover (e.g. attention with dropout): the op's CPU kernel runs on CPU copies of the
// arguments and the outputs are copied back, so results match the contract exactly.
#include <vector>

#include "kiln/dispatch.h"
#include "kiln/profiler.h"
#include "kiln/tensor.h"
#include "src/backend/cuda/kernels.h"

namespace kiln::cuda {

void run_on_cpu(const KernelArgs& args) {
  const DType key = args.inputs.empty() ? args.outputs[0].dtype() : args.inputs[0].dtype();
  const Kernel k = kernel_registry().find(DeviceType::Cpu, args.op, key);
  KILN_CHECK(k != nullptr, op_name(args.op), "no CUDA kernel for these arguments and no CPU kernel to fall back to");
  profiler::note_cpu_fallback();
  std::vector<Tensor> in, out;
  for (const Tensor& t : args.inputs) in.push_back(t.defined() ? t.to(kCpu) : t);
  for (const Tensor& t : args.outputs) out.push_back(t.to(kCpu).contiguous());
  k(KernelArgs{args.op, kCpu, in, out, args.attrs});
  for (size_t i = 0; i < out.size(); ++i) {
    Tensor dst = args.outputs[i];
    dst.copy_(out[i]);
  }
}

}  // namespace kiln::cuda
