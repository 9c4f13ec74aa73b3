// kiln run: loads an ONNX model, runs it on inputs from .npy or .safetensors files on a
// device, prints the outputs and the time per run.
#include <algorithm>
#include <chrono>
#include <iomanip>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "kiln/device_manager.h"
#include "kiln/io/npy.h"
#include "kiln/io/safetensors.h"
#include "tools/commands.h"
#ifdef KILN_WITH_ONNX
#include "kiln/autograd.h"
#include "kiln/onnx.h"
#endif

namespace kiln::cli {

namespace {
constexpr const char* kUsage =
    "usage: kiln run MODEL.onnx --input FILE [--input FILE ...] [--device D] [--runs N] [--save-outputs DIR]\n"
    "Runs an ONNX model. Each --input is a .npy file (the model's inputs in order) or a\n"
    ".safetensors file (tensors named as the model's inputs). Prints every output and the\n"
    "time per run (mean and best of N runs after one warm-up, default 10).\n";

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

int cmd_run(const Args& args) {
#ifndef KILN_WITH_ONNX
  (void)args;
  KILN_FAIL("run", "this kiln was built without ONNX support (install libonnx-dev and libprotobuf-dev, rebuild)");
#else
  std::string model_path, save_dir;
  std::vector<std::string> input_files;
  std::optional<Device> device;
  int64_t runs = 10;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& k = args[i];
    if (k == "--help" || k == "-h") {
      std::cout << kUsage;
      return 0;
    }
    if (k.rfind("--", 0) != 0) {
      KILN_CHECK(model_path.empty(), "run", "more than one model given ('", model_path, "', '", k, "')");
      model_path = k;
      continue;
    }
    KILN_CHECK(i + 1 < args.size(), "run", "option ", k, " needs a value");
    const std::string& v = args[++i];
    if (k == "--input") input_files.push_back(v);
    else if (k == "--device") device = Device::parse(v);
    else if (k == "--save-outputs") save_dir = v;
    else if (k == "--runs") {
      try {
        runs = std::stoll(v);
      } catch (const std::logic_error&) {
        KILN_FAIL("run", "bad value '", v, "' for --runs");
      }
      KILN_CHECK(runs >= 1, "run", "--runs must be at least 1");
    } else {
      KILN_FAIL("run", "unknown option '", k, "'");
    }
  }
  KILN_CHECK(!model_path.empty(), "run", kUsage);
  const Device dev = device.value_or(device_manager().best_device());

  auto model = onnx::load(model_path);
  model->to(dev);
  std::vector<Tensor> positional;
  std::map<std::string, Tensor> named;
  for (const auto& f : input_files) {
    if (ends_with(f, ".safetensors")) {
      for (const auto& [name, t] : load_safetensors(f)) named[name] = t;
    } else {
      KILN_CHECK(ends_with(f, ".npy"), "run", "input '", f, "' is neither .npy nor .safetensors");
      positional.push_back(load_npy(f));
    }
  }
  const auto& infos = model->inputs();
  std::vector<Tensor> inputs;
  size_t next_positional = 0;
  for (const auto& info : infos) {
    const auto it = named.find(info.name);
    if (it != named.end()) {
      inputs.push_back(it->second.to(dev));
    } else {
      KILN_CHECK(next_positional < positional.size(), "run", "no value for model input '", info.name, "' (",
                 infos.size(), " inputs: give .npy files in order or a .safetensors file with these names)");
      inputs.push_back(positional[next_positional++].to(dev));
    }
  }
  KILN_CHECK(next_positional == positional.size(), "run", "got ", positional.size(), " .npy inputs, ",
             next_positional, " used");

  NoGradGuard no_grad;
  std::vector<Tensor> outputs = model->forward(inputs);  // warm-up
  device_manager().synchronize(dev);
  std::vector<double> ms;
  for (int64_t r = 0; r < runs; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    outputs = model->forward(inputs);
    device_manager().synchronize(dev);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  for (size_t i = 0; i < outputs.size(); ++i) {
    const auto& name = model->outputs()[i].name;
    std::cout << name << ": " << shape_str(outputs[i].shape()) << ' ' << dtype_name(outputs[i].dtype()) << '\n'
              << outputs[i].cpu() << '\n';
    if (!save_dir.empty()) save_npy(save_dir + "/" + std::to_string(i) + ".npy", outputs[i]);
  }
  double mean = 0;
  for (double m : ms) mean += m;
  mean /= double(ms.size());
  std::cout << std::fixed << std::setprecision(3) << "time per run on " << dev.str() << ": " << mean << " ms mean, "
            << *std::min_element(ms.begin(), ms.end()) << " ms best (" << runs << " runs)\n";
  return 0;
#endif
}

}  // namespace kiln::cli
