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

}  // namespace

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
