// Counting spikes, on the CPU and CUDA (a model's reports: spikes fired, synaptic operations).
#pragma once

#include <cstdint>

#include "spikeops/config.hpp"
#include "spikeops/tensor.hpp"

namespace spikeops {

// The number of nonzero bytes of a contiguous uint8 tensor of any shape. On CUDA the call waits for `stream`
// (a cudaStream_t) to read the count back.
int64_t count_nonzero(const TensorView& spikes, void* stream = nullptr);

// What spike_bytes counted: the nonzero values (spikes), the values -1 (signed spikes), and the values that are
// no spike at all (anything but 0, 1 and -1: 0.5, 2, inf, NaN).
struct SpikeValueCounts {
  int64_t nonzero = 0;
  int64_t negative = 0;
  int64_t invalid = 0;
};

// bytes[i] = (values[i] != 0) for float32/float16/bfloat16 `values` and uint8 `bytes` of the same shape (both
// contiguous), counting in the same pass what the spike ops must know of the values: float spikes become bytes
// and are checked in one read. On CUDA the call waits for `stream` (a cudaStream_t) to read the counts back.
SpikeValueCounts spike_bytes(const TensorView& values, const TensorView& bytes, void* stream = nullptr);

}  // namespace spikeops
