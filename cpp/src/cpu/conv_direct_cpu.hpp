// Internal: direct (dense) 2-D convolution of real values, for the model runtime's narrow layers fed real
// values (an image into a first convolution of a few channels).
//
// The event-driven kernel (conv_events_cpu) keeps one output pixel's channels in registers: with 16 or fewer
// output channels most of a vector is padding and the per-pixel work (the bit string, its loop) dominates.
// Here a vector holds 16 neighbouring output pixels of one channel instead: each (tap, input channel) loads 16
// inputs once and multiply-adds them into every output channel's vector, with no branch on the data.
#pragma once

#include <cstdint>

#include "cpu/conv_events_cpu.hpp"

namespace spikeops {
namespace cpu {

// The most output channels conv2d_direct_values takes.
constexpr int64_t kDirectMaxOutputs = 16;

// True where conv2d_direct_values computes this layer: NCHW, one group, horizontal stride 1, at most
// kDirectMaxOutputs outputs, finite weights (wt as pack_conv_weight writes it), and a compiler with vector types.
bool conv2d_direct_applies(const ConvGeometry& g, const float* wt);

// The same result as conv2d_events_values, bit for bit up to the sign of zero: each output is the bias, then
// tap by tap and channel by channel the input times the weight, each product and sum rounded to float32. A zero
// input, which the event-driven kernel skips, adds a zero product here (the weights being finite), which
// leaves the sum as it is. in [rows, C, H, W], wt [C * kh * kw, conv_padded_channels(O)], out [rows, O, OH, OW].
void conv2d_direct_values(const ConvGeometry& g, const float* in, int64_t rows, const float* wt, const float* bias,
                          float* out);

}  // namespace cpu
}  // namespace spikeops
