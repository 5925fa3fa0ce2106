// TensorView: a plain description of memory the caller owns (pointer, dtype, device, shape, strides).
// In the spirit of CUTLASS's TensorRef: no ownership, no allocation, no torch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>

namespace spikeops {

enum class DType : int {
  kFloat32 = 0,
  kFloat16 = 1,
  kBFloat16 = 2,
  kUInt8 = 3,  // 1-byte spikes (0 or 1)
  kFloat64 = 4,
};

enum class Device : int {
  kCPU = 0,
  kCUDA = 1,
};

const char* dtype_name(DType dtype);
const char* device_name(Device device);
std::size_t dtype_size(DType dtype);
bool is_floating(DType dtype);  // float32, float16, bfloat16 (float64 is described but no kernel takes it)

constexpr int kMaxDims = 8;

struct TensorView {
  void* data = nullptr;
  DType dtype = DType::kFloat32;
  Device device = Device::kCPU;
  int device_index = 0;
  int ndim = -1;                   // -1: no tensor (an optional argument left out)
  int64_t shape[kMaxDims] = {};
  int64_t strides[kMaxDims] = {};  // in elements

  bool defined() const { return ndim >= 0; }
  int64_t numel() const;
  bool is_contiguous() const;
  std::string shape_string() const;  // "[4, 128]"
};

// A contiguous view of `data` with the given shape.
TensorView make_tensor_view(void* data, DType dtype, std::initializer_list<int64_t> shape,
                            Device device = Device::kCPU, int device_index = 0);
TensorView make_tensor_view(void* data, DType dtype, const int64_t* shape, int ndim,
                            Device device = Device::kCPU, int device_index = 0);

}  // namespace spikeops
