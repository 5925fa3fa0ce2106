// A dense linear layer on real (float32) values, on the CPU and CUDA: a model's first layer fed an image or
// another real-valued input, where the inputs are not spikes (those take spike_accumulate).
#pragma once

#include "spikeops/config.hpp"
#include "spikeops/tensor.hpp"

namespace spikeops {

// out[m, o] = bias[o] + sum over k of x[m, k] * weight_t[k, o], in float32, k ascending, each product and sum
// rounded to float32, zero inputs skipped (so the CPU and CUDA agree bit for bit).
struct LinearArgs {
  TensorView x;         // [M, K] float32, contiguous
  TensorView weight_t;  // [K, O] float32, contiguous: W^T, the rows each input scales
  TensorView bias;      // optional [O] float32
  TensorView out;       // [M, O] float32, contiguous
  void* stream = nullptr;  // cudaStream_t for CUDA tensors
};
void linear(const LinearArgs& a);

}  // namespace spikeops
