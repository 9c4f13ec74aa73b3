#pragma once
// Runs f and checks that it raises kiln::Error whose message names the op ("[op] ...")
// and, when given, contains fragment.
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "kiln/error.h"

namespace kiln::testing {

inline void expect_error(const std::function<void()>& f, const std::string& op, const std::string& fragment = "") {
  try {
    f();
    ADD_FAILURE() << "expected kiln::Error from " << op;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("[" + op + "]"), std::string::npos) << msg;
    if (!fragment.empty()) EXPECT_NE(msg.find(fragment), std::string::npos) << msg;
  }
}

}  // namespace kiln::testing
