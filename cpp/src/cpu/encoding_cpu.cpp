// The CPU back end of poisson_encode: every element's draw from its index (kernel_math::poisson_spike), in
// parallel.
#include <cstdint>

#include "backend.hpp"
#include "kernel_math.hpp"

namespace spikeops {
namespace cpu {

void poisson_encode(const PoissonEncodeArgs& a) {
  const int64_t per_step = a.input.numel(), n = a.out.numel();
  const uint64_t key = kernel_math::mix64(a.seed);
  const float* input = static_cast<const float*>(a.input.data);
  uint8_t* out = static_cast<uint8_t*>(a.out.data);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) out[i] = kernel_math::poisson_spike(key, i, input[i % per_step]);
}

}  // namespace cpu
}  // namespace spikeops
