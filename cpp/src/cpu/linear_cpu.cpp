// The CPU back end of linear: each row adds x[k] times weight row k, k ascending, skipping zero inputs (an
// image's background), rows in parallel.
#include <cstdint>

#include "backend.hpp"

namespace spikeops {
namespace cpu {

void linear(const LinearArgs& a) {
  const int64_t rows = a.x.shape[0], K = a.x.shape[1], O = a.out.shape[1];
  const float* x = static_cast<const float*>(a.x.data);
  const float* wt = static_cast<const float*>(a.weight_t.data);
  const float* bias = a.bias.defined() ? static_cast<const float*>(a.bias.data) : nullptr;
  float* y = static_cast<float*>(a.out.data);
#pragma omp parallel for schedule(static) if (rows * K * O >= (int64_t(1) << 16))
  for (int64_t r = 0; r < rows; ++r) {
    float* acc = y + r * O;
    for (int64_t o = 0; o < O; ++o) acc[o] = bias == nullptr ? 0.0f : bias[o];
    const float* xr = x + r * K;
    for (int64_t k = 0; k < K; ++k) {
      const float v = xr[k];
      if (v == 0.0f) continue;
      const float* w = wt + k * O;
      for (int64_t o = 0; o < O; ++o) acc[o] += v * w[o];
    }
  }
}

}  // namespace cpu
}  // namespace spikeops
