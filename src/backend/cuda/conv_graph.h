#pragma once
// float16/bfloat16 convolutions through cuDNN's graph API. Every engine configuration
// cuDNN's heuristics offer is built and timed once per shape (as PyTorch's
// cudnn.benchmark does) and the fastest kept: on Hopper the graph API reaches kernels the
// legacy convolution API does not (measured on an H200: conv2d 3x3 bf16 N64 C256 56^2,
// 0.445 ms against 0.525 ms for the legacy API's best algorithm, 0.491 ms for PyTorch).
#include "kiln/op_attrs.h"
#include "kiln/tensor.h"
#include "src/backend/cuda/cudnn_graph.h"

namespace kiln::cuda {

using ConvPass = dnn::Graph::ConvPass;

// One pass of y = conv(x, w), where x, w, y are the forward convolution's operands
// (NCHW / OIHW contiguous, or NHWC / OHWI with a.channels_last): Forward writes y,
// BackwardData writes x, BackwardFilter writes w. Returns false, having run nothing,
// when this path does not apply (dtype, groups, alignment) or cuDNN has no engine.
bool run_conv_graph(ConvPass pass, const char* op, int dev, const Tensor& x, const Tensor& w, const Tensor& y,
                    const Conv2dAttrs& a);

}  // namespace kiln::cuda
