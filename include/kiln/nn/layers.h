#pragma once
// The layers of torch.nn, with PyTorch's defaults and default initialisation
// (reset_parameters()). Members hold the same handles the module registered, so
// `lin.weight` is the parameter an optimizer updates.
#include <concepts>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "kiln/nn/module.h"
#include "kiln/ops.h"

namespace kiln::nn {

// y = x W^T + b; W [out, in] ~ kaiming_uniform(a = sqrt(5)), b ~ U(+-1/sqrt(in)).
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true, TensorOptions opts = {});
  std::string type_name() const override { return "Linear"; }
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  void reset_parameters();

  int64_t in_features, out_features;
  Tensor weight, bias;
};

// 2-D convolution over NCHW; W [out, in/groups, kh, kw], same default init as Linear.
class Conv2d : public Module {
 public:
  Conv2d(int64_t in_channels, int64_t out_channels, Pair kernel_size, Pair stride = {1, 1}, Pair padding = {0, 0},
         Pair dilation = {1, 1}, int64_t groups = 1, bool bias = true, TensorOptions opts = {});
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, int64_t stride = 1, int64_t padding = 0,
         int64_t dilation = 1, int64_t groups = 1, bool bias = true, TensorOptions opts = {})
      : Conv2d(in_channels, out_channels, Pair{kernel_size, kernel_size}, Pair{stride, stride},
               Pair{padding, padding}, Pair{dilation, dilation}, groups, bias, opts) {}
  std::string type_name() const override { return "Conv2d"; }
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  void reset_parameters();

  int64_t in_channels, out_channels, groups;
  Pair kernel_size, stride, padding, dilation;
  Tensor weight, bias;
};

// Transposed 2-D convolution; W [in, out/groups, kh, kw]. PyTorch computes the default
// init's fan_in from W's second dim (out/groups * kh * kw); so does kiln.
class ConvTranspose2d : public Module {
 public:
  ConvTranspose2d(int64_t in_channels, int64_t out_channels, Pair kernel_size, Pair stride = {1, 1},
                  Pair padding = {0, 0}, Pair output_padding = {0, 0}, int64_t groups = 1, bool bias = true,
                  Pair dilation = {1, 1}, TensorOptions opts = {});
  ConvTranspose2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, int64_t stride = 1,
                  int64_t padding = 0, int64_t output_padding = 0, int64_t groups = 1, bool bias = true,
                  int64_t dilation = 1, TensorOptions opts = {})
      : ConvTranspose2d(in_channels, out_channels, Pair{kernel_size, kernel_size}, Pair{stride, stride},
                        Pair{padding, padding}, Pair{output_padding, output_padding}, groups, bias,
                        Pair{dilation, dilation}, opts) {}
  std::string type_name() const override { return "ConvTranspose2d"; }
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  void reset_parameters();

  int64_t in_channels, out_channels, groups;
  Pair kernel_size, stride, padding, output_padding, dilation;
  Tensor weight, bias;
};

// Batch normalisation over (N, H, W) per channel. Training normalises with the batch's
// statistics and updates running_mean/running_var (unbiased variance) with momentum
// (momentum empty: a cumulative average over num_batches_tracked); eval uses them.
class BatchNorm2d : public Module {
 public:
  explicit BatchNorm2d(int64_t num_features, double eps = 1e-5, std::optional<double> momentum = 0.1,
                       bool affine = true, bool track_running_stats = true, TensorOptions opts = {});
  std::string type_name() const override { return "BatchNorm2d"; }
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  void reset_running_stats();
  void reset_parameters();

  int64_t num_features;
  double eps;
  std::optional<double> momentum;
  bool affine, track_running_stats;
  Tensor weight, bias, running_mean, running_var, num_batches_tracked;
};

// Normalises over the trailing normalized_shape dims; weight ones, bias zeros.
class LayerNorm : public Module {
 public:
  explicit LayerNorm(Shape normalized_shape, double eps = 1e-5, bool elementwise_affine = true, bool bias = true,
                     TensorOptions opts = {});
  std::string type_name() const override { return "LayerNorm"; }
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

  Shape normalized_shape;
  double eps;
  Tensor weight, bias;
};

class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(Pair kernel_size, Pair stride = {0, 0}, Pair padding = {0, 0}, Pair dilation = {1, 1},
                     bool ceil_mode = false);
  explicit MaxPool2d(int64_t kernel_size, int64_t stride = 0, int64_t padding = 0, int64_t dilation = 1,
                     bool ceil_mode = false)
      : MaxPool2d(Pair{kernel_size, kernel_size}, Pair{stride, stride}, Pair{padding, padding},
                  Pair{dilation, dilation}, ceil_mode) {}
  std::string type_name() const override { return "MaxPool2d"; }
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

  Pair kernel_size, stride, padding, dilation;  // stride {0, 0}: the kernel size
  bool ceil_mode;
};

class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(Pair kernel_size, Pair stride = {0, 0}, Pair padding = {0, 0}, bool ceil_mode = false,
                     bool count_include_pad = true);
  explicit AvgPool2d(int64_t kernel_size, int64_t stride = 0, int64_t padding = 0, bool ceil_mode = false,
                     bool count_include_pad = true)
      : AvgPool2d(Pair{kernel_size, kernel_size}, Pair{stride, stride}, Pair{padding, padding}, ceil_mode,
                  count_include_pad) {}
  std::string type_name() const override { return "AvgPool2d"; }
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

  Pair kernel_size, stride, padding;
  bool ceil_mode, count_include_pad;
};

class AdaptiveAvgPool2d : public Module {
 public:
  explicit AdaptiveAvgPool2d(Pair output_size) : output_size(output_size) {}
  explicit AdaptiveAvgPool2d(int64_t output_size) : output_size{output_size, output_size} {}
  std::string type_name() const override { return "AdaptiveAvgPool2d"; }
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

  Pair output_size;
};

// Zeroes elements with probability p and scales the rest by 1/(1-p) in training;
// the identity in eval.
class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5);
  std::string type_name() const override { return "Dropout"; }
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

  double p;
};

class ReLU : public Module {
 public:
  std::string type_name() const override { return "ReLU"; }
  Tensor forward(const Tensor& x) override;
};

class GELU : public Module {
 public:
  explicit GELU(std::string approximate = "none");
  std::string type_name() const override { return "GELU"; }
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

  std::string approximate;
};

class SiLU : public Module {
 public:
  std::string type_name() const override { return "SiLU"; }
  Tensor forward(const Tensor& x) override;
};

class Identity : public Module {
 public:
  std::string type_name() const override { return "Identity"; }
  Tensor forward(const Tensor& x) override { return x; }
};

// Flattens dims start_dim..end_dim (default: all but the batch dim).
class Flatten : public Module {
 public:
  explicit Flatten(int64_t start_dim = 1, int64_t end_dim = -1) : start_dim(start_dim), end_dim(end_dim) {}
  std::string type_name() const override { return "Flatten"; }
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

  int64_t start_dim, end_dim;
};

// A lookup table: weight [num, dim] ~ N(0, 1); the padding_idx row starts at zero.
class Embedding : public Module {
 public:
  Embedding(int64_t num_embeddings, int64_t embedding_dim, std::optional<int64_t> padding_idx = {},
            TensorOptions opts = {});
  std::string type_name() const override { return "Embedding"; }
  Tensor forward(const Tensor& indices) override;
  std::string extra_repr() const override;
  void reset_parameters();

  int64_t num_embeddings, embedding_dim;
  std::optional<int64_t> padding_idx;
  Tensor weight;
};

// Multi-head attention (torch.nn.MultiheadAttention with equal q/k/v dims):
// in_proj_weight [3E, E] ~ xavier_uniform, in_proj_bias zeros, out_proj Linear(E, E)
// with bias zeros. Inputs are [N, L, E] when batch_first, else [L, N, E].
class MultiheadAttention : public Module {
 public:
  MultiheadAttention(int64_t embed_dim, int64_t num_heads, double dropout = 0.0, bool bias = true,
                     bool batch_first = true, TensorOptions opts = {});
  std::string type_name() const override { return "MultiheadAttention"; }
  // attn_mask: bool (true = attend) or float (added), broadcastable to [N, H, L, S].
  Tensor forward(const Tensor& query, const Tensor& key, const Tensor& value, const Tensor& attn_mask = Tensor(),
                 bool is_causal = false);
  Tensor forward(const Tensor& x) override { return forward(x, x, x); }  // self-attention
  std::string extra_repr() const override;
  void reset_parameters();

  int64_t embed_dim, num_heads, head_dim;
  double dropout;
  bool batch_first;
  Tensor in_proj_weight, in_proj_bias;
  std::shared_ptr<Linear> out_proj;
};

template <class M>
concept ModuleValue = std::derived_from<std::remove_cvref_t<M>, Module>;

// Modules applied in order; children are named "0", "1", ...
class Sequential : public Module {
 public:
  Sequential() = default;
  template <class... Ms>
    requires(sizeof...(Ms) > 0 && ((ModuleValue<Ms> || std::convertible_to<Ms, std::shared_ptr<Module>>) && ...) &&
             !(sizeof...(Ms) == 1 && (std::same_as<std::remove_cvref_t<Ms>, Sequential> && ...)))
  explicit Sequential(Ms&&... ms) {
    (push_back(std::forward<Ms>(ms)), ...);
  }
  std::string type_name() const override { return "Sequential"; }
  Tensor forward(const Tensor& x) override;

  void push_back(std::shared_ptr<Module> m);
  // A module given by value is moved into the Sequential (a copy shares its parameters).
  template <ModuleValue M>
  void push_back(M&& m) {
    push_back(std::shared_ptr<Module>(std::make_shared<std::remove_cvref_t<M>>(std::forward<M>(m))));
  }
  size_t size() const { return named_children().size(); }
  std::shared_ptr<Module> operator[](int64_t index) const;
  template <class M> std::shared_ptr<M> at(int64_t index) const {
    auto m = std::dynamic_pointer_cast<M>((*this)[index]);
    KILN_CHECK(m != nullptr, "Sequential", "module ", index, " is a ", (*this)[index]->type_name(),
               ", not the type asked for");
    return m;
  }
};

// Holds modules (named "0", "1", ...) without a forward of its own.
class ModuleList : public Module {
 public:
  ModuleList() = default;
  std::string type_name() const override { return "ModuleList"; }
  void push_back(std::shared_ptr<Module> m);
  template <ModuleValue M>
  void push_back(M&& m) {
    push_back(std::shared_ptr<Module>(std::make_shared<std::remove_cvref_t<M>>(std::forward<M>(m))));
  }
  size_t size() const { return named_children().size(); }
  std::shared_ptr<Module> operator[](int64_t index) const;
  template <class M> std::shared_ptr<M> at(int64_t index) const {
    auto m = std::dynamic_pointer_cast<M>((*this)[index]);
    KILN_CHECK(m != nullptr, "ModuleList", "module ", index, " is a ", (*this)[index]->type_name(),
               ", not the type asked for");
    return m;
  }
};

}  // namespace kiln::nn
