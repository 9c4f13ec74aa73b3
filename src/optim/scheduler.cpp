// Learning-rate schedulers as closed forms of the epoch.
#include "kiln/optim/scheduler.h"

#include <cmath>
#include <numbers>

namespace kiln::optim {

LRScheduler::LRScheduler(Optimizer& optimizer) : optimizer_(optimizer) {
  for (const auto& g : optimizer.param_groups()) base_lrs_.push_back(g.lr);
  last_lr_ = base_lrs_;
}

void LRScheduler::apply() {
  auto& groups = optimizer_.param_groups();
  KILN_CHECK(groups.size() == base_lrs_.size(), "lr_scheduler", "the optimizer has ", groups.size(),
             " groups, the scheduler was made for ", base_lrs_.size());
  for (size_t i = 0; i < groups.size(); ++i) {
    groups[i].lr = lr_at(last_epoch_, base_lrs_[i]);
    last_lr_[i] = groups[i].lr;
  }
}

void LRScheduler::step() {
  ++last_epoch_;
  apply();
}

void LRScheduler::set_last_epoch(int64_t epoch) {
  KILN_CHECK(epoch >= 0, "lr_scheduler", "epoch must be non-negative, got ", epoch);
  last_epoch_ = epoch;
  apply();
}

StepLR::StepLR(Optimizer& optimizer, int64_t step_size, double gamma)
    : LRScheduler(optimizer), step_size_(step_size), gamma_(gamma) {
  KILN_CHECK(step_size > 0, "StepLR", "step_size must be positive, got ", step_size);
  apply();
}

double StepLR::lr_at(int64_t epoch, double base) const {
  return base * std::pow(gamma_, double(epoch / step_size_));
}

CosineAnnealingLR::CosineAnnealingLR(Optimizer& optimizer, int64_t t_max, double eta_min)
    : LRScheduler(optimizer), t_max_(t_max), eta_min_(eta_min) {
  KILN_CHECK(t_max > 0, "CosineAnnealingLR", "T_max must be positive, got ", t_max);
  apply();
}

double CosineAnnealingLR::lr_at(int64_t epoch, double base) const {
  return eta_min_ + (base - eta_min_) * (1.0 + std::cos(std::numbers::pi * double(epoch) / double(t_max_))) / 2.0;
}

LinearLR::LinearLR(Optimizer& optimizer, double start_factor, double end_factor, int64_t total_iters)
    : LRScheduler(optimizer), start_(start_factor), end_(end_factor), total_(total_iters) {
  KILN_CHECK(start_factor > 0 && start_factor <= 1, "LinearLR", "start_factor must be in (0, 1], got ",
             start_factor);
  KILN_CHECK(end_factor >= 0 && end_factor <= 1, "LinearLR", "end_factor must be in [0, 1], got ", end_factor);
  KILN_CHECK(total_iters > 0, "LinearLR", "total_iters must be positive, got ", total_iters);
  apply();
}

double LinearLR::lr_at(int64_t epoch, double base) const {
  const double t = double(std::min(epoch, total_)) / double(total_);
  return base * (start_ + (end_ - start_) * t);
}

LambdaLR::LambdaLR(Optimizer& optimizer, std::function<double(int64_t)> fn)
    : LRScheduler(optimizer), fn_(std::move(fn)) {
  KILN_CHECK(fn_ != nullptr, "LambdaLR", "the lambda is empty");
  apply();
}

}  // namespace kiln::optim
