// libFuzzer harness: safetensors loading from a file (the path users take).
#include "kiln/io/safetensors.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = kiln::fuzz::write_scratch(data, size, "st_file");
  try {
    const kiln::TensorMap tensors = kiln::load_safetensors(path);
    for (const auto& [name, t] : tensors) (void)t.to(kiln::DType::Float64).sum().item();
  } catch (const kiln::Error&) {
  }
  std::remove(path.c_str());
  return 0;
}
