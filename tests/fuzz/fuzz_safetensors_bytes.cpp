// libFuzzer harness: safetensors parsing from bytes in memory.
#include "kiln/io/safetensors.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const kiln::SafetensorsContents c =
        kiln::parse_safetensors(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
    for (const auto& [name, t] : c.tensors) (void)t.sum().item();  // touch every byte that was loaded
  } catch (const kiln::Error&) {
  }
  return 0;
}
