// kiln predict: loads a checkpoint of `kiln train` and classifies one test image.
#include <cmath>
#include <iomanip>
#include <iostream>

#include "kiln/data/fashion_mnist.h"
#include "kiln/data/transforms.h"
#include "kiln/device_manager.h"
#include "tools/commands.h"
#include "tools/fashion_cnn.h"
#include "tools/train_eval.h"

namespace kiln::cli {

namespace {
double metadata_number(const SafetensorsMetadata& m, const std::string& key, double fallback) {
  const auto it = m.find(key);
  if (it == m.end()) return fallback;
  try {
    return std::stod(it->second);
  } catch (const std::logic_error&) {
    return fallback;
  }
}
}  // namespace

int cmd_predict(const Args& args) {
  std::string model_path, data_dir;
  int64_t index = -1;
  std::optional<Device> device;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& k = args[i];
    if (k == "--help" || k == "-h") {
      std::cout << "usage: kiln predict --model FILE --index N [--device D] [--data DIR]\n"
                   "Classifies test image N (0..9999) with a model saved by `kiln train`.\n";
      return 0;
    }
    KILN_CHECK(i + 1 < args.size(), "predict", "option ", k, " needs a value");
    const std::string& v = args[++i];
    if (k == "--model") model_path = v;
    else if (k == "--data") data_dir = v;
    else if (k == "--device") device = Device::parse(v);
    else if (k == "--index") {
      try {
        index = std::stoll(v);
      } catch (const std::logic_error&) {
        KILN_FAIL("predict", "bad value '", v, "' for --index");
      }
    } else KILN_FAIL("predict", "unknown option '", k, "'");
  }
  KILN_CHECK(!model_path.empty() && index >= 0, "predict", "usage: kiln predict --model FILE --index N [--device D]");
  const Device dev = device.value_or(device_manager().best_device());
  set_device(dev);

  const SafetensorsContents ckpt = load_safetensors_file(model_path);
  auto model = make_fashion_cnn();
  load_checkpoint(*model, model_path);
  model->to(dev);
  model->eval();

  const data::FashionMnist test = data::load_fashion_mnist(false, data_dir);
  KILN_CHECK(index < test.images.size(0), "predict", "--index ", index, " is out of range: the test set has ",
             test.images.size(0), " images");
  data::Normalize normalize({metadata_number(ckpt.metadata, "mean", kFashionMean)},
                            {metadata_number(ckpt.metadata, "std", kFashionStd)});
  const Tensor image = normalize(test.images.narrow(0, index, 1));
  Tensor logits;
  {
    NoGradGuard no_grad;
    logits = model(image.to(dev)).cpu();
  }
  // Softmax on the host for the printed probabilities.
  std::vector<float> z = logits.to_vector<float>();
  const float zmax = *std::max_element(z.begin(), z.end());
  double total = 0;
  std::vector<double> p(z.size());
  for (size_t c = 0; c < z.size(); ++c) total += p[c] = std::exp(double(z[c] - zmax));
  for (double& v : p) v /= total;
  const int64_t pred = argmax_rows(logits)[0];
  const int64_t truth = test.labels.at({index}).to_int();
  const auto& names = data::fashion_mnist_classes();
  std::cout << "test image " << index << ": predicted " << pred << " (" << names[size_t(pred)] << ", "
            << std::fixed << std::setprecision(1) << 100 * p[size_t(pred)] << "%), true " << truth << " ("
            << names[size_t(truth)] << ") -> " << (pred == truth ? "correct" : "wrong") << "\n";
  return 0;
}

}  // namespace kiln::cli
