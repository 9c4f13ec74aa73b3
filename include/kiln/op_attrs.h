#pragma once
// Attribute structs passed to kernels through KernelArgs::attrs, one per op family.
// Front ends fill them after validation; kernels read them with args.attr<T>() (checked
// against the op's declared struct, ops.def's Attrs column) or args.attrs_of<OpId::X>().
#include <array>
#include <cstdint>
#include <vector>

#include "kiln/scalar.h"

namespace kiln {

struct NoAttrs {};                                      // ops without attributes
struct ScalarAttrs { Scalar value; };                   // Fill; binary ops with alpha (Add/Sub: b*alpha)
struct RangeAttrs { double start = 0, step = 1; };      // Arange/linspace: out[i] = start + i*step
struct RandomAttrs {                                    // RandomUniform [low, high), RandomNormal (mean, std), RandomInt [low, high)
  double a = 0, b = 1;
  uint64_t seed = 0, offset = 0;                        // Philox key and counter: same (seed, offset) -> same numbers
};
struct ClampAttrs { bool has_min = false, has_max = false; double min = 0, max = 0; };
struct DimAttrs { int64_t dim = 0; };                   // Softmax, Cat, IndexSelect, Gather, ScatterAdd, IndexAdd
struct ReduceAttrs {
  std::vector<int64_t> dims;                            // sorted, normalised; empty = all dims
  bool keepdim = false;                                 // out's shape already reflects it
  int64_t correction = 1;                               // Var: divide by N - correction
};
struct MatmulAttrs {
  bool trans_a = false, trans_b = false;                // inputs are contiguous, possibly of the transposed matrix
  bool allow_tf32 = false;
};
struct Conv2dAttrs {
  std::array<int64_t, 2> stride{1, 1}, padding{0, 0}, dilation{1, 1}, output_padding{0, 0};
  int64_t groups = 1;
  bool has_bias = false;
  bool channels_last = false;  // every 4-d tensor of the call is NHWC (weights OHWI), else NCHW (OIHW)
};
struct Pool2dAttrs {
  std::array<int64_t, 2> kernel{1, 1}, stride{1, 1}, padding{0, 0}, dilation{1, 1};
  bool ceil_mode = false;
  bool count_include_pad = true;                        // avg_pool2d
  int64_t divisor_override = 0;                         // avg_pool2d, 0 = none
};
struct BatchNormAttrs {
  bool training = false;
  double momentum = 0.1, eps = 1e-5;
  bool has_weight = false, has_bias = false, has_running = false;
};
struct LayerNormAttrs {
  int64_t normalized_ndim = 1;                          // trailing dims normalised together
  double eps = 1e-5;
  bool has_weight = false, has_bias = false;
};
struct AttentionAttrs {
  bool is_causal = false, has_mask = false;
  double scale = 0;                                     // 0 -> 1/sqrt(head_dim)
  double dropout_p = 0;                                 // on the probabilities; Philox (seed, offset)
  uint64_t seed = 0, offset = 0;
};
struct DropoutAttrs { double p = 0.5; uint64_t seed = 0, offset = 0; };
struct OneHotAttrs { int64_t num_classes = 0; };
struct AdamAttrs {
  double lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0;
  int64_t step = 1;
  bool decoupled = false;                               // AdamW
  bool amsgrad = false;                                 // a 4th output: max_exp_avg_sq
};

// Every attribute struct, so that the dispatcher can tell them apart at run time.
#define KILN_ATTRS_LIST(X)                                                                                       \
  X(NoAttrs) X(ScalarAttrs) X(RangeAttrs) X(RandomAttrs) X(ClampAttrs) X(DimAttrs) X(ReduceAttrs) X(MatmulAttrs) \
  X(Conv2dAttrs) X(Pool2dAttrs) X(BatchNormAttrs) X(LayerNormAttrs) X(AttentionAttrs) X(DropoutAttrs)            \
  X(OneHotAttrs) X(AdamAttrs)

enum class AttrsKind : uint8_t {
#define KILN_X(A) A,
  KILN_ATTRS_LIST(KILN_X)
#undef KILN_X
};
template <class A> struct AttrsKindOf;  // undefined for a type that is not an attribute struct
#define KILN_X(A) \
  template <> struct AttrsKindOf<A> { static constexpr AttrsKind value = AttrsKind::A; };
KILN_ATTRS_LIST(KILN_X)
#undef KILN_X
template <class A> inline constexpr AttrsKind attrs_kind_v = AttrsKindOf<A>::value;

}  // namespace kiln
