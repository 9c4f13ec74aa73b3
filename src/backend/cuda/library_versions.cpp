// The versions of the NVIDIA libraries the CUDA backend runs with (kiln info shows them):
// what was loaded at run time, which can differ from the headers kiln was built with.
#include <cublasLt.h>
#include <cudnn.h>

#include <string>
#ifdef KILN_HAVE_NCCL
#include <nccl.h>
#endif

namespace kiln::cuda {

namespace {
// cuDNN 9 and NCCL 2.x encode major*10000 + minor*100 + patch; cuBLASLt the same.
std::string dotted(long v) {
  return std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." + std::to_string(v % 100);
}
}  // namespace

std::string library_versions() {
  std::string s = "cuDNN " + dotted(long(cudnnGetVersion())) + ", cuBLASLt " + dotted(long(cublasLtGetVersion()));
#ifdef KILN_HAVE_NCCL
  int nccl = 0;
  if (ncclGetVersion(&nccl) == ncclSuccess) s += ", NCCL " + dotted(nccl);
#else
  s += ", NCCL not built in";
#endif
  return s;
}

}  // namespace kiln::cuda
