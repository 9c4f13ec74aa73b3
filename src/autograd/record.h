#pragma once
// How ops record autograd history. Front ends (src/core/ops/*.cpp, tensor.cpp) call one
// record_<op> function at their end; those live in src/autograd/formulas_<family>.cpp and
// wire the op's backward formula with record() below. Each record_* function does nothing
// unless grad mode is on and an input requires grad.
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "kiln/autograd.h"
#include "kiln/dispatch.h"
#include "kiln/op_attrs.h"
#include "kiln/ops.h"
#include "kiln/ops_nn_backward.h"
#include "kiln/tensor.h"

namespace kiln::autograd {

// Grad mode is on and one of the (defined) tensors requires grad.
bool should_record(std::initializer_list<const Tensor*> inputs);
bool should_record(const std::vector<Tensor>& inputs);

// What a backward formula sees.
struct BackwardCtx {
  std::vector<Tensor> grads;   // one per forward output (zeros when none flowed)
  std::vector<Tensor> saved;   // the saved tensors, unpacked (undefined when saved undefined)
  const Node* node = nullptr;
  const Tensor& grad(size_t i = 0) const { return grads[i]; }
  bool needs(size_t input) const { return node->needs_input_grad(input); }
};
// Returns one gradient per forward input (undefined where not needed). Gradients may keep
// broadcast shape or compute dtype: the engine sums them to the input's shape and casts.
using Formula = std::function<std::vector<Tensor>(BackwardCtx&)>;

// A node whose backward is a formula over saved tensors. Formulas must not capture tensors
// (save them instead, so that in-place changes are detected and memory is released).
class FunctionNode final : public Node {
 public:
  FunctionNode(std::string name, std::vector<Tensor> saved, Formula formula);
  std::string name() const override { return name_; }
  std::vector<Tensor> apply(std::vector<Tensor>&& grad_outputs) override;
  void release_variables() override;

 private:
  std::string name_;
  std::vector<SavedVariable> saved_;
  Formula formula_;
};

// Records `name` (e.g. "MulBackward") producing `outputs` from `inputs`, when should_record.
// Floating outputs get the node as grad_fn. Returns the node (null when nothing recorded).
std::shared_ptr<Node> record(const char* name, const std::vector<Tensor>& outputs,
                             const std::vector<Tensor>& inputs, std::vector<Tensor> saved, Formula formula);

// In-place ops under autograd. When grad mode is on and `self` or one of `others` requires
// grad: raises for a leaf (or a view of a leaf) that requires grad, else computes
// fn(old value of self) out of place (recording as usual), writes it into self and moves
// the history onto self; returns true. Returns false, doing nothing, otherwise: the caller
// then runs its kernel. Call it after validation, before writing anything.
bool inplace_through_autograd(const char* op, Tensor& self, std::initializer_list<const Tensor*> others,
                              const std::function<Tensor(const Tensor& old_self)>& fn, bool needs_old_value = true);
// Gives a view whose storage changed in place since its history was recorded the history
// "this region of the base's current value" (PyTorch regenerates such views' grad_fn too).
void refresh_view_history(const Tensor& view);
// Raises when an in-place write into `self` would corrupt autograd (a leaf requiring grad).
void check_inplace(const char* op, const Tensor& self);

// ---- recording calls of the front ends (formulas_<family>.cpp)
// elementwise
void record_binary(OpId op, const Tensor& out, const Tensor& a, const Tensor& b, Scalar alpha);
void record_unary(OpId op, const Tensor& out, const Tensor& a, const void* attrs);
void record_where(const Tensor& out, const Tensor& cond, const Tensor& a, const Tensor& b);
// views and copies (tensor.cpp, tensor_copy.cpp); each returns out
Tensor record_reshape(const Tensor& out, const Tensor& in);   // view, reshape, squeeze, unsqueeze, flatten
Tensor record_permute(const Tensor& out, const Tensor& in, const std::vector<int64_t>& dims);
Tensor record_transpose(const Tensor& out, const Tensor& in, int64_t d0, int64_t d1);
Tensor record_slice(const Tensor& out, const Tensor& in, int64_t dim, int64_t start, int64_t end, int64_t step);
Tensor record_select(const Tensor& out, const Tensor& in, int64_t dim, int64_t index);
Tensor record_expand(const Tensor& out, const Tensor& in);
Tensor record_as_strided(const Tensor& out, const Tensor& in);
Tensor record_copy(const Tensor& out, const Tensor& in);       // clone, to(dtype), to(device)
// reductions and softmax (reduce.cpp, softmax.cpp); attrs.dims normalised and sorted
void record_reduce(OpId op, const Tensor& out, const Tensor& a, const ReduceAttrs& attrs);
void record_reduce_with_index(OpId op, const Tensor& values, const Tensor& indices, const Tensor& a, int64_t dim,
                              bool keepdim);  // max/min over a dim
void record_softmax(OpId op, const Tensor& out, const Tensor& a, int64_t dim);
// linear algebra (linalg.cpp): the batched product every matmul variant reaches
void record_matmul(const Tensor& out, const Tensor& a, const Tensor& b);
// joining and indexing (join.cpp, indexing.cpp, embedding.cpp)
void record_cat(const Tensor& out, const std::vector<Tensor>& tensors, int64_t dim);
void record_index_select(const Tensor& out, const Tensor& t, int64_t dim, const Tensor& index);
void record_gather(const Tensor& out, const Tensor& t, int64_t dim, const Tensor& index);
void record_embedding(const Tensor& out, const Tensor& weight, const Tensor& indices);
void record_index_add(const Tensor& out, const Tensor& self, int64_t dim, const Tensor& index, const Tensor& source);
void record_scatter_add(const Tensor& out, const Tensor& self, int64_t dim, const Tensor& index, const Tensor& src);
// attention and dropout (attention.cpp, dropout.cpp)
void record_attention(const AttentionResult& r, const Tensor& q, const Tensor& k, const Tensor& v,
                      const Tensor& attn_mask, double dropout_p, bool is_causal);
void record_dropout(const Tensor& out, const Tensor& x, const Tensor& mask, double p);
// convolutions (conv.cpp), on the batched 4-d input
void record_conv2d(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor& bias, Pair stride, Pair padding,
                   Pair dilation, int64_t groups);
void record_conv_transpose2d(const Tensor& y, const Tensor& x, const Tensor& w, const Tensor& bias, Pair stride,
                             Pair padding, Pair dilation, int64_t groups);
// pools (pool.cpp), on the batched 4-d input
void record_max_pool2d(const Tensor& y, const Tensor& indices, const Tensor& x);
void record_avg_pool2d(const Tensor& y, const Tensor& x, Pair kernel, Pair stride, Pair padding, bool ceil_mode,
                       bool count_include_pad);
void record_adaptive_avg_pool2d(const Tensor& y, const Tensor& x);
// normalisation (norm.cpp): training saves the batch mean/invstd, eval the running mean/var
void record_batch_norm(const Tensor& out, const Tensor& x, const Tensor& weight, const Tensor& bias,
                       const Tensor& mean, const Tensor& invstd_or_var, bool training, double eps);
void record_layer_norm(const Tensor& out, const Tensor& x, const Shape& normalized_shape, const Tensor& weight,
                       const Tensor& bias, const Tensor& mean, const Tensor& rstd);

}  // namespace kiln::autograd
