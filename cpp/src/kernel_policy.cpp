// The kernel-choice rules of kernel_policy.hpp: argument checks, then the thresholds.
#include "spikeops/kernel_policy.hpp"

#include <string>

#include "validate.hpp"

namespace spikeops {

namespace {

void check_size(const validate::Checker& check, int64_t value, const char* arg) {
  if (value < 0) check.fail(arg, "must be non-negative, got " + std::to_string(value));
}

void check_device(const validate::Checker& check, Device device) {
  if (device != Device::kCPU && device != Device::kCUDA) {
    check.fail("problem.device", "must be Device::kCPU or Device::kCUDA, got " +
                                     std::to_string(static_cast<int>(device)));
  }
}

void check_rate(const validate::Checker& check, double firing_rate) {
  if (!(firing_rate <= 1.0)) {  // also rejects NaN
    check.fail("firing_rate", "must be at most 1 (negative: unknown), got " + std::to_string(firing_rate));
  }
}

void check_gemm(const validate::Checker& check, const SpikeGemmProblem& p) {
  check_size(check, p.M, "problem.M");
  check_size(check, p.K, "problem.K");
  check_size(check, p.N, "problem.N");
  check_device(check, p.device);
}

void check_conv(const validate::Checker& check, const SpikeConv2dProblem& p) {
  check_size(check, p.N, "problem.N");
  check_size(check, p.C, "problem.C");
  check_size(check, p.H, "problem.H");
  check_size(check, p.W, "problem.W");
  check_size(check, p.O, "problem.O");
  check_size(check, p.kh, "problem.kh");
  check_size(check, p.kw, "problem.kw");
  check_device(check, p.device);
}

// M * K * N >= kSpikeGemmRateMinMacs without overflowing int64 (sizes may each approach 2^31 and beyond).
bool at_least_min_macs(const SpikeGemmProblem& p) {
  if (p.M == 0 || p.K == 0 || p.N == 0) return false;
  return static_cast<double>(p.M) * static_cast<double>(p.K) * static_cast<double>(p.N) >=
         static_cast<double>(kSpikeGemmRateMinMacs);
}

bool conv_rate_matters(const SpikeConv2dProblem& p) {
  const bool empty = p.N == 0 || p.C == 0 || p.H == 0 || p.W == 0 || p.O == 0;
  return p.device == Device::kCPU && !empty;
}

}  // namespace

bool spike_gemm_needs_firing_rate(const SpikeGemmProblem& problem) {
  check_gemm(validate::Checker("spike_gemm_needs_firing_rate"), problem);
  return at_least_min_macs(problem);
}

SpikeGemmKernel choose_spike_gemm_kernel(const SpikeGemmProblem& problem, double firing_rate) {
  const validate::Checker check("choose_spike_gemm_kernel");
  check_gemm(check, problem);
  check_rate(check, firing_rate);
  if (firing_rate < 0.0 || !at_least_min_macs(problem)) return SpikeGemmKernel::kEvents;
  if (problem.device == Device::kCPU) {
    const double dense_above = problem.weight_gradient ? kCpuDenseAboveRateWeightGradient : kCpuDenseAboveRate;
    return firing_rate > dense_above ? SpikeGemmKernel::kDense : SpikeGemmKernel::kEvents;
  }
  if (firing_rate > kCudaTensorCoreAboveRate && problem.tensor_cores) return SpikeGemmKernel::kTensorCore;
  if (firing_rate > kCudaTiledAboveRate) return SpikeGemmKernel::kTiledEvents;
  return SpikeGemmKernel::kEvents;
}

bool spike_conv2d_needs_firing_rate(const SpikeConv2dProblem& problem) {
  check_conv(validate::Checker("spike_conv2d_needs_firing_rate"), problem);
  return conv_rate_matters(problem);
}

SpikeConvKernel choose_spike_conv2d_kernel(const SpikeConv2dProblem& problem, double firing_rate) {
  const validate::Checker check("choose_spike_conv2d_kernel");
  check_conv(check, problem);
  check_rate(check, firing_rate);
  if (firing_rate < 0.0 || !conv_rate_matters(problem)) return SpikeConvKernel::kEvents;
  const double dense_above =
      problem.weight_gradient ? kCpuConvDenseAboveRateWeightGradient : kCpuConvDenseAboveRate;
  return firing_rate > dense_above ? SpikeConvKernel::kDense : SpikeConvKernel::kEvents;
}

}  // namespace spikeops
