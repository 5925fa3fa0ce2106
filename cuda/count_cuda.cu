// The CUDA back end of count_nonzero: a grid-stride count per thread, summed per warp, one atomic per warp.
#include "backend.hpp"
#include "count.cuh"
#include "cuda_utils.cuh"

namespace spikeops {
namespace cuda {

namespace {

__global__ void count_kernel(const uint8_t* s, int64_t n, Counter* counter) {
  Counter count = 0;
  for (int64_t i = global_thread_index(); i < n; i += grid_thread_count()) count += s[i] != 0;
  warp_count(count, counter);
}

// counters[0..2] += the nonzero, -1 and invalid values (see SpikeValueCounts) while writing the bytes.
__global__ void spike_bytes_kernel(DType dtype, const void* values, int64_t n, uint8_t* bytes, Counter* counters) {
  Counter nonzero = 0, negative = 0, invalid = 0;
  for (int64_t i = global_thread_index(); i < n; i += grid_thread_count()) {
    const float x = load_as_float(dtype, values, i);
    bytes[i] = x != 0.0f;
    nonzero += x != 0.0f;
    negative += x == -1.0f;
    invalid += !(x == 0.0f || x == 1.0f || x == -1.0f);
  }
  warp_count(nonzero, counters);
  warp_count(negative, counters + 1);
  warp_count(invalid, counters + 2);
}

}  // namespace

SpikeValueCounts spike_bytes(const TensorView& values, const TensorView& bytes, void* stream) {
  DeviceGuard guard(values.device_index);
  const cudaStream_t s = as_stream(stream);
  const int64_t n = values.numel();
  DeviceCounter counters(s, 3);
  spike_bytes_kernel<<<counting_blocks(n), kThreadsPerBlock, 0, s>>>(values.dtype, values.data, n,
                                                                      static_cast<uint8_t*>(bytes.data), counters.get());
  check_launch("spike_bytes_kernel");
  Counter host[3] = {};
  counters.read(host);
  return {static_cast<int64_t>(host[0]), static_cast<int64_t>(host[1]), static_cast<int64_t>(host[2])};
}

int64_t count_nonzero(const TensorView& t, void* stream) {
  DeviceGuard guard(t.device_index);
  const cudaStream_t s = as_stream(stream);
  const int64_t n = t.numel();
  DeviceCounter counter(s);
  count_kernel<<<counting_blocks(n), kThreadsPerBlock, 0, s>>>(static_cast<const uint8_t*>(t.data), n, counter.get());
  check_launch("count_kernel");
  return counter.value();
}

}  // namespace cuda
}  // namespace spikeops
