// The C++ tests' checks: CHECK(cond) counts and reports a failure without stopping; EXPECT_ERROR(stmt, needle)
// requires stmt to throw spikeops::Error (a std::invalid_argument) whose message contains needle.
#pragma once

#include <cstdio>
#include <functional>
#include <stdexcept>
#include <string>

namespace spikeops_test {

inline int g_failures = 0;
inline int g_checks = 0;

inline void expect_error(const std::function<void()>& fn, const std::string& needle, int line) {
  ++g_checks;
  try {
    fn();
  } catch (const std::invalid_argument& e) {
    if (std::string(e.what()).find(needle) == std::string::npos) {
      ++g_failures;
      std::printf("FAILED line %d: message \"%s\" does not mention \"%s\"\n", line, e.what(), needle.c_str());
    }
    return;
  }
  ++g_failures;
  std::printf("FAILED line %d: expected an error mentioning \"%s\"\n", line, needle.c_str());
}

}  // namespace spikeops_test

#define CHECK(cond)                                                 \
  do {                                                              \
    ++spikeops_test::g_checks;                                      \
    if (!(cond)) {                                                  \
      ++spikeops_test::g_failures;                                  \
      std::printf("FAILED %s:%d: %s\n", __FILE__, __LINE__, #cond); \
    }                                                               \
  } while (0)

#define EXPECT_ERROR(stmt, needle) spikeops_test::expect_error([&] { stmt; }, needle, __LINE__)
