// CPU side of dense_semantics.hpp: the non-finite and byte checks, and the plain dense loops that recompute
// the outputs a non-finite operand reaches (rare: only calls whose operand holds inf or NaN run them).
#include "dense_semantics.hpp"
#include "dense_semantics_math.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

#include "backend.hpp"
#include "cpu/simd.hpp"
#include "spikeops/detail/numeric.hpp"

namespace spikeops {
namespace cpu {

using namespace dense_math;

namespace {

constexpr int64_t kMinParallel = int64_t(1) << 16;

// The exponent field of each value; all its bits are set exactly for inf and NaN.
SPIKEOPS_CPU_CLONES uint32_t max_exponent32(const uint32_t* v, int64_t n) {
  uint32_t e = 0;
  for (int64_t i = 0; i < n; ++i) e = std::max(e, v[i] & 0x7f800000u);
  return e;
}

SPIKEOPS_CPU_CLONES uint16_t max_exponent16(const uint16_t* v, int64_t n, uint16_t field) {
  uint16_t e = 0;
  for (int64_t i = 0; i < n; ++i) e = std::max<uint16_t>(e, v[i] & field);
  return e;
}

SPIKEOPS_CPU_CLONES uint8_t max_byte_serial(const uint8_t* s, int64_t n) {
  uint8_t m = 0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, s[i]);
  return m;
}

bool nonfinite_serial(DType dtype, const void* data, int64_t n) {
  switch (dtype) {
    case DType::kFloat32: return max_exponent32(static_cast<const uint32_t*>(data), n) == 0x7f800000u;
    case DType::kFloat16: return max_exponent16(static_cast<const uint16_t*>(data), n, 0x7c00) == 0x7c00;
    case DType::kBFloat16: return max_exponent16(static_cast<const uint16_t*>(data), n, 0x7f80) == 0x7f80;
    default: return false;  // excluded by validation
  }
}

}  // namespace

uint8_t max_byte(const uint8_t* s, int64_t n) {
  constexpr int64_t kChunk = int64_t(1) << 16;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  uint8_t m = 0;
#pragma omp parallel for schedule(static) reduction(max : m) if (n >= kMinParallel)
  for (int64_t c = 0; c < chunks; ++c) {
    m = std::max(m, max_byte_serial(s + c * kChunk, std::min(kChunk, n - c * kChunk)));
  }
  return m;
}

bool any_nonfinite(DType dtype, const void* data, int64_t n) {
  constexpr int64_t kChunk = int64_t(1) << 15;
  const int64_t chunks = (n + kChunk - 1) / kChunk, size = static_cast<int64_t>(dtype_size(dtype));
  int found = 0;
#pragma omp parallel for schedule(static) reduction(| : found) if (n >= kMinParallel)
  for (int64_t c = 0; c < chunks; ++c) {
    found |= nonfinite_serial(dtype, static_cast<const char*>(data) + c * kChunk * size,
                              std::min(kChunk, n - c * kChunk));
  }
  return found != 0;
}

void dense_nonfinite_columns(const SpikeAccumulateArgs& a) {
  const float* rows = static_cast<const float*>(a.rows.data);
  if (!any_nonfinite(DType::kFloat32, rows, a.rows.numel())) return;
  const int64_t M = a.spikes.shape[0], K = a.spikes.shape[1], N = a.out.shape[a.out_transposed ? 0 : 1];
  const uint8_t* spikes = static_cast<const uint8_t*>(a.spikes.data);
  const int64_t sm = a.spikes.strides[0], sk = a.spikes.strides[1];
  const float* bias = static_cast<const float*>(a.bias.data);
  for (int64_t n = 0; n < N; ++n) {
    bool flagged = false;
    for (int64_t k = 0; k < K && !flagged; ++k) flagged = !finite(row_value(rows, a.rows_layout, K, N, k, n));
    if (!flagged) continue;
#pragma omp parallel for schedule(static) if (M * K >= kMinParallel)
    for (int64_t m = 0; m < M; ++m) {
      float sum = dense_column_value(spikes, sm, sk, K, rows, a.rows_layout, N, m, n);
      if (bias != nullptr) sum += bias[n];
      store_row(a.out.dtype, a.out.data, a.out_transposed ? n * M + m : m * N + n, 1, &sum);
    }
  }
}

void dense_nonfinite_channels(const ConvGeometry& g, const SpikeConv2dArgs& a) {
  if (!any_nonfinite(a.weight.dtype, a.weight.data, a.weight.numel())) return;
  const int64_t N = a.spikes.shape[0], Cg = g.C / g.groups, Og = g.O / g.groups;
  const ConvWeight weight{a.weight.dtype, a.weight.data, a.weight_layout == ConvWeightLayout::kPacked,
                          conv2d_packed_channels(Og)};
  const uint8_t* spikes = static_cast<const uint8_t*>(a.spikes.data);
  for (int64_t o = 0; o < g.O; ++o) {
    bool flagged = false;
    for (int64_t ci = 0; ci < Cg && !flagged; ++ci) {
      for (int64_t t = 0; t < g.kh * g.kw && !flagged; ++t) flagged = !finite(weight.at(g, o, ci, t / g.kw, t % g.kw));
    }
    if (!flagged) continue;
    const float b = a.bias.defined() ? load_value(a.bias.dtype, a.bias.data, o) : 0.0f;
#pragma omp parallel for collapse(2) schedule(static) if (N * g.OH * g.OW * Cg * g.kh * g.kw >= kMinParallel)
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t oh = 0; oh < g.OH; ++oh) {
        for (int64_t ow = 0; ow < g.OW; ++ow) {
          const float sum = dense_conv_value(g, spikes, weight, n, o, oh, ow) + b;
          store_row(a.out.dtype, a.out.data, at4(g.channels_last, g.O, g.OH, g.OW, n, o, oh, ow), 1, &sum);
        }
      }
    }
  }
}

void dense_nonfinite_channels(const ConvGeometry& g, const SpikeConv2dWeightGradArgs& a) {
  const TensorView& dy = a.grad_out;
  if (!any_nonfinite(dy.dtype, dy.data, dy.numel())) return;
  const int64_t N = a.spikes.shape[0], Cg = g.C / g.groups, taps = g.kh * g.kw;
  const uint8_t* spikes = static_cast<const uint8_t*>(a.spikes.data);
  for (int64_t o = 0; o < g.O; ++o) {
    bool flagged = false;
    for (int64_t n = 0; n < N && !flagged; ++n) {
      for (int64_t p = 0; p < g.OH * g.OW && !flagged; ++p) {
        flagged = !finite(load_value(dy.dtype, dy.data, at4(g.channels_last, g.O, g.OH, g.OW, n, o, p / g.OW, p % g.OW)));
      }
    }
    if (!flagged) continue;
#pragma omp parallel for schedule(static) if (N * g.OH * g.OW * Cg * taps >= kMinParallel)
    for (int64_t w = 0; w < Cg * taps; ++w) {
      const float sum = dense_conv_weight_grad_value(g, spikes, N, dy.dtype, dy.data, o, w / taps, w / g.kw % g.kh,
                                                     w % g.kw);
      store_row(a.grad_weight.dtype, a.grad_weight.data, o * Cg * taps + w, 1, &sum);
    }
  }
}

}  // namespace cpu
}  // namespace spikeops
