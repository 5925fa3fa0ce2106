// Internal: scalar helpers shared by the CPU and CUDA kernels: 16-bit float conversions and a vectorizable exp.
// They are branch-free so that the compiler vectorizes the loops that call them on the CPU.
#pragma once

#include <cstdint>
#include <cstring>

#include "spikeops/config.hpp"

namespace spikeops {
namespace detail {

SPIKEOPS_HD uint32_t float_bits(float f) {
#if defined(__CUDA_ARCH__)
  return static_cast<uint32_t>(__float_as_uint(f));
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
#endif
}

SPIKEOPS_HD float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
#endif
}

// IEEE half -> float, exact for every input (normals, subnormals, inf, NaN).
SPIKEOPS_HD float half_to_float(uint16_t h) {
  const uint32_t sign = (static_cast<uint32_t>(h) & 0x8000u) << 16;
  const uint32_t em = static_cast<uint32_t>(h) & 0x7fffu;
  // Shifting exponent and mantissa into float position and scaling by 2^112 re-biases the exponent and
  // turns half subnormals into float normals exactly.
  const float scaled = bits_float(em << 13) * 0x1.0p112f;
  const uint32_t inf_nan = (em << 13) | 0x7f800000u;
  const uint32_t magnitude = em >= 0x7c00u ? inf_nan : float_bits(scaled);
  return bits_float(sign | magnitude);
}

// float -> IEEE half, round to nearest even (M. Maratyszcza's FP16 algorithm; needs no FMA contraction).
SPIKEOPS_HD uint16_t float_to_half(float f) {
  const float abs_f = bits_float(float_bits(f) & 0x7fffffffu);
  float base = (abs_f * 0x1.0p112f) * 0x1.0p-110f;
  const uint32_t w = float_bits(f);
  const uint32_t shl1_w = w + w;
  const uint32_t sign = w & 0x80000000u;
  uint32_t bias = shl1_w & 0xff000000u;
  bias = bias < 0x71000000u ? 0x71000000u : bias;
  base = bits_float((bias >> 1) + 0x07800000u) + base;
  const uint32_t bits = float_bits(base);
  const uint32_t exp_bits = (bits >> 13) & 0x00007c00u;
  const uint32_t mantissa_bits = bits & 0x00000fffu;
  const uint32_t nonsign = exp_bits + mantissa_bits;
  return static_cast<uint16_t>((sign >> 16) | (shl1_w > 0xff000000u ? 0x7e00u : nonsign));
}

SPIKEOPS_HD float bfloat16_to_float(uint16_t b) { return bits_float(static_cast<uint32_t>(b) << 16); }

// float -> bfloat16, round to nearest even; NaN stays a (quiet) NaN.
SPIKEOPS_HD uint16_t float_to_bfloat16(float f) {
  const uint32_t u = float_bits(f);
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const bool is_nan = (u & 0x7fffffffu) > 0x7f800000u;
  return static_cast<uint16_t>(is_nan ? ((u >> 16) | 0x0040u) : rounded);
}

// Cephes' expf on x in [-87, 88.73]: returns p with exp(x) = p * 2^n. n = round(x / ln 2) by the 1.5 * 2^23
// trick (round to nearest even), so r = x - n ln 2 is in [-ln2/2, ln2/2], the polynomial's range; r is computed in
// two pieces for accuracy.
SPIKEOPS_HD float exp_reduced(float x, int32_t& n_out) {
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  const float r2 = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r2 + r + 1.0f;
  n_out = static_cast<int32_t>(n);
  return p;
}

// exp(x) for x <= 0 within 2 ulp (Cephes' expf polynomial), 0 below -87 (where exp leaves float32's normal
// range; -inf included) and NaN for NaN. The surrogates only need exp of a non-positive argument, so there is no
// overflow path. Written without data-dependent float selects (only integer ones on the bit pattern): GCC would
// thread a clamped float constant through the function and leave a branch that stops the CPU loops from
// vectorizing.
SPIKEOPS_HD float exp_nonpositive(float x) {
  const uint32_t xb = float_bits(x);
  // The polynomial runs on x clamped to [-87, 0] on the bit pattern (for negative floats a larger pattern is a
  // more negative number; positive patterns, NaN of either sign included, become 0), so n below is finite;
  // `scale` then gives NaN for NaN, 0 below -87, 1 elsewhere.
  // (NaN is taken out of both selects explicitly: without that GCC does not if-convert them, and the loops that
  // call this do not vectorize.)
  const uint32_t negative = xb >= 0x80000000u;
  const bool is_nan = (xb & 0x7fffffffu) > 0x7f800000u;
  const uint32_t clamped = is_nan ? 0u : negative ? (xb < 0xc2ae0000u ? xb : 0xc2ae0000u) : 0u;  // -87.0f
  const bool below = negative && !is_nan && xb > 0xc2ae0000u;
  const float scale = bits_float(is_nan ? 0x7fc00000u : (below ? 0u : 0x3f800000u));
  x = bits_float(clamped);
  int32_t n;
  const float p = exp_reduced(x, n);
  return p * bits_float(static_cast<uint32_t>(n + 127) << 23) * scale;  // n >= -126 after the clamp
}

// exp(x) for any float32 x within 2 ulp (the polynomial of exp_nonpositive), vectorizable for the same reason:
// +inf above ln(FLT_MAX), 0 below -87 (exp's subnormal range flushed), NaN for NaN. 2^n is applied in two
// factors so that n = 128, near the top of the range, still has a float32 exponent.
SPIKEOPS_HD float exp_float(float x) {
  const uint32_t xb = float_bits(x);
  const bool negative = xb >= 0x80000000u;
  const bool is_nan = (xb & 0x7fffffffu) > 0x7f800000u;
  // Clamp to [-87, ln(FLT_MAX)] on the bit pattern (0x42b17217 = 88.7228...); NaN becomes 0.
  const uint32_t clamped =
      is_nan ? 0u : negative ? (xb < 0xc2ae0000u ? xb : 0xc2ae0000u) : (xb < 0x42b17217u ? xb : 0x42b17217u);
  const bool below = negative && !is_nan && xb > 0xc2ae0000u;
  const bool above = !negative && !is_nan && xb > 0x42b17217u;
  const float scale = bits_float(is_nan ? 0x7fc00000u : below ? 0u : above ? 0x7f800000u : 0x3f800000u);
  x = bits_float(clamped);
  int32_t ni;
  const float p = exp_reduced(x, ni);  // ni in [-126, 128]
  const int32_t n1 = ni / 2, n2 = ni - n1;
  return p * bits_float(static_cast<uint32_t>(n1 + 127) << 23) * bits_float(static_cast<uint32_t>(n2 + 127) << 23) *
         scale;
}

SPIKEOPS_HD float abs_float(float x) { return bits_float(float_bits(x) & 0x7fffffffu); }

}  // namespace detail
}  // namespace spikeops
