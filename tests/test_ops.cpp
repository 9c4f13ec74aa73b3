// Generated op tests: every registered OpInfo (tests/op_table_*.cpp) x its dtypes x layout
// x present device becomes one GoogleTest case named "<op>.<dtype>/<layout>/<device>",
// e.g. add.float16/strided/cpu. The procedure is in tests/support/op_info.cpp.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "kiln/device_manager.h"
#include "tests/support/op_info.h"

namespace {
using namespace kiln;
using namespace kiln::testing;

class GeneratedOpTest : public ::testing::Test {
 public:
  GeneratedOpTest(const OpInfo* info, DType dtype, Layout layout, Device device)
      : info_(info), dtype_(dtype), layout_(layout), device_(device) {}
  void TestBody() override { run_op_test(*info_, dtype_, layout_, device_); }

 private:
  const OpInfo* info_;
  DType dtype_;
  Layout layout_;
  Device device_;
};

// Test names may only hold characters ctest and gtest filters accept.
std::string sanitize(std::string s) {
  for (char& c : s)
    if (c == ':' || c == '.' || c == ' ') c = '_';
  return s;
}

void register_generated_tests() {
  const std::vector<Device> devices = device_manager().devices();
  std::set<std::string> seen;
  for (const OpInfo& info : op_registry()) {
    std::string suite = sanitize(info.name);
    for (int n = 2; !seen.insert(suite).second; ++n) suite = sanitize(info.name) + "_" + std::to_string(n);
    for (int t = 0; t < kNumDTypes; ++t) {
      const DType dtype = DType(t);
      if (!(info.dtypes & dtype_bit(dtype))) continue;
      for (Layout layout : {Layout::Contiguous, Layout::Transposed, Layout::Strided, Layout::Broadcast}) {
        for (const Device& device : devices) {
          const std::string name =
              std::string(dtype_name(dtype)) + "/" + layout_name(layout) + "/" + sanitize(device.str());
          const OpInfo* p = &info;
          ::testing::RegisterTest(suite.c_str(), name.c_str(), nullptr, nullptr, __FILE__, __LINE__,
                                  [=]() -> ::testing::Test* { return new GeneratedOpTest(p, dtype, layout, device); });
        }
      }
    }
  }
}
}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  register_generated_tests();
  return RUN_ALL_TESTS();
}
