// Internal: a validated 2-D convolution's shape, as the CPU and CUDA kernels take it.
#pragma once

#include <cstdint>

#include "spikeops/spike_conv.hpp"

namespace spikeops {

struct ConvGeometry {
  int64_t C, H, W;       // input
  int64_t O, OH, OW;     // output
  int64_t kh, kw, sh, sw, ph, pw, dh, dw;
  int64_t groups = 1;    // C and O are multiples of it; input channel c sees the outputs of group c / (C / groups)
  // Spike inputs only (CPU): the input [rows, H, W, C] and the output [rows, OH, OW, O] (and for the weight
  // gradient grad_out [rows, OH, OW, O]) are stored channels-last instead of NCHW.
  bool channels_last = false;
};

}  // namespace spikeops
