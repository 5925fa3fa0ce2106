#include "cpu/conv_events_cpu.hpp"

#include <vector>

#include "cpu/simd.hpp"

namespace spikeops {
namespace cpu {

namespace {

// For each input coordinate i and kernel tap k, the output coordinate that sees input i through tap k
// (i = o * stride - pad + k * dilation), or -1: [in, taps], computed once per call so the event loop does no
// division.
std::vector<int32_t> tap_table(int64_t in, int64_t out, int64_t taps, int64_t stride, int64_t pad, int64_t dil) {
  std::vector<int32_t> table(static_cast<size_t>(in * taps), -1);
  for (int64_t i = 0; i < in; ++i) {
    for (int64_t k = 0; k < taps; ++k) {
      const int64_t n = i + pad - k * dil;
      if (n >= 0 && n % stride == 0 && n / stride < out) table[static_cast<size_t>(i * taps + k)] = int32_t(n / stride);
    }
  }
  return table;
}

struct Tables {
  std::vector<int32_t> oy, ox;  // [H, kh], [W, kw]
};

// acc[0:16V] += w[0:16V] (a spike: no multiply) or += v * w[0:16V] (a real value).
template <int V, bool kSpikes>
SPIKEOPS_CPU_INLINE void add_vectors(float* acc, const float* w, float v) {
#if SPIKEOPS_HAVE_VECTOR_EXT
  Vec16* a = reinterpret_cast<Vec16*>(acc);
  const Vec16* b = reinterpret_cast<const Vec16*>(w);
  for (int j = 0; j < V; ++j) {
    if constexpr (kSpikes) {
      a[j] += b[j];
    } else {
      a[j] += v * b[j];
    }
  }
#else
  for (int j = 0; j < 16 * V; ++j) acc[j] += kSpikes ? w[j] : v * w[j];
#endif
}

// One row: every nonzero input (c, iy, ix) adds its weight rows w[(c, ky, kx), :] into the accumulators of
// the output pixels its taps reach, acc [OH*OW, ld]; then out [O, OH*OW] = acc^T. For one input channel the
// weight rows (kh*kw*ld floats) stay in L1 while its events are scattered. V: 16-float vectors per chunk of
// output channels (ld = 16 * V, or chunks of 64 when ld > 64).
template <int V, typename In>
SPIKEOPS_CPU_INLINE int64_t conv_row(const ConvGeometry& g, const Tables& t, const In* in, const float* wt,
                                     const float* bias, float* acc, float* out) {
  constexpr bool kSpikes = sizeof(In) == 1;
  const int64_t P = g.OH * g.OW, O = g.O, ld = conv_padded_channels(O);
  for (int64_t p = 0; p < P; ++p) {
    for (int64_t o = 0; o < ld; ++o) acc[p * ld + o] = bias && o < O ? bias[o] : 0.0f;
  }
  int64_t taps = 0;
  for (int64_t c = 0; c < g.C; ++c) {
    const In* plane = in + c * g.H * g.W;
    const float* wc = wt + c * g.kh * g.kw * ld;
    for (int64_t iy = 0; iy < g.H; ++iy) {
      const int32_t* oy_of = t.oy.data() + iy * g.kh;
      for (int64_t ix = 0; ix < g.W; ++ix) {
        const In x = plane[iy * g.W + ix];
        if (x == In(0)) continue;
        const float v = float(x);
        const int32_t* ox_of = t.ox.data() + ix * g.kw;
        for (int64_t ky = 0; ky < g.kh; ++ky) {
          if (oy_of[ky] < 0) continue;
          float* acc_line = acc + oy_of[ky] * g.OW * ld;
          const float* w = wc + ky * g.kw * ld;
          for (int64_t kx = 0; kx < g.kw; ++kx) {
            if (ox_of[kx] < 0) continue;  // this tap of this input falls outside the output
            float* a = acc_line + ox_of[kx] * ld;
            const float* wk = w + kx * ld;
            if (V > 0) {
              add_vectors<(V > 0 ? V : 1), kSpikes>(a, wk, v);
            } else {
              for (int64_t o0 = 0; o0 < ld; o0 += 16) add_vectors<1, kSpikes>(a + o0, wk + o0, v);
            }
            ++taps;
          }
        }
      }
    }
  }
  for (int64_t o = 0; o < O; ++o) {
    for (int64_t p = 0; p < P; ++p) out[o * P + p] = acc[p * ld + o];
  }
  return taps * O;
}

template <typename In>
SPIKEOPS_CPU_INLINE int64_t conv_row_any(const ConvGeometry& g, const Tables& t, const In* in, const float* wt,
                                         const float* bias, float* acc, float* out) {
  switch (conv_padded_channels(g.O) / 16) {
    case 1: return conv_row<1>(g, t, in, wt, bias, acc, out);
    case 2: return conv_row<2>(g, t, in, wt, bias, acc, out);
    case 3: return conv_row<3>(g, t, in, wt, bias, acc, out);
    case 4: return conv_row<4>(g, t, in, wt, bias, acc, out);
    default: return conv_row<0>(g, t, in, wt, bias, acc, out);  // wide layers: a loop over 16-float vectors
  }
}

// The per-row kernels, compiled per SIMD level (the OpenMP loop stays outside the clones).
SPIKEOPS_CPU_CLONES
int64_t conv_row_spikes(const ConvGeometry& g, const Tables& t, const uint8_t* in, const float* wt,
                        const float* bias, float* acc, float* out) {
  return conv_row_any(g, t, in, wt, bias, acc, out);
}

SPIKEOPS_CPU_CLONES
int64_t conv_row_values(const ConvGeometry& g, const Tables& t, const float* in, const float* wt,
                        const float* bias, float* acc, float* out) {
  return conv_row_any(g, t, in, wt, bias, acc, out);
}

template <typename In, typename RowFn>
int64_t conv_rows(const ConvGeometry& g, const In* in, int64_t rows, const float* wt, const float* bias,
                  float* out, RowFn row_fn) {
  const int64_t in_size = g.C * g.H * g.W, out_size = g.O * g.OH * g.OW;
  const Tables tables{tap_table(g.H, g.OH, g.kh, g.sh, g.ph, g.dh), tap_table(g.W, g.OW, g.kw, g.sw, g.pw, g.dw)};
  int64_t adds = 0;
#pragma omp parallel reduction(+ : adds) if (rows > 1)
  {
    std::vector<float> acc(static_cast<size_t>(g.OH * g.OW * conv_padded_channels(g.O)));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      adds += row_fn(g, tables, in + r * in_size, wt, bias, acc.data(), out + r * out_size);
    }
  }
  return adds;
}

}  // namespace

int64_t conv2d_events_spikes(const ConvGeometry& g, const uint8_t* in, int64_t rows, const float* wt,
                             const float* bias, float* out) {
  return conv_rows(g, in, rows, wt, bias, out, conv_row_spikes);
}

int64_t conv2d_events_values(const ConvGeometry& g, const float* in, int64_t rows, const float* wt,
                             const float* bias, float* out) {
  return conv_rows(g, in, rows, wt, bias, out, conv_row_values);
}

}  // namespace cpu
}  // namespace spikeops
