// Dense 2-D convolution of real (float32) values (NCHW), on the CPU and CUDA: the first layer of a model fed
// an image, where the inputs are not spikes. Zero inputs are skipped.
#pragma once

#include "spikeops/config.hpp"
#include "spikeops/spike_conv.hpp"
#include "spikeops/tensor.hpp"

namespace spikeops {

// out = bias + conv2d(input, weight) in float32. Each output is its bias, then tap by tap (ky, kx) and input
// channel by channel the product input * weight, every product and sum rounded to float32, on both devices
// (so the two agree bit for bit up to the sign of zero).
struct Conv2dArgs {
  TensorView input;   // [N, C, H, W] float32, contiguous
  TensorView weight;  // float32, contiguous, in weight_layout (see ConvWeightLayout)
  ConvWeightLayout weight_layout = ConvWeightLayout::kOIHW;
  TensorView bias;    // optional [O] float32
  TensorView out;     // [N, O, OH, OW] float32, contiguous; O is read from here
  Conv2dParams conv;
  void* stream = nullptr;  // cudaStream_t for CUDA tensors
};
void conv2d(const Conv2dArgs& a);

}  // namespace spikeops
