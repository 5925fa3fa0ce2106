// Accumulate-only 2-D convolution of 1-byte spikes (NCHW), event-driven, on the CPU.
//
// conv2d(S, W) with S of 0/1 needs no multiply: each output pixel adds the weight rows that the spikes under
// its kernel taps select. The forward holds each output pixel's channels in registers and walks the spikes of
// its receptive field (listed once per call as one bit per input channel and pixel); the weight gradient adds,
// for each spike and tap, the output gradient at the pixel that tap reaches. Both cost in proportion to the
// number of spikes. CPU tensors only: on CUDA, spikeops.functional.spike_conv2d runs the convolution as the
// spike GEMM over the unfolded input.
#pragma once

#include "spikeops/config.hpp"
#include "spikeops/tensor.hpp"

namespace spikeops {

// As torch.nn.functional.conv2d's (zero padding).
struct Conv2dParams {
  int64_t stride[2] = {1, 1};
  int64_t padding[2] = {0, 0};
  int64_t dilation[2] = {1, 1};
  int64_t groups = 1;
};

// The output size along one axis, (in + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1; throws
// spikeops::Error when the kernel does not fit the padded input or an argument is negative or 2^31 or more.
int64_t conv2d_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t padding, int64_t dilation);

// out = bias + conv2d(spikes, weight), accumulated in float32 (in an unspecified order: results agree with a
// dense float32 convolution up to rounding, exactly when the sums are exact, e.g. integer weights). Any nonzero
// byte counts as one spike.
struct SpikeConv2dArgs {
  TensorView spikes;  // [N, C, H, W] uint8, contiguous
  TensorView weight;  // [O, C / groups, kh, kw] float32, float16 or bfloat16, contiguous
  TensorView bias;    // optional [O], float32, float16 or bfloat16
  TensorView out;     // [N, O, OH, OW] float32, float16 or bfloat16, contiguous
  Conv2dParams conv;
};
void spike_conv2d(const SpikeConv2dArgs& a);

// grad_weight = d(sum(grad_out * conv2d(spikes, W))) / dW: for each spike and kernel tap, the output gradient
// at the pixel the tap reaches is added to that tap's weights (no multiply).
struct SpikeConv2dWeightGradArgs {
  TensorView spikes;       // [N, C, H, W] uint8, contiguous
  TensorView grad_out;     // [N, O, OH, OW] float32, float16 or bfloat16, contiguous
  TensorView grad_weight;  // [O, C / groups, kh, kw] float32, float16 or bfloat16, contiguous (overwritten)
  Conv2dParams conv;
};
void spike_conv2d_weight_grad(const SpikeConv2dWeightGradArgs& a);

}  // namespace spikeops
