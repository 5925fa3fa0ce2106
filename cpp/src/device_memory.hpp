// Internal: memory, copies and two element-wise helpers on the CPU or a CUDA device, for the model runtime,
// which holds its activations where it runs and otherwise calls only the public ops.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>

#include "spikeops/tensor.hpp"

namespace spikeops {

// Where work runs: the CPU (host memory, no stream), or a CUDA device and the stream its work is queued on.
struct Place {
  Device device = Device::kCPU;
  int index = 0;
  void* stream = nullptr;  // cudaStream_t

  bool on_cuda() const { return device == Device::kCUDA; }
  // A contiguous view of `data` (memory of this place).
  TensorView view(const void* data, DType dtype, std::initializer_list<int64_t> shape) const {
    return make_tensor_view(const_cast<void*>(data), dtype, shape, device, index);
  }
};

// Memory of one place that grows on demand and is kept (as a model keeps its activations between runs).
class Buffer {
 public:
  explicit Buffer(Device device = Device::kCPU, int index = 0) : device_(device), index_(index) {}
  Buffer(Buffer&& other) noexcept;
  Buffer& operator=(Buffer&&) = delete;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer();

  // At least `bytes` bytes (64-byte aligned); the contents are lost when it grows.
  void* reserve(std::size_t bytes);
  template <typename T>
  T* as() const {
    return static_cast<T*>(data_);
  }

 private:
  void release() noexcept;
  Device device_;
  int index_;
  void* data_ = nullptr;
  std::size_t capacity_ = 0;
};

// A CUDA stream owned for a model's lifetime on a device (nothing on the CPU).
class OwnedStream {
 public:
  OwnedStream(Device device, int index);
  ~OwnedStream();
  OwnedStream(const OwnedStream&) = delete;
  OwnedStream& operator=(const OwnedStream&) = delete;
  void* get() const { return stream_; }

 private:
  int index_;
  void* stream_ = nullptr;
};

int cuda_device_count();  // 0 without CUDA
// host memory -> the place's memory, and back; queued on the stream (plain copies on the CPU).
void copy_from_host(const Place& place, void* dst, const void* host_src, std::size_t bytes);
void copy_to_host(const Place& place, void* host_dst, const void* src, std::size_t bytes);
void synchronize(const Place& place);  // waits for the stream (nothing on the CPU)
void fill(const Place& place, float* p, int64_t n, float value);
void bytes_to_float(const Place& place, const uint8_t* s, int64_t n, float* x);  // x[i] = s[i] != 0

}  // namespace spikeops
