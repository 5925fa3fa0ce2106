#include "cpu/conv_direct_cpu.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "backend.hpp"
#include "cpu/simd.hpp"

namespace spikeops {
namespace cpu {

#if SPIKEOPS_HAVE_VECTOR_EXT
namespace {

constexpr int64_t kLanes = 16;  // output pixels per vector

// Everything the loops read, derived once per call.
struct Direct {
  ConvGeometry g;
  int64_t ldg;      // the weight rows' length
  int64_t Hp, Wq;   // the padded sample's planes: Hp rows of Wq floats
  int64_t plane;    // Hp * Wq
  const float* wt;
  std::vector<float> bias;  // [kDirectMaxOutputs], zero padded

  Direct(const ConvGeometry& geo, const float* weight_rows, const float* b)
      : g(geo), ldg(conv_padded_channels(geo.O)), Hp(geo.H + 2 * geo.ph),
        // every 16-pixel vector of an output row, at every tap, reads inside the row
        Wq((geo.OW + kLanes - 1) / kLanes * kLanes + (geo.kw - 1) * geo.dw), plane(Hp * Wq), wt(weight_rows),
        bias(static_cast<size_t>(kDirectMaxOutputs), 0.0f) {
    if (b) std::copy(b, b + g.O, bias.begin());
  }
};

// pad [C, Hp, Wq] = one sample [C, H, W] with its zero padding (and zeros past it on the right).
void pad_sample(const Direct& d, const float* in, float* pad) {
  const ConvGeometry& g = d.g;
  std::fill(pad, pad + g.C * d.plane, 0.0f);
  const int64_t n = std::max<int64_t>(0, std::min(g.W, d.Wq - g.pw));  // the input columns the loops read
  for (int64_t c = 0; c < g.C; ++c) {
    for (int64_t y = 0; y < g.H; ++y) {
      std::copy(in + (c * g.H + y) * g.W, in + (c * g.H + y) * g.W + n, pad + (c * d.Hp + y + g.ph) * d.Wq + g.pw);
    }
  }
}

// Output rows [oy0, oy1) of one sample, out [O, OH, OW]; NB (a multiple of 4, at least O) output channels
// are accumulated, those past O on the weight rows' zero padding.
template <int NB>
SPIKEOPS_CPU_INLINE void direct_rows(const Direct& d, const float* pad, int64_t oy0, int64_t oy1, float* out) {
  const ConvGeometry& g = d.g;
  for (int64_t oy = oy0; oy < oy1; ++oy) {
    for (int64_t ox0 = 0; ox0 < g.OW; ox0 += kLanes) {
      Vec16 acc[NB];
#pragma GCC unroll 16
      for (int o = 0; o < NB; ++o) acc[o] = Vec16{} + d.bias[static_cast<size_t>(o)];
      for (int64_t ky = 0; ky < g.kh; ++ky) {
        const float* row = pad + (oy * g.sh + ky * g.dh) * d.Wq + ox0;
        for (int64_t kx = 0; kx < g.kw; ++kx) {
          const float* p = row + kx * g.dw;
          const float* w = d.wt + (ky * g.kw + kx) * g.C * d.ldg;  // row (tap * C + c), column o
          for (int64_t c = 0; c < g.C; ++c) {
            const Vec16 v = *reinterpret_cast<const Vec16*>(p + c * d.plane);
            const float* wc = w + c * d.ldg;
#pragma GCC unroll 16
            for (int o = 0; o < NB; ++o) acc[o] += v * wc[o];
          }
        }
      }
      const int64_t n = std::min(kLanes, g.OW - ox0);
#pragma GCC unroll 16
      for (int o = 0; o < NB; ++o) {
        if (o >= g.O) break;
        float* dst = out + (o * g.OH + oy) * g.OW + ox0;
        if (n == kLanes) {
          *reinterpret_cast<Vec16*>(dst) = acc[o];
        } else {
          for (int64_t i = 0; i < n; ++i) dst[i] = acc[o][i];
        }
      }
    }
  }
}

SPIKEOPS_CPU_CLONES void direct_rows_any(const Direct& d, const float* pad, int64_t oy0, int64_t oy1, float* out) {
  switch ((d.g.O + 3) / 4) {
    case 1: return direct_rows<4>(d, pad, oy0, oy1, out);
    case 2: return direct_rows<8>(d, pad, oy0, oy1, out);
    case 3: return direct_rows<12>(d, pad, oy0, oy1, out);
    default: return direct_rows<16>(d, pad, oy0, oy1, out);
  }
}

}  // namespace

bool conv2d_direct_applies(const ConvGeometry& g, const float* wt) {
  if (g.groups != 1 || g.channels_last || g.sw != 1 || g.O < 1 || g.O > kDirectMaxOutputs) return false;
  const int64_t n = g.C * g.kh * g.kw * conv_padded_channels(g.O);
  return std::all_of(wt, wt + n, [](float w) { return std::isfinite(w); });
}

void conv2d_direct_values(const ConvGeometry& g, const float* in, int64_t rows, const float* wt, const float* bias,
                          float* out) {
  const Direct d(g, wt, bias);
  const int64_t in_size = g.C * g.H * g.W, out_size = g.O * g.OH * g.OW;
  const size_t pad_size = static_cast<size_t>(g.C * d.plane);
  const int threads = max_threads();
  // A sample per thread, or (fewer samples than threads) one at a time with its output rows split.
  const bool sample_per_thread = rows >= threads;
  // Allocated here: an exception (std::bad_alloc) must not leave an OpenMP region.
  std::vector<float> pads(pad_size * static_cast<size_t>(sample_per_thread ? threads : 1));
  if (sample_per_thread) {
#pragma omp parallel if (rows > 1)
    {
      float* pad = pads.data() + pad_size * static_cast<size_t>(thread_num());
#pragma omp for schedule(static)
      for (int64_t r = 0; r < rows; ++r) {
        pad_sample(d, in + r * in_size, pad);
        direct_rows_any(d, pad, 0, g.OH, out + r * out_size);
      }
    }
  } else {
    for (int64_t r = 0; r < rows; ++r) {
      pad_sample(d, in + r * in_size, pads.data());
#pragma omp parallel for schedule(static) if (g.OH * g.OW * g.C * g.kh * g.kw >= (1 << 14))
      for (int64_t oy = 0; oy < g.OH; ++oy) direct_rows_any(d, pads.data(), oy, oy + 1, out + r * out_size);
    }
  }
}

#else  // no vector types: the event-driven kernel takes every layer

bool conv2d_direct_applies(const ConvGeometry&, const float*) { return false; }
void conv2d_direct_values(const ConvGeometry&, const float*, int64_t, const float*, const float*, float*) {
  throw std::logic_error("conv2d_direct_values: not built (no vector types); check conv2d_direct_applies first");
}

#endif

}  // namespace cpu
}  // namespace spikeops
