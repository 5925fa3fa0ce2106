// Input encoders that turn real values into spike trains, on the CPU and CUDA.
#pragma once

#include <cstdint>

#include "spikeops/config.hpp"
#include "spikeops/tensor.hpp"

namespace spikeops {

// Poisson (rate) encoding: out[t, b, f] = 1 where u <= input[b, f], u uniform in [0, 1) with 24 random bits,
// drawn from a counter-based generator (splitmix64 of the element's index in out, keyed by the seed). The
// draws depend only on (seed, index): the CPU and CUDA give the same spikes, with any number of threads.
struct PoissonEncodeArgs {
  TensorView input;  // [B, F] float32, contiguous (values in [0, 1]; below 0 never fires, 1 and above always)
  TensorView out;    // [T, B, F] uint8, contiguous
  uint64_t seed = 0;
  void* stream = nullptr;  // cudaStream_t for CUDA tensors
};
void poisson_encode(const PoissonEncodeArgs& a);

}  // namespace spikeops
