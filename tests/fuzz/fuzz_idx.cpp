// libFuzzer harness: the IDX reader (gzip-compressed or plain), as Fashion-MNIST uses it.
#include "kiln/data/fashion_mnist.h"
#include "tests/fuzz/fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = kiln::fuzz::write_scratch(data, size, "idx");
  try {
    const kiln::data::IdxArray a = kiln::data::read_idx(path);
    uint64_t n = 1;
    for (int64_t d : a.dims) n *= uint64_t(d);
    if (n != a.data.size()) kiln::fuzz::finding("IDX dims and data size disagree");
  } catch (const kiln::Error&) {
  }
  std::remove(path.c_str());
  return 0;
}
