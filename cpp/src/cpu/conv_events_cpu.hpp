// Internal: event-driven 2-D convolution for the model runtime, NCHW.
//
// Each nonzero input element is an event that scatters into the output pixels its kernel taps reach:
// out[p, :] += w[(c, ky, kx), :] for a spike (no multiply), out[p, :] += x * w[(c, ky, kx), :] for a real value.
// The work is proportional to the number of nonzero inputs, and the per-row accumulator ([pixels, O] floats)
// stays in cache, which an im2col of the (mostly zero) input would not allow.
#pragma once

#include <cstdint>

namespace spikeops {
namespace cpu {

// Output channels are padded to a multiple of this in the weight (zeros) and the accumulator, so every
// weight row is whole 16-float vectors.
constexpr int64_t kConvChannelPad = 16;
inline int64_t conv_padded_channels(int64_t O) { return (O + kConvChannelPad - 1) / kConvChannelPad * kConvChannelPad; }

struct ConvGeometry {
  int64_t C, H, W;       // input
  int64_t O, OH, OW;     // output
  int64_t kh, kw, sh, sw, ph, pw, dh, dw;
};

// rows samples (or sample-steps): in [rows, C, H, W]; wt = W^T [C*kh*kw, conv_padded_channels(O)], zero
// padded; bias [O] or null; out [rows, O, OH, OW]. Returns the number of weight additions performed
// (events x taps x O).
int64_t conv2d_events_spikes(const ConvGeometry& g, const uint8_t* in, int64_t rows, const float* wt,
                             const float* bias, float* out);
int64_t conv2d_events_values(const ConvGeometry& g, const float* in, int64_t rows, const float* wt,
                             const float* bias, float* out);

}  // namespace cpu
}  // namespace spikeops
