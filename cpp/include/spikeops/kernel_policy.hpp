// Which kernel computes a spike product: every rule in one place, one policy function per op family.
//
// The core's entry points resolve kAuto with these functions, and callers that have kernels of their own (the
// Python package has torch's BLAS GEMM and oneDNN convolution) ask them before calling the core. The thresholds
// are firing rates: the fraction of nonzero spikes, estimated by the caller. The figures they come from, and
// the CPU they were measured on, are in docs/performance.md (bench/spike_gemm.py measures them).
#pragma once

#include <cstdint>

#include "spikeops/spike_gemm.hpp"
#include "spikeops/tensor.hpp"

namespace spikeops {

// ---- Thresholds ----

// CPU, spike GEMM: above this rate a BLAS GEMM on the spikes as floats beats adding the selected rows. The
// event-driven kernel's work grows with the spikes, a dense GEMM's does not and runs near the FMA peak, so
// they cross; where depends on the host's BLAS, and the threshold sits at the lowest crossover measured so
// that no rate runs slower than dense on any host measured. The core has no BLAS: the policy's kDense there
// is advice for callers that have one.
constexpr double kCpuDenseAboveRate = 0.4;
// The weight gradient's product (S^T . dY, written transposed) gathers its rows less regularly than the
// forward, so the dense GEMM overtakes it at a lower rate.
constexpr double kCpuDenseAboveRateWeightGradient = 0.35;
// Products of fewer multiply-adds (M * K * N) than this take the event-driven kernel at every rate without
// an estimate: on the CPU the dense path's fixed costs (counting, converting the spikes to floats) outweigh
// its GEMM there, and on a GPU the estimate's read-back to the host costs more than a better kernel saves.
constexpr int64_t kSpikeGemmRateMinMacs = int64_t{1} << 28;
// CUDA, spike GEMM: above this rate the tiled event-driven kernel, whose staging of a weight slice in shared
// memory pays off once enough of a tile's rows select it. Estimated from the kernels' memory traffic, not yet
// measured on a GPU.
constexpr double kCudaTiledAboveRate = 0.02;
// Above this rate the tensor-core kernel (a dense GEMM: zero spikes cost as much as ones), once skipping the
// zeros saves less than the tensor cores' throughput gains. Estimated like kCudaTiledAboveRate.
constexpr double kCudaTensorCoreAboveRate = 0.15;
// CPU, spike convolution: above these rates (forward, weight gradient) torch's dense convolution on the spikes
// as floats is used. They sit below the measured crossovers because the event-driven kernels slow down more
// than the dense convolution when the host is loaded or clocked down.
constexpr double kCpuConvDenseAboveRate = 0.2;
constexpr double kCpuConvDenseAboveRateWeightGradient = 0.15;

// ---- Spike GEMM ----

// The product out[M, N] = spikes[M, K] . rows[K, N] (the forward of a linear layer), or, for the weight
// gradient, S^T[K', M'] . dY[M', N'] written transposed (then M = K', K = M', N = N').
struct SpikeGemmProblem {
  int64_t M = 0;
  int64_t K = 0;
  int64_t N = 0;
  bool weight_gradient = false;
  Device device = Device::kCPU;
  // CUDA: the GPU and the build can run kTensorCore (compute capability 8.0+). The core fills it in when it
  // resolves kAuto; a caller that does not know leaves it true and passes kAuto to the core on CUDA.
  bool tensor_cores = true;
};

// Whether the choice for this problem depends on the firing rate: false for products under
// kSpikeGemmRateMinMacs (and empty ones), where a caller should not spend a pass over the spikes on an estimate.
// Throws spikeops::Error for negative sizes or an unknown device.
bool spike_gemm_needs_firing_rate(const SpikeGemmProblem& problem);

// The kernel for this problem at this firing rate (in [0, 1]; negative: unknown). Never kAuto.
//   CPU:  kDense above kCpuDenseAboveRate (kCpuDenseAboveRateWeightGradient for the weight gradient), else
//         kEvents. kDense means "a BLAS GEMM on the spikes as floats beats the core's kernel here": the core's
//         spike_accumulate has no CPU kernel for it and refuses it.
//   CUDA: kTensorCore above kCudaTensorCoreAboveRate (when problem.tensor_cores), kTiledEvents above
//         kCudaTiledAboveRate, else kEvents.
// An unknown rate, or a problem for which spike_gemm_needs_firing_rate is false, gives kEvents.
// Throws spikeops::Error for negative sizes, an unknown device, or a rate above 1 or NaN.
SpikeGemmKernel choose_spike_gemm_kernel(const SpikeGemmProblem& problem, double firing_rate);

// ---- Spike convolution ----

enum class SpikeConvKernel : int {
  kAuto = 0,    // the policy's choice (choose_spike_conv2d_kernel)
  kEvents = 1,  // the core's accumulate-only convolution (spike_conv2d, CPU and CUDA)
  kDense = 2,   // a dense convolution on the spikes as floats (the caller's: the core has none)
};

// conv2d of spikes [N, C, H, W] with a weight [O, C / groups, kh, kw], or its weight gradient.
struct SpikeConv2dProblem {
  int64_t N = 0;
  int64_t C = 0;
  int64_t H = 0;
  int64_t W = 0;
  int64_t O = 0;
  int64_t kh = 0;
  int64_t kw = 0;
  bool weight_gradient = false;
  Device device = Device::kCPU;
};

// Whether the choice depends on the firing rate: on the CPU for non-empty problems; never on CUDA, where the
// core's kernel runs at every rate (no dense convolution on a GPU has been measured against it yet).
// Throws spikeops::Error for negative sizes or an unknown device.
bool spike_conv2d_needs_firing_rate(const SpikeConv2dProblem& problem);

// The kernel for this problem at this firing rate (in [0, 1]; negative: unknown). Never kAuto.
//   CPU:  kDense above kCpuConvDenseAboveRate (kCpuConvDenseAboveRateWeightGradient for the weight gradient),
//         else kEvents.
//   CUDA: kEvents.
// Throws spikeops::Error for negative sizes, an unknown device, or a rate above 1 or NaN.
SpikeConvKernel choose_spike_conv2d_kernel(const SpikeConv2dProblem& problem, double firing_rate);

}  // namespace spikeops
