// The exception type every public entry point throws for bad arguments.
#pragma once

#include <stdexcept>
#include <string>

namespace spikeops {

// Thrown for invalid arguments (shapes, dtypes, devices, null pointers, hyper-parameters out of range).
// Derives from std::invalid_argument so callers can catch the standard type; pybind11 maps it to ValueError.
class Error : public std::invalid_argument {
 public:
  explicit Error(const std::string& what) : std::invalid_argument(what) {}
};

// Thrown when a kernel launch or a device call fails (CUDA errors); maps to RuntimeError in Python.
class DeviceError : public std::runtime_error {
 public:
  explicit DeviceError(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace spikeops
