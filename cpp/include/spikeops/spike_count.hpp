// Counting spikes, on the CPU and CUDA (a model's reports: spikes fired, synaptic operations).
#pragma once

#include <cstdint>

#include "spikeops/config.hpp"
#include "spikeops/tensor.hpp"

namespace spikeops {

// The number of nonzero bytes of a contiguous uint8 tensor of any shape. On CUDA the call waits for `stream`
// (a cudaStream_t) to read the count back.
int64_t count_nonzero(const TensorView& spikes, void* stream = nullptr);

}  // namespace spikeops
