// Runtime SIMD selection for the CPU kernels, and the row load/store helpers they share.
//
// Hot loops are function templates marked SPIKEOPS_CPU_CLONES: GCC and Clang compile each one for AVX-512
// (x86-64-v4), AVX2 (x86-64-v3) and the baseline, and pick the best the running CPU supports when the library
// is loaded. Nothing assumes the build machine's SIMD level.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "spikeops/detail/numeric.hpp"
#include "spikeops/tensor.hpp"

#if defined(SPIKEOPS_ENABLE_CLONES) && (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && \
    defined(__ELF__)
#define SPIKEOPS_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define SPIKEOPS_CPU_HAS_CLONES 1
#else
#define SPIKEOPS_CPU_CLONES
#define SPIKEOPS_CPU_HAS_CLONES 0
#endif

#if defined(__GNUC__) || defined(__clang__)
#define SPIKEOPS_CPU_INLINE inline __attribute__((always_inline))
// For a lambda called inside a cloned kernel: inlined there, so it is compiled for the clone's SIMD level.
#define SPIKEOPS_CPU_INLINE_LAMBDA __attribute__((always_inline))
#else
#define SPIKEOPS_CPU_INLINE inline
#define SPIKEOPS_CPU_INLINE_LAMBDA
#endif

namespace spikeops {
namespace cpu {

#if defined(__GNUC__) || defined(__clang__)
#define SPIKEOPS_HAVE_VECTOR_EXT 1
// 16 floats; unaligned and allowed to alias float memory. Each target clone lowers it to its own registers
// (one zmm on AVX-512, two ymm on AVX2, four xmm on the baseline).
typedef float Vec16 __attribute__((vector_size(64), aligned(4), may_alias));
#else
#define SPIKEOPS_HAVE_VECTOR_EXT 0
#endif

// Neurons are processed in blocks of this many: a block's state lives in L1 while the time loop runs.
constexpr int kBlock = 1024;

// Asks for the cache lines of bytes [p, p + bytes) ahead of their use (write = they will be stored to). The
// neuron kernels walk time in blocks: each step reads and writes one short row per tensor, a new page each
// time, where the hardware prefetchers barely start; they prefetch the next step's rows instead.
SPIKEOPS_CPU_INLINE void prefetch_bytes(const void* p, int64_t bytes, bool write) {
#if defined(__GNUC__) || defined(__clang__)
  const char* c = static_cast<const char*>(p);
  if (write) {
    for (int64_t i = 0; i < bytes; i += 64) __builtin_prefetch(c + i, 1, 3);
  } else {
    for (int64_t i = 0; i < bytes; i += 64) __builtin_prefetch(c + i, 0, 3);
  }
#else
  (void)p, (void)bytes, (void)write;
#endif
}

// out[0:n] = float(row[offset : offset+n]) for a float32/float16/bfloat16 row.
SPIKEOPS_CPU_INLINE void load_row(DType dtype, const void* base, int64_t offset, int n, float* out) {
  switch (dtype) {
    case DType::kFloat32:
      std::memcpy(out, static_cast<const float*>(base) + offset, sizeof(float) * static_cast<size_t>(n));
      return;
    case DType::kFloat16: {
      const uint16_t* in = static_cast<const uint16_t*>(base) + offset;
      for (int i = 0; i < n; ++i) out[i] = detail::half_to_float(in[i]);
      return;
    }
    case DType::kBFloat16: {
      const uint16_t* in = static_cast<const uint16_t*>(base) + offset;
      for (int i = 0; i < n; ++i) out[i] = detail::bfloat16_to_float(in[i]);
      return;
    }
    default:
      return;  // excluded by validation
  }
}

// row[offset : offset+n] = in[0:n] converted to dtype (uint8 only ever receives spikes, 0 or 1).
SPIKEOPS_CPU_INLINE void store_row(DType dtype, void* base, int64_t offset, int n, const float* in) {
  switch (dtype) {
    case DType::kFloat32:
      std::memcpy(static_cast<float*>(base) + offset, in, sizeof(float) * static_cast<size_t>(n));
      return;
    case DType::kFloat16: {
      uint16_t* out = static_cast<uint16_t*>(base) + offset;
      for (int i = 0; i < n; ++i) out[i] = detail::float_to_half(in[i]);
      return;
    }
    case DType::kBFloat16: {
      uint16_t* out = static_cast<uint16_t*>(base) + offset;
      for (int i = 0; i < n; ++i) out[i] = detail::float_to_bfloat16(in[i]);
      return;
    }
    case DType::kUInt8: {
      uint8_t* out = static_cast<uint8_t*>(base) + offset;
      for (int i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(in[i]);
      return;
    }
    default:
      return;  // excluded by validation
  }
}

// A float32 view of row[offset : offset+n]: the row itself when it is float32 (no copy), else `buf` filled
// with the converted values.
SPIKEOPS_CPU_INLINE const float* row_as_float(DType dtype, const void* base, int64_t offset, int n, float* buf) {
  if (dtype == DType::kFloat32) return static_cast<const float*>(base) + offset;
  load_row(dtype, base, offset, n, buf);
  return buf;
}

// Where a kernel writes float32 results bound for row[offset:]: the row itself when it is float32, else `buf`,
// which finish_row() then converts into the row.
SPIKEOPS_CPU_INLINE float* row_target(DType dtype, void* base, int64_t offset, float* buf) {
  return dtype == DType::kFloat32 ? static_cast<float*>(base) + offset : buf;
}
SPIKEOPS_CPU_INLINE void finish_row(DType dtype, void* base, int64_t offset, int n, const float* buf) {
  if (dtype != DType::kFloat32) store_row(dtype, base, offset, n, buf);
}

// Bit 8j set where byte j of the 8 is nonzero (any nonzero byte is a spike): a loop over those (one, usually,
// at low firing rates) instead of a branch per byte.
SPIKEOPS_CPU_INLINE uint64_t nonzero_bytes(uint64_t chunk) {
  uint64_t nz = chunk | (chunk >> 4);
  nz |= nz >> 2;
  return (nz | (nz >> 1)) & 0x0101010101010101ull;
}

// Bit j set where byte j of p[0:64] is nonzero: four SSE2 compares (baseline x86-64), else nonzero_bytes of
// each 8 bytes gathered into one byte by a multiply (the factor moves bit 8j to bit 56 + j, and no two of its
// partial products overlap).
SPIKEOPS_CPU_INLINE uint64_t nonzero_mask64(const uint8_t* p) {
  uint64_t mask = 0;
#if defined(__SSE2__)
  const __m128i zero = _mm_setzero_si128();
  for (int i = 0; i < 4; ++i) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * i));
    const uint64_t zeros = static_cast<uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, zero)));
    mask |= (~zeros & 0xffffu) << (16 * i);
  }
#else
  for (int i = 0; i < 8; ++i) {
    uint64_t chunk;
    std::memcpy(&chunk, p + 8 * i, 8);
    mask |= ((nonzero_bytes(chunk) * 0x0102040810204080ull) >> 56) << (8 * i);
  }
#endif
  return mask;
}

}  // namespace cpu
}  // namespace spikeops
