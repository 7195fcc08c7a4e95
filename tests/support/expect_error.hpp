// expect_error: asserts that a call throws avgrad::Error whose message names every
// given fragment. Kept apart from testing.hpp so light tests need not pull in the ops.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "avgrad/core/error.hpp"

namespace avgrad::testing {

/// Expects `body` to throw avgrad::Error whose message contains every fragment.
inline void expect_error(const std::function<void()>& body, const std::vector<std::string>& fragments) {
  try {
    body();
    ADD_FAILURE() << "expected avgrad::Error, nothing was thrown";
  } catch (const avgrad::Error& e) {
    std::string msg = e.what();
    for (const auto& f : fragments)
      EXPECT_NE(msg.find(f), std::string::npos) << "message: " << msg << "\nmissing: " << f;
  }
}

}  // namespace avgrad::testing
