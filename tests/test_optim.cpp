// Optimizers and LR schedulers against their published update rules, computed here in
// double precision on a small quadratic f(p) = 1/2 sum a_i p_i^2 (grad = a * p), with
// the gradients set by hand (set_grad) so the optimizer math is tested on its own.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <vector>

#include "kiln/device_manager.h"
#include "kiln/dispatch.h"
#include "kiln/ops.h"
#include "kiln/optim.h"

using namespace kiln;
using namespace kiln::optim;

namespace {

const std::vector<double> kA = {0.5, 1.0, 2.0, -1.5};
const std::vector<double> kP0 = {1.0, -2.0, 0.5, 3.0};

Tensor make_param(DType dt = DType::Float64) { return tensor<double>(kP0, {2, 2}, dt).requires_grad_(); }

// Sets p.grad = a * p from p's current values.
void set_quadratic_grad(Tensor p) {
  const auto v = p.to_vector<double>();
  std::vector<double> g(v.size());
  for (size_t i = 0; i < v.size(); ++i) g[i] = kA[i] * v[i];
  p.set_grad(tensor<double>(g, p.shape(), p.dtype()));
}

void expect_near_vec(const std::vector<double>& got, const std::vector<double>& want, double tol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tol * (1 + std::abs(want[i]))) << "i=" << i;
}

// Reference SGD in double.
std::vector<double> sgd_ref(int steps, double lr, double mom, double damp, double wd, bool nesterov) {
  std::vector<double> p = kP0, buf(p.size());
  for (int t = 0; t < steps; ++t)
    for (size_t i = 0; i < p.size(); ++i) {
      double g = kA[i] * p[i] + wd * p[i];
      if (mom != 0) {
        buf[i] = t == 0 ? g : mom * buf[i] + (1 - damp) * g;
        g = nesterov ? g + mom * buf[i] : buf[i];
      }
      p[i] -= lr * g;
    }
  return p;
}

std::vector<double> adam_ref(int steps, double lr, double b1, double b2, double eps, double wd, bool decoupled,
                             bool amsgrad) {
  std::vector<double> p = kP0, m(p.size()), v(p.size()), vmax(p.size());
  for (int t = 1; t <= steps; ++t)
    for (size_t i = 0; i < p.size(); ++i) {
      double g = kA[i] * p[i];
      if (decoupled) p[i] *= 1 - lr * wd;
      else g += wd * p[i];
      m[i] = b1 * m[i] + (1 - b1) * g;
      v[i] = b2 * v[i] + (1 - b2) * g * g;
      vmax[i] = std::max(vmax[i], v[i]);
      const double vhat = (amsgrad ? vmax[i] : v[i]) / (1 - std::pow(b2, t));
      const double mhat = m[i] / (1 - std::pow(b1, t));
      p[i] -= lr * mhat / (std::sqrt(vhat) + eps);
    }
  return p;
}

std::vector<double> rmsprop_ref(int steps, double lr, double alpha, double eps, double wd, double mom,
                                bool centered) {
  std::vector<double> p = kP0, sq(p.size()), ga(p.size()), buf(p.size());
  for (int t = 0; t < steps; ++t)
    for (size_t i = 0; i < p.size(); ++i) {
      const double g = kA[i] * p[i] + wd * p[i];
      sq[i] = alpha * sq[i] + (1 - alpha) * g * g;
      double avg;
      if (centered) {
        ga[i] = alpha * ga[i] + (1 - alpha) * g;
        avg = std::sqrt(sq[i] - ga[i] * ga[i]) + eps;
      } else {
        avg = std::sqrt(sq[i]) + eps;
      }
      if (mom > 0) {
        buf[i] = mom * buf[i] + g / avg;
        p[i] -= lr * buf[i];
      } else {
        p[i] -= lr * g / avg;
      }
    }
  return p;
}

template <class Opt, class Options>
std::vector<double> run_steps(int steps, Options o, DType dt = DType::Float64) {
  Tensor p = make_param(dt);
  Opt opt({p}, o);
  for (int t = 0; t < steps; ++t) {
    set_quadratic_grad(p);
    opt.step();
  }
  return p.to_vector<double>();
}

}  // namespace

TEST(Optim, SgdPlainMomentumDampeningNesterovWeightDecay) {
  expect_near_vec(run_steps<SGD>(3, SGDOptions{.lr = 0.1}), sgd_ref(3, 0.1, 0, 0, 0, false), 1e-12);
  expect_near_vec(run_steps<SGD>(3, SGDOptions{.lr = 0.1, .momentum = 0.9, .dampening = 0.3}),
                  sgd_ref(3, 0.1, 0.9, 0.3, 0, false), 1e-12);
  expect_near_vec(run_steps<SGD>(3, SGDOptions{.lr = 0.05, .momentum = 0.8, .weight_decay = 0.1, .nesterov = true}),
                  sgd_ref(3, 0.05, 0.8, 0, 0.1, true), 1e-12);
}

TEST(Optim, SgdTwoStepsByHand) {
  // p0 = 1, a = 0.5: g0 = 0.5, buf = 0.5, p1 = 1 - 0.1*0.5 = 0.95;
  // g1 = 0.475, buf = 0.9*0.5 + 0.475 = 0.925, p2 = 0.95 - 0.0925 = 0.8575.
  const auto p = run_steps<SGD>(2, SGDOptions{.lr = 0.1, .momentum = 0.9});
  EXPECT_NEAR(p[0], 0.8575, 1e-12);
}

TEST(Optim, AdamAndAdamW) {
  for (bool fused : {true, false}) {
  SCOPED_TRACE(fused ? "fused kernel" : "dispatched ops");
  expect_near_vec(run_steps<Adam>(3, AdamOptions{.lr = 0.1, .fused = fused}),
                  adam_ref(3, 0.1, 0.9, 0.999, 1e-8, 0, false, false), 1e-12);
  expect_near_vec(
      run_steps<Adam>(3, AdamOptions{.lr = 0.1, .beta1 = 0.8, .beta2 = 0.99, .weight_decay = 0.2, .fused = fused}),
      adam_ref(3, 0.1, 0.8, 0.99, 1e-8, 0.2, false, false), 1e-12);
  expect_near_vec(run_steps<Adam>(4, AdamOptions{.lr = 0.3, .amsgrad = true, .fused = fused}),
                  adam_ref(4, 0.3, 0.9, 0.999, 1e-8, 0, false, true), 1e-12);
  AdamWOptions w;
  w.lr = 0.1;
  w.weight_decay = 0.5;
  w.fused = fused;
  expect_near_vec(run_steps<AdamW>(3, w), adam_ref(3, 0.1, 0.9, 0.999, 1e-8, 0.5, true, false), 1e-12);
  expect_near_vec(run_steps<Adam>(3, AdamOptions{.lr = 0.1, .fused = fused}, DType::Float32),
                  adam_ref(3, 0.1, 0.9, 0.999, 1e-8, 0, false, false), 1e-5);
  }
  EXPECT_DOUBLE_EQ(AdamWOptions().weight_decay, 1e-2);
}

TEST(Optim, AdamFirstStepMovesEachCoordinateByLr) {
  // With bias correction, step 1 is p -= lr * g / (|g| + eps): about lr * sign(g).
  const auto p = run_steps<Adam>(1, AdamOptions{.lr = 0.01});
  for (size_t i = 0; i < p.size(); ++i) {
    const double g = kA[i] * kP0[i];
    EXPECT_NEAR(p[i], kP0[i] - 0.01 * g / (std::abs(g) + 1e-8), 1e-12);
  }
}

TEST(Optim, AdamFloat32CloseToDoubleReference) {
  expect_near_vec(run_steps<Adam>(3, AdamOptions{.lr = 0.1}, DType::Float32),
                  adam_ref(3, 0.1, 0.9, 0.999, 1e-8, 0, false, false), 1e-5);
}

// float16/bfloat16 parameters take the fused kernel (float32 arithmetic per element, state
// stored in the parameter's dtype) on every present device; the result stays within the
// dtype's rounding of the double-precision reference.
TEST(Optim, AdamHalfPrecisionParametersOnEveryDevice) {
  for (const Device& dev : device_manager().devices()) {
    for (DType dt : {DType::Float16, DType::BFloat16}) {
      ASSERT_TRUE(kernel_registry().supports(dev.type, OpId::AdamStep, dt)) << dev.str() << " " << dtype_name(dt);
      const double tol = dt == DType::Float16 ? 1e-3 : 1e-2;
      for (bool amsgrad : {false, true}) {
        for (bool fused : {true, false}) {
          SCOPED_TRACE(dev.str() + " " + dtype_name(dt) + (amsgrad ? " amsgrad" : "") + (fused ? " fused" : " ops"));
          Tensor p = tensor<double>(kP0, {2, 2}, dt).to(dev).requires_grad_();
          Adam opt({p}, AdamOptions{.lr = 0.1, .weight_decay = 0.1, .amsgrad = amsgrad, .fused = fused});
          for (int t = 0; t < 3; ++t) {
            const auto v = p.to_vector<double>();
            std::vector<double> g(v.size());
            for (size_t i = 0; i < v.size(); ++i) g[i] = kA[i] * v[i];
            p.set_grad(tensor<double>(g, p.shape(), dt).to(dev));
            opt.step();
          }
          EXPECT_EQ(p.dtype(), dt);
          EXPECT_EQ(p.device(), dev);
          expect_near_vec(p.to_vector<double>(), adam_ref(3, 0.1, 0.9, 0.999, 1e-8, 0.1, false, amsgrad), tol);
        }
      }
    }
  }
}

TEST(Optim, RMSprop) {
  expect_near_vec(run_steps<RMSprop>(3, RMSpropOptions{.lr = 0.01}), rmsprop_ref(3, 0.01, 0.99, 1e-8, 0, 0, false),
                  1e-12);
  expect_near_vec(
      run_steps<RMSprop>(3, RMSpropOptions{.lr = 0.01, .alpha = 0.9, .weight_decay = 0.1, .momentum = 0.5, .centered = true}),
      rmsprop_ref(3, 0.01, 0.9, 1e-8, 0.1, 0.5, true), 1e-12);
}

TEST(Optim, ZeroGradSetsNoneOrZeros) {
  Tensor p = make_param();
  SGD opt({p}, SGDOptions{.lr = 0.1});
  set_quadratic_grad(p);
  opt.zero_grad(false);
  ASSERT_TRUE(p.grad().defined());
  for (double g : p.grad().to_vector<double>()) EXPECT_EQ(g, 0.0);
  opt.zero_grad();
  EXPECT_FALSE(p.grad().defined());
}

TEST(Optim, GroupsHaveTheirOwnLrAndParamsWithoutGradAreSkipped) {
  Tensor a = make_param(), b = make_param(), c = make_param();
  SGD opt(std::vector<ParamGroup>{{{a}, 0.1}, {{b, c}}}, SGDOptions{.lr = 0.01});
  ASSERT_EQ(opt.param_groups().size(), 2u);
  EXPECT_DOUBLE_EQ(opt.param_groups()[0].lr, 0.1);
  EXPECT_DOUBLE_EQ(opt.param_groups()[1].lr, 0.01);
  set_quadratic_grad(a);
  set_quadratic_grad(b);
  opt.step();
  expect_near_vec(a.to_vector<double>(), sgd_ref(1, 0.1, 0, 0, 0, false), 1e-12);
  expect_near_vec(b.to_vector<double>(), sgd_ref(1, 0.01, 0, 0, 0, false), 1e-12);
  EXPECT_EQ(c.to_vector<double>(), kP0);
}

TEST(Optim, UpdatesDoNotRecordAutogradHistory) {
  Tensor p = make_param();
  Adam opt({p}, AdamOptions{.lr = 0.1});
  set_quadratic_grad(p);
  opt.step();
  EXPECT_TRUE(p.requires_grad());
  EXPECT_TRUE(p.is_leaf());
}

TEST(Optim, InvalidHyperparametersRaise) {
  Tensor p = make_param();
  EXPECT_THROW(SGD({p}, SGDOptions{.lr = -1}), Error);
  EXPECT_THROW(SGD({p}, SGDOptions{.lr = 0.1, .nesterov = true}), Error);
  EXPECT_THROW(Adam({p}, AdamOptions{.beta1 = 1.0}), Error);
  EXPECT_THROW(RMSprop({p}, RMSpropOptions{.alpha = -0.1}), Error);
  EXPECT_THROW(SGD(std::vector<Tensor>{p, p}), Error);  // a parameter twice
  EXPECT_THROW(SGD(std::vector<Tensor>{tensor<int64_t>({1, 2})}), Error);
  try {
    SGD({p}, SGDOptions{.lr = 0.1, .momentum = -0.5});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[SGD]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("momentum"), std::string::npos) << e.what();
  }
}

namespace {
// Deterministic grads for resume tests: a * p + 0.01 * step.
void set_step_grad(Tensor p, int step) {
  const auto v = p.to_vector<double>();
  std::vector<double> g(v.size());
  for (size_t i = 0; i < v.size(); ++i) g[i] = kA[i] * v[i] + 0.01 * step;
  p.set_grad(tensor<double>(g, p.shape(), p.dtype()));
}

template <class Opt, class Options>
void expect_bit_identical_resume(Options o, DType dt) {
  Tensor p = make_param(dt);
  Opt a({p}, o);
  for (int t = 0; t < 3; ++t) {
    set_step_grad(p, t);
    a.step();
  }
  // Checkpoint: parameter values and optimizer state.
  const Tensor saved_p = p.detach().clone();
  const StateDict saved = a.state_dict();
  StateDict snapshot;  // the state_dict holds live buffers; keep copies
  for (const auto& [k, t] : saved) snapshot.insert(k, t.clone());
  for (int t = 3; t < 6; ++t) {
    set_step_grad(p, t);
    a.step();
  }
  Tensor q = saved_p.clone().requires_grad_();
  Opt b({q}, o);  // hyperparameters come from the code, state from the dict
  b.load_state_dict(snapshot);
  for (int t = 3; t < 6; ++t) {
    set_step_grad(q, t);
    b.step();
  }
  if (dt == DType::Float32) EXPECT_EQ(p.to_vector<float>(), q.to_vector<float>());
  else EXPECT_EQ(p.to_vector<double>(), q.to_vector<double>());
  EXPECT_DOUBLE_EQ(b.param_groups()[0].lr, a.param_groups()[0].lr);
}
}  // namespace

TEST(Optim, ResumeFromStateDictIsBitIdentical) {
  expect_bit_identical_resume<SGD>(SGDOptions{.lr = 0.1, .momentum = 0.9, .nesterov = true}, DType::Float32);
  expect_bit_identical_resume<Adam>(AdamOptions{.lr = 0.05, .weight_decay = 0.1, .amsgrad = true}, DType::Float32);
  AdamWOptions w;
  w.lr = 0.05;
  expect_bit_identical_resume<AdamW>(w, DType::Float64);
  expect_bit_identical_resume<RMSprop>(RMSpropOptions{.lr = 0.01, .momentum = 0.5, .centered = true}, DType::Float32);
}

TEST(Optim, StateDictHoldsStepCountsAndMoments) {
  Tensor p = make_param();
  Adam opt({p}, AdamOptions{.lr = 0.1});
  set_quadratic_grad(p);
  opt.step();
  opt.step();
  const StateDict d = opt.state_dict();
  ASSERT_TRUE(d.contains("state.0.step"));
  EXPECT_EQ(d.at("state.0.step").item<int64_t>(), 2);
  EXPECT_EQ(d.at("state.0.exp_avg").shape(), p.shape());
  EXPECT_EQ(d.at("state.0.exp_avg_sq").shape(), p.shape());
  EXPECT_DOUBLE_EQ(d.at("param_groups.0.lr").item<double>(), 0.1);
  // m after two steps on the same grad g: (1 - 0.9^2) g
  const auto m = d.at("state.0.exp_avg").to_vector<double>();
  for (size_t i = 0; i < m.size(); ++i) EXPECT_NEAR(m[i], 0.19 * kA[i] * kP0[i], 1e-12);
}

TEST(Optim, LoadStateDictErrorsNameKeysAndLeaveOptimizerUnchanged) {
  Tensor p = make_param();
  SGD opt({p}, SGDOptions{.lr = 0.1, .momentum = 0.9});
  set_quadratic_grad(p);
  opt.step();
  const auto buf_before = opt.state_dict().at("state.0.momentum_buffer").clone().to_vector<double>();

  StateDict bad;
  bad.insert("param_groups.0.lr", scalar_tensor(0.5, DType::Float64));
  bad.insert("state.0.step", scalar_tensor(int64_t(7), DType::Int64));
  bad.insert("state.0.momentum_buffer", zeros({3}, DType::Float64));  // wrong shape
  bad.insert("state.5.momentum_buffer", zeros({2, 2}, DType::Float64));  // no parameter 5
  try {
    opt.load_state_dict(bad);
    FAIL() << "expected kiln::Error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("state.0.momentum_buffer"), std::string::npos) << msg;
    EXPECT_NE(msg.find("state.5.momentum_buffer"), std::string::npos) << msg;
  }
  EXPECT_DOUBLE_EQ(opt.param_groups()[0].lr, 0.1);
  EXPECT_EQ(opt.state(0).step, 1);
  EXPECT_EQ(opt.state_dict().at("state.0.momentum_buffer").to_vector<double>(), buf_before);

  StateDict missing_lr;
  try {
    opt.load_state_dict(missing_lr);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("param_groups.0.lr"), std::string::npos) << e.what();
  }
}

TEST(Optim, LoadedBuffersDoNotAliasTheDict) {
  Tensor p = make_param();
  SGD a({p}, SGDOptions{.lr = 0.1, .momentum = 0.9});
  set_quadratic_grad(p);
  a.step();
  const StateDict d = a.state_dict();
  Tensor q = make_param();
  SGD b({q}, SGDOptions{.lr = 0.1, .momentum = 0.9});
  b.load_state_dict(d);
  const auto before = d.at("state.0.momentum_buffer").to_vector<double>();
  set_quadratic_grad(q);
  b.step();
  EXPECT_EQ(d.at("state.0.momentum_buffer").to_vector<double>(), before);
}

// ---- schedulers
TEST(Scheduler, StepLR) {
  Tensor p = make_param();
  SGD opt({p}, SGDOptions{.lr = 1.0});
  StepLR s(opt, 3, 0.5);
  for (int e = 1; e <= 10; ++e) {
    s.step();
    EXPECT_DOUBLE_EQ(s.get_last_lr()[0], std::pow(0.5, e / 3)) << "epoch " << e;
    EXPECT_DOUBLE_EQ(opt.param_groups()[0].lr, s.get_last_lr()[0]);
  }
}

TEST(Scheduler, CosineAnnealingLR) {
  Tensor p = make_param();
  SGD opt({p}, SGDOptions{.lr = 0.2});
  CosineAnnealingLR s(opt, 10, 0.01);
  EXPECT_DOUBLE_EQ(opt.param_groups()[0].lr, 0.2);
  for (int e = 1; e <= 10; ++e) {
    s.step();
    const double want = 0.01 + (0.2 - 0.01) * (1 + std::cos(std::numbers::pi * e / 10.0)) / 2;
    EXPECT_NEAR(opt.param_groups()[0].lr, want, 1e-15);
  }
  EXPECT_NEAR(opt.param_groups()[0].lr, 0.01, 1e-15);
}

TEST(Scheduler, LinearLRAndWarmupPerGroup) {
  Tensor a = make_param(), b = make_param();
  SGD opt(std::vector<ParamGroup>{{{a}, 0.1}, {{b}, 0.4}}, SGDOptions{});
  LinearWarmup s(opt, 4);  // factor 1/4, 2/4, 3/4, 1, 1, ...
  EXPECT_DOUBLE_EQ(opt.param_groups()[0].lr, 0.025);
  EXPECT_DOUBLE_EQ(opt.param_groups()[1].lr, 0.1);
  for (int e = 1; e <= 6; ++e) {
    s.step();
    const double f = 0.25 + 0.75 * std::min(e, 4) / 4.0;
    EXPECT_NEAR(s.get_last_lr()[0], 0.1 * f, 1e-15);
    EXPECT_NEAR(s.get_last_lr()[1], 0.4 * f, 1e-15);
  }
  LambdaLR l(opt, [](int64_t e) { return 1.0 / double(e + 1); });
  l.step();
  EXPECT_NEAR(opt.param_groups()[1].lr, 0.4 / 2, 1e-15);
  EXPECT_THROW(StepLR(opt, 0), Error);
  EXPECT_THROW(LinearLR(opt, 0.0), Error);
}

// ---- gradient clipping
#include "kiln/nn/clip_grad.h"

TEST(ClipGrad, ScalesToMaxNormAndReturnsTotal) {
  Tensor a = zeros({2}, DType::Float64).requires_grad_(), b = zeros({1}, DType::Float64).requires_grad_();
  Tensor c = zeros({3}).requires_grad_();  // no grad: skipped
  a.set_grad(tensor<double>({3, 4}));
  b.set_grad(tensor<double>({12}));
  const Tensor total = nn::utils::clip_grad_norm_({a, b, c}, 6.5);
  EXPECT_NEAR(total.item<double>(), 13.0, 1e-5);
  const double s = 6.5 / (13.0 + 1e-6);
  EXPECT_NEAR(a.grad().to_vector<double>()[0], 3 * s, 1e-6);
  EXPECT_NEAR(b.grad().to_vector<double>()[0], 12 * s, 1e-6);
  // Under the limit nothing changes.
  EXPECT_NEAR(nn::utils::clip_grad_norm_({a, b}, 100.0).item<double>(), 6.5, 1e-5);
  EXPECT_NEAR(a.grad().to_vector<double>()[1], 4 * s, 1e-6);
  // Infinity norm: the largest |g|.
  a.set_grad(tensor<double>({-9, 1}));
  b.set_grad(tensor<double>({2}));
  EXPECT_NEAR(nn::utils::clip_grad_norm_({a, b}, 3.0, nn::utils::kInfNorm).item<double>(), 9.0, 1e-6);
  EXPECT_NEAR(a.grad().to_vector<double>()[0], -3.0, 1e-5);
  EXPECT_THROW(nn::utils::clip_grad_norm_({a}, -1.0), Error);
}

// ---- on another device (the fake GPU of tests/support: host memory, CPU fallback)
#include "kiln/nn/layers.h"
#include "kiln/nn/loss.h"
#include "kiln/generator.h"
#include "tests/support/fake_backend.h"

// The fake device has only an Add kernel (no Fill/Copy), so this checks placement, not
// an optimizer step there: Module::to moves parameters, grads and buffers in place, so
// the handles an optimizer holds follow, and a loaded state lands on the parameters'
// device.
TEST(OptimOnDevice, ModuleToDeviceMovesWhatTheOptimizerHolds) {
  kiln::testing::FakeGpuScope scope;
  const Device gpu = kiln::testing::kFakeGpu;
  {
    nn::BatchNorm2dImpl model(3);
    const std::vector<Tensor> params = model.parameters();
    SGD sgd(params, SGDOptions{.lr = 0.05, .momentum = 0.9});
    for (auto p : params) p.set_grad(full({3}, 0.5));
    sgd.step();
    const StateDict saved = sgd.state_dict();
    const auto before = model.weight.to_vector<float>();
    model.to(gpu);
    for (const auto& p : sgd.param_groups()[0].params) {
      EXPECT_EQ(p.device(), gpu);
      EXPECT_EQ(p.grad().device(), gpu);
    }
    EXPECT_TRUE(sgd.param_groups()[0].params[0].is_same(model.weight));
    EXPECT_EQ(model.running_mean.device(), gpu);
    EXPECT_EQ(model.num_batches_tracked.device(), gpu);
    EXPECT_EQ(model.weight.to_vector<float>(), before);  // the data came along
    SGD fresh(params, SGDOptions{.lr = 0.05, .momentum = 0.9});
    fresh.load_state_dict(saved);  // CPU buffers copied onto the parameters' device
    EXPECT_EQ(fresh.state(0).buffers.at("momentum_buffer").device(), gpu);
    model.to(kCpu);
    EXPECT_EQ(params[0].device(), kCpu);
    EXPECT_EQ(model.weight.to_vector<float>(), before);
  }
}
