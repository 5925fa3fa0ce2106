// The CUDA back end of poisson_encode: every element's draw from its index (kernel_math::poisson_spike), the
// same as the CPU's.
#include "backend.hpp"
#include "cuda_utils.cuh"
#include "kernel_math.hpp"

namespace spikeops {
namespace cuda {

namespace {

__global__ void poisson_encode_kernel(const float* input, int64_t per_step, int64_t n, uint64_t key, uint8_t* out) {
  for (int64_t i = global_thread_index(); i < n; i += grid_thread_count()) {
    out[i] = kernel_math::poisson_spike(key, i, input[i % per_step]);
  }
}

}  // namespace

void poisson_encode(const PoissonEncodeArgs& a) {
  DeviceGuard guard(a.input.device_index);
  const int64_t n = a.out.numel();
  poisson_encode_kernel<<<grid_blocks(n), kThreadsPerBlock, 0, as_stream(a.stream)>>>(
      static_cast<const float*>(a.input.data), a.input.numel(), n, kernel_math::mix64(a.seed),
      static_cast<uint8_t*>(a.out.data));
  check_launch("poisson_encode_kernel");
}

}  // namespace cuda
}  // namespace spikeops
