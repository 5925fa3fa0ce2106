// Test helpers for the CUDA op tests (CUDA builds and the cudasim build): device copies of host vectors and
// views of them.
#pragma once

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <vector>

#include "spikeops/tensor.hpp"

namespace spikeops {
namespace cuda_test {

// A device copy of a host vector, ending where its allocation ends (the simulator faults on a read past it).
template <typename T>
class DeviceArray {
 public:
  explicit DeviceArray(const std::vector<T>& host) : size_(host.size()) {
    EXPECT_EQ(cudaMalloc(&data_, std::max<size_t>(size_, 1) * sizeof(T)), cudaSuccess);
    if (size_ > 0) EXPECT_EQ(cudaMemcpy(data_, host.data(), size_ * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  ~DeviceArray() { cudaFree(data_); }
  std::vector<T> download() const {
    std::vector<T> host(size_);
    if (size_ > 0) EXPECT_EQ(cudaMemcpy(host.data(), data_, size_ * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return host;
  }
  T* data() const { return static_cast<T*>(data_); }

 private:
  void* data_ = nullptr;
  size_t size_;
};

// The same view on the device: the data pointer replaced.
TensorView on_device(TensorView host, void* data) {
  host.data = data;
  host.device = Device::kCUDA;
  host.device_index = 0;
  return host;
}

}  // namespace cuda_test
}  // namespace spikeops
