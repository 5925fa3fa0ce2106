// Internal: what makes the accumulate-only ops compute exactly what the dense product on the spikes as floats
// computes, for operands holding inf or NaN, and the check that spikes are 0/1 bytes.
//
// The event-driven kernels add only the values that a spike selects. A dense product also multiplies the
// unselected ones by 0, and in IEEE arithmetic 0 x inf = 0 x NaN = NaN: a non-finite value in column n of the
// rows (a weight row, or an output-gradient channel for a weight gradient) reaches every output of n. So the
// kernels run as they are, then one pass over that operand finds whether it holds a non-finite value, and only
// then are the output columns (channels) it touches recomputed by a plain dense loop. Calls with finite operands
// pay one read of the operand.
#pragma once

#include <cstdint>

#include "conv_geometry.hpp"
#include "spikeops/spike_conv.hpp"
#include "spikeops/spike_gemm.hpp"

#include "validate.hpp"

namespace spikeops {

// Throws spikeops::Error through `check` (naming its function and "spikes") when a byte of the CPU tensor
// `spikes` (dense in memory) is above 1: nothing treats another value as one spike.
void check_spike_bytes(const validate::Checker& check, const TensorView& spikes);

namespace cuda {
// CUDA counterparts of the cpu:: functions below, queued on a.stream; no host synchronization.
void dense_nonfinite_columns(const SpikeAccumulateArgs& a);
void dense_nonfinite_channels(const ConvGeometry& g, const SpikeConv2dArgs& a);
void dense_nonfinite_channels(const ConvGeometry& g, const SpikeConv2dWeightGradArgs& a);
}  // namespace cuda

namespace cpu {

// The largest of the n bytes at s (0 for n = 0), read in parallel.
uint8_t max_byte(const uint8_t* s, int64_t n);

// Whether any of the n float32/float16/bfloat16 values at data is inf or NaN, read in parallel.
bool any_nonfinite(DType dtype, const void* data, int64_t n);

// After the kernel: the output columns n of a validated spike_accumulate whose rows[:, n] hold inf or NaN are
// recomputed as the dense product (bias[n] + sum over k of float(spikes[m, k]) * rows[k, n]).
void dense_nonfinite_columns(const SpikeAccumulateArgs& a);

// After the kernel: the output channels o of a validated spike_conv2d whose weight[o] holds inf or NaN are
// recomputed as the dense convolution of the spikes as floats (zero padding included).
void dense_nonfinite_channels(const ConvGeometry& g, const SpikeConv2dArgs& a);

// After the kernel: grad_weight[o] of a validated spike_conv2d_weight_grad whose grad_out channel o holds inf
// or NaN is recomputed as the dense weight gradient.
void dense_nonfinite_channels(const ConvGeometry& g, const SpikeConv2dWeightGradArgs& a);

}  // namespace cpu
}  // namespace spikeops
