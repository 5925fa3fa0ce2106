#include "spikeops/tensor.hpp"

#include <string>

#include "spikeops/error.hpp"

namespace spikeops {

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return "float32";
    case DType::kFloat16: return "float16";
    case DType::kBFloat16: return "bfloat16";
    case DType::kUInt8: return "uint8";
    case DType::kFloat64: return "float64";
  }
  return "unknown dtype";
}

const char* device_name(Device device) {
  switch (device) {
    case Device::kCPU: return "cpu";
    case Device::kCUDA: return "cuda";
  }
  return "unknown device";
}

std::size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return 4;
    case DType::kFloat16: return 2;
    case DType::kBFloat16: return 2;
    case DType::kUInt8: return 1;
    case DType::kFloat64: return 8;
  }
  return 0;
}

bool is_floating(DType dtype) {
  return dtype == DType::kFloat32 || dtype == DType::kFloat16 || dtype == DType::kBFloat16;
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int i = 0; i < ndim; ++i) n *= shape[i];
  return ndim < 0 ? 0 : n;
}

bool TensorView::is_contiguous() const {
  // An empty tensor addresses no element, so any strides describe it (torch gives [2, 0] strides [1, 1]).
  if (numel() == 0) return true;
  int64_t expected = 1;
  for (int i = ndim - 1; i >= 0; --i) {
    if (shape[i] != 1 && strides[i] != expected) return false;
    expected *= shape[i];
  }
  return true;
}

std::string TensorView::shape_string() const {
  std::string s = "[";
  for (int i = 0; i < ndim; ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

TensorView make_tensor_view(void* data, DType dtype, const int64_t* shape, int ndim, Device device,
                            int device_index) {
  if (ndim < 0 || ndim > kMaxDims) {
    throw Error("make_tensor_view: ndim must be in [0, " + std::to_string(kMaxDims) + "], got " +
                std::to_string(ndim));
  }
  TensorView t;
  t.data = data;
  t.dtype = dtype;
  t.device = device;
  t.device_index = device_index;
  t.ndim = ndim;
  int64_t stride = 1;
  for (int i = ndim - 1; i >= 0; --i) {
    if (shape[i] < 0) {
      throw Error("make_tensor_view: shape[" + std::to_string(i) + "] must be >= 0, got " +
                  std::to_string(shape[i]));
    }
    t.shape[i] = shape[i];
    t.strides[i] = stride;
    stride *= shape[i];
  }
  return t;
}

TensorView make_tensor_view(void* data, DType dtype, std::initializer_list<int64_t> shape, Device device,
                            int device_index) {
  return make_tensor_view(data, dtype, shape.begin(), static_cast<int>(shape.size()), device, device_index);
}

}  // namespace spikeops
