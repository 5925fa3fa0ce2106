// Internal: event-driven 2-D convolution, NCHW, for spike_conv2d and the model runtime.
//
// Forward, output-stationary: the input's nonzero elements are first listed as bit masks, one bit per input
// channel at each (zero padded) pixel. Each output pixel then holds a chunk of up to 128 output channels in
// registers and walks the set bits of the masks under its kernel taps, adding the weight row that each selects:
// out[p, :] += w[(c, ky, kx), :] for a spike (no multiply), out[p, :] += x * w[(c, ky, kx), :] for a real
// value. The work follows the number of events; zero inputs cost one bit test per 64 channels.
//
// Weight gradient, event-driven: each spike (n, c, y, x) adds, for each tap (ky, kx), the output gradient at
// the pixel that tap reaches, dY[n, :, oy, ox], into the row dW[(c, ky, kx), :] (no multiply).
#pragma once

#include <cstdint>

namespace spikeops {
namespace cpu {

// Output channels (per group) are padded to a multiple of this in the weight rows (zeros) and the
// accumulators, so every weight row is whole 16-float vectors.
constexpr int64_t kConvChannelPad = 16;
inline int64_t conv_padded_channels(int64_t O) { return (O + kConvChannelPad - 1) / kConvChannelPad * kConvChannelPad; }

struct ConvGeometry {
  int64_t C, H, W;       // input
  int64_t O, OH, OW;     // output
  int64_t kh, kw, sh, sw, ph, pw, dh, dw;
  int64_t groups = 1;    // C and O are multiples of it; input channel c sees the outputs of group c / (C / groups)
  // Spike inputs only: the input [rows, H, W, C] and the output [rows, OH, OW, O] (and for the weight gradient
  // grad_out [rows, OH, OW, O]) are stored channels-last instead of NCHW.
  bool channels_last = false;
};

// The weight rows: wt [C * kh * kw, conv_padded_channels(O / groups)] float32, zero padded, for each group
// tap-major: row (grp * kh * kw + ky * kw + kx) * C/groups + cl holds w[grp * O/groups + o, cl, ky, kx] in
// column o. pack_conv_weight writes it from w [O, C/groups, kh, kw].
void pack_conv_weight(const ConvGeometry& g, const float* w, float* wt);

// rows samples (or sample-steps): in [rows, C, H, W]; bias [O] or null; out [rows, O, OH, OW] float32.
// Returns the number of weight additions performed (events x taps reaching the output x O / groups).
int64_t conv2d_events_spikes(const ConvGeometry& g, const uint8_t* in, int64_t rows, const float* wt,
                             const float* bias, float* out);
int64_t conv2d_events_values(const ConvGeometry& g, const float* in, int64_t rows, const float* wt,
                             const float* bias, float* out);

// grad_wt [C * kh * kw, conv_padded_channels(O / groups)] = sum over the spikes of `in` of the output gradient
// rows they reach; grad_out [rows, O, OH, OW] float32. Overwrites grad_wt. Its rows are channel-major, row
// (c * kh + ky) * kw + kx (not the forward's tap-major wt); columns: the outputs of c's group, zero padded.
void conv2d_events_weight_grad(const ConvGeometry& g, const uint8_t* in, int64_t rows, const float* grad_out,
                               float* grad_wt);

}  // namespace cpu
}  // namespace spikeops
