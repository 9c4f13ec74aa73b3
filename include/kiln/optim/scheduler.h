#pragma once
// Learning-rate schedulers (torch.optim.lr_scheduler). A scheduler remembers each
// group's base lr when it is made and sets lr = f(epoch, base) on every step();
// call it once per epoch (or per iteration) after optimizer.step().
#include <cstdint>
#include <functional>
#include <vector>

#include "kiln/optim/optimizer.h"

namespace kiln::optim {

class LRScheduler {
 public:
  virtual ~LRScheduler() = default;
  void step();                                  // last_epoch += 1, then sets the lrs
  const std::vector<double>& get_last_lr() const { return last_lr_; }
  int64_t last_epoch() const { return last_epoch_; }
  const std::vector<double>& base_lrs() const { return base_lrs_; }
  // Schedules are closed forms of the epoch, so their whole state is last_epoch.
  void set_last_epoch(int64_t epoch);

 protected:
  explicit LRScheduler(Optimizer& optimizer);
  virtual double lr_at(int64_t epoch, double base_lr) const = 0;
  void apply();  // sets each group's lr for last_epoch_ (subclasses call it at the end of their constructor)

 private:
  Optimizer& optimizer_;
  std::vector<double> base_lrs_, last_lr_;
  int64_t last_epoch_ = 0;
};

// lr = base * gamma^floor(epoch / step_size)
class StepLR : public LRScheduler {
 public:
  StepLR(Optimizer& optimizer, int64_t step_size, double gamma = 0.1);

 protected:
  double lr_at(int64_t epoch, double base) const override;

 private:
  int64_t step_size_;
  double gamma_;
};

// lr = eta_min + (base - eta_min) * (1 + cos(pi * epoch / T_max)) / 2 (the closed form
// of SGDR without restarts).
class CosineAnnealingLR : public LRScheduler {
 public:
  CosineAnnealingLR(Optimizer& optimizer, int64_t t_max, double eta_min = 0.0);

 protected:
  double lr_at(int64_t epoch, double base) const override;

 private:
  int64_t t_max_;
  double eta_min_;
};

// lr = base * factor, factor going linearly from start_factor (epoch 0) to end_factor
// (epoch total_iters and after): a linear warm-up when start_factor < end_factor.
class LinearLR : public LRScheduler {
 public:
  LinearLR(Optimizer& optimizer, double start_factor = 1.0 / 3.0, double end_factor = 1.0, int64_t total_iters = 5);

 protected:
  double lr_at(int64_t epoch, double base) const override;

 private:
  double start_, end_;
  int64_t total_;
};

// Linear warm-up from base/warmup_steps to base over warmup_steps steps.
class LinearWarmup : public LinearLR {
 public:
  LinearWarmup(Optimizer& optimizer, int64_t warmup_steps)
      : LinearLR(optimizer, 1.0 / double(warmup_steps > 0 ? warmup_steps : 1), 1.0, warmup_steps) {}
};

// lr = base * fn(epoch)
class LambdaLR : public LRScheduler {
 public:
  LambdaLR(Optimizer& optimizer, std::function<double(int64_t)> fn);

 protected:
  double lr_at(int64_t epoch, double base) const override { return base * fn_(epoch); }

 private:
  std::function<double(int64_t)> fn_;
};

}  // namespace kiln::optim
