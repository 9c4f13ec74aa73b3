#pragma once
// Everything of kiln::optim: optimizers and learning-rate schedulers.
#include "kiln/optim/adam.h"
#include "kiln/optim/optimizer.h"
#include "kiln/optim/rmsprop.h"
#include "kiln/optim/scheduler.h"
#include "kiln/optim/sgd.h"
