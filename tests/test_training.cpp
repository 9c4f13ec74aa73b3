// A short training run of the main job's CNN on a Fashion-MNIST subset: 160
// Adam steps must bring the loss far below what any model that ignores its input can
// reach (the entropy of the label distribution, ~ln 10), and a checkpoint written and
// read back through safetensors must reproduce the trained model's predictions.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <iostream>

#include "kiln/data/dataloader.h"
#include "kiln/data/fashion_mnist.h"
#include "kiln/data/transforms.h"
#include "kiln/generator.h"
#include "kiln/optim.h"
#include "tools/fashion_cnn.h"
#include "tools/train_eval.h"

using namespace kiln;

namespace {
// Cross-entropy of the best constant prediction: the entropy of the label frequencies.
double label_entropy(const std::vector<int64_t>& labels) {
  std::vector<double> count(10, 0.0);
  for (int64_t l : labels) count[size_t(l)] += 1;
  double h = 0;
  for (double c : count)
    if (c > 0) h -= c / double(labels.size()) * std::log(c / double(labels.size()));
  return h;
}
}  // namespace

TEST(Training, FashionCnnLearnsAndItsCheckpointRoundTrips) {
  if (!std::filesystem::exists(data::fashion_mnist_dir() + "/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "dataset-fashion-mnist not installed";
  manual_seed(0);
  data::FashionMnist train = data::load_fashion_mnist(true, "", 2048);
  data::FashionMnist test = data::load_fashion_mnist(false, "", 500);
  data::Normalize normalize({cli::kFashionMean}, {cli::kFashionStd});
  train.images = normalize(train.images);
  test.images = normalize(test.images);
  const double floor_loss = label_entropy(train.labels.to_vector<int64_t>());
  ASSERT_GT(floor_loss, 2.2);  // ~ln 10 = 2.303 for balanced classes

  auto model = cli::make_fashion_cnn();
  optim::Adam opt(model->parameters(), optim::AdamOptions{.lr = 2e-3});
  data::DataLoader loader(std::make_shared<data::TensorDataset>(train.images, train.labels),
                          {.batch_size = 64, .shuffle = true, .seed = 1, .drop_last = true});
  const int steps = 160;  // 5 epochs of the subset
  std::vector<double> losses;
  while (int(losses.size()) < steps) {
    for (const data::Example& b : loader) {
      Tensor loss = nn::cross_entropy(model(b.input), b.target);
      opt.zero_grad();
      loss.backward();
      opt.step();
      losses.push_back(loss.item<double>());
      if (int(losses.size()) == steps) break;
    }
  }
  double last = 0;
  for (int i = steps - 32; i < steps; ++i) last += losses[size_t(i)] / 32;
  std::cout << "first loss " << losses.front() << ", mean of the last 32 " << last << ", constant-prediction floor "
            << floor_loss << "\n";
  EXPECT_NEAR(losses.front(), 2.3, 0.6) << "an untrained model's loss is near ln 10";
  EXPECT_LT(last, 0.35 * floor_loss) << "training loss over the last 32 steps";

  const auto test_set = std::make_shared<data::TensorDataset>(test.images, test.labels);
  const cli::EvalResult trained = cli::evaluate(*model, test_set, kCpu, 250);
  EXPECT_LT(trained.loss, 0.5 * floor_loss);
  EXPECT_GT(trained.accuracy, 0.7);
  std::cout << "test subset: loss " << trained.loss << ", accuracy " << trained.accuracy << "\n";

  const std::string path = (std::filesystem::temp_directory_path() /
                            ("kiln_test_training_" + std::to_string(::getpid()) + ".safetensors"))
                               .string();
  save_safetensors(path, cli::state_dict_to_map(*model));
  auto fresh = cli::make_fashion_cnn();
  cli::load_checkpoint(*fresh, path);
  std::filesystem::remove(path);
  const cli::EvalResult reloaded = cli::evaluate(*fresh, test_set, kCpu, 250);
  EXPECT_EQ(reloaded.accuracy, trained.accuracy);
  EXPECT_NEAR(reloaded.loss, trained.loss, 1e-6);
}
