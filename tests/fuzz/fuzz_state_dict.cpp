// libFuzzer harness: loading a checkpoint into a model's state_dict. Either every
// parameter and buffer takes the file's values or, on kiln::Error, none changes.
#include <vector>

#include "kiln/io/safetensors.h"
#include "kiln/nn.h"
#include "kiln/ops.h"
#include "tests/fuzz/fuzz_common.h"

namespace {
std::vector<std::vector<double>> snapshot(const kiln::StateDict& sd) {
  std::vector<std::vector<double>> out;
  for (const auto& [name, t] : sd.items()) out.push_back(t.to_vector<double>());
  return out;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A Linear (weight, bias) and a BatchNorm2d (int64 num_batches_tracked among its buffers).
  static kiln::nn::Sequential model(kiln::nn::Linear(3, 2), kiln::nn::BatchNorm2d(2));
  const kiln::StateDict sd = model->state_dict();
  const auto before = snapshot(sd);
  const std::string path = kiln::fuzz::write_scratch(data, size, "st_model");
  try {
    kiln::load_safetensors_into(path, sd.items(), /*strict=*/size > 0 && (data[0] & 1));
  } catch (const kiln::Error&) {
    if (snapshot(sd) != before) kiln::fuzz::finding("a failed load changed the model");
  }
  std::remove(path.c_str());
  return 0;
}
