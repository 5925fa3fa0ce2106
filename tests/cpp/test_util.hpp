// What every C++ test file shares. EXPECT_ERROR(statement, needle) requires `statement` to throw
// spikeops::Error (the core's bad-argument error, a std::invalid_argument) whose message contains `needle`: an
// error must say which function and which argument, so the tests pin down the words, not only the type.
#pragma once

#include <gtest/gtest.h>

#include <exception>
#include <stdexcept>
#include <string>

#include "spikeops/error.hpp"

namespace spikeops_test {

template <typename Fn>
::testing::AssertionResult throws_error_mentioning(Fn&& fn, const std::string& needle) {
  try {
    fn();
  } catch (const spikeops::Error& e) {
    if (std::string(e.what()).find(needle) != std::string::npos) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "message \"" << e.what() << "\" does not mention \"" << needle << "\"";
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "expected spikeops::Error mentioning \"" << needle
                                         << "\", got another exception: " << e.what();
  }
  return ::testing::AssertionFailure() << "expected an error mentioning \"" << needle << "\", nothing was thrown";
}

}  // namespace spikeops_test

// (gtest's message quotes the statement.)
#define EXPECT_ERROR(statement, needle) EXPECT_TRUE(::spikeops_test::throws_error_mentioning([&] { statement; }, needle))
