#pragma once
// Everything of kiln::nn: modules, layers, initialisers, losses, gradient clipping.
#include "kiln/nn/clip_grad.h"
#include "kiln/nn/container.h"
#include "kiln/nn/init.h"
#include "kiln/nn/layers.h"
#include "kiln/nn/loss.h"
#include "kiln/nn/module.h"
#include "kiln/nn/module_holder.h"
#include "kiln/nn/state_dict.h"
