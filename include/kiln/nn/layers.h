#pragma once
// The layers of torch.nn, with PyTorch's defaults and default initialisation
// (reset_parameters()). As in libtorch, `XImpl` is the module class and `X` its holder
// (KILN_MODULE): nn::Linear(3, 4) or nn::Linear(nn::LinearOptions(3, 4).bias(false)) makes
// one, `->` reaches its members. Members hold the same handles the module registered,
// so `lin->weight` is the parameter an optimizer updates.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "kiln/nn/container.h"
#include "kiln/nn/module.h"
#include "kiln/nn/options/activation.h"
#include "kiln/nn/options/conv.h"
#include "kiln/nn/options/linear.h"
#include "kiln/nn/options/normalization.h"
#include "kiln/nn/options/pooling.h"
#include "kiln/ops.h"

namespace kiln::nn {

// y = x W^T + b; W [out, in] ~ kaiming_uniform(a = sqrt(5)), b ~ U(+-1/sqrt(in)).
class LinearImpl : public Module {
 public:
  explicit LinearImpl(const LinearOptions& options, TensorOptions opts = {});
  LinearImpl(int64_t in_features, int64_t out_features, bool bias = true, TensorOptions opts = {})
      : LinearImpl(LinearOptions(in_features, out_features).bias(bias), opts) {}
  std::string type_name() const override { return "Linear"; }
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  void reset_parameters();

  LinearOptions options;
  int64_t in_features, out_features;
  Tensor weight, bias;
};
KILN_MODULE(Linear);

// 2-D convolution over NCHW; W [out, in/groups, kh, kw], same default init as Linear.
class Conv2dImpl : public Module {
 public:
  explicit Conv2dImpl(const Conv2dOptions& options, TensorOptions opts = {});
  Conv2dImpl(int64_t in_channels, int64_t out_channels, ExpandingArray<2> kernel_size, ExpandingArray<2> stride = 1,
             ExpandingArray<2> padding = 0, ExpandingArray<2> dilation = 1, int64_t groups = 1, bool bias = true,
             TensorOptions opts = {})
      : Conv2dImpl(Conv2dOptions(in_channels, out_channels, kernel_size)
                       .stride(stride)
                       .padding(padding)
                       .dilation(dilation)
                       .groups(groups)
                       .bias(bias),
                   opts) {}
  std::string type_name() const override { return "Conv2d"; }
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  void reset_parameters();

  Conv2dOptions options;
  int64_t in_channels, out_channels, groups;
  Pair kernel_size, stride, padding, dilation;
  Tensor weight, bias;
};
KILN_MODULE(Conv2d);

// Transposed 2-D convolution; W [in, out/groups, kh, kw]. PyTorch computes the default
// init's fan_in from W's second dim (out/groups * kh * kw); so does kiln.
class ConvTranspose2dImpl : public Module {
 public:
  explicit ConvTranspose2dImpl(const ConvTranspose2dOptions& options, TensorOptions opts = {});
  ConvTranspose2dImpl(int64_t in_channels, int64_t out_channels, ExpandingArray<2> kernel_size,
                      ExpandingArray<2> stride = 1, ExpandingArray<2> padding = 0,
                      ExpandingArray<2> output_padding = 0, int64_t groups = 1, bool bias = true,
                      ExpandingArray<2> dilation = 1, TensorOptions opts = {})
      : ConvTranspose2dImpl(ConvTranspose2dOptions(in_channels, out_channels, kernel_size)
                                .stride(stride)
                                .padding(padding)
                                .output_padding(output_padding)
                                .groups(groups)
                                .bias(bias)
                                .dilation(dilation),
                            opts) {}
  std::string type_name() const override { return "ConvTranspose2d"; }
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  void reset_parameters();

  ConvTranspose2dOptions options;
  int64_t in_channels, out_channels, groups;
  Pair kernel_size, stride, padding, output_padding, dilation;
  Tensor weight, bias;
};
KILN_MODULE(ConvTranspose2d);

// Batch normalisation over (N, H, W) per channel. Training normalises with the batch's
// statistics and updates running_mean/running_var (unbiased variance) with momentum
// (momentum empty: a cumulative average over num_batches_tracked); eval uses them.
class BatchNorm2dImpl : public Module {
 public:
  explicit BatchNorm2dImpl(const BatchNormOptions& options, TensorOptions opts = {});
  explicit BatchNorm2dImpl(int64_t num_features, double eps = 1e-5, std::optional<double> momentum = 0.1,
                           bool affine = true, bool track_running_stats = true, TensorOptions opts = {})
      : BatchNorm2dImpl(BatchNormOptions(num_features)
                            .eps(eps)
                            .momentum(momentum)
                            .affine(affine)
                            .track_running_stats(track_running_stats),
                        opts) {}
  std::string type_name() const override { return "BatchNorm2d"; }
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  void reset_running_stats();
  void reset_parameters();

  BatchNormOptions options;
  int64_t num_features;
  double eps;
  std::optional<double> momentum;
  bool affine, track_running_stats;
  Tensor weight, bias, running_mean, running_var, num_batches_tracked;
};
KILN_MODULE(BatchNorm2d);

// Normalises over the trailing normalized_shape dims; weight ones, bias zeros.
class LayerNormImpl : public Module {
 public:
  explicit LayerNormImpl(const LayerNormOptions& options, TensorOptions opts = {});
  explicit LayerNormImpl(Shape normalized_shape, double eps = 1e-5, bool elementwise_affine = true, bool bias = true,
                         TensorOptions opts = {})
      : LayerNormImpl(LayerNormOptions(std::move(normalized_shape)).eps(eps).elementwise_affine(elementwise_affine).bias(bias),
                      opts) {}
  std::string type_name() const override { return "LayerNorm"; }
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

  LayerNormOptions options;
  Shape normalized_shape;
  double eps;
  Tensor weight, bias;
};
KILN_MODULE(LayerNorm);

class MaxPool2dImpl : public Module {
 public:
  explicit MaxPool2dImpl(const MaxPool2dOptions& options);
  explicit MaxPool2dImpl(ExpandingArray<2> kernel_size, std::optional<ExpandingArray<2>> stride = {},
                         ExpandingArray<2> padding = 0, ExpandingArray<2> dilation = 1, bool ceil_mode = false)
      : MaxPool2dImpl(MaxPool2dOptions(kernel_size)
                          .stride(stride.value_or(kernel_size))
                          .padding(padding)
                          .dilation(dilation)
                          .ceil_mode(ceil_mode)) {}
  std::string type_name() const override { return "MaxPool2d"; }
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

  MaxPool2dOptions options;
  Pair kernel_size, stride, padding, dilation;
  bool ceil_mode;
};
KILN_MODULE(MaxPool2d);

class AvgPool2dImpl : public Module {
 public:
  explicit AvgPool2dImpl(const AvgPool2dOptions& options);
  explicit AvgPool2dImpl(ExpandingArray<2> kernel_size, std::optional<ExpandingArray<2>> stride = {},
                         ExpandingArray<2> padding = 0, bool ceil_mode = false, bool count_include_pad = true)
      : AvgPool2dImpl(AvgPool2dOptions(kernel_size)
                          .stride(stride.value_or(kernel_size))
                          .padding(padding)
                          .ceil_mode(ceil_mode)
                          .count_include_pad(count_include_pad)) {}
  std::string type_name() const override { return "AvgPool2d"; }
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

  AvgPool2dOptions options;
  Pair kernel_size, stride, padding;
  bool ceil_mode, count_include_pad;
};
KILN_MODULE(AvgPool2d);

class AdaptiveAvgPool2dImpl : public Module {
 public:
  explicit AdaptiveAvgPool2dImpl(const AdaptiveAvgPool2dOptions& options)
      : options(options), output_size(options.output_size()) {}
  explicit AdaptiveAvgPool2dImpl(ExpandingArray<2> output_size)
      : AdaptiveAvgPool2dImpl(AdaptiveAvgPool2dOptions(output_size)) {}
  std::string type_name() const override { return "AdaptiveAvgPool2d"; }
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

  AdaptiveAvgPool2dOptions options;
  Pair output_size;
};
KILN_MODULE(AdaptiveAvgPool2d);

// Zeroes elements with probability p and scales the rest by 1/(1-p) in training;
// the identity in eval.
class DropoutImpl : public Module {
 public:
  explicit DropoutImpl(const DropoutOptions& options = {});
  explicit DropoutImpl(double p) : DropoutImpl(DropoutOptions(p)) {}
  std::string type_name() const override { return "Dropout"; }
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

  DropoutOptions options;
  double p;
};
KILN_MODULE(Dropout);

class ReLUImpl : public Module {
 public:
  explicit ReLUImpl(const ReLUOptions& options = {}) : options(options) {}
  std::string type_name() const override { return "ReLU"; }
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override { return options.inplace() ? "inplace=true" : ""; }

  ReLUOptions options;
};
KILN_MODULE(ReLU);

class GELUImpl : public Module {
 public:
  explicit GELUImpl(const GELUOptions& options = {});
  explicit GELUImpl(std::string approximate) : GELUImpl(GELUOptions().approximate(std::move(approximate))) {}
  std::string type_name() const override { return "GELU"; }
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

  GELUOptions options;
  std::string approximate;
};
KILN_MODULE(GELU);

class SiLUImpl : public Module {
 public:
  std::string type_name() const override { return "SiLU"; }
  Tensor forward(const Tensor& x) override;
};
KILN_MODULE(SiLU);

class IdentityImpl : public Module {
 public:
  std::string type_name() const override { return "Identity"; }
  Tensor forward(const Tensor& x) override { return x; }
};
KILN_MODULE(Identity);

// Flattens dims start_dim..end_dim (default: all but the batch dim).
class FlattenImpl : public Module {
 public:
  explicit FlattenImpl(const FlattenOptions& options = {})
      : options(options), start_dim(options.start_dim()), end_dim(options.end_dim()) {}
  FlattenImpl(int64_t start_dim, int64_t end_dim = -1)
      : FlattenImpl(FlattenOptions().start_dim(start_dim).end_dim(end_dim)) {}
  std::string type_name() const override { return "Flatten"; }
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

  FlattenOptions options;
  int64_t start_dim, end_dim;
};
KILN_MODULE(Flatten);

// A lookup table: weight [num, dim] ~ N(0, 1); the padding_idx row starts at zero.
class EmbeddingImpl : public Module {
 public:
  explicit EmbeddingImpl(const EmbeddingOptions& options, TensorOptions opts = {});
  EmbeddingImpl(int64_t num_embeddings, int64_t embedding_dim, std::optional<int64_t> padding_idx = {},
                TensorOptions opts = {})
      : EmbeddingImpl(EmbeddingOptions(num_embeddings, embedding_dim).padding_idx(padding_idx), opts) {}
  std::string type_name() const override { return "Embedding"; }
  Tensor forward(const Tensor& indices) override;
  std::string extra_repr() const override;
  void reset_parameters();

  EmbeddingOptions options;
  int64_t num_embeddings, embedding_dim;
  std::optional<int64_t> padding_idx;
  Tensor weight;
};
KILN_MODULE(Embedding);

// Multi-head attention (torch.nn.MultiheadAttention with equal q/k/v dims):
// in_proj_weight [3E, E] ~ xavier_uniform, in_proj_bias zeros, out_proj Linear(E, E)
// with bias zeros. Inputs are [N, L, E] when batch_first, else [L, N, E].
class MultiheadAttentionImpl : public Module {
 public:
  MultiheadAttentionImpl(int64_t embed_dim, int64_t num_heads, double dropout = 0.0, bool bias = true,
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
  Linear out_proj{nullptr};
};
KILN_MODULE(MultiheadAttention);

}  // namespace kiln::nn
