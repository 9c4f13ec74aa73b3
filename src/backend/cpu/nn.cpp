// CPU kernels: batch_norm, layer_norm, attention, embedding, dropout, cat, index ops, one_hot (+ backward).
// Each part lives in its own nn_*.cpp file; this registers them all.
#include "src/backend/cpu/kernels.h"
#include "src/backend/cpu/nn_kernels.h"

namespace kiln::cpu {

void register_nn(KernelRegistry& r) {
  register_nn_index(r);
  register_nn_norm(r);
  register_nn_attention(r);
  register_nn_dropout(r);
}

}  // namespace kiln::cpu
