// Internal: the dense product's value at one output, for the output columns (channels) that an inf or NaN
// reaches (dense_semantics.hpp), written once for the CPU loops and the CUDA kernels. Padded taps count as
// 0 x weight, as in the dense convolution of the zero-padded input.
#pragma once

#include <cstdint>

#include "conv_geometry.hpp"
#include "spikeops/config.hpp"
#include "spikeops/detail/numeric.hpp"
#include "spikeops/spike_gemm.hpp"
#include "spikeops/tensor.hpp"

namespace spikeops {
namespace dense_math {

// False for inf and NaN (inf - inf and NaN - NaN are NaN).
SPIKEOPS_HD bool finite(float v) { return v - v == 0.0f; }

// Element i of a float32, float16 or bfloat16 array, as float32.
SPIKEOPS_HD float load_value(DType dtype, const void* data, int64_t i) {
  switch (dtype) {
    case DType::kFloat16: return detail::half_to_float(static_cast<const uint16_t*>(data)[i]);
    case DType::kBFloat16: return detail::bfloat16_to_float(static_cast<const uint16_t*>(data)[i]);
    default: return static_cast<const float*>(data)[i];
  }
}

// Index of element (n, c, h, w) of an [N, C, H, W] tensor stored NCHW or channels-last.
SPIKEOPS_HD int64_t at4(bool channels_last, int64_t C, int64_t H, int64_t W, int64_t n, int64_t c, int64_t h,
                        int64_t w) {
  return channels_last ? ((n * H + h) * W + w) * C + c : ((n * C + c) * H + h) * W + w;
}

// rows[k, n] of spike_accumulate's rows in their layout.
SPIKEOPS_HD float row_value(const float* rows, RowsLayout layout, int64_t K, int64_t N, int64_t k, int64_t n) {
  if (layout == RowsLayout::kPacked) return rows[((n / kPackedTileN) * K + k) * kPackedTileN + n % kPackedTileN];
  if (layout == RowsLayout::kTransposed) return rows[n * K + k];
  return rows[k * N + n];
}

// sum over k of float(spikes[m, k]) * rows[k, n], in k order (spikes[m, k] at m * sm + k * sk).
SPIKEOPS_HD float dense_column_value(const uint8_t* spikes, int64_t sm, int64_t sk, int64_t K, const float* rows,
                                     RowsLayout layout, int64_t N, int64_t m, int64_t n) {
  float sum = 0.0f;
  for (int64_t k = 0; k < K; ++k) sum += static_cast<float>(spikes[m * sm + k * sk]) * row_value(rows, layout, K, N, k, n);
  return sum;
}

// A convolution weight: [O, C / groups, kh, kw] in its dtype, or kPacked float32 rows
// [groups][kh][kw][C / groups][ldp] (ldp: conv2d_packed_channels(O / groups)).
struct ConvWeight {
  DType dtype;
  const void* data;
  bool packed;
  int64_t ldp;

  SPIKEOPS_HD float at(const ConvGeometry& g, int64_t o, int64_t ci, int64_t i, int64_t j) const {
    const int64_t Cg = g.C / g.groups, Og = g.O / g.groups;
    if (packed) return static_cast<const float*>(data)[((((o / Og) * g.kh + i) * g.kw + j) * Cg + ci) * ldp + o % Og];
    return load_value(dtype, data, ((o * Cg + ci) * g.kh + i) * g.kw + j);
  }
};

// Input channel ci of output channel o's group at tap (i, j) of output pixel (oh, ow) of image n: the spike as
// 0/1, or 0 in the padding.
SPIKEOPS_HD float tap_spike(const ConvGeometry& g, const uint8_t* spikes, int64_t n, int64_t o, int64_t ci, int64_t i,
                            int64_t j, int64_t oh, int64_t ow) {
  const int64_t ih = oh * g.sh - g.ph + i * g.dh, iw = ow * g.sw - g.pw + j * g.dw;
  if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) return 0.0f;
  const int64_t c = (o / (g.O / g.groups)) * (g.C / g.groups) + ci;
  return static_cast<float>(spikes[at4(g.channels_last, g.C, g.H, g.W, n, c, ih, iw)]);
}

// The dense convolution at output (n, o, oh, ow), without the bias.
SPIKEOPS_HD float dense_conv_value(const ConvGeometry& g, const uint8_t* spikes, const ConvWeight& w, int64_t n,
                                   int64_t o, int64_t oh, int64_t ow) {
  float sum = 0.0f;
  for (int64_t ci = 0; ci < g.C / g.groups; ++ci) {
    for (int64_t i = 0; i < g.kh; ++i) {
      for (int64_t j = 0; j < g.kw; ++j) sum += tap_spike(g, spikes, n, o, ci, i, j, oh, ow) * w.at(g, o, ci, i, j);
    }
  }
  return sum;
}

// The dense weight gradient at weight (o, ci, i, j): the sum over images and output pixels of the tap's spike
// times grad_out (dy, in dy_dtype, stored as the spikes' layout).
SPIKEOPS_HD float dense_conv_weight_grad_value(const ConvGeometry& g, const uint8_t* spikes, int64_t N, DType dy_dtype,
                                               const void* dy, int64_t o, int64_t ci, int64_t i, int64_t j) {
  float sum = 0.0f;
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t oh = 0; oh < g.OH; ++oh) {
      for (int64_t ow = 0; ow < g.OW; ++ow) {
        sum += tap_spike(g, spikes, n, o, ci, i, j, oh, ow) *
               load_value(dy_dtype, dy, at4(g.channels_last, g.O, g.OH, g.OW, n, o, oh, ow));
      }
    }
  }
  return sum;
}

}  // namespace dense_math
}  // namespace spikeops
