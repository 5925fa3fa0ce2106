#include "cpu/conv_events_cpu.hpp"

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include "backend.hpp"
#include "cpu/simd.hpp"

namespace spikeops {
namespace cpu {

namespace {

// Accumulators per output pixel: up to this many 16-float vectors (128 output channels) live in registers.
constexpr int kMaxVectors = 8;

// The largest receptive field (taps x channels) conv_pixel walks as one bit string.
constexpr int64_t kMaxPixelBits = 2048;

// Everything the per-pixel loop reads, derived once per call.
struct Conv {
  ConvGeometry g;
  int64_t Cg, Og, ldg;  // channels per group, outputs per group, padded outputs per group
  int64_t Hp, Wp;       // padded input
  int64_t wpg, words;   // mask words per group (64 channels each) and per pixel (groups * wpg)
  int64_t taps;         // kh * kw
  const float* wt;
  std::vector<float> bias;  // [groups * ldg], zero padded (zeros without a bias)
  // conv_pixel's one-loop path, for Cg <= 64 and taps * Cg <= kMaxPixelBits: a pixel's receptive field as one
  // bit string, bit t * Cg + cl for channel cl under tap t = ky * kw + kx.
  bool bit_string;
  int64_t string_words;              // ceil(taps * Cg / 64)
  std::vector<int64_t> tap_offset;   // [taps]: mask word offset of tap t from the tap (0, 0)
  std::vector<int64_t> input_offset;  // [taps * Cg]: offset of bit t * Cg + cl's input from the window's corner
  // Where also dw == 1 and kw * Cg <= 64, the masks are kept as one bit string per padded row and group, bit
  // x * Cg + cl for channel cl at column x, in row_words words: the kw taps of a kernel row are then one
  // piece of it, and a pixel's string is kh pieces (not kh * kw words).
  bool row_strings;
  int64_t row_words;

  Conv(const ConvGeometry& geo, const float* weight_rows, const float* b)
      : g(geo), Cg(geo.C / geo.groups), Og(geo.O / geo.groups), ldg(conv_padded_channels(geo.O / geo.groups)),
        Hp(geo.H + 2 * geo.ph), Wp(geo.W + 2 * geo.pw), wpg((geo.C / geo.groups + 63) / 64),
        words(geo.groups * ((geo.C / geo.groups + 63) / 64)), taps(geo.kh * geo.kw), wt(weight_rows),
        bias(static_cast<size_t>(geo.groups * conv_padded_channels(geo.O / geo.groups)), 0.0f) {
    if (b) {
      for (int64_t o = 0; o < g.O; ++o) bias[static_cast<size_t>((o / Og) * ldg + o % Og)] = b[o];
    }
    bit_string = wpg == 1 && taps * Cg <= kMaxPixelBits;
    string_words = (taps * Cg + 63) / 64;
    row_strings = bit_string && g.dw == 1 && g.kw * Cg <= 64;
    row_words = (Wp * Cg + 63) / 64 + 1;  // + 1: a piece is read as two words
    if (bit_string) {
      for (int64_t ky = 0; ky < g.kh; ++ky) {
        for (int64_t kx = 0; kx < g.kw; ++kx) {
          tap_offset.push_back((ky * g.dh * Wp + kx * g.dw) * words);
          for (int64_t cl = 0; cl < Cg; ++cl) input_offset.push_back((cl * g.H + ky * g.dh) * g.W + kx * g.dw);
        }
      }
    }
  }
  int64_t mask_words() const { return row_strings ? Hp * g.groups * row_words : Hp * Wp * words; }
};

// masks [Hp, Wp, groups, wpg] = the nonzero inputs of one sample [C, H, W], bit (c % Cg) % 64 of word
// (c / Cg, (c % Cg) / 64) at the padded pixel; the padding stays zero.
template <typename In>
SPIKEOPS_CPU_INLINE void build_masks(const Conv& x, const In* in, uint64_t* masks) {
  const ConvGeometry& g = x.g;
  std::fill(masks, masks + x.mask_words(), uint64_t(0));
  if (x.row_strings) {
    // A pixel's Cg channel bits are gathered in a register and written with one or two ORs: a write per
    // channel made every bit wait for the previous one's store to the same word.
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      for (int64_t y = 0; y < g.H; ++y) {
        const In* line = in + (grp * x.Cg * g.H + y) * g.W;  // channel grp * Cg, row y
        uint64_t* row = masks + ((y + g.ph) * g.groups + grp) * x.row_words;
        for (int64_t i = 0; i < g.W; ++i) {
          uint64_t bits = 0;  // bit cl: channel cl of the group at this pixel (Cg <= 64 here)
          for (int64_t cl = 0; cl < x.Cg; ++cl) bits |= uint64_t(line[cl * g.H * g.W + i] != In(0)) << cl;
          const int64_t at = (i + g.pw) * x.Cg, shift = at % 64;
          row[at / 64] |= bits << shift;
          if (shift + x.Cg > 64) row[at / 64 + 1] |= bits >> (64 - shift);
        }
      }
    }
    return;
  }
  for (int64_t c = 0; c < g.C; ++c) {
    const int64_t cl = c % x.Cg;
    const int64_t word = (c / x.Cg) * x.wpg + cl / 64;
    const uint64_t bit = uint64_t(1) << (cl % 64);
    for (int64_t y = 0; y < g.H; ++y) {
      const In* line = in + (c * g.H + y) * g.W;
      uint64_t* m = masks + ((y + g.ph) * x.Wp + g.pw) * x.words + word;
      int64_t i = 0;
      if constexpr (sizeof(In) == 1) {
        for (; i + 8 <= g.W; i += 8) {  // eight zero bytes at a time
          uint64_t chunk;
          std::memcpy(&chunk, line + i, 8);
          if (chunk == 0) continue;
          for (uint64_t nz = nonzero_bytes(chunk); nz != 0; nz &= nz - 1) {
            m[(i + (__builtin_ctzll(nz) >> 3)) * x.words] |= bit;
          }
        }
      }
      for (; i < g.W; ++i) {
        if (line[i] != In(0)) m[i * x.words] |= bit;
      }
    }
  }
}

// f(std::integral_constant<int, V>) for V = min(vectors, kMaxVectors), 1 <= vectors: the kernels' register
// blocks are compiled for each width of up to 8 16-float vectors.
template <typename F>
SPIKEOPS_CPU_INLINE auto with_vectors(int64_t vectors, F&& f) {
  switch (std::min<int64_t>(kMaxVectors, vectors)) {
    case 1: return f(std::integral_constant<int, 1>());
    case 2: return f(std::integral_constant<int, 2>());
    case 3: return f(std::integral_constant<int, 3>());
    case 4: return f(std::integral_constant<int, 4>());
    case 5: return f(std::integral_constant<int, 5>());
    case 6: return f(std::integral_constant<int, 6>());
    case 7: return f(std::integral_constant<int, 7>());
    default: return f(std::integral_constant<int, 8>());
  }
}

// One output pixel's 16V accumulators, kept in registers.
#if SPIKEOPS_HAVE_VECTOR_EXT
template <int V>
using Accumulators = Vec16[V];
#else
template <int V>
using Accumulators = float[16 * V];
#endif

// acc = src[0:16V] / dst[0:16V] = acc, element by element (a memcpy of the array would take its address and
// keep it out of registers).
template <int V>
SPIKEOPS_CPU_INLINE void load_accumulators(Accumulators<V>& acc, const float* src) {
#if SPIKEOPS_HAVE_VECTOR_EXT
#pragma GCC unroll 8
  for (int j = 0; j < V; ++j) acc[j] = reinterpret_cast<const Vec16*>(src)[j];
#else
  for (int j = 0; j < 16 * V; ++j) acc[j] = src[j];
#endif
}
template <int V>
SPIKEOPS_CPU_INLINE void store_accumulators(const Accumulators<V>& acc, float* dst) {
#if SPIKEOPS_HAVE_VECTOR_EXT
#pragma GCC unroll 8
  for (int j = 0; j < V; ++j) reinterpret_cast<Vec16*>(dst)[j] = acc[j];
#else
  for (int j = 0; j < 16 * V; ++j) dst[j] = acc[j];
#endif
}

// acc += w[0:16V] (a spike: no multiply) or += v * w[0:16V] (a real value).
template <int V, bool kSpikes>
SPIKEOPS_CPU_INLINE void add_row(Accumulators<V>& acc, const float* w, float v) {
#if SPIKEOPS_HAVE_VECTOR_EXT
  const Vec16* wv = reinterpret_cast<const Vec16*>(w);
#pragma GCC unroll 8
  for (int j = 0; j < V; ++j) {
    if constexpr (kSpikes) {
      acc[j] += wv[j];
    } else {
      acc[j] += v * wv[j];
    }
  }
#else
  for (int j = 0; j < 16 * V; ++j) acc[j] += kSpikes ? w[j] : v * w[j];
#endif
}

// Builds a bit string in word[] from pieces of at most 64 bits appended at increasing offsets: the word being
// filled and the one after it live in registers and are stored when the offsets move on (a string held in
// memory throughout made every append a read-modify-write of the stack).
struct StringBuilder {
  uint64_t* word;
  uint64_t current = 0, next = 0;
  int64_t index = 0;
  explicit StringBuilder(uint64_t* w) : word(w) {}
  // piece at bit offset `at` (>= every earlier offset, less than 64 past the previous one).
  SPIKEOPS_CPU_INLINE void append(uint64_t piece, int64_t at) {
    const int64_t i = at / 64, shift = at % 64;
    if (i != index) {  // i == index + 1
      word[index] = current;
      current = next;
      next = 0;
      index = i;
    }
    current |= piece << shift;
    next |= (piece >> 1) >> (63 - shift);  // the bits past the word's end (none when shift is 0)
  }
  // Stores the rest; word[0, words) is then the string, zero past its pieces.
  SPIKEOPS_CPU_INLINE void finish(int64_t words) {
    word[index] = current;
    if (index + 1 < words) word[index + 1] = next;
    for (int64_t i = index + 2; i < words; ++i) word[i] = 0;
  }
};

// acc[0:16V] of output pixel (oy, ox), group grp, output channels o0 of the group onward: the bias plus the
// weight rows selected by the set mask bits under each kernel tap (times the input value for real inputs).
// Returns the number of events added.
template <int V, typename In>
SPIKEOPS_CPU_INLINE int64_t conv_pixel(const Conv& x, const In* in, const uint64_t* masks, int64_t oy, int64_t ox,
                                       int64_t grp, int64_t o0, float* dst) {
  constexpr bool kSpikes = sizeof(In) == 1;
  const ConvGeometry& g = x.g;
  int64_t events = 0;
  Accumulators<V> acc;
  load_accumulators<V>(acc, x.bias.data() + grp * x.ldg + o0);
  if (x.bit_string) {
    // The taps' mask words are concatenated into one bit string (branch-free), then one loop walks its set
    // bits: the loop's exits, which depend on the data and mispredict, come once per 64 (tap, channel) pairs
    // instead of once per tap.
    uint64_t word[kMaxPixelBits / 64 + 1];
    if (x.Cg == 64 && !x.row_strings) {  // a word per tap
      const uint64_t* m = masks + ((oy * g.sh * x.Wp + ox * g.sw) * g.groups + grp);
      for (int64_t t = 0; t < x.taps; ++t) word[t] = m[x.tap_offset[static_cast<size_t>(t)]];
    } else {
      // Pieces of at most 64 bits appended in order: the word being filled and the next stay in registers.
      StringBuilder string(word);
      if (x.row_strings) {  // a piece of kw * Cg bits per kernel row
        const int64_t piece_bits = g.kw * x.Cg, start = ox * g.sw * x.Cg, from = start % 64;
        const uint64_t keep = piece_bits == 64 ? ~uint64_t(0) : (uint64_t(1) << piece_bits) - 1;
        for (int64_t ky = 0; ky < g.kh; ++ky) {
          const uint64_t* row = masks + ((oy * g.sh + ky * g.dh) * g.groups + grp) * x.row_words + start / 64;
          string.append(((row[0] >> from) | ((row[1] << 1) << (63 - from))) & keep, ky * piece_bits);
        }
      } else {  // Cg bits per tap
        const uint64_t* m = masks + ((oy * g.sh * x.Wp + ox * g.sw) * g.groups + grp);
        for (int64_t t = 0; t < x.taps; ++t) string.append(m[x.tap_offset[static_cast<size_t>(t)]], t * x.Cg);
      }
      string.finish(x.string_words);
    }
    uint32_t nonzero = 0;
    for (int64_t i = 0; i < x.string_words; ++i) nonzero |= uint32_t(word[i] != 0) << i;
    // Weight row t * Cg + cl is bit t * Cg + cl; the rows of word i start at w_word, so a spike costs a bit
    // scan, a scaled add and the vector adds (the events are counted per word).
    const int64_t ldg = x.ldg;
    const float* w_group = x.wt + grp * x.Cg * x.taps * ldg + o0;
    while (nonzero != 0) {
      const int i = __builtin_ctz(nonzero);
      nonzero &= nonzero - 1;
      uint64_t bits = word[i];
      events += __builtin_popcountll(bits);
      const float* w_word = w_group + int64_t(i) * 64 * ldg;
      do {
        const int64_t b = __builtin_ctzll(bits);
        bits &= bits - 1;
        float v = 1.0f;
        if constexpr (!kSpikes) {  // (the window's corner may lie in the padding; the input itself does not)
          const int64_t corner = (grp * x.Cg * g.H + oy * g.sh - g.ph) * g.W + ox * g.sw - g.pw;
          v = float(in[corner + x.input_offset[static_cast<size_t>(i * 64 + b)]]);
        }
        add_row<V, kSpikes>(acc, w_word + b * ldg, v);
      } while (bits != 0);
    }
    store_accumulators<V>(acc, dst);
    return events;
  }
  for (int64_t ky = 0; ky < g.kh; ++ky) {
    const int64_t iy = oy * g.sh + ky * g.dh;
    for (int64_t kx = 0; kx < g.kw; ++kx) {
      const int64_t ix = ox * g.sw + kx * g.dw;
      const uint64_t* m = masks + ((iy * x.Wp + ix) * g.groups + grp) * x.wpg;
      const float* w_tap = x.wt + (grp * x.taps + ky * g.kw + kx) * x.Cg * x.ldg + o0;
      for (int64_t wi = 0; wi < x.wpg; ++wi) {
        uint64_t bits = m[wi];
        while (bits) {
          const int64_t cl = wi * 64 + __builtin_ctzll(bits);
          bits &= bits - 1;
          ++events;
          const float* w = w_tap + cl * x.ldg;
          float v = 1.0f;
          if constexpr (!kSpikes) v = float(in[((grp * x.Cg + cl) * g.H + iy - g.ph) * g.W + ix - g.pw]);
          add_row<V, kSpikes>(acc, w, v);
        }
      }
    }
  }
  store_accumulators<V>(acc, dst);
  return events;
}

template <int V, typename In>
SPIKEOPS_CPU_INLINE int64_t conv_line(const Conv& x, const In* in, const uint64_t* masks, int64_t oy, int64_t grp,
                                      int64_t o0, float* tile) {
  int64_t events = 0;
  for (int64_t ox = 0; ox < x.g.OW; ++ox) events += conv_pixel<V>(x, in, masks, oy, ox, grp, o0, tile + ox * x.ldg + o0);
  return events;
}

#if SPIKEOPS_HAVE_VECTOR_EXT && (defined(__clang__) || __GNUC__ >= 12)
// 16 x 16 transpose in registers: four rounds, each swapping one bit of the row index with the same bit of
// the lane index (two-source shuffles). The helpers are always inlined into the cloned kernels, so the
// vector-ABI note GCC gives for their signatures (when it emits the clones) does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"
template <int D, size_t... L>
SPIKEOPS_CPU_INLINE Vec16 take_low(Vec16 a, Vec16 b, std::index_sequence<L...>) {  // (l & D) ? b[l - D] : a[l]
  return __builtin_shufflevector(a, b, ((L & D) ? 16 + L - D : L)...);
}
template <int D, size_t... L>
SPIKEOPS_CPU_INLINE Vec16 take_high(Vec16 a, Vec16 b, std::index_sequence<L...>) {  // (l & D) ? b[l] : a[l + D]
  return __builtin_shufflevector(a, b, ((L & D) ? 16 + L : L + D)...);
}
template <int D>
SPIKEOPS_CPU_INLINE void transpose_round(Vec16* r) {
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) {
    if (i & D) continue;
    const Vec16 a = r[i], b = r[i + D];
    r[i] = take_low<D>(a, b, std::make_index_sequence<16>());
    r[i + D] = take_high<D>(a, b, std::make_index_sequence<16>());
  }
}
#define SPIKEOPS_CONV_TRANSPOSE16 1
#endif

// dst[j * ds + i] = src[i * ss + j] for i < R, j < L (R, L <= 16): a block of up to 16 x 16 floats transposed,
// in registers where the compiler has the shuffles.
SPIKEOPS_CPU_INLINE void transpose_block(const float* src, int64_t ss, int64_t R, int64_t L, float* dst, int64_t ds) {
#if defined(SPIKEOPS_CONV_TRANSPOSE16)
  // Partial rows and columns go through `staged`, so that the registers r are never addressed (which would
  // put them on the stack).
  alignas(64) float staged[16 * 16];
  Vec16 r[16];
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) {
    if (i >= R) {
      r[i] = Vec16{};
    } else if (L == 16) {
      r[i] = *reinterpret_cast<const Vec16*>(src + i * ss);
    } else {  // a short row: no read past its end (a loop, not a variable-size memcpy: no library call)
      for (int j = 0; j < 16; ++j) staged[i * 16 + j] = j < L ? src[i * ss + j] : 0.0f;
      r[i] = *reinterpret_cast<const Vec16*>(staged + i * 16);
    }
  }
  transpose_round<8>(r);
  transpose_round<4>(r);
  transpose_round<2>(r);
  transpose_round<1>(r);
#pragma GCC unroll 16
  for (int j = 0; j < 16; ++j) {
    if (j >= L) break;
    if (R == 16) {
      *reinterpret_cast<Vec16*>(dst + j * ds) = r[j];
    } else {
      *reinterpret_cast<Vec16*>(staged + j * 16) = r[j];
      for (int64_t i = 0; i < R; ++i) dst[j * ds + i] = staged[j * 16 + i];
    }
  }
#else
  for (int64_t j = 0; j < L; ++j) {
    for (int64_t i = 0; i < R; ++i) dst[j * ds + i] = src[i * ss + j];
  }
#endif
}

// out[o * plane + p] = tile[p * ld + o] for p < P, o < O: the accumulators of one output row (pixels x
// channels) written channel by channel. tile has whole 16-channel vectors (ld >= O rounded up to 16).
SPIKEOPS_CPU_INLINE void write_transposed(const float* tile, int64_t ld, int64_t P, int64_t O, float* out,
                                          int64_t plane) {
  for (int64_t o0 = 0; o0 < O; o0 += 16) {
    for (int64_t p0 = 0; p0 < P; p0 += 16) {
      transpose_block(tile + p0 * ld + o0, ld, std::min<int64_t>(16, P - p0), std::min<int64_t>(16, O - o0),
                      out + o0 * plane + p0, plane);
    }
  }
}

// Output rows [oy0, oy1) of one sample: out [O, OH, OW]; tile is [OW, ldg] scratch. Returns the weight additions.
template <typename In>
SPIKEOPS_CPU_INLINE int64_t conv_rows(const Conv& x, const In* in, const uint64_t* masks, int64_t oy0, int64_t oy1,
                                      float* tile, float* out) {
  const ConvGeometry& g = x.g;
  int64_t events = 0;
  for (int64_t oy = oy0; oy < oy1; ++oy) {
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      for (int64_t o0 = 0; o0 < x.ldg; o0 += 16 * kMaxVectors) {
        const int64_t e = with_vectors((x.ldg - o0) / 16, [&](auto v) SPIKEOPS_CPU_INLINE_LAMBDA {
          return conv_line<decltype(v)::value>(x, in, masks, oy, grp, o0, tile);
        });
        if (o0 == 0) events += e;
      }
      if (g.channels_last) {  // out [OH, OW, O]: the tile's rows as they are
        float* line = out + oy * g.OW * g.O + grp * x.Og;
        for (int64_t ox = 0; ox < g.OW; ++ox) {
          for (int64_t o = 0; o < x.Og; ++o) line[ox * g.O + o] = tile[ox * x.ldg + o];
        }
      } else {
        write_transposed(tile, x.ldg, g.OW, x.Og, out + (grp * x.Og * g.OH + oy) * g.OW, g.OH * g.OW);
      }
    }
  }
  return events * x.Og;
}

// The per-SIMD-level clones (the OpenMP loops stay outside them).
SPIKEOPS_CPU_CLONES void build_masks_spikes(const Conv& x, const uint8_t* in, uint64_t* masks) {
  build_masks(x, in, masks);
}
SPIKEOPS_CPU_CLONES void build_masks_values(const Conv& x, const float* in, uint64_t* masks) {
  build_masks(x, in, masks);
}
SPIKEOPS_CPU_CLONES int64_t conv_rows_spikes(const Conv& x, const uint8_t* in, const uint64_t* masks, int64_t oy0,
                                             int64_t oy1, float* tile, float* out) {
  return conv_rows(x, in, masks, oy0, oy1, tile, out);
}
SPIKEOPS_CPU_CLONES int64_t conv_rows_values(const Conv& x, const float* in, const uint64_t* masks, int64_t oy0,
                                             int64_t oy1, float* tile, float* out) {
  return conv_rows(x, in, masks, oy0, oy1, tile, out);
}
inline void build_masks_any(const Conv& x, const uint8_t* in, uint64_t* m) { build_masks_spikes(x, in, m); }
inline void build_masks_any(const Conv& x, const float* in, uint64_t* m) { build_masks_values(x, in, m); }
inline int64_t conv_rows_any(const Conv& x, const uint8_t* in, const uint64_t* m, int64_t a, int64_t b, float* t,
                             float* o) {
  return conv_rows_spikes(x, in, m, a, b, t, o);
}
inline int64_t conv_rows_any(const Conv& x, const float* in, const uint64_t* m, int64_t a, int64_t b, float* t,
                             float* o) {
  return conv_rows_values(x, in, m, a, b, t, o);
}

// planes [C, H * W] = the bytes of a channels-last sample [H * W, C], pixels [p0, p1).
SPIKEOPS_CPU_CLONES void to_planes(const uint8_t* in, int64_t pixels, int64_t C, uint8_t* planes, int64_t p0,
                                   int64_t p1) {
  for (int64_t p = p0; p < p1; ++p) {
    for (int64_t c = 0; c < C; ++c) planes[c * pixels + p] = in[p * C + c];
  }
}

// The sample r of the input as NCHW planes: itself, or for channels-last spikes a copy in `planes`.
template <typename In>
SPIKEOPS_CPU_INLINE const In* sample_planes(const ConvGeometry& g, const In* in, int64_t r, uint8_t* planes) {
  const int64_t in_size = g.C * g.H * g.W;
  if constexpr (sizeof(In) == 1) {
    if (g.channels_last) {
      to_planes(in + r * in_size, g.H * g.W, g.C, planes, 0, g.H * g.W);
      return planes;
    }
  }
  return in + r * in_size;
}

template <typename In>
int64_t conv_forward(const ConvGeometry& g, const In* in, int64_t rows, const float* wt, const float* bias,
                     float* out) {
  const Conv x(g, wt, bias);
  const int64_t in_size = g.C * g.H * g.W, out_size = g.O * g.OH * g.OW;
  const size_t tile_size = static_cast<size_t>(g.OW * x.ldg), mask_size = static_cast<size_t>(x.mask_words());
  // Scratch for every thread, allocated here: an exception (std::bad_alloc) must not leave an OpenMP region.
  const int threads = max_threads();
  // A sample per thread, or (few samples) one sample at a time with its output rows split between the threads:
  // then the masks and the channels-last planes are one sample's, shared.
  const bool sample_per_thread = rows >= threads || g.OH == 1;
  const size_t per_sample = sample_per_thread ? static_cast<size_t>(threads) : 1;
  std::vector<uint64_t> masks(mask_size * per_sample);
  std::vector<float> tiles(tile_size * static_cast<size_t>(threads));
  const size_t planes_size = g.channels_last ? static_cast<size_t>(in_size) : 0;
  std::vector<uint8_t> planes(planes_size * per_sample);
  int64_t adds = 0;
  if (sample_per_thread) {
#pragma omp parallel reduction(+ : adds) if (rows > 1)
    {
      uint64_t* m = masks.data() + mask_size * static_cast<size_t>(thread_num());
      float* tile = tiles.data() + tile_size * static_cast<size_t>(thread_num());
      uint8_t* own_planes = planes.data() + planes_size * static_cast<size_t>(thread_num());
#pragma omp for schedule(dynamic, 1)
      for (int64_t r = 0; r < rows; ++r) {
        const In* sample = sample_planes(g, in, r, own_planes);
        build_masks_any(x, sample, m);
        adds += conv_rows_any(x, sample, m, 0, g.OH, tile, out + r * out_size);
      }
    }
  } else {  // few samples (inference of one image): the output rows of each in parallel
    for (int64_t r = 0; r < rows; ++r) {
      const In* sample = sample_planes(g, in, r, planes.data());
      build_masks_any(x, sample, masks.data());
#pragma omp parallel reduction(+ : adds)
      {
        float* tile = tiles.data() + tile_size * static_cast<size_t>(thread_num());
#pragma omp for schedule(static)
        for (int64_t oy = 0; oy < g.OH; ++oy) {
          adds += conv_rows_any(x, sample, masks.data(), oy, oy + 1, tile, out + r * out_size);
        }
      }
    }
  }
  return adds;
}

// ---- weight gradient ---------------------------------------------------------------------------------------

// For each input coordinate i and kernel tap k, the output coordinate that sees input i through tap k
// (i = o * stride - pad + k * dilation), or -1: [in, taps], so the event loop does no division.
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

// The weight gradient works on bands of output rows: a band's output gradient, channels innermost and zero
// padded (dyt), is at most this many floats (or one output row when a row is more), so its scratch does not
// grow with the image (a gradient of 1 channel padded to 16 would otherwise take 16 times the gradient).
constexpr int64_t kBandFloats = int64_t(1) << 20;

// A channel's spikes are listed (and added) this many at a time, so the list does not grow with the image.
constexpr int64_t kSpikeBatch = 4096;

// dyt [pixels, groups, ldg] = a band of one sample's grad_out [O, stride] (pixel p of channel o at
// grad_out[o * stride + p]) with channels innermost; band pixels [p0, p1). dyt's padding columns stay as they are.
SPIKEOPS_CPU_CLONES void transpose_grad(const Conv& x, const float* grad_out, int64_t stride, int64_t p0, int64_t p1,
                                        float* dyt) {
  const int64_t ld = x.g.groups * x.ldg;
  for (int64_t grp = 0; grp < x.g.groups; ++grp) {
    for (int64_t o0 = 0; o0 < x.Og; o0 += 16) {
      const float* src = grad_out + (grp * x.Og + o0) * stride;
      for (int64_t p = p0; p < p1; p += 16) {
        transpose_block(src + p, stride, std::min<int64_t>(16, x.Og - o0), std::min<int64_t>(16, p1 - p),
                        dyt + p * ld + grp * x.ldg + o0, ld);
      }
    }
  }
}

// dyt [pixels, groups, ldg] = a band of one sample's channels-last grad_out [pixels, O]; band pixels [p0, p1).
SPIKEOPS_CPU_CLONES void gather_grad(const Conv& x, const float* grad_out, int64_t p0, int64_t p1, float* dyt) {
  const int64_t ld = x.g.groups * x.ldg;
  for (int64_t p = p0; p < p1; ++p) {
    for (int64_t grp = 0; grp < x.g.groups; ++grp) {
      const float* src = grad_out + p * x.g.O + grp * x.Og;
      float* dst = dyt + p * ld + grp * x.ldg;
      for (int64_t o = 0; o < x.Og; ++o) dst[o] = src[o];
    }
  }
}

// The band of output rows [oy0, oy0 + rows) and the input rows [iy0, iy1) whose spikes can reach it.
struct Band {
  int64_t oy0, rows, iy0, iy1;
};

// grad_wt rows of one tap += the dyt rows that the listed spikes reach through it, summed in registers (up to
// 128 output channels), then added once. dyt holds the band's output rows only.
template <int V>
SPIKEOPS_CPU_INLINE void weight_grad_tap(const Conv& x, const Band& band, const int32_t* oy_of, const int32_t* ox_of,
                                         const int32_t* pos, int64_t spikes, const float* dy, int64_t ky, int64_t kx,
                                         float* gw) {
  const ConvGeometry& g = x.g;
  const int64_t ld = g.groups * x.ldg;
  Accumulators<V> acc;
  load_accumulators<V>(acc, gw);
  for (int64_t s = 0; s < spikes; ++s) {
    const int64_t oy = int64_t(oy_of[pos[2 * s] * g.kh + ky]) - band.oy0;
    const int32_t ox = ox_of[pos[2 * s + 1] * g.kw + kx];
    // outside the output (-1 in the table) or in another band
    if (static_cast<uint64_t>(oy) >= static_cast<uint64_t>(band.rows) || ox < 0) continue;
    add_row<V, true>(acc, dy + (oy * g.OW + ox) * ld, 1.0f);
  }
  store_accumulators<V>(acc, gw);
}

// Adds the listed spikes of input channel c to its grad_wt rows, tap by tap.
SPIKEOPS_CPU_INLINE void weight_grad_spikes(const Conv& x, const Band& band, const std::vector<int32_t>& oy_of,
                                            const std::vector<int32_t>& ox_of, const float* dyt, int64_t c,
                                            const int32_t* pos, int64_t spikes, float* grad_wt) {
  const ConvGeometry& g = x.g;
  const float* dy_group = dyt + (c / x.Cg) * x.ldg;
  float* gw_c = grad_wt + c * x.taps * x.ldg;
  for (int64_t ky = 0; ky < g.kh; ++ky) {
    for (int64_t kx = 0; kx < g.kw; ++kx) {
      float* gw = gw_c + (ky * g.kw + kx) * x.ldg;
      for (int64_t o0 = 0; o0 < x.ldg; o0 += 16 * kMaxVectors) {
        with_vectors((x.ldg - o0) / 16, [&](auto v) SPIKEOPS_CPU_INLINE_LAMBDA {
          weight_grad_tap<decltype(v)::value>(x, band, oy_of.data(), ox_of.data(), pos, spikes, dy_group + o0, ky,
                                              kx, gw + o0);
          return 0;
        });
      }
    }
  }
}

// grad_wt rows of input channel c += the dyt rows that the channel's spikes in the band's input rows reach.
// plane: the channel's input rows [band.iy0, band.iy1), W bytes each. pos: scratch for kSpikeBatch positions.
// Each tap's sum runs over the spikes in row-major order whatever the bands and batches.
SPIKEOPS_CPU_CLONES void weight_grad_channel(const Conv& x, const Band& band, const std::vector<int32_t>& oy_of,
                                             const std::vector<int32_t>& ox_of, const uint8_t* plane,
                                             const float* dyt, int64_t c, int32_t* pos, float* grad_wt) {
  const ConvGeometry& g = x.g;
  int64_t spikes = 0;
  auto add = [&](int64_t y, int64_t i) SPIKEOPS_CPU_INLINE_LAMBDA {
    pos[2 * spikes] = int32_t(y);
    pos[2 * spikes + 1] = int32_t(i);
    if (++spikes == kSpikeBatch) {
      weight_grad_spikes(x, band, oy_of, ox_of, dyt, c, pos, spikes, grad_wt);
      spikes = 0;
    }
  };
  for (int64_t y = band.iy0; y < band.iy1; ++y) {
    const uint8_t* line = plane + (y - band.iy0) * g.W;
    int64_t i = 0;
    for (; i + 8 <= g.W; i += 8) {
      uint64_t chunk;
      std::memcpy(&chunk, line + i, 8);
      if (chunk == 0) continue;
      for (uint64_t nz = nonzero_bytes(chunk); nz != 0; nz &= nz - 1) add(y, i + (__builtin_ctzll(nz) >> 3));
    }
    for (; i < g.W; ++i) {
      if (line[i] != 0) add(y, i);
    }
  }
  if (spikes > 0) weight_grad_spikes(x, band, oy_of, ox_of, dyt, c, pos, spikes, grad_wt);
}

}  // namespace

int64_t conv2d_events_spikes(const ConvGeometry& g, const uint8_t* in, int64_t rows, const float* wt,
                             const float* bias, float* out) {
  return conv_forward(g, in, rows, wt, bias, out);
}

int64_t conv2d_events_values(const ConvGeometry& g, const float* in, int64_t rows, const float* wt,
                             const float* bias, float* out) {
  return conv_forward(g, in, rows, wt, bias, out);
}

void conv2d_events_weight_grad(const ConvGeometry& g, const uint8_t* in, int64_t rows, const void* grad_out,
                               DType grad_dtype, float* grad_wt) {
  const Conv x(g, nullptr, nullptr);
  const std::vector<int32_t> oy_of = tap_table(g.H, g.OH, g.kh, g.sh, g.ph, g.dh);
  const std::vector<int32_t> ox_of = tap_table(g.W, g.OW, g.kw, g.sw, g.pw, g.dw);
  std::fill(grad_wt, grad_wt + g.C * x.taps * x.ldg, 0.0f);
  if (rows == 0 || g.OH == 0 || g.OW == 0) return;
  const int64_t P = g.OH * g.OW, in_size = g.C * g.H * g.W, out_size = g.O * P, ld = g.groups * x.ldg;
  const int64_t band_rows = std::max<int64_t>(1, std::min(g.OH, kBandFloats / (g.OW * ld)));
  const int64_t band_in_rows = std::min(g.H, (band_rows - 1) * g.sh + (g.kh - 1) * g.dh + 1);
  constexpr int64_t kPixelChunk = 64;  // output pixels per task of the band's preparation
  // Scratch (allocated here: an exception must not leave the OpenMP region), shared by the threads, twice:
  // band b is prepared in buffer b % 2 while the threads still adding band b - 1 read the other, so each band
  // costs one barrier. dyt: the band's output gradient, channels innermost (the threads split the input
  // channels, so each owns its rows of grad_wt, and all read the whole of dyt); planes: channels-last spikes'
  // band of input rows as NCHW planes [C, band_in_rows * W]. Each thread's own: a chunk of a float16 or
  // bfloat16 gradient as float32, and its list of spike positions.
  const size_t dyt_size = static_cast<size_t>(band_rows * g.OW * ld);
  const size_t planes_size = g.channels_last ? static_cast<size_t>(g.C * band_in_rows * g.W) : 0;
  std::vector<float> dyt(2 * dyt_size, 0.0f);
  std::vector<uint8_t> planes(2 * planes_size);
  const bool convert = grad_dtype != DType::kFloat32;
  const size_t chunk_size = convert ? static_cast<size_t>(kPixelChunk * g.O) : 0;
  const size_t pos_size = static_cast<size_t>(2 * kSpikeBatch);
  std::vector<float> chunks(chunk_size * static_cast<size_t>(max_threads()));
  std::vector<int32_t> positions(pos_size * static_cast<size_t>(max_threads()));
  const bool parallel = rows * in_size >= (1 << 15);
#pragma omp parallel if (parallel)
  {
    int32_t* pos = positions.data() + pos_size * static_cast<size_t>(thread_num());
    float* chunk = chunks.data() + chunk_size * static_cast<size_t>(thread_num());
    int64_t b = 0;  // the band's number, counted over the samples
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t oy0 = 0; oy0 < g.OH; oy0 += band_rows, ++b) {
        Band band{oy0, std::min(band_rows, g.OH - oy0), 0, 0};
        band.iy0 = std::max<int64_t>(0, oy0 * g.sh - g.ph);
        band.iy1 = std::max(band.iy0, std::min(g.H, (oy0 + band.rows - 1) * g.sh - g.ph + (g.kh - 1) * g.dh + 1));
        const int64_t p0 = oy0 * g.OW, n = band.rows * g.OW;  // the band's output pixels
        const int64_t band_in_pixels = (band.iy1 - band.iy0) * g.W;
        float* band_dyt = dyt.data() + dyt_size * static_cast<size_t>(b % 2);
        uint8_t* band_planes = planes.data() + planes_size * static_cast<size_t>(b % 2);
        // The band's preparation, one loop (so one barrier): tasks [0, dy_tasks) lay out 64 output pixels of
        // the gradient each, the rest reorder 256 pixels of channels-last spikes each.
        const int64_t dy_tasks = (n + kPixelChunk - 1) / kPixelChunk;
        const int64_t plane_tasks = g.channels_last ? (band_in_pixels + 255) / 256 : 0;
#pragma omp for schedule(static)
        for (int64_t task = 0; task < dy_tasks + plane_tasks; ++task) {
          if (task >= dy_tasks) {
            const int64_t q = (task - dy_tasks) * 256;
            to_planes(in + r * in_size + band.iy0 * g.W * g.C, band_in_pixels, g.C, band_planes, q,
                      std::min(band_in_pixels, q + 256));
            continue;
          }
          const int64_t p = task * kPixelChunk, m = std::min(kPixelChunk, n - p);  // band pixels [p, p + m)
          const int64_t at = r * out_size + (g.channels_last ? (p0 + p) * g.O : p0 + p);
          const float* src = static_cast<const float*>(grad_out) + at;
          int64_t stride = P;  // NCHW: channel o's pixels at src + o * stride
          if (convert) {
            if (g.channels_last) {
              load_row(grad_dtype, grad_out, at, static_cast<int>(m * g.O), chunk);
            } else {
              for (int64_t o = 0; o < g.O; ++o) load_row(grad_dtype, grad_out, at + o * P, static_cast<int>(m), chunk + o * m);
              stride = m;
            }
            src = chunk;
          }
          if (g.channels_last) {
            gather_grad(x, src, 0, m, band_dyt + p * ld);
          } else {
            transpose_grad(x, src, stride, 0, m, band_dyt + p * ld);
          }
        }
        // (the implicit barrier: the band's dyt and planes are complete, and every thread has finished the
        // previous band, whose buffers the next band overwrites)
        const uint8_t* first = g.channels_last ? band_planes : in + r * in_size + band.iy0 * g.W;
        const int64_t plane_stride = g.channels_last ? band_in_pixels : g.H * g.W;
#pragma omp for schedule(static) nowait
        for (int64_t c = 0; c < g.C; ++c) {
          weight_grad_channel(x, band, oy_of, ox_of, first + c * plane_stride, band_dyt, c, pos, grad_wt);
        }
      }
    }
  }
}

void pack_conv_weight(const ConvGeometry& g, const float* w, float* wt) {
  const int64_t Cg = g.C / g.groups, Og = g.O / g.groups, taps = g.kh * g.kw, ldg = conv_padded_channels(Og);
  const int64_t K = Cg * taps;  // a weight's inputs (cl, t), contiguous in w
  std::fill(wt, wt + g.C * taps * ldg, 0.0f);
  // 16 outputs at a time: each (cl, t) writes one 64-byte piece of its row, and the 16 source rows being read
  // stay in cache while (cl, t) advances (a transpose without a store per cache line).
  for (int64_t grp = 0; grp < g.groups; ++grp) {
    for (int64_t o0 = 0; o0 < Og; o0 += 16) {
      const int64_t on = std::min<int64_t>(16, Og - o0);
      const float* src = w + (grp * Og + o0) * K;
      float* dst = wt + grp * K * ldg + o0;
      for (int64_t cl = 0; cl < Cg; ++cl) {
        for (int64_t t = 0; t < taps; ++t) {
          float* d = dst + (t * Cg + cl) * ldg;
          for (int64_t j = 0; j < on; ++j) d[j] = src[j * K + cl * taps + t];
        }
      }
    }
  }
}

}  // namespace cpu
}  // namespace spikeops
