// Cases for the dense semantics of the accumulate-only ops (dense_semantics tests, CPU and CUDA): 0/1 spikes at
// several firing rates with inf and NaN placed in the weight (rows) or output gradient, and dense references that
// multiply every spike, 0 or 1, as a dense float32 product does (0 x inf = 0 x NaN = NaN).
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "spikeops/spikeops.hpp"

namespace dense_semantics {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Equal NaN positions, equal infinities, finite values within float32 summation-order rounding.
inline ::testing::AssertionResult same_values(const std::vector<float>& got, const std::vector<float>& want) {
  if (got.size() != want.size()) return ::testing::AssertionFailure() << "sizes differ";
  for (size_t i = 0; i < got.size(); ++i) {
    const float g = got[i], w = want[i];
    const bool ok = std::isnan(w) ? std::isnan(g)
                                  : (std::isinf(w) ? g == w : (std::isfinite(g) && std::fabs(g - w) <= 1e-4f * (1.0f + std::fabs(w))));
    if (!ok) return ::testing::AssertionFailure() << "element " << i << ": got " << g << ", want " << w;
  }
  return ::testing::AssertionSuccess();
}

// Spikes [M, K] of 0/1 at `rate`, rows [K, N] and bias [N] of small values; rows hold a NaN in column 1, +inf
// in column 2 (at a k where some rows spike and some do not), -inf and +inf in column 3 when N > 3, each at
// one k; the other columns are finite.
struct GemmCase {
  int64_t M, K, N;
  double rate;
  std::vector<uint8_t> spikes;
  std::vector<float> rows, bias;
  std::string name() const {
    return "M " + std::to_string(M) + " K " + std::to_string(K) + " N " + std::to_string(N) + " rate " +
           std::to_string(rate);
  }
};

inline std::vector<GemmCase> gemm_cases() {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<GemmCase> cases;
  // one tile (N <= 64) and several; 1 x 300 x 130 at a low rate: few spikes, summed from transposed rows
  // directly on the CPU; 200 x 130 x 130: split into parts of rows
  for (const auto& shape : std::vector<std::vector<int64_t>>{{3, 5, 4}, {17, 130, 65}, {129, 70, 64}, {300, 200, 40},
                                                            {1, 300, 130}, {200, 130, 130}}) {
    for (double rate : {0.0, 0.02, 0.3, 1.0}) {
      GemmCase c{shape[0], shape[1], shape[2], rate, {}, {}, {}};
      std::bernoulli_distribution spike(rate);
      c.spikes.resize(static_cast<size_t>(c.M * c.K));
      for (auto& s : c.spikes) s = spike(rng) ? 1 : 0;
      c.rows.resize(static_cast<size_t>(c.K * c.N));
      c.bias.resize(static_cast<size_t>(c.N));
      for (auto& r : c.rows) r = uniform(rng);
      for (auto& b : c.bias) b = uniform(rng);
      c.rows[static_cast<size_t>((c.K / 2) * c.N + 1)] = kNaN;
      c.rows[static_cast<size_t>((c.K - 1) * c.N + 2)] = kInf;
      if (c.N > 3) {
        c.rows[static_cast<size_t>(3)] = -kInf;
        c.rows[static_cast<size_t>((c.K / 3) * c.N + 3)] = kInf;
      }
      cases.push_back(std::move(c));
    }
  }
  return cases;
}

// bias[n] + sum over k of float(spikes[m, k]) * rows[k, n]: [M, N].
inline std::vector<float> gemm_reference(const GemmCase& c) {
  std::vector<float> out(static_cast<size_t>(c.M * c.N));
  for (int64_t m = 0; m < c.M; ++m) {
    for (int64_t n = 0; n < c.N; ++n) {
      float sum = 0.0f;
      for (int64_t k = 0; k < c.K; ++k) sum += static_cast<float>(c.spikes[m * c.K + k]) * c.rows[k * c.N + n];
      out[static_cast<size_t>(m * c.N + n)] = sum + c.bias[n];
    }
  }
  return out;
}

inline std::vector<float> transpose(const std::vector<float>& x, int64_t rows, int64_t cols) {
  std::vector<float> t(x.size());
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < cols; ++j) t[static_cast<size_t>(j * rows + i)] = x[static_cast<size_t>(i * cols + j)];
  }
  return t;
}

// A 3x3 convolution (padding 1, stride 1 or 2, groups 1 or 2) of 0/1 spikes with inf/NaN in weight channel 1
// (NaN) and 2 (+inf), and in output-gradient channel 1 (NaN at one pixel) and 2 (-inf).
struct ConvCase {
  int64_t N = 2, C = 4, H = 6, W = 5, O = 4, kh = 3, kw = 3;
  spikeops::Conv2dParams conv;
  double rate;
  std::vector<uint8_t> spikes;
  std::vector<float> weight, bias, grad_out;
  int64_t OH() const { return (H + 2 * conv.padding[0] - conv.dilation[0] * (kh - 1) - 1) / conv.stride[0] + 1; }
  int64_t OW() const { return (W + 2 * conv.padding[1] - conv.dilation[1] * (kw - 1) - 1) / conv.stride[1] + 1; }
  int64_t Cg() const { return C / conv.groups; }
  std::string name() const {
    return "stride " + std::to_string(conv.stride[0]) + " groups " + std::to_string(conv.groups) + " rate " +
           std::to_string(rate);
  }
};

inline std::vector<ConvCase> conv_cases() {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<ConvCase> cases;
  for (int64_t stride : {1, 2}) {
    for (int64_t groups : {1, 2}) {
      for (double rate : {0.0, 0.1, 0.5, 1.0}) {
        ConvCase c;
        c.conv.stride[0] = c.conv.stride[1] = stride;
        c.conv.padding[0] = c.conv.padding[1] = 1;
        c.conv.groups = groups;
        c.rate = rate;
        std::bernoulli_distribution spike(rate);
        c.spikes.resize(static_cast<size_t>(c.N * c.C * c.H * c.W));
        for (auto& s : c.spikes) s = spike(rng) ? 1 : 0;
        c.weight.resize(static_cast<size_t>(c.O * c.Cg() * c.kh * c.kw));
        c.bias.resize(static_cast<size_t>(c.O));
        c.grad_out.resize(static_cast<size_t>(c.N * c.O * c.OH() * c.OW()));
        for (auto& v : c.weight) v = uniform(rng);
        for (auto& v : c.bias) v = uniform(rng);
        for (auto& v : c.grad_out) v = uniform(rng);
        const int64_t per_o = c.Cg() * c.kh * c.kw, plane = c.OH() * c.OW();
        c.weight[static_cast<size_t>(1 * per_o + per_o - 1)] = kNaN;
        c.weight[static_cast<size_t>(2 * per_o + 4)] = kInf;
        c.grad_out[static_cast<size_t>((1 * c.O + 1) * plane + plane / 2)] = kNaN;  // image 1, channel 1
        c.grad_out[static_cast<size_t>(2 * plane)] = -kInf;                          // image 0, channel 2
        cases.push_back(std::move(c));
      }
    }
  }
  return cases;
}

// The spike at (n, c, iy, ix) as a float, 0 in the zero padding.
inline float spike_at(const ConvCase& c, int64_t n, int64_t ch, int64_t iy, int64_t ix) {
  if (iy < 0 || iy >= c.H || ix < 0 || ix >= c.W) return 0.0f;
  return static_cast<float>(c.spikes[static_cast<size_t>(((n * c.C + ch) * c.H + iy) * c.W + ix)]);
}

inline std::vector<float> conv_reference(const ConvCase& c) {
  const int64_t OH = c.OH(), OW = c.OW(), Cg = c.Cg(), Og = c.O / c.conv.groups;
  std::vector<float> out(static_cast<size_t>(c.N * c.O * OH * OW));
  for (int64_t n = 0; n < c.N; ++n)
    for (int64_t o = 0; o < c.O; ++o)
      for (int64_t oy = 0; oy < OH; ++oy)
        for (int64_t ox = 0; ox < OW; ++ox) {
          float sum = 0.0f;
          for (int64_t cl = 0; cl < Cg; ++cl)
            for (int64_t ky = 0; ky < c.kh; ++ky)
              for (int64_t kx = 0; kx < c.kw; ++kx) {
                const float s = spike_at(c, n, (o / Og) * Cg + cl, oy * c.conv.stride[0] - 1 + ky, ox * c.conv.stride[1] - 1 + kx);
                sum += s * c.weight[static_cast<size_t>(((o * Cg + cl) * c.kh + ky) * c.kw + kx)];
              }
          out[static_cast<size_t>(((n * c.O + o) * OH + oy) * OW + ox)] = sum + c.bias[static_cast<size_t>(o)];
        }
  return out;
}

inline std::vector<float> conv_weight_grad_reference(const ConvCase& c) {
  const int64_t OH = c.OH(), OW = c.OW(), Cg = c.Cg(), Og = c.O / c.conv.groups;
  std::vector<float> g(static_cast<size_t>(c.O * Cg * c.kh * c.kw));
  for (int64_t o = 0; o < c.O; ++o)
    for (int64_t cl = 0; cl < Cg; ++cl)
      for (int64_t ky = 0; ky < c.kh; ++ky)
        for (int64_t kx = 0; kx < c.kw; ++kx) {
          float sum = 0.0f;
          for (int64_t n = 0; n < c.N; ++n)
            for (int64_t oy = 0; oy < OH; ++oy)
              for (int64_t ox = 0; ox < OW; ++ox) {
                const float s = spike_at(c, n, (o / Og) * Cg + cl, oy * c.conv.stride[0] - 1 + ky, ox * c.conv.stride[1] - 1 + kx);
                sum += s * c.grad_out[static_cast<size_t>(((n * c.O + o) * OH + oy) * OW + ox)];
              }
          g[static_cast<size_t>(((o * Cg + cl) * c.kh + ky) * c.kw + kx)] = sum;
        }
  return g;
}

}  // namespace dense_semantics
