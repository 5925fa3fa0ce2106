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

#include "conv_geometry.hpp"

namespace spikeops {
namespace cpu {

// The geometry (spikeops::ConvGeometry) and the padded channel count are shared with the CUDA kernels.
using ::spikeops::ConvGeometry;
inline int64_t conv_padded_channels(int64_t O) { return conv2d_packed_channels(O); }

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
// rows they reach; grad_out [rows, O, OH, OW] (or channels-last) float32, float16 or bfloat16. Overwrites
// grad_wt. Its rows are channel-major, row (c * kh + ky) * kw + kx (not the forward's tap-major wt); columns: the
// outputs of c's group, zero padded. Scratch: two bands of the output gradient, padded to 16 channels per
// group, of about 4 MiB each (or one output row each, where a row is more), two bands of channels-last input
// rows, and per thread 32 KiB plus 64 output pixels' gradient; none of it grows with the batch or the image height.
void conv2d_events_weight_grad(const ConvGeometry& g, const uint8_t* in, int64_t rows, const void* grad_out,
                               DType grad_dtype, float* grad_wt);

}  // namespace cpu
}  // namespace spikeops
