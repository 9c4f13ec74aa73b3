// nn::Module structure (names, buffers, modes, placement, checkpoints), initialisers
// (bounds and moments against their definitions) and layers against naive references.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "kiln/nn.h"
#include "kiln/ops.h"

using namespace kiln;
using namespace kiln::nn;

namespace {

// A layer written the way users write one: y = x * scale + shift (elementwise), with a
// buffer that counts calls.
class Affine : public Module {
 public:
  explicit Affine(int64_t n) {
    scale = register_parameter("scale", ones({n}));
    shift = register_parameter("shift", zeros({n}));
    calls = register_buffer("calls", zeros({}, DType::Int64));
    scratch = register_buffer("scratch", zeros({n}), /*persistent=*/false);
  }
  std::string type_name() const override { return "Affine"; }
  Tensor forward(const Tensor& x) {
    calls.detach().add_(1);
    return x * scale + shift;
  }
  Tensor scale, shift, calls, scratch;
};

class Net : public Module {
 public:
  Net() {
    first = register_module("first", std::make_shared<Affine>(3));
    body = register_module("body", std::make_shared<SequentialImpl>(Affine(3), ReLU(), std::make_shared<Affine>(3)));
    bias = register_parameter("bias", full({3}, 0.5));
  }
  std::string type_name() const override { return "Net"; }
  Tensor forward(const Tensor& x) { return body->forward(first->forward(x)) + bias; }
  std::shared_ptr<Affine> first;
  std::shared_ptr<SequentialImpl> body;
  Tensor bias;
};

std::vector<std::string> names_of(const OrderedDict<std::string, Tensor>& v) {
  std::vector<std::string> out;
  for (const auto& [k, t] : v) out.push_back(k);
  return out;
}

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / double(v.size());
}
double std_of(const std::vector<double>& v) {
  const double m = mean_of(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / double(v.size() - 1));
}

}  // namespace

TEST(Module, NamedParametersAreRecursiveDottedAndOrdered) {
  Net net;
  EXPECT_EQ(names_of(net.named_parameters()),
            (std::vector<std::string>{"bias", "first.scale", "first.shift", "body.0.scale", "body.0.shift",
                                      "body.2.scale", "body.2.shift"}));
  EXPECT_EQ(names_of(net.named_parameters(false)), (std::vector<std::string>{"bias"}));
  EXPECT_EQ(names_of(net.named_buffers()),
            (std::vector<std::string>{"first.calls", "first.scratch", "body.0.calls", "body.0.scratch",
                                      "body.2.calls", "body.2.scratch"}));
  EXPECT_EQ(net.num_parameters(), 7 * 3);
  for (const auto& p : net.parameters()) EXPECT_TRUE(p.requires_grad());
  // The member handle and the registry share one tensor.
  EXPECT_TRUE(net.parameters()[1].is_same(net.first->scale));
  EXPECT_EQ(net.children().size(), 2u);
  auto mods = net.named_modules();
  ASSERT_EQ(mods.size(), 6u);  // net, first, body, body.0, body.1, body.2
  EXPECT_EQ(mods[4].first, "body.1");
  EXPECT_EQ(mods[4].second->type_name(), "ReLU");
}

TEST(Module, StateDictHasParametersAndPersistentBuffersInOrder) {
  Net net;
  const StateDict sd = net.state_dict();
  EXPECT_EQ(sd.keys(), (std::vector<std::string>{"bias", "first.scale", "first.shift", "first.calls", "body.0.scale",
                                                 "body.0.shift", "body.0.calls", "body.2.scale", "body.2.shift",
                                                 "body.2.calls"}));
  EXPECT_FALSE(sd.at("bias").requires_grad());
  EXPECT_TRUE(sd.at("bias").shares_storage(net.bias));
}

TEST(Module, ForwardThroughSequentialMatchesLoops) {
  Net net;
  net.first->scale.detach().copy_(tensor<float>({1, -2, 3}));
  net.body->at<Affine>(2).shift.detach().fill_(-1);
  const Tensor x = tensor<float>({0.5f, 1.0f, -1.0f});
  const auto y = net.forward(x).to_vector<float>();
  const float s[] = {1, -2, 3}, xs[] = {0.5f, 1.0f, -1.0f};
  for (int i = 0; i < 3; ++i) EXPECT_FLOAT_EQ(y[size_t(i)], std::max(0.0f, xs[i] * s[i]) - 1 + 0.5f);
  EXPECT_EQ(net.first->calls.item<int64_t>(), 1);
  EXPECT_EQ(net.body->size(), 3u);
  EXPECT_EQ((*net.body)[-1]->type_name(), "Affine");
  EXPECT_THROW((*net.body)[3], Error);
  EXPECT_THROW(net.body->at<ReLUImpl>(0), Error);
}

TEST(Module, TrainEvalRecurse) {
  Net net;
  EXPECT_TRUE(net.is_training());
  net.eval();
  for (auto& [name, m] : net.named_modules()) EXPECT_FALSE(m->is_training()) << name;
  net.train();
  for (auto& [name, m] : net.named_modules()) EXPECT_TRUE(m->is_training()) << name;
}

TEST(Module, StateDictRoundTrip) {
  Net a, b;
  a.first->scale.detach().copy_(tensor<float>({2, 3, 4}));
  a.bias.detach().fill_(-7);
  a.body->at<Affine>(0).calls.detach().fill_(5);
  b.load_state_dict(a.state_dict());
  EXPECT_EQ(b.first->scale.to_vector<float>(), (std::vector<float>{2, 3, 4}));
  EXPECT_EQ(b.bias.to_vector<float>(), (std::vector<float>{-7, -7, -7}));
  EXPECT_EQ(b.body->at<Affine>(0).calls.item<int64_t>(), 5);
  // Loading copies: b does not alias a.
  a.bias.detach().fill_(1);
  EXPECT_EQ(b.bias.to_vector<float>(), (std::vector<float>{-7, -7, -7}));
  // And keeps b's own parameter objects.
  EXPECT_TRUE(b.parameters()[0].is_same(b.bias));
}

TEST(Module, StrictLoadNamesKeysAndLeavesModuleUnchanged) {
  Net net;
  const auto before = net.first->scale.to_vector<float>();
  StateDict sd = Net().state_dict();
  StateDict bad;
  for (const auto& [k, t] : sd)
    if (k != "body.2.shift") bad.insert(k, k == "first.scale" ? full({3}, 9.0) : t);
  bad.insert("extra.weight", zeros({2}));
  bad.insert("bias", zeros({4}));  // shape mismatch (replaces the entry)
  try {
    net.load_state_dict(bad);
    FAIL() << "expected kiln::Error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind("[load_state_dict]", 0), 0u) << msg;
    EXPECT_NE(msg.find("missing keys: body.2.shift"), std::string::npos) << msg;
    EXPECT_NE(msg.find("unexpected keys: extra.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("bias (expected [3], got [4])"), std::string::npos) << msg;
  }
  EXPECT_EQ(net.first->scale.to_vector<float>(), before);  // nothing written

  // Non-strict: missing and unexpected keys are allowed, shape mismatches are not.
  StateDict partial;
  partial.insert("first.scale", full({3}, 9.0));
  partial.insert("nonsense", zeros({1}));
  net.load_state_dict(partial, /*strict=*/false);
  EXPECT_EQ(net.first->scale.to_vector<float>(), (std::vector<float>{9, 9, 9}));
  partial.insert("bias", zeros({4}));
  EXPECT_THROW(net.load_state_dict(partial, false), Error);
}

TEST(Module, ToDtypeReplacesDataInPlaceKeepingHandles) {
  Net net;
  Tensor held = net.parameters()[1];  // what an optimizer would hold
  held.set_grad(ones({3}));
  net.to(DType::Float64);
  EXPECT_EQ(held.dtype(), DType::Float64);
  EXPECT_TRUE(held.is_same(net.first->scale));
  EXPECT_TRUE(held.requires_grad());
  EXPECT_EQ(held.grad().dtype(), DType::Float64);
  EXPECT_EQ(net.first->calls.dtype(), DType::Int64);  // integer buffers stay
  EXPECT_EQ(net.first->scratch.dtype(), DType::Float64);
  EXPECT_EQ(net.forward(tensor<double>({1, 2, 3})).dtype(), DType::Float64);
  net.to(kCpu);  // same device: nothing moves
  EXPECT_EQ(held.device(), kCpu);
  EXPECT_THROW(net.to(DType::Int32), Error);
}

TEST(Module, ZeroGradAndRegistrationErrors) {
  Net net;
  for (auto& p : net.parameters()) p.set_grad(ones_like(p));
  net.zero_grad(false);
  for (auto& p : net.parameters()) EXPECT_EQ(p.grad().to_vector<float>(), (std::vector<float>(3, 0.0f)));
  net.zero_grad();
  for (auto& p : net.parameters()) EXPECT_FALSE(p.grad().defined());

  struct Bad : Module {
    void dup() { register_parameter("w", zeros({1})); register_parameter("w", zeros({1})); }
    void dotted() { register_buffer("a.b", zeros({1})); }
    void intparam() { register_parameter("i", zeros({1}, DType::Int64)); }
  } bad;
  EXPECT_THROW(bad.dup(), Error);
  EXPECT_THROW(bad.dotted(), Error);
  EXPECT_THROW(bad.intparam(), Error);
}

TEST(Module, PrintsATree) {
  Net net;
  const std::string s = net.str();
  EXPECT_NE(s.find("Net("), std::string::npos) << s;
  EXPECT_NE(s.find("(body): Sequential("), std::string::npos) << s;
  EXPECT_NE(s.find("(1): ReLU()"), std::string::npos) << s;
}

// ---- activations and shape layers against std:: formulas
TEST(Layers, ActivationsAndFlatten) {
  const std::vector<double> xs = {-3.0, -0.5, 0.0, 0.25, 2.0, 4.0};
  const Tensor x = tensor<double>(xs, {2, 3});
  const auto relu_y = ReLU()(x).to_vector<double>();
  const auto gelu_y = GELU()(x).to_vector<double>();
  const auto gelu_t = GELU("tanh")(x).to_vector<double>();
  const auto silu_y = SiLU()(x).to_vector<double>();
  for (size_t i = 0; i < xs.size(); ++i) {
    const double v = xs[i];
    EXPECT_DOUBLE_EQ(relu_y[i], std::max(0.0, v));
    EXPECT_NEAR(gelu_y[i], 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))), 1e-12);
    EXPECT_NEAR(gelu_t[i], 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v))), 1e-12);
    EXPECT_NEAR(silu_y[i], v / (1 + std::exp(-v)), 1e-12);
  }
  EXPECT_THROW(GELU("fast"), Error);
  EXPECT_EQ(Flatten()(zeros({2, 3, 4, 5})).shape(), (Shape{2, 60}));
  EXPECT_EQ(Flatten(0, 1)(zeros({2, 3, 4})).shape(), (Shape{6, 4}));
  EXPECT_TRUE(Identity()(x).is_same(x));
  ModuleListImpl list;
  list.push_back(ReLU());
  list.push_back(std::make_shared<SiLUImpl>());
  EXPECT_EQ(list.size(), 2u);
  EXPECT_EQ(list[1]->type_name(), "SiLU");
}

// ---- initialisers: bounds from their definitions, moments statistically
TEST(Init, FansAndGains) {
  EXPECT_EQ(init::calculate_fan_in_and_fan_out(zeros({8, 4, 3, 3})), (std::pair<int64_t, int64_t>{36, 72}));
  EXPECT_DOUBLE_EQ(init::calculate_gain("relu"), std::sqrt(2.0));
  EXPECT_DOUBLE_EQ(init::calculate_gain("tanh"), 5.0 / 3.0);
  EXPECT_DOUBLE_EQ(init::calculate_gain("leaky_relu", std::sqrt(5.0)), std::sqrt(2.0 / 6.0));
  EXPECT_THROW(init::calculate_gain("nope"), Error);
  EXPECT_THROW(init::kaiming_uniform_(zeros({5})), Error);
  EXPECT_THROW(init::uniform_(zeros({5}, DType::Int64)), Error);
}

TEST(Init, UniformAndNormalMoments) {
  Generator gen(42);
  const Tensor t = empty({200, 100});
  init::uniform_(t, -2.0, 3.0, &gen);
  auto v = t.to_vector<double>();
  for (double x : v) ASSERT_TRUE(x >= -2.0 && x < 3.0);
  // U(a, b): mean (a+b)/2 = 0.5, std (b-a)/sqrt(12); 20000 samples -> se ~ 0.01
  EXPECT_NEAR(mean_of(v), 0.5, 0.05);
  EXPECT_NEAR(std_of(v), 5.0 / std::sqrt(12.0), 0.03);

  init::normal_(t, 1.0, 0.5, &gen);
  v = t.to_vector<double>();
  EXPECT_NEAR(mean_of(v), 1.0, 0.02);
  EXPECT_NEAR(std_of(v), 0.5, 0.02);

  init::constant_(t, 3.5);
  for (double x : t.to_vector<double>()) ASSERT_EQ(x, 3.5);
}

TEST(Init, KaimingAndXavier) {
  Generator gen(7);
  const Tensor w = empty({64, 32, 3, 3});  // fan_in 288, fan_out 576
  init::kaiming_uniform_(w, 0.0, init::FanMode::FanIn, "relu", &gen);
  const double kb = std::sqrt(2.0) * std::sqrt(3.0 / 288.0);
  auto v = w.to_vector<double>();
  double mx = 0;
  for (double x : v) mx = std::max(mx, std::abs(x));
  EXPECT_LE(mx, kb);
  EXPECT_GT(mx, 0.98 * kb);
  EXPECT_NEAR(std_of(v), kb / std::sqrt(3.0), 0.02 * kb);

  init::kaiming_normal_(w, 0.0, init::FanMode::FanOut, "relu", &gen);
  EXPECT_NEAR(std_of(w.to_vector<double>()), std::sqrt(2.0 / 576.0), 0.02 * std::sqrt(2.0 / 576.0));

  const Tensor x = empty({100, 300});
  init::xavier_uniform_(x, 2.0, &gen);
  const double xb = 2.0 * std::sqrt(6.0 / 400.0);
  v = x.to_vector<double>();
  mx = 0;
  for (double e : v) mx = std::max(mx, std::abs(e));
  EXPECT_LE(mx, xb);
  EXPECT_GT(mx, 0.98 * xb);
  init::xavier_normal_(x, 1.0, &gen);
  EXPECT_NEAR(std_of(x.to_vector<double>()), std::sqrt(2.0 / 400.0), 0.02 * std::sqrt(2.0 / 400.0));

  // A strided destination is filled too.
  const Tensor base = zeros({4, 6});
  const Tensor col = base.t();
  init::ones_(col);
  for (double e : base.to_vector<double>()) EXPECT_EQ(e, 1.0);
  init::uniform_(col, 5.0, 6.0, &gen);
  for (double e : base.to_vector<double>()) EXPECT_TRUE(e >= 5.0 && e < 6.0);
}

// ---- Linear
TEST(Layers, LinearForwardAndDefaultInit) {
  Generator& g = default_generator();
  g.manual_seed(3);
  LinearImpl lin(50, 40);
  EXPECT_EQ(lin.weight.shape(), (Shape{40, 50}));
  EXPECT_EQ(lin.bias.shape(), (Shape{40}));
  EXPECT_EQ(lin.num_parameters(), 40 * 50 + 40);
  // kaiming_uniform(a = sqrt(5)) on fan_in 50 is U(+-1/sqrt(50)); bias U(+-1/sqrt(50)).
  const double bound = 1.0 / std::sqrt(50.0);
  auto w = lin.weight.to_vector<double>();
  double mx = 0;
  for (double x : w) mx = std::max(mx, std::abs(x));
  EXPECT_LE(mx, bound);
  EXPECT_GT(mx, 0.95 * bound);
  EXPECT_NEAR(std_of(w), bound / std::sqrt(3.0), 0.05 * bound);
  for (double x : lin.bias.to_vector<double>()) EXPECT_LE(std::abs(x), bound);

  const Tensor x = randn({3, 50});
  const auto y = lin.forward(x).to_vector<double>();
  const auto xv = x.to_vector<double>(), bv = lin.bias.to_vector<double>();
  for (int i = 0; i < 3; ++i)
    for (int o = 0; o < 40; ++o) {
      double acc = bv[size_t(o)];
      for (int k = 0; k < 50; ++k) acc += xv[size_t(i * 50 + k)] * w[size_t(o * 50 + k)];
      EXPECT_NEAR(y[size_t(i * 40 + o)], acc, 1e-4);
    }
  LinearImpl nobias(4, 2, false);
  EXPECT_FALSE(nobias.bias.defined());
  EXPECT_EQ(names_of(nobias.named_parameters()), (std::vector<std::string>{"weight"}));
  EXPECT_EQ(nobias.str(), "Linear(in_features=4, out_features=2, bias=false)");
}

TEST(Layers, SequentialOfLinearsNamesAndLoads) {
  SequentialImpl a(Linear(4, 8), ReLU(), Linear(8, 2));
  EXPECT_EQ(a.state_dict().keys(), (std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"}));
  SequentialImpl b(Linear(4, 8), ReLU(), Linear(8, 2));
  b.load_state_dict(a.state_dict());
  const Tensor x = randn({5, 4});
  EXPECT_EQ(a.forward(x).to_vector<float>(), b.forward(x).to_vector<float>());
  SequentialImpl c(Linear(4, 8), ReLU(), Linear(8, 3));
  try {
    c.load_state_dict(a.state_dict());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("2.weight (expected [3, 8], got [2, 8])"), std::string::npos) << e.what();
  }
}

// ---- normalisation layers against loops
namespace {
struct ChannelStats {
  std::vector<double> mean, var_biased, var_unbiased;
};
ChannelStats channel_stats(const std::vector<double>& x, int64_t n, int64_t c, int64_t hw) {
  ChannelStats s;
  const double cnt = double(n * hw);
  for (int64_t ch = 0; ch < c; ++ch) {
    double m = 0, v = 0;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < hw; ++k) m += x[size_t((i * c + ch) * hw + k)];
    m /= cnt;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t k = 0; k < hw; ++k) v += std::pow(x[size_t((i * c + ch) * hw + k)] - m, 2);
    s.mean.push_back(m);
    s.var_biased.push_back(v / cnt);
    s.var_unbiased.push_back(v / (cnt - 1));
  }
  return s;
}
}  // namespace

TEST(Layers, BatchNorm2dTrainingRunningStatsAndEval) {
  const int64_t n = 4, c = 3, hw = 6;
  BatchNorm2dImpl bn(c);
  bn.to(DType::Float64);
  EXPECT_EQ(bn.state_dict().keys(),
            (std::vector<std::string>{"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}));
  EXPECT_EQ(bn.num_parameters(), 2 * c);
  bn.weight.detach().copy_(tensor<double>({1.0, 2.0, 0.5}));
  bn.bias.detach().copy_(tensor<double>({0.0, -1.0, 3.0}));
  std::vector<double> rm(c, 0.0), rv(c, 1.0);
  for (int step = 0; step < 2; ++step) {
    const Tensor x = randn({n, c, 2, 3}, DType::Float64) * (step + 1.0) + double(step);
    const auto xv = x.to_vector<double>();
    const auto st = channel_stats(xv, n, c, hw);
    const auto y = bn.forward(x).to_vector<double>();
    const double w[] = {1.0, 2.0, 0.5}, b[] = {0.0, -1.0, 3.0};
    for (int64_t i = 0; i < n; ++i)
      for (int64_t ch = 0; ch < c; ++ch)
        for (int64_t k = 0; k < hw; ++k) {
          const size_t at = size_t((i * c + ch) * hw + k);
          const double want = (xv[at] - st.mean[size_t(ch)]) / std::sqrt(st.var_biased[size_t(ch)] + 1e-5) * w[ch] + b[ch];
          EXPECT_NEAR(y[at], want, 1e-9);
        }
    for (int64_t ch = 0; ch < c; ++ch) {
      rm[size_t(ch)] = 0.9 * rm[size_t(ch)] + 0.1 * st.mean[size_t(ch)];
      rv[size_t(ch)] = 0.9 * rv[size_t(ch)] + 0.1 * st.var_unbiased[size_t(ch)];
    }
  }
  const auto got_rm = bn.running_mean.to_vector<double>(), got_rv = bn.running_var.to_vector<double>();
  for (int64_t ch = 0; ch < c; ++ch) {
    EXPECT_NEAR(got_rm[size_t(ch)], rm[size_t(ch)], 1e-12);
    EXPECT_NEAR(got_rv[size_t(ch)], rv[size_t(ch)], 1e-12);
  }
  EXPECT_EQ(bn.num_batches_tracked.item<int64_t>(), 2);

  // Eval: running statistics, which stay put.
  bn.eval();
  const Tensor x = randn({2, c, 1, 2}, DType::Float64);
  const auto xv = x.to_vector<double>();
  const auto y = bn.forward(x).to_vector<double>();
  const double w[] = {1.0, 2.0, 0.5}, b[] = {0.0, -1.0, 3.0};
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t ch = 0; ch < c; ++ch)
      for (int64_t k = 0; k < 2; ++k) {
        const size_t at = size_t((i * c + ch) * 2 + k);
        EXPECT_NEAR(y[at], (xv[at] - rm[size_t(ch)]) / std::sqrt(rv[size_t(ch)] + 1e-5) * w[ch] + b[ch], 1e-9);
      }
  EXPECT_EQ(bn.running_mean.to_vector<double>(), got_rm);
  EXPECT_EQ(bn.num_batches_tracked.item<int64_t>(), 2);
  EXPECT_THROW(bn.forward(zeros({2, 4, 1, 1}, DType::Float64)), Error);
  EXPECT_THROW(bn.forward(zeros({2, 3}, DType::Float64)), Error);
}

TEST(Layers, BatchNorm2dCumulativeAverageAndNoTracking) {
  BatchNorm2dImpl bn(2, 1e-5, std::nullopt);
  std::vector<double> means;
  for (int step = 0; step < 3; ++step) {
    const Tensor x = randn({3, 2, 2, 2}) + double(step);
    means.push_back(channel_stats(x.to_vector<double>(), 3, 2, 4).mean[0]);
    bn.forward(x);
  }
  EXPECT_NEAR(bn.running_mean.to_vector<double>()[0], (means[0] + means[1] + means[2]) / 3, 1e-5);

  BatchNorm2dImpl free(2, 1e-5, 0.1, /*affine=*/false, /*track_running_stats=*/false);
  EXPECT_TRUE(free.state_dict().empty());
  free.eval();  // no running stats: batch statistics even in eval
  const Tensor x = randn({3, 2, 2, 2}, DType::Float64);
  free.to(DType::Float64);
  const auto st = channel_stats(x.to_vector<double>(), 3, 2, 4);
  const auto y = free.forward(x).to_vector<double>();
  const auto xv = x.to_vector<double>();
  EXPECT_NEAR(y[0], (xv[0] - st.mean[0]) / std::sqrt(st.var_biased[0] + 1e-5), 1e-9);
}

TEST(Layers, LayerNormOverTrailingDims) {
  LayerNormImpl ln({2, 3});
  ln.to(DType::Float64);
  EXPECT_EQ(ln.weight.shape(), (Shape{2, 3}));
  ln.weight.detach().copy_(tensor<double>({1, 2, 3, 4, 5, 6}, {2, 3}));
  ln.bias.detach().fill_(0.5);
  const Tensor x = randn({4, 2, 3}, DType::Float64);
  const auto xv = x.to_vector<double>();
  const auto y = ln.forward(x).to_vector<double>();
  for (int i = 0; i < 4; ++i) {
    double m = 0, v = 0;
    for (int k = 0; k < 6; ++k) m += xv[size_t(i * 6 + k)] / 6;
    for (int k = 0; k < 6; ++k) v += std::pow(xv[size_t(i * 6 + k)] - m, 2) / 6;
    for (int k = 0; k < 6; ++k)
      EXPECT_NEAR(y[size_t(i * 6 + k)], (xv[size_t(i * 6 + k)] - m) / std::sqrt(v + 1e-5) * (k + 1) + 0.5, 1e-9);
  }
  LayerNormImpl plain({3}, 1e-5, /*elementwise_affine=*/false);
  EXPECT_EQ(plain.num_parameters(), 0);
}

TEST(Layers, EmbeddingLooksUpRowsAndZeroesPadding) {
  manual_seed(5);
  EmbeddingImpl emb(100, 40, /*padding_idx=*/-1);
  EXPECT_EQ(emb.padding_idx.value(), 99);
  auto w = emb.weight.to_vector<double>();
  for (int k = 0; k < 40; ++k) EXPECT_EQ(w[size_t(99 * 40 + k)], 0.0);
  std::vector<double> body(w.begin(), w.begin() + 99 * 40);
  EXPECT_NEAR(mean_of(body), 0.0, 0.06);  // N(0, 1), 3960 samples
  EXPECT_NEAR(std_of(body), 1.0, 0.05);
  const Tensor idx = tensor<int64_t>({3, 99, 0, 3}, {2, 2});
  const Tensor y = emb.forward(idx);
  EXPECT_EQ(y.shape(), (Shape{2, 2, 40}));
  const auto yv = y.to_vector<double>();
  const int64_t rows[] = {3, 99, 0, 3};
  for (int r = 0; r < 4; ++r)
    for (int k = 0; k < 40; ++k) EXPECT_EQ(yv[size_t(r * 40 + k)], w[size_t(rows[r] * 40 + k)]);
  EXPECT_THROW(Embedding(10, 4, 10), Error);
}

#include "kiln/nn/loss.h"
#include "kiln/optim.h"

TEST(Layers, LinearGradientsThroughAutograd) {
  LinearImpl lin(3, 2);
  const std::vector<double> xv = {1, 2, 3, -1, 0.5, 4};
  const Tensor x = tensor<double>(xv, {2, 3}, DType::Float32);
  sum(lin.forward(x)).backward();
  // d sum(xW^T + b)/dW[o][k] = sum_i x[i][k]; d/db[o] = batch size.
  const auto gw = lin.weight.grad().to_vector<double>();
  for (int o = 0; o < 2; ++o)
    for (int k = 0; k < 3; ++k) EXPECT_NEAR(gw[size_t(o * 3 + k)], xv[size_t(k)] + xv[size_t(3 + k)], 1e-6);
  for (double g : lin.bias.grad().to_vector<double>()) EXPECT_NEAR(g, 2.0, 1e-6);
}

TEST(Layers, SmallClassifierLearnsWithAdam) {
  // Two separable blobs; an untrained model is at ~log(2).
  manual_seed(11);
  const int64_t n = 64;
  Tensor x = randn({n, 2});
  std::vector<int64_t> labels(n);
  auto xv = x.to_vector<float>();
  for (int64_t i = 0; i < n; ++i) {
    labels[size_t(i)] = i % 2;
    xv[size_t(2 * i)] += i % 2 ? 2.0f : -2.0f;
  }
  x = tensor<float>(xv, {n, 2});
  const Tensor y = tensor<int64_t>(labels);
  SequentialImpl model(Linear(2, 16), ReLU(), Linear(16, 2));
  optim::Adam opt(model.parameters(), optim::AdamOptions{.lr = 0.05});
  double first = 0, last = 0;
  for (int step = 0; step < 60; ++step) {
    opt.zero_grad();
    Tensor loss = cross_entropy(model.forward(x), y);
    loss.backward();
    opt.step();
    (step == 0 ? first : last) = loss.item<double>();
  }
  EXPECT_GT(first, 0.3);
  EXPECT_LT(last, 0.1);
}

TEST(Layers, DropoutTrainsAndIsIdentityInEval) {
  DropoutImpl d(0.25);
  const Tensor x = full({100, 100}, 2.0);
  const auto y = d.forward(x).to_vector<double>();
  int64_t zeros_seen = 0;
  for (double v : y) {
    if (v == 0.0) ++zeros_seen;
    else EXPECT_NEAR(v, 2.0 / 0.75, 1e-6);
  }
  EXPECT_NEAR(double(zeros_seen) / 10000.0, 0.25, 0.03);  // 3 sigma ~ 0.013
  d.eval();
  EXPECT_TRUE(d.forward(x).is_same(x));
  EXPECT_THROW(Dropout(1.5), Error);
}

namespace {
// Multi-head attention in double from its definition, inputs [N, L, E] row-major.
std::vector<double> mha_ref(const std::vector<double>& q, const std::vector<double>& k, const std::vector<double>& v,
                            int64_t n, int64_t l, int64_t s, int64_t e, int64_t h, const std::vector<double>& w_in,
                            const std::vector<double>& b_in, const std::vector<double>& w_out,
                            const std::vector<double>& b_out, bool causal) {
  const int64_t d = e / h;
  auto proj = [&](const std::vector<double>& x, int64_t len, int64_t which) {
    std::vector<double> out(size_t(n * len * e));
    for (int64_t i = 0; i < n * len; ++i)
      for (int64_t o = 0; o < e; ++o) {
        double acc = b_in[size_t(which * e + o)];
        for (int64_t c = 0; c < e; ++c) acc += x[size_t(i * e + c)] * w_in[size_t((which * e + o) * e + c)];
        out[size_t(i * e + o)] = acc;
      }
    return out;
  };
  const auto qp = proj(q, l, 0), kp = proj(k, s, 1), vp = proj(v, s, 2);
  std::vector<double> attn(size_t(n * l * e));
  for (int64_t b = 0; b < n; ++b)
    for (int64_t hh = 0; hh < h; ++hh)
      for (int64_t i = 0; i < l; ++i) {
        std::vector<double> sc(static_cast<size_t>(s));
        double mx = -INFINITY;
        for (int64_t j = 0; j < s; ++j) {
          double dot = 0;
          for (int64_t c = 0; c < d; ++c)
            dot += qp[size_t((b * l + i) * e + hh * d + c)] * kp[size_t((b * s + j) * e + hh * d + c)];
          sc[size_t(j)] = (causal && j > i) ? -INFINITY : dot / std::sqrt(double(d));
          mx = std::max(mx, sc[size_t(j)]);
        }
        double z = 0;
        for (auto& x : sc) z += (x = std::exp(x - mx));
        for (int64_t c = 0; c < d; ++c) {
          double acc = 0;
          for (int64_t j = 0; j < s; ++j) acc += sc[size_t(j)] / z * vp[size_t((b * s + j) * e + hh * d + c)];
          attn[size_t((b * l + i) * e + hh * d + c)] = acc;
        }
      }
  std::vector<double> out(size_t(n * l * e));
  for (int64_t i = 0; i < n * l; ++i)
    for (int64_t o = 0; o < e; ++o) {
      double acc = b_out[size_t(o)];
      for (int64_t c = 0; c < e; ++c) acc += attn[size_t(i * e + c)] * w_out[size_t(o * e + c)];
      out[size_t(i * e + o)] = acc;
    }
  return out;
}
}  // namespace

TEST(Layers, MultiheadAttentionMatchesDefinition) {
  const int64_t n = 2, l = 3, s = 5, e = 4, h = 2;
  MultiheadAttentionImpl mha(e, h);
  mha.to(DType::Float64);
  EXPECT_EQ(names_of(mha.named_parameters()),
            (std::vector<std::string>{"in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"}));
  for (double b : mha.in_proj_bias.to_vector<double>()) EXPECT_EQ(b, 0.0);  // PyTorch's init
  for (double b : mha.out_proj->bias.to_vector<double>()) EXPECT_EQ(b, 0.0);
  const double xb = std::sqrt(6.0 / (4 + 12));  // xavier_uniform on [3E, E]
  for (double w : mha.in_proj_weight.to_vector<double>()) EXPECT_LE(std::abs(w), xb);
  // Non-zero biases so that the test sees them.
  init::uniform_(mha.in_proj_bias, -0.5, 0.5);
  init::uniform_(mha.out_proj->bias, -0.5, 0.5);

  const Tensor q = randn({n, l, e}, DType::Float64), k = randn({n, s, e}, DType::Float64),
               v = randn({n, s, e}, DType::Float64);
  const auto ref = mha_ref(q.to_vector<double>(), k.to_vector<double>(), v.to_vector<double>(), n, l, s, e, h,
                           mha.in_proj_weight.to_vector<double>(), mha.in_proj_bias.to_vector<double>(),
                           mha.out_proj->weight.to_vector<double>(), mha.out_proj->bias.to_vector<double>(), false);
  const Tensor y = mha.forward(q, k, v);
  EXPECT_EQ(y.shape(), (Shape{n, l, e}));
  const auto yv = y.to_vector<double>();
  for (size_t i = 0; i < ref.size(); ++i) EXPECT_NEAR(yv[i], ref[i], 1e-10) << i;

  // Self-attention with a causal mask, sequence-first layout.
  MultiheadAttentionImpl seq_first(e, h, 0.0, true, /*batch_first=*/false);
  seq_first.to(DType::Float64);
  seq_first.load_state_dict(mha.state_dict());
  const auto cref = mha_ref(q.to_vector<double>(), q.to_vector<double>(), q.to_vector<double>(), n, l, l, e, h,
                            mha.in_proj_weight.to_vector<double>(), mha.in_proj_bias.to_vector<double>(),
                            mha.out_proj->weight.to_vector<double>(), mha.out_proj->bias.to_vector<double>(), true);
  const Tensor qs = q.transpose(0, 1);  // [L, N, E]
  const Tensor ys = seq_first.forward(qs, qs, qs, Tensor(), /*is_causal=*/true);
  EXPECT_EQ(ys.shape(), (Shape{l, n, e}));
  const auto ysv = ys.transpose(0, 1).contiguous().to_vector<double>();
  for (size_t i = 0; i < cref.size(); ++i) EXPECT_NEAR(ysv[i], cref[i], 1e-10) << i;

  EXPECT_THROW(MultiheadAttention(6, 4), Error);
  EXPECT_THROW(mha.forward(q, k, randn({n, 4, e}, DType::Float64)), Error);
  EXPECT_THROW(mha.forward(randn({n, l, 3}, DType::Float64)), Error);
}

TEST(Layers, GradientsReachEveryParameter) {
  // Embedding -> MultiheadAttention -> LayerNorm -> Linear, and a BatchNorm2d branch.
  EmbeddingImpl emb(10, 8);
  MultiheadAttentionImpl mha(8, 2);
  LayerNormImpl ln({8});
  LinearImpl head(8, 3);
  BatchNorm2dImpl bn(2);
  const Tensor idx = tensor<int64_t>({1, 4, 4, 9, 0, 2}, {2, 3});
  const Tensor seq = head.forward(ln.forward(mha.forward(emb.forward(idx))));
  const Tensor img = bn.forward(randn({3, 2, 2, 2}));
  (sum(seq * seq) + sum(img * img * img)).backward();
  std::vector<std::pair<std::string, Tensor>> all;
  for (Module* m : std::initializer_list<Module*>{&emb, &mha, &ln, &head, &bn})
    for (auto& [name, p] : m->named_parameters()) all.emplace_back(m->type_name() + "." + name, p);
  ASSERT_EQ(all.size(), 1u + 4u + 2u + 2u + 2u);
  for (auto& [name, p] : all) {
    ASSERT_TRUE(p.grad().defined()) << name;
    EXPECT_EQ(p.grad().shape(), p.shape()) << name;
    double norm = 0;
    for (double g : p.grad().to_vector<double>()) {
      ASSERT_TRUE(std::isfinite(g)) << name;
      norm += g * g;
    }
    EXPECT_GT(norm, 0.0) << name;
  }
}

// ---- convolutions against direct loops
namespace {
struct ConvGeom {
  int64_t n, cin, h, w, cout, kh, kw, sh, sw, ph, pw, dh, dw, groups, oph = 0, opw = 0;
};

std::vector<double> conv_ref(const std::vector<double>& x, const std::vector<double>& wt, const std::vector<double>& b,
                             const ConvGeom& g, int64_t oh, int64_t ow) {
  const int64_t cin_g = g.cin / g.groups, cout_g = g.cout / g.groups;
  std::vector<double> y(size_t(g.n * g.cout * oh * ow));
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t oc = 0; oc < g.cout; ++oc)
      for (int64_t i = 0; i < oh; ++i)
        for (int64_t j = 0; j < ow; ++j) {
          double acc = b.empty() ? 0.0 : b[size_t(oc)];
          const int64_t grp = oc / cout_g;
          for (int64_t c = 0; c < cin_g; ++c)
            for (int64_t a = 0; a < g.kh; ++a)
              for (int64_t bb = 0; bb < g.kw; ++bb) {
                const int64_t hi = i * g.sh - g.ph + a * g.dh, wi = j * g.sw - g.pw + bb * g.dw;
                if (hi < 0 || hi >= g.h || wi < 0 || wi >= g.w) continue;
                acc += x[size_t(((n * g.cin + grp * cin_g + c) * g.h + hi) * g.w + wi)] *
                       wt[size_t(((oc * cin_g + c) * g.kh + a) * g.kw + bb)];
              }
          y[size_t(((n * g.cout + oc) * oh + i) * ow + j)] = acc;
        }
  return y;
}

std::vector<double> conv_transpose_ref(const std::vector<double>& x, const std::vector<double>& wt,
                                       const std::vector<double>& b, const ConvGeom& g, int64_t oh, int64_t ow) {
  const int64_t cin_g = g.cin / g.groups, cout_g = g.cout / g.groups;
  std::vector<double> y(size_t(g.n * g.cout * oh * ow));
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t oc = 0; oc < g.cout; ++oc)
      for (int64_t k = 0; k < oh * ow; ++k) y[size_t((n * g.cout + oc) * oh * ow + k)] = b.empty() ? 0 : b[size_t(oc)];
  for (int64_t n = 0; n < g.n; ++n)
    for (int64_t ic = 0; ic < g.cin; ++ic)
      for (int64_t i = 0; i < g.h; ++i)
        for (int64_t j = 0; j < g.w; ++j) {
          const int64_t grp = ic / cin_g;
          for (int64_t ocl = 0; ocl < cout_g; ++ocl)
            for (int64_t a = 0; a < g.kh; ++a)
              for (int64_t bb = 0; bb < g.kw; ++bb) {
                const int64_t o_h = i * g.sh - g.ph + a * g.dh, o_w = j * g.sw - g.pw + bb * g.dw;
                if (o_h < 0 || o_h >= oh || o_w < 0 || o_w >= ow) continue;
                const int64_t oc = grp * cout_g + ocl;
                y[size_t(((n * g.cout + oc) * oh + o_h) * ow + o_w)] +=
                    x[size_t(((n * g.cin + ic) * g.h + i) * g.w + j)] * wt[size_t(((ic * cout_g + ocl) * g.kh + a) * g.kw + bb)];
              }
        }
  return y;
}

void expect_affine_init(const Tensor& w, const Tensor& b, int64_t fan_in) {
  const double bound = 1.0 / std::sqrt(double(fan_in));
  for (double v : w.to_vector<double>()) ASSERT_LE(std::abs(v), bound);
  for (double v : b.to_vector<double>()) ASSERT_LE(std::abs(v), bound);
}
}  // namespace

TEST(Layers, Conv2dMatchesLoops) {
  const ConvGeom g{2, 4, 7, 6, 6, 3, 2, 2, 1, 1, 0, 1, 2, 2};
  Conv2dImpl conv(g.cin, g.cout, Pair{g.kh, g.kw}, Pair{g.sh, g.sw}, Pair{g.ph, g.pw}, Pair{g.dh, g.dw}, g.groups);
  EXPECT_EQ(conv.weight.shape(), (Shape{6, 2, 3, 2}));
  expect_affine_init(conv.weight, conv.bias, 2 * 3 * 2);
  conv.to(DType::Float64);
  const Tensor x = randn({g.n, g.cin, g.h, g.w}, DType::Float64);
  const int64_t oh = (g.h + 2 * g.ph - g.dh * (g.kh - 1) - 1) / g.sh + 1;
  const int64_t ow = (g.w + 2 * g.pw - g.dw * (g.kw - 1) - 1) / g.sw + 1;
  const Tensor y = conv.forward(x);
  EXPECT_EQ(y.shape(), (Shape{g.n, g.cout, oh, ow}));
  const auto ref = conv_ref(x.to_vector<double>(), conv.weight.to_vector<double>(), conv.bias.to_vector<double>(), g,
                            oh, ow);
  const auto yv = y.to_vector<double>();
  for (size_t i = 0; i < ref.size(); ++i) ASSERT_NEAR(yv[i], ref[i], 1e-10) << i;

  Conv2dImpl square(1, 32, 3, 1, 1);  // the int overloads: kernel 3, stride 1, padding 1
  EXPECT_EQ(square.forward(randn({2, 1, 28, 28})).shape(), (Shape{2, 32, 28, 28}));
  EXPECT_THROW(Conv2d(3, 4, 3, 1, 0, 1, 2), Error);  // 3 channels, 2 groups
  EXPECT_THROW(Conv2d(3, 4, 0), Error);
}

TEST(Layers, ConvTranspose2dMatchesLoops) {
  ConvGeom g{2, 4, 3, 4, 6, 3, 2, 2, 3, 1, 0, 1, 1, 2};
  g.oph = 1;
  ConvTranspose2dImpl up(g.cin, g.cout, Pair{g.kh, g.kw}, Pair{g.sh, g.sw}, Pair{g.ph, g.pw}, Pair{g.oph, g.opw}, g.groups);
  EXPECT_EQ(up.weight.shape(), (Shape{4, 3, 3, 2}));
  expect_affine_init(up.weight, up.bias, 3 * 3 * 2);  // PyTorch: fan_in from weight dim 1
  up.to(DType::Float64);
  const Tensor x = randn({g.n, g.cin, g.h, g.w}, DType::Float64);
  const int64_t oh = (g.h - 1) * g.sh - 2 * g.ph + g.dh * (g.kh - 1) + g.oph + 1;
  const int64_t ow = (g.w - 1) * g.sw - 2 * g.pw + g.dw * (g.kw - 1) + g.opw + 1;
  const Tensor y = up.forward(x);
  EXPECT_EQ(y.shape(), (Shape{g.n, g.cout, oh, ow}));
  const auto ref = conv_transpose_ref(x.to_vector<double>(), up.weight.to_vector<double>(),
                                      up.bias.to_vector<double>(), g, oh, ow);
  const auto yv = y.to_vector<double>();
  for (size_t i = 0; i < ref.size(); ++i) ASSERT_NEAR(yv[i], ref[i], 1e-10) << i;
  EXPECT_THROW(ConvTranspose2d(2, 2, 3, 1, 0, /*output_padding=*/1), Error);
}

// ---- pooling layers against loops
TEST(Layers, PoolingMatchesLoops) {
  const int64_t n = 2, c = 3, h = 7, w = 6;
  const Tensor x = randn({n, c, h, w}, DType::Float64);
  const auto xv = x.to_vector<double>();
  auto at = [&](int64_t b, int64_t ch, int64_t i, int64_t j) { return xv[size_t(((b * c + ch) * h + i) * w + j)]; };

  // MaxPool2d(kernel 3, stride 2, padding 1): out = floor((7 + 2 - 3) / 2) + 1 = 4, (6 + 2 - 3) / 2 + 1 = 3
  MaxPool2dImpl mp(3, 2, 1);
  const Tensor ym = mp.forward(x);
  ASSERT_EQ(ym.shape(), (Shape{n, c, 4, 3}));
  const auto ymv = ym.to_vector<double>();
  // AvgPool2d(kernel 2): stride defaults to the kernel, out 3 x 3; count_include_pad irrelevant.
  AvgPool2dImpl ap(2);
  const Tensor ya = ap.forward(x);
  ASSERT_EQ(ya.shape(), (Shape{n, c, 3, 3}));
  const auto yav = ya.to_vector<double>();
  // AdaptiveAvgPool2d(2, 2): bins [floor(i*H/2), ceil((i+1)*H/2)).
  AdaptiveAvgPool2dImpl aap(2);
  const Tensor yd = aap.forward(x);
  ASSERT_EQ(yd.shape(), (Shape{n, c, 2, 2}));
  const auto ydv = yd.to_vector<double>();
  for (int64_t b = 0; b < n; ++b)
    for (int64_t ch = 0; ch < c; ++ch) {
      for (int64_t i = 0; i < 4; ++i)
        for (int64_t j = 0; j < 3; ++j) {
          double mx = -INFINITY;
          for (int64_t a = 0; a < 3; ++a)
            for (int64_t bb = 0; bb < 3; ++bb) {
              const int64_t hi = i * 2 - 1 + a, wi = j * 2 - 1 + bb;
              if (hi >= 0 && hi < h && wi >= 0 && wi < w) mx = std::max(mx, at(b, ch, hi, wi));
            }
          EXPECT_EQ(ymv[size_t(((b * c + ch) * 4 + i) * 3 + j)], mx);
        }
      for (int64_t i = 0; i < 3; ++i)
        for (int64_t j = 0; j < 3; ++j) {
          const double s = at(b, ch, 2 * i, 2 * j) + at(b, ch, 2 * i + 1, 2 * j) + at(b, ch, 2 * i, 2 * j + 1) +
                           at(b, ch, 2 * i + 1, 2 * j + 1);
          EXPECT_NEAR(yav[size_t(((b * c + ch) * 3 + i) * 3 + j)], s / 4, 1e-12);
        }
      for (int64_t i = 0; i < 2; ++i)
        for (int64_t j = 0; j < 2; ++j) {
          const int64_t h0 = i * h / 2, h1 = ((i + 1) * h + 1) / 2, w0 = j * w / 2, w1 = ((j + 1) * w + 1) / 2;
          double s = 0;
          for (int64_t a = h0; a < h1; ++a)
            for (int64_t bb = w0; bb < w1; ++bb) s += at(b, ch, a, bb);
          EXPECT_NEAR(ydv[size_t(((b * c + ch) * 2 + i) * 2 + j)], s / double((h1 - h0) * (w1 - w0)), 1e-12);
        }
    }
  EXPECT_EQ(mp.stride, (Pair{2, 2}));
  EXPECT_EQ(ap.stride, (Pair{2, 2}));
  EXPECT_THROW(MaxPool2d(0), Error);
}

TEST(Layers, FashionMnistCnnShapesAndParameterCount) {
  // The main job's model: conv 1->32 + BN + ReLU + pool, conv 32->64 + BN + ReLU + pool, Flatten, Linear 3136->10.
  SequentialImpl cnn(Conv2d(1, 32, 3, 1, 1), BatchNorm2d(32), ReLU(), MaxPool2d(2), Conv2d(32, 64, 3, 1, 1),
                 BatchNorm2d(64), ReLU(), MaxPool2d(2), Flatten(), Linear(3136, 10));
  EXPECT_EQ(cnn.num_parameters(), (32 * 9 + 32) + 64 + (64 * 32 * 9 + 64) + 128 + (3136 * 10 + 10));
  const Tensor y = cnn.forward(randn({2, 1, 28, 28}));
  EXPECT_EQ(y.shape(), (Shape{2, 10}));
  cross_entropy(y, tensor<int64_t>({3, 7})).backward();
  for (const auto& [name, p] : cnn.named_parameters()) {
    ASSERT_TRUE(p.grad().defined()) << name;
    EXPECT_EQ(p.grad().shape(), p.shape()) << name;
  }
}
