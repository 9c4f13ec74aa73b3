#pragma once
// Everything a kiln program uses, as <torch/torch.h> is for libtorch: tensors and ops,
// autograd, nn, optim, data, checkpoints, devices and memory.
#include "kiln/autograd.h"
#include "kiln/data/dataloader.h"
#include "kiln/data/dataset.h"
#include "kiln/data/fashion_mnist.h"
#include "kiln/data/transforms.h"
#include "kiln/device_manager.h"
#include "kiln/generator.h"
#include "kiln/io/safetensors.h"
#include "kiln/memory.h"
#include "kiln/nn.h"
#include "kiln/ops.h"
#include "kiln/optim.h"
#include "kiln/tensor.h"
#include "kiln/tensor_options.h"
