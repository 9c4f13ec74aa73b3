#pragma once
// What every CUDA test file shares: the device they test and the skip when no CUDA
// device is present (CI has none; the tests run on the GPU machine).
#include <gtest/gtest.h>

#include "kiln/device_manager.h"

namespace kiln::testing {
inline const Device kGpu{DeviceType::Cuda, 0};
}  // namespace kiln::testing

#define REQUIRE_CUDA()                                                                             \
  do {                                                                                             \
    if (!::kiln::device_manager().is_available(::kiln::DeviceType::Cuda))                          \
      GTEST_SKIP() << ::kiln::device_manager().unavailable_reason(::kiln::DeviceType::Cuda);       \
  } while (0)
