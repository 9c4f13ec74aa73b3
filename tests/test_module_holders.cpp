// libtorch's C++ frontend shape: KILN_MODULE holders, register_module returning the
// holder, Sequential of holders (named or not), Functional, named_* dictionaries,
// apply, pretty printing and options builders. Layer outputs are checked against the
// naive convolution in tests/support and against hand-written loops.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "kiln/kiln.h"  // the umbrella header a libtorch port includes
#include "tests/support/conv_reference.h"
#include "tests/support/expect_error.h"

using namespace kiln;
using kiln::testing::expect_error;

namespace {

// libtorch's MNIST example network, spelled as a libtorch user spells it.
struct NetImpl : nn::Module {
  NetImpl()
      : conv1(nn::Conv2dOptions(1, 10, /*kernel_size=*/5)),
        conv2(nn::Conv2dOptions(10, 20, /*kernel_size=*/5)),
        fc1(320, 50),
        fc2(50, 10) {
    register_module("conv1", conv1);
    register_module("conv2", conv2);
    register_module("conv2_drop", conv2_drop);
    register_module("fc1", fc1);
    register_module("fc2", fc2);
  }
  Tensor forward(Tensor x) {
    x = relu(max_pool2d(conv1->forward(x), {2, 2}));
    x = relu(max_pool2d(conv2_drop->forward(conv2->forward(x)), {2, 2}));
    x = x.view({-1, 320});
    x = relu(fc1->forward(x));
    x = dropout(x, /*p=*/0.5, /*training=*/is_training());
    x = fc2->forward(x);
    return log_softmax(x, /*dim=*/1);
  }
  nn::Conv2d conv1;
  nn::Conv2d conv2;
  nn::Dropout conv2_drop;
  nn::Linear fc1;
  nn::Linear fc2;
};
KILN_MODULE(Net);

// Members that start empty and are assigned from register_module (the DCGAN style).
struct TwoLayerImpl : nn::Module {
  explicit TwoLayerImpl(int64_t hidden) {
    first = register_module("first", nn::Linear(3, hidden));
    second = register_module("second", nn::Linear(nn::LinearOptions(hidden, 2).bias(false)));
  }
  Tensor forward(Tensor x) { return second(relu(first(x))); }
  nn::Linear first{nullptr}, second{nullptr};
};
KILN_MODULE(TwoLayer);

std::vector<double> values(const Tensor& t) { return t.to(DType::Float64).contiguous().to_vector<double>(); }

}  // namespace

TEST(ModuleHolder, MnistNetNamesShapesAndCall) {
  Net net;
  std::vector<std::string> names;
  for (const auto& p : net->named_parameters()) names.push_back(p.key());
  EXPECT_EQ(names, (std::vector<std::string>{"conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "fc1.weight",
                                             "fc1.bias", "fc2.weight", "fc2.bias"}));
  EXPECT_EQ(net->named_parameters()["fc1.weight"].shape(), (Shape{50, 320}));
  // The registered child and the member are one module.
  EXPECT_EQ(net->named_children()["conv1"].get(), net->conv1.get());
  net->eval();
  const Tensor x = randn({4, 1, 28, 28});
  const Tensor y = net(x);
  EXPECT_EQ(y.shape(), (Shape{4, 10}));
  // log_softmax rows exponentiate to probabilities.
  const auto rows = values(exp(y).sum({1}));
  for (double r : rows) EXPECT_NEAR(r, 1.0, 1e-5);
  // Copies of a holder share the module.
  Net alias = net;
  EXPECT_EQ(alias.get(), net.get());
  EXPECT_FALSE(alias->is_training());
}

TEST(ModuleHolder, NullptrHolderRaisesUntilAssigned) {
  nn::Linear fc{nullptr};
  EXPECT_TRUE(fc.is_empty());
  EXPECT_FALSE(bool(fc));
  expect_error([&] { fc->forward(zeros({1, 3})); }, "ModuleHolder", "empty");
  fc = nn::Linear(3, 4);
  EXPECT_EQ(fc(zeros({2, 3})).shape(), (Shape{2, 4}));
  TwoLayer net(8);
  EXPECT_EQ(net->first->weight.shape(), (Shape{8, 3}));
  EXPECT_FALSE(net->second->bias.defined());
  EXPECT_EQ(net->parameters().size(), 3u);
  // The member assigned from register_module is the registered module.
  EXPECT_TRUE(net->named_parameters()["second.weight"].is_same(net->second->weight));
}

TEST(ModuleHolder, LinearMatchesLoops) {
  nn::Linear lin(nn::LinearOptions(3, 2));
  const Tensor x = randn({4, 3}, DType::Float32);
  const auto w = values(lin->weight), b = values(lin->bias), xv = values(x), y = values(lin(x));
  for (int n = 0; n < 4; ++n)
    for (int o = 0; o < 2; ++o) {
      double acc = b[size_t(o)];
      for (int i = 0; i < 3; ++i) acc += xv[size_t(n * 3 + i)] * w[size_t(o * 3 + i)];
      EXPECT_NEAR(y[size_t(n * 2 + o)], acc, 1e-5);
    }
}

TEST(ModuleHolder, Conv2dOptionsReachTheConvolution) {
  nn::Conv2d conv(nn::Conv2dOptions(2, 4, {3, 2}).stride(2).padding({1, 0}).dilation(1).bias(false));
  EXPECT_EQ(conv->weight.shape(), (Shape{4, 2, 3, 2}));
  EXPECT_FALSE(conv->bias.defined());
  EXPECT_EQ(conv->options.stride()[0], 2);
  EXPECT_EQ(conv->options.padding()[1], 0);
  kiln::testing::ConvGeometry g{1, 2, 7, 6, 4, 3, 2, 1, {2, 2}, {1, 0}, {1, 1}};
  const Tensor x = randn(g.x_shape(), DType::Float64);
  conv->to(DType::Float64);
  const auto ref = kiln::testing::reference_conv2d(g, values(x), values(conv->weight), nullptr);
  const Tensor y = conv(x);
  ASSERT_EQ(y.shape(), g.y_shape());
  const auto yv = values(y);
  for (size_t i = 0; i < ref.size(); ++i) EXPECT_NEAR(yv[i], ref[i], 1e-10) << i;
}

TEST(ModuleHolder, OtherOptionsBuilders) {
  nn::BatchNorm2d bn(nn::BatchNorm2dOptions(3).eps(1e-3).momentum(0.2).affine(false));
  EXPECT_EQ(bn->eps, 1e-3);
  EXPECT_FALSE(bn->weight.defined());
  EXPECT_TRUE(bn->running_mean.defined());
  nn::MaxPool2d pool(nn::MaxPool2dOptions(3).stride(2).padding(1));
  EXPECT_EQ(pool(zeros({1, 1, 8, 8})).shape(), (Shape{1, 1, 4, 4}));  // (8 + 2 - 3) / 2 + 1
  nn::MaxPool2d default_stride(2);
  EXPECT_EQ(default_stride(zeros({1, 1, 8, 8})).shape(), (Shape{1, 1, 4, 4}));
  nn::Dropout drop(nn::DropoutOptions().p(0.25));
  EXPECT_EQ(drop->p, 0.25);
  nn::Embedding emb(nn::EmbeddingOptions(10, 4).padding_idx(0));
  EXPECT_EQ(values(emb->weight[0]), std::vector<double>(4, 0.0));
  nn::LayerNorm ln(nn::LayerNormOptions({4}).eps(1e-6).elementwise_affine(false));
  EXPECT_FALSE(ln->weight.defined());
  nn::ConvTranspose2d up(nn::ConvTranspose2dOptions(4, 2, 4).stride(2).padding(1).bias(false));
  EXPECT_EQ(up(zeros({1, 4, 5, 5})).shape(), (Shape{1, 2, 10, 10}));  // (5 - 1) * 2 - 2 + 4
  expect_error([] { nn::Conv2d(nn::Conv2dOptions(3, 4, 3).groups(2)); }, "Conv2d", "divisible by groups");
}

TEST(ModuleHolder, InplaceReLUWritesItsInput) {
  Tensor x = tensor<float>({-1.0f, 2.0f, -3.0f});
  nn::ReLU relu_layer(nn::ReLUOptions().inplace(true));
  const Tensor y = relu_layer(x);
  EXPECT_EQ(values(x), (std::vector<double>{0, 2, 0}));
  EXPECT_TRUE(y.shares_storage(x));
}

TEST(Sequential, OfHoldersUserModulesAndFunctional) {
  TwoLayer inner(4);
  nn::Sequential seq(nn::Linear(3, 3), nn::Functional(relu), inner, nn::Functional(log_softmax, 1));
  EXPECT_EQ(seq->size(), 4u);
  const Tensor x = randn({5, 3});
  // The user module's own forward(Tensor) ran, not the base's.
  const Tensor expected = log_softmax(inner(relu(seq->at<nn::Linear>(0).forward(x))), 1);
  EXPECT_TRUE(allclose(seq(x), expected, 1e-6, 1e-6));
  EXPECT_EQ(seq->ptr<TwoLayer>(2).get(), inner.get());
  expect_error([&] { seq->at<nn::Linear>(1); }, "Sequential", "Functional");
  std::vector<std::string> names;
  for (const auto& item : seq->named_parameters()) names.push_back(item.key());
  EXPECT_EQ(names, (std::vector<std::string>{"0.weight", "0.bias", "2.first.weight", "2.first.bias",
                                             "2.second.weight"}));
}

TEST(Sequential, NamedEntries) {
  nn::Sequential seq({{"conv", nn::Conv2d(1, 2, 3)}, {"act", nn::ReLU()}, {"flat", nn::Flatten()}});
  EXPECT_EQ(seq->named_children().keys(), (std::vector<std::string>{"conv", "act", "flat"}));
  EXPECT_EQ(seq(zeros({2, 1, 5, 5})).shape(), (Shape{2, 2 * 3 * 3}));
  EXPECT_TRUE(seq->named_parameters().contains("conv.weight"));
}

TEST(Module, ApplyNamedModulesAndAs) {
  Net net;
  std::vector<std::string> visited;
  net->apply([&](const std::string& name, nn::Module& m) { visited.push_back(name + ":" + m.name()); });
  EXPECT_EQ(visited, (std::vector<std::string>{":Net", "conv1:Conv2d", "conv2:Conv2d", "conv2_drop:Dropout",
                                               "fc1:Linear", "fc2:Linear"}));
  // The DCGAN-style initialiser: find layers by type and fill their weights.
  int linears = 0;
  net->apply([&](nn::Module& m) {
    if (auto* lin = m.as<nn::Linear>()) {
      ++linears;
      lin->weight.detach().fill_(0.5);
    }
  });
  EXPECT_EQ(linears, 2);
  EXPECT_EQ(values(net->fc2->weight), std::vector<double>(500, 0.5));
  const auto mods = net->named_modules();
  EXPECT_EQ(mods.size(), 6u);
  EXPECT_EQ(mods[size_t(0)].value().get(), net.get());  // the holder owns it: the same pointer
  EXPECT_EQ(net->modules(/*include_self=*/false).size(), 5u);
  EXPECT_EQ(net->named_modules("net").keys()[1], "net.conv1");
}

TEST(Module, PrettyPrint) {
  TwoLayer net(8);
  std::ostringstream os;
  os << net;
  EXPECT_EQ(os.str(),
            "TwoLayer(\n  (first): Linear(in_features=3, out_features=8, bias=true)\n"
            "  (second): Linear(in_features=8, out_features=2, bias=false)\n)");
}
