// Plain-loop references for the C++ tests of the public ops: written for clarity, never for speed.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "spikeops/spikeops.hpp"

namespace op_reference {

struct ConvShape {
  int64_t N, C, H, W, O, kh, kw;
  spikeops::Conv2dParams conv;
  int64_t OH() const {
    return (H + 2 * conv.padding[0] - conv.dilation[0] * (kh - 1) - 1) / conv.stride[0] + 1;
  }
  int64_t OW() const {
    return (W + 2 * conv.padding[1] - conv.dilation[1] * (kw - 1) - 1) / conv.stride[1] + 1;
  }
};

// out[n, o, oy, ox] = bias[o] + sum over (ky, kx), then input channels of x * w: the order the ops document,
// every product and sum rounded to float32. x is [N, C, H, W] (spikes as 0/1), w [O, C / groups, kh, kw].
inline std::vector<float> conv2d(const ConvShape& s, const std::vector<float>& x, const std::vector<float>& w,
                                 const std::vector<float>& bias) {
  const int64_t OH = s.OH(), OW = s.OW(), Cg = s.C / s.conv.groups, Og = s.O / s.conv.groups;
  std::vector<float> out(static_cast<size_t>(s.N * s.O * OH * OW));
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t o = 0; o < s.O; ++o)
      for (int64_t oy = 0; oy < OH; ++oy)
        for (int64_t ox = 0; ox < OW; ++ox) {
          float acc = bias.empty() ? 0.0f : bias[size_t(o)];
          for (int64_t ky = 0; ky < s.kh; ++ky)
            for (int64_t kx = 0; kx < s.kw; ++kx) {
              const int64_t iy = oy * s.conv.stride[0] - s.conv.padding[0] + ky * s.conv.dilation[0];
              const int64_t ix = ox * s.conv.stride[1] - s.conv.padding[1] + kx * s.conv.dilation[1];
              if (iy < 0 || iy >= s.H || ix < 0 || ix >= s.W) continue;
              for (int64_t cl = 0; cl < Cg; ++cl) {
                const int64_t c = (o / Og) * Cg + cl;
                const float v = x[size_t(((n * s.C + c) * s.H + iy) * s.W + ix)];
                if (v == 0.0f) continue;
                const float p = v * w[size_t(((o * Cg + cl) * s.kh + ky) * s.kw + kx)];
                acc += p;
              }
            }
          out[size_t(((n * s.O + o) * OH + oy) * OW + ox)] = acc;
        }
  return out;
}

// d(sum(dy * conv2d(x, w))) / dw for 0/1 x: [O, C / groups, kh, kw].
inline std::vector<float> conv2d_weight_grad(const ConvShape& s, const std::vector<float>& x,
                                             const std::vector<float>& dy) {
  const int64_t OH = s.OH(), OW = s.OW(), Cg = s.C / s.conv.groups, Og = s.O / s.conv.groups;
  std::vector<float> g(static_cast<size_t>(s.O * Cg * s.kh * s.kw), 0.0f);
  for (int64_t o = 0; o < s.O; ++o)
    for (int64_t cl = 0; cl < Cg; ++cl)
      for (int64_t ky = 0; ky < s.kh; ++ky)
        for (int64_t kx = 0; kx < s.kw; ++kx) {
          float acc = 0.0f;
          const int64_t c = (o / Og) * Cg + cl;
          for (int64_t n = 0; n < s.N; ++n)
            for (int64_t oy = 0; oy < OH; ++oy)
              for (int64_t ox = 0; ox < OW; ++ox) {
                const int64_t iy = oy * s.conv.stride[0] - s.conv.padding[0] + ky * s.conv.dilation[0];
                const int64_t ix = ox * s.conv.stride[1] - s.conv.padding[1] + kx * s.conv.dilation[1];
                if (iy < 0 || iy >= s.H || ix < 0 || ix >= s.W) continue;
                if (x[size_t(((n * s.C + c) * s.H + iy) * s.W + ix)] == 0.0f) continue;
                acc += dy[size_t(((n * s.O + o) * OH + oy) * OW + ox)];
              }
          g[size_t(((o * Cg + cl) * s.kh + ky) * s.kw + kx)] = acc;
        }
  return g;
}

// The number of (spike, tap reaching an output) pairs times O / groups.
inline int64_t conv2d_synaptic_ops(const ConvShape& s, const std::vector<float>& x) {
  const int64_t OH = s.OH(), OW = s.OW(), Cg = s.C / s.conv.groups;
  int64_t pairs = 0;
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t grp = 0; grp < s.conv.groups; ++grp)
      for (int64_t oy = 0; oy < OH; ++oy)
        for (int64_t ox = 0; ox < OW; ++ox)
          for (int64_t ky = 0; ky < s.kh; ++ky)
            for (int64_t kx = 0; kx < s.kw; ++kx) {
              const int64_t iy = oy * s.conv.stride[0] - s.conv.padding[0] + ky * s.conv.dilation[0];
              const int64_t ix = ox * s.conv.stride[1] - s.conv.padding[1] + kx * s.conv.dilation[1];
              if (iy < 0 || iy >= s.H || ix < 0 || ix >= s.W) continue;
              for (int64_t cl = 0; cl < Cg; ++cl) {
                pairs += x[size_t(((n * s.C + grp * Cg + cl) * s.H + iy) * s.W + ix)] != 0.0f;
              }
            }
  return pairs * (s.O / s.conv.groups);
}

struct PoolShape {
  int64_t N, C, H, W, kh, kw, sh, sw, ph, pw;
  int64_t OH() const { return (H + 2 * ph - kh) / sh + 1; }
  int64_t OW() const { return (W + 2 * pw - kw) / sw + 1; }
};

// torch's max_pool2d / avg_pool2d (floor mode) on float values: NaN propagates through max; the average sums
// the window's inputs row by row, then divides by kh * kw or by the inputs' count.
inline std::vector<float> pool2d(const PoolShape& s, const std::vector<float>& x, bool is_max, bool include_pad) {
  const int64_t OH = s.OH(), OW = s.OW();
  std::vector<float> out(static_cast<size_t>(s.N * s.C * OH * OW));
  for (int64_t p = 0; p < s.N * s.C; ++p)
    for (int64_t oy = 0; oy < OH; ++oy)
      for (int64_t ox = 0; ox < OW; ++ox) {
        float m = -std::numeric_limits<float>::infinity(), sum = 0.0f;
        bool nan = false;
        int64_t count = 0;
        for (int64_t ky = 0; ky < s.kh; ++ky)
          for (int64_t kx = 0; kx < s.kw; ++kx) {
            const int64_t iy = oy * s.sh - s.ph + ky, ix = ox * s.sw - s.pw + kx;
            if (iy < 0 || iy >= s.H || ix < 0 || ix >= s.W) continue;
            const float v = x[size_t((p * s.H + iy) * s.W + ix)];
            nan = nan || std::isnan(v);
            m = std::max(m, v);
            sum += v;
            ++count;
          }
        out[size_t((p * OH + oy) * OW + ox)] =
            is_max ? (nan ? std::numeric_limits<float>::quiet_NaN() : m)
                   : sum / float(include_pad ? s.kh * s.kw : count);
      }
  return out;
}

// splitmix64, written out again: the Poisson encoder's documented draw for element i.
inline uint8_t poisson_spike(uint64_t seed, int64_t i, float x) {
  auto mix = [](uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  const float u = float(mix(mix(seed) ^ uint64_t(i)) >> 40) / 16777216.0f;
  return u <= x ? 1 : 0;
}

// Integer values in [-range, range] (sums of them are exact in float32), or 0/1 at the given rate.
inline std::vector<float> integers(size_t n, int range, std::mt19937& rng) {
  std::uniform_int_distribution<int> d(-range, range);
  std::vector<float> v(n);
  for (float& x : v) x = float(d(rng));
  return v;
}
inline std::vector<uint8_t> spikes(size_t n, double rate, std::mt19937& rng) {
  std::bernoulli_distribution d(rate);
  std::vector<uint8_t> v(n);
  for (uint8_t& x : v) x = d(rng) ? uint8_t(1) : uint8_t(0);
  return v;
}
inline std::vector<float> as_values(const std::vector<uint8_t>& s) {
  std::vector<float> v(s.size());
  for (size_t i = 0; i < s.size(); ++i) v[i] = s[i] != 0 ? 1.0f : 0.0f;
  return v;
}

}  // namespace op_reference
