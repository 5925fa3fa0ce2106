// The CPU back end of count_nonzero: the spike GEMM's vectorized counter over chunks, in parallel.
#include <algorithm>
#include <cstdint>

#include "backend.hpp"

namespace spikeops {
namespace cpu {

int64_t count_nonzero(const uint8_t* s, int64_t n) {
  constexpr int64_t kChunk = int64_t(1) << 16;
  int64_t count = 0;
#pragma omp parallel for reduction(+ : count) schedule(static) if (n >= 2 * kChunk)
  for (int64_t c = 0; c < n; c += kChunk) count += count_spikes(s + c, std::min(kChunk, n - c));
  return count;
}

}  // namespace cpu
}  // namespace spikeops
