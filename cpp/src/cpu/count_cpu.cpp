// The CPU back ends of count_nonzero (the spike GEMM's vectorized counter over chunks, in parallel) and
// spike_bytes.
#include <algorithm>
#include <cstdint>

#include "backend.hpp"
#include "cpu/simd.hpp"
#include "spikeops/detail/numeric.hpp"

namespace spikeops {
namespace cpu {

int64_t count_nonzero(const uint8_t* s, int64_t n) {
  constexpr int64_t kChunk = int64_t(1) << 16;
  int64_t count = 0;
#pragma omp parallel for reduction(+ : count) schedule(static) if (n >= 2 * kChunk)
  for (int64_t c = 0; c < n; c += kChunk) count += count_spikes(s + c, std::min(kChunk, n - c));
  return count;
}

namespace {

template <typename Load>
SPIKEOPS_CPU_INLINE SpikeValueCounts bytes_of(const Load& load, int64_t begin, int64_t end, uint8_t* bytes) {
  SpikeValueCounts c;
  for (int64_t i = begin; i < end; ++i) {
    const float x = load(i);
    bytes[i] = x != 0.0f;
    c.nonzero += x != 0.0f;
    c.negative += x == -1.0f;
    c.invalid += !(x == 0.0f || x == 1.0f || x == -1.0f);
  }
  return c;
}

SPIKEOPS_CPU_CLONES SpikeValueCounts bytes_chunk(DType dtype, const void* values, int64_t begin, int64_t end,
                                                 uint8_t* bytes) {
  switch (dtype) {
    case DType::kFloat16: {
      const uint16_t* v = static_cast<const uint16_t*>(values);
      return bytes_of([v](int64_t i) { return detail::half_to_float(v[i]); }, begin, end, bytes);
    }
    case DType::kBFloat16: {
      const uint16_t* v = static_cast<const uint16_t*>(values);
      return bytes_of([v](int64_t i) { return detail::bfloat16_to_float(v[i]); }, begin, end, bytes);
    }
    default: {
      const float* v = static_cast<const float*>(values);
      return bytes_of([v](int64_t i) { return v[i]; }, begin, end, bytes);
    }
  }
}

}  // namespace

SpikeValueCounts spike_bytes(const TensorView& values, const TensorView& bytes) {
  constexpr int64_t kChunk = int64_t(1) << 16;
  const int64_t n = values.numel();
  uint8_t* out = static_cast<uint8_t*>(bytes.data);
  int64_t nonzero = 0, negative = 0, invalid = 0;
#pragma omp parallel for reduction(+ : nonzero, negative, invalid) schedule(static) if (n >= 2 * kChunk)
  for (int64_t c = 0; c < n; c += kChunk) {
    const SpikeValueCounts part = bytes_chunk(values.dtype, values.data, c, std::min(n, c + kChunk), out);
    nonzero += part.nonzero;
    negative += part.negative;
    invalid += part.invalid;
  }
  return {nonzero, negative, invalid};
}

}  // namespace cpu
}  // namespace spikeops
