// Internal: per-element formulas that the CPU back ends and the CUDA kernels share, so that both draw the
// same Poisson spikes (poisson_encode) and pool the same windows (pool2d).
#pragma once

#include <cstdint>

#include "spikeops/config.hpp"

namespace spikeops {
namespace kernel_math {

// splitmix64: a counter-based generator, so every element's draw is independent of the thread that makes it.
SPIKEOPS_HD uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// The Poisson encoder's spike for element i of the [T, batch, features] sequence, whose input value is x:
// a spike where u <= x, u uniform in [0, 1) with 24 random bits (a float32's resolution). key = mix64(seed).
SPIKEOPS_HD uint8_t poisson_spike(uint64_t key, int64_t i, float x) {
  const float u = float(mix64(key ^ uint64_t(i)) >> 40) * (1.0f / 16777216.0f);
  return u <= x ? 1 : 0;
}

// The input window [begin, end) of pooling output coordinate o along one axis, clipped to the input (padding
// never contributes).
SPIKEOPS_HD void pool_window(int64_t o, int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t& begin,
                             int64_t& end) {
  const int64_t start = o * stride - pad;
  begin = start > 0 ? start : 0;
  end = start + kernel < in ? start + kernel : in;
}

}  // namespace kernel_math
}  // namespace spikeops
