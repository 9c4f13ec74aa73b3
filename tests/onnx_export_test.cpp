// kiln::onnx::save: exported models pass ONNX's checker, run in kiln's importer with the
// module's results, and — the independent check — give the same predictions in
// onnxruntime (tests/onnx_runtime; skipped with the reason when node or onnxruntime-node
// is absent: scripts/install-onnxruntime.sh installs it).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "kiln/autograd.h"
#include "kiln/data/fashion_mnist.h"
#include "kiln/generator.h"
#include "kiln/nn.h"
#include "kiln/onnx.h"
#include "kiln/ops.h"
#include "kiln/optim.h"
#include "onnx/checker.h"
#include "tests/support/expect_error.h"
#include "tools/fashion_cnn.h"

namespace kiln {
namespace {

namespace fs = std::filesystem;

std::string temp_path(const std::string& name) { return ::testing::TempDir() + "kiln_onnx_" + name; }

// The reason onnxruntime cannot run here, or "" when it can.
std::string onnxruntime_missing() {
  const fs::path dir = fs::path(KILN_SOURCE_DIR) / "tests/onnx_runtime";
  if (std::system("node --version > /dev/null 2>&1") != 0) return "node is not installed";
  if (!fs::exists(dir / "node_modules/onnxruntime-node")) {
    return "onnxruntime-node is not installed (scripts/install-onnxruntime.sh)";
  }
  return "";
}

// The first output of model on x in onnxruntime.
Tensor run_onnxruntime(const std::string& model, const Tensor& x) {
  const std::string raw = temp_path("input.raw"), out = temp_path("ort.json");
  const Tensor c = x.cpu().contiguous();
  {
    std::ofstream f(raw, std::ios::binary);
    f.write(static_cast<const char*>(c.data_ptr()), std::streamsize(c.nbytes()));
  }
  std::string dims;
  for (int64_t d : c.shape()) dims += (dims.empty() ? "" : ",") + std::to_string(d);
  const std::string cmd = "node " + (fs::path(KILN_SOURCE_DIR) / "tests/onnx_runtime/run_model.js").string() + " " +
                          model + " " + raw + " " + (c.dtype() == DType::Int64 ? "int64" : "float32") + " " + dims +
                          " > " + out;
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream f(out);
  const auto j = nlohmann::json::parse(f);
  Shape shape = j["dims"].get<Shape>();
  const auto data = j["data"].get<std::vector<double>>();
  std::remove(raw.c_str());
  std::remove(out.c_str());
  return tensor<double>(data, shape);
}

void expect_close(const Tensor& got, const Tensor& want, double tol, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const auto g = got.to_vector<double>(), w = want.to_vector<double>();
  for (size_t i = 0; i < g.size(); ++i) ASSERT_NEAR(g[i], w[i], tol * (1 + std::abs(w[i]))) << what << " element " << i;
}

TEST(OnnxExport, FashionCnnMatchesOnnxruntime) {
  manual_seed(7);
  auto model = cli::make_fashion_cnn();
  // A few Adam steps on real images when the dataset is present (random ones otherwise),
  // so the exported weights and BatchNorm statistics are trained ones.
  Tensor images, labels;
  try {
    const auto train = data::load_fashion_mnist(true, "", 640);
    images = sub(train.images, cli::kFashionMean) / cli::kFashionStd;
    labels = train.labels;
  } catch (const Error&) {
    images = randn({640, 1, 28, 28});
    labels = randint(0, 10, {640});
  }
  optim::Adam opt(model->parameters(), {.lr = 1e-3});
  model->train();
  for (int64_t step = 0; step < 10; ++step) {
    opt.zero_grad();
    nn::cross_entropy(model->forward(images.narrow(0, step * 64, 64)), labels.narrow(0, step * 64, 64)).backward();
    opt.step();
  }
  model->eval();
  const std::string path = temp_path("fashion_cnn.onnx");
  onnx::save(*model, {images.narrow(0, 0, 2)}, path);
  EXPECT_FALSE(model->is_training());
  ASSERT_NO_THROW(::onnx::checker::check_model(path));

  const Tensor x = images.narrow(0, 0, 64);
  NoGradGuard no_grad;
  const Tensor want = model->forward(x);
  auto imported = onnx::load(path);
  EXPECT_EQ(imported->opset(), 17);
  std::vector<std::string> names;
  const StateDict state = imported->state_dict();
  for (const auto& [name, t] : state.items()) names.push_back(name);
  EXPECT_NE(std::find(names.begin(), names.end(), "1.running_mean"), names.end());
  expect_close(imported->forward(x), want, 1e-4, "kiln import");

  if (const std::string why = onnxruntime_missing(); !why.empty()) GTEST_SKIP() << why;
  const Tensor ort = run_onnxruntime(path, x);
  expect_close(ort, want, 1e-3, "onnxruntime");
  EXPECT_TRUE(equal(argmax(ort, 1), argmax(want.to(DType::Float64), 1))) << "predictions differ";
  std::remove(path.c_str());
}

// Every exported layer type, in kiln's importer and in onnxruntime.
TEST(OnnxExport, LayersRoundTrip) {
  manual_seed(3);
  struct Case {
    std::string name;
    std::shared_ptr<nn::Module> module;
    Tensor input;
  };
  std::vector<Case> cases;
  cases.push_back({"mlp3d",
                   std::make_shared<nn::SequentialImpl>(nn::Linear(6, 5), nn::SiLU(), nn::LayerNorm(Shape{5}), nn::Linear(5, 3)),
                   randn({2, 4, 6})});
  cases.push_back({"convt",
                   std::make_shared<nn::SequentialImpl>(nn::ConvTranspose2d(3, 4, 3, 2, 1, 1), nn::ReLU(),
                                                    nn::AvgPool2d(2, 2, 1, false, false), nn::Flatten(2, 3)),
                   randn({2, 3, 5, 5})});
  cases.push_back({"pool", std::make_shared<nn::SequentialImpl>(nn::Conv2d(2, 4, 3, 1, 1, 1, 2), nn::MaxPool2d(3, 2, 1, 1, true),
                                                            nn::AdaptiveAvgPool2d(Pair{1, 1}), nn::Flatten(), nn::Dropout(0.5)),
                   randn({3, 2, 9, 9})});
  cases.push_back({"embedding", std::make_shared<nn::SequentialImpl>(nn::Embedding(10, 4), nn::Linear(4, 2)),
                   randint(0, 10, {2, 3})});
  const std::string why = onnxruntime_missing();
  for (auto& c : cases) {
    const std::string path = temp_path(c.name + ".onnx");
    onnx::save(*c.module, {c.input}, path);
    NoGradGuard no_grad;
    c.module->eval();
    const Tensor want = c.module->forward(c.input);
    expect_close(onnx::load(path)->forward(c.input), want, 1e-4, c.name + " in kiln");
    if (why.empty()) expect_close(run_onnxruntime(path, c.input), want, 1e-3, c.name + " in onnxruntime");
    std::remove(path.c_str());
  }
  if (!why.empty()) GTEST_SKIP() << "kiln's importer checked; onnxruntime comparison skipped: " << why;
}

TEST(OnnxExport, UnsupportedModulesAreNamed) {
  nn::Sequential m(nn::Linear(4, 4), nn::MultiheadAttention(4, 2));
  testing::expect_error([&] { onnx::save(*m, {randn({2, 3, 4})}, temp_path("mha.onnx")); }, "onnx::save",
                        "module '1' of type MultiheadAttention");
  nn::Sequential ok(nn::Linear(4, 4));
  testing::expect_error([&] { onnx::save(*ok, {randn({2, 4}), randn({2, 4})}, temp_path("two.onnx")); }, "onnx::save",
                        "one input");
  testing::expect_error([&] { onnx::save(*ok, {randn({2, 4})}, "/nonexistent/dir/m.onnx"); }, "onnx::save",
                        "cannot write");
}

}  // namespace
}  // namespace kiln
