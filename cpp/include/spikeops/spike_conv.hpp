// Accumulate-only 2-D convolution of 1-byte spikes (NCHW) on the CPU and CUDA; event-driven on the CPU.
//
// conv2d(S, W) with S of 0/1 needs no multiply: each output pixel adds the weight rows that the spikes under
// its kernel taps select. The forward holds each output pixel's channels in registers and walks the spikes of
// its receptive field (listed once per call as one bit per input channel and pixel); the weight gradient adds,
// for each spike and tap, the output gradient at the pixel that tap reaches. Both cost in proportion to the
// number of spikes. On CUDA one thread computes one output (walking its receptive field) or one weight of the
// gradient (walking the output pixels its tap reaches), adding only where a spike is.
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

// How a convolution's weight is stored.
enum class ConvWeightLayout : int {
  kOIHW = 0,  // [O, C / groups, kh, kw] float32, float16 or bfloat16 (torch's layout)
  // [groups, kh, kw, C / groups, conv2d_packed_channels(O / groups)] float32, zero padded: the rows the CPU
  // kernels read (each tap and input channel's outputs contiguous, padded to whole 16-float vectors), written
  // once by pack_conv2d_weight so that repeated calls (a model's layer) do not repack. Both devices take it.
  kPacked = 1,
};

// The padded row length of a kPacked weight for `outputs_per_group` outputs (a multiple of 16).
constexpr int64_t conv2d_packed_channels(int64_t outputs_per_group) { return (outputs_per_group + 15) / 16 * 16; }

// packed = weight [O, C / groups, kh, kw] (float32, float16 or bfloat16) in the kPacked layout, shape
// [groups, kh, kw, C / groups, conv2d_packed_channels(O / groups)] float32. CPU tensors only.
void pack_conv2d_weight(const TensorView& weight, const TensorView& packed, int64_t groups);

// out = bias + conv2d(spikes, weight) for spikes of 0 or 1, accumulated in float32 (in an unspecified order:
// results agree with a dense float32 convolution up to rounding, exactly when the sums are exact, e.g. integer
// weights). Inf and NaN give what the dense convolution of the zero-padded spikes as floats gives (0 x inf =
// 0 x NaN = NaN, the padding's zeros included): an inf or NaN in weight[o] makes output channel o NaN wherever
// the spikes do not select exactly the infinities. A byte above 1 is not a spike: on the CPU the call throws
// spikeops::Error; on CUDA the bytes are not read back (that would wait for the stream), so the caller must
// pass 0/1.
struct SpikeConv2dArgs {
  // [N, C, H, W] uint8, contiguous; on the CPU also channels-last (torch.channels_last), and then out too
  TensorView spikes;
  TensorView weight;  // contiguous, in weight_layout (kOIHW: float32, float16 or bfloat16; kPacked: float32)
  ConvWeightLayout weight_layout = ConvWeightLayout::kOIHW;
  TensorView bias;    // optional [O], float32, float16 or bfloat16
  TensorView out;     // [N, O, OH, OW] float32, float16 or bfloat16, contiguous; O is read from here
  Conv2dParams conv;
  // Optional: set to the number of weight additions (spikes x taps reaching an output x O / groups), the
  // synaptic operations a model reports. On CUDA the call then waits for its stream to read the count back.
  int64_t* synaptic_ops = nullptr;
  void* stream = nullptr;  // cudaStream_t for CUDA tensors
};
void spike_conv2d(const SpikeConv2dArgs& a);

// grad_weight = d(sum(grad_out * conv2d(spikes, W))) / dW: for each spike and kernel tap, the output gradient
// at the pixel the tap reaches is added to that tap's weights (no multiply). As the dense weight gradient, an
// inf or NaN in grad_out channel o reaches all of grad_weight[o]; spikes as for spike_conv2d.
struct SpikeConv2dWeightGradArgs {
  TensorView spikes;       // [N, C, H, W] uint8, contiguous (on the CPU also channels-last, and then grad_out too)
  TensorView grad_out;     // [N, O, OH, OW] float32, float16 or bfloat16, contiguous
  TensorView grad_weight;  // [O, C / groups, kh, kw] float32, float16 or bfloat16, contiguous (overwritten)
  Conv2dParams conv;
  void* stream = nullptr;  // cudaStream_t for CUDA tensors
};
void spike_conv2d_weight_grad(const SpikeConv2dWeightGradArgs& a);

}  // namespace spikeops
