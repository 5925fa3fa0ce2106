// Internal: argument checks shared by the public entry points. Each throws spikeops::Error with a message
// "<function>: <argument> must ..., got ...".
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>

#include "spikeops/error.hpp"
#include "spikeops/tensor.hpp"

namespace spikeops {
namespace validate {

class Checker {
 public:
  explicit Checker(const char* function) : function_(function) {}

  [[noreturn]] void fail(const std::string& arg, const std::string& what) const;

  // The tensor is present, has `ndim` dims, a well-formed view (non-negative sizes, contiguous, data non-null
  // when non-empty) and one of `dtypes`.
  void tensor(const TensorView& t, const char* arg, int ndim, std::initializer_list<DType> dtypes) const;
  void shape_is(const TensorView& t, const char* arg, std::initializer_list<int64_t> shape) const;
  void same_device(const TensorView& t, const char* arg, const TensorView& ref, const char* ref_arg) const;
  void same_shape(const TensorView& t, const char* arg, const TensorView& ref, const char* ref_arg) const;
  void finite(float value, const char* arg) const;

  // Runs validate(), a public validate_* function whose messages name the argument but not the op, with this
  // function's name put before its message.
  template <typename Validate>
  void nested(Validate&& validate) const {
    try {
      validate();
    } catch (const Error& e) {
      throw Error(std::string(function_) + ": " + e.what());
    }
  }

 private:
  const char* function_;
};

}  // namespace validate
}  // namespace spikeops
