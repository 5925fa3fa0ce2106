#include "validate.hpp"

#include <cmath>
#include <string>

#include "spikeops/error.hpp"

namespace spikeops {
namespace validate {

void Checker::fail(const std::string& arg, const std::string& what) const {
  throw Error(std::string(function_) + ": " + arg + " " + what);
}

void Checker::tensor(const TensorView& t, const char* arg, int ndim, std::initializer_list<DType> dtypes) const {
  if (!t.defined()) fail(arg, "is required but was not given");
  if (t.ndim != ndim) {
    fail(arg, "must be a " + std::to_string(ndim) + "-D tensor, got " + std::to_string(t.ndim) +
                  "-D with shape " + t.shape_string());
  }
  for (int i = 0; i < t.ndim; ++i) {
    if (t.shape[i] < 0) fail(arg, "has a negative size in shape " + t.shape_string());
  }
  bool dtype_ok = false;
  std::string allowed;
  for (DType d : dtypes) {
    dtype_ok = dtype_ok || d == t.dtype;
    allowed += (allowed.empty() ? "" : "/") + std::string(dtype_name(d));
  }
  if (!dtype_ok) fail(arg, "must have dtype " + allowed + ", got " + dtype_name(t.dtype));
  if (t.device != Device::kCPU && t.device != Device::kCUDA) fail(arg, "is on an unknown device");
  if (!t.is_contiguous()) fail(arg, "must be contiguous (shape " + t.shape_string() + ")");
  if (t.numel() > 0 && t.data == nullptr) fail(arg, "has a null data pointer but " + t.shape_string() + " elements");
}

void Checker::shape_is(const TensorView& t, const char* arg, std::initializer_list<int64_t> shape) const {
  bool ok = static_cast<int>(shape.size()) == t.ndim;
  std::string expected = "[";
  int i = 0;
  for (int64_t s : shape) {
    ok = ok && t.shape[i] == s;
    expected += (i ? ", " : "") + std::to_string(s);
    ++i;
  }
  if (!ok) fail(arg, "must have shape " + expected + "], got " + t.shape_string());
}

void Checker::same_device(const TensorView& t, const char* arg, const TensorView& ref, const char* ref_arg) const {
  if (t.device != ref.device || t.device_index != ref.device_index) {
    fail(arg, std::string("must be on the same device as ") + ref_arg + " (" + device_name(ref.device) + ":" +
                  std::to_string(ref.device_index) + "), got " + device_name(t.device) + ":" +
                  std::to_string(t.device_index));
  }
}

void Checker::same_shape(const TensorView& t, const char* arg, const TensorView& ref, const char* ref_arg) const {
  bool ok = t.ndim == ref.ndim;
  for (int i = 0; ok && i < t.ndim; ++i) ok = t.shape[i] == ref.shape[i];
  if (!ok) fail(arg, std::string("must have the shape of ") + ref_arg + " " + ref.shape_string() + ", got " + t.shape_string());
}

void Checker::finite(float value, const char* arg) const {
  if (!std::isfinite(value)) fail(arg, "must be finite, got " + std::to_string(value));
}

}  // namespace validate
}  // namespace spikeops
