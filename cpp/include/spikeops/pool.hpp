// 2-D max and average pooling (NCHW, floor mode; a window is clipped to the input, so padding never
// contributes a value), on the CPU and CUDA, of float32 values or 1-byte spikes.
#pragma once

#include <cstdint>

#include "spikeops/config.hpp"
#include "spikeops/tensor.hpp"

namespace spikeops {

enum class PoolKind : int {
  kMax = 0,  // the largest value of the window (NaN if it holds one, as torch); of spikes, their OR
  kAvg = 1,  // the window's sum (in row-major order) divided by kh * kw, or by the clipped window's size
};

// out[n, c, oy, ox] = the pooling of input[n, c] over the window at (oy * stride - padding, ox * ...), of
// kernel[0] x kernel[1] inputs, clipped to the input. Padding never contributes a value (max: as -inf; avg: as
// 0, counted in the divisor only with count_include_pad). OH = (H + 2 * padding - kernel) / stride + 1.
// Dtypes: max of uint8 spikes -> uint8 (0/1), max or avg of float32 -> float32, avg of uint8 spikes -> float32
// (the firing rate of the window).
struct Pool2dArgs {
  TensorView input;  // [N, C, H, W] float32 or uint8, contiguous
  TensorView out;    // [N, C, OH, OW], contiguous, dtype as above
  PoolKind kind = PoolKind::kMax;
  int64_t kernel[2] = {2, 2};   // >= 1
  int64_t stride[2] = {2, 2};   // >= 1
  int64_t padding[2] = {0, 0};  // at most kernel / 2 (as torch)
  bool count_include_pad = true;  // kAvg
  void* stream = nullptr;  // cudaStream_t for CUDA tensors
};
void pool2d(const Pool2dArgs& a);

}  // namespace spikeops
