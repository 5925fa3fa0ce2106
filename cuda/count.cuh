// Device-only helpers for kernels that count events into one 64-bit counter (spike_count, spike conv).
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "cuda_utils.cuh"

namespace spikeops {
namespace cuda {

using Counter = unsigned long long;

// Counting kernels grid-stride over at most this many blocks: fewer blocks, fewer atomics on one address.
constexpr unsigned int kMaxCountingBlocks = 4096;
inline unsigned int counting_blocks(int64_t work_items) { return std::min(grid_blocks(work_items), kMaxCountingBlocks); }

// Sums `value` over the warp and adds it to *counter from lane 0; every lane of the warp must call it (so the
// kernel launches a multiple of 32 threads per block and no lane exits early).
__device__ __forceinline__ void warp_count(Counter value, Counter* counter) {
#pragma unroll
  for (int d = 16; d > 0; d /= 2) value += __shfl_down_sync(0xffffffffu, value, d);
  if (threadIdx.x % 32 == 0 && value != 0) atomicAdd(counter, value);
}

// `count` zeroed counters in stream-ordered device memory, read back (waiting for the stream) by value() or
// read(), freed with the stream.
class DeviceCounter {
 public:
  explicit DeviceCounter(cudaStream_t stream, int count = 1) : stream_(stream), count_(count) {
    check_cuda(cudaMallocAsync(reinterpret_cast<void**>(&counter_), sizeof(Counter) * count_, stream_),
               "cudaMallocAsync (counter)");
    check_cuda(cudaMemsetAsync(counter_, 0, sizeof(Counter) * count_, stream_), "cudaMemsetAsync (counter)");
  }
  ~DeviceCounter() { static_cast<void>(cudaFreeAsync(counter_, stream_)); }
  DeviceCounter(const DeviceCounter&) = delete;
  DeviceCounter& operator=(const DeviceCounter&) = delete;

  Counter* get() const { return counter_; }
  int64_t value() const {
    Counter host = 0;
    check_cuda(cudaMemcpyAsync(&host, counter_, sizeof(Counter), cudaMemcpyDeviceToHost, stream_),
               "cudaMemcpyAsync (counter)");
    check_cuda(cudaStreamSynchronize(stream_), "reading a count");
    return static_cast<int64_t>(host);
  }
  // host[0 : count] = the counters, in one copy and one wait.
  void read(Counter* host) const {
    check_cuda(cudaMemcpyAsync(host, counter_, sizeof(Counter) * count_, cudaMemcpyDeviceToHost, stream_),
               "cudaMemcpyAsync (counters)");
    check_cuda(cudaStreamSynchronize(stream_), "reading counts");
  }

 private:
  cudaStream_t stream_;
  int count_;
  Counter* counter_ = nullptr;
};

}  // namespace cuda
}  // namespace spikeops
