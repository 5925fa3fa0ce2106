// The kernel-choice policy (kernel_policy.hpp): each threshold's boundary on each device, the size under which
// no firing rate is needed, and the argument checks; and spike_accumulate's refusal of kDense on the CPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "spikeops/kernel_policy.hpp"
#include "test_util.hpp"
#include "spikeops/spikeops.hpp"

using namespace spikeops;

namespace {

// A product just at kSpikeGemmRateMinMacs: the smallest for which the rate decides.
SpikeGemmProblem gemm(Device device, bool weight_gradient = false) {
  SpikeGemmProblem p;
  p.M = 1024;
  p.K = 1024;
  p.N = kSpikeGemmRateMinMacs / (1024 * 1024);
  p.weight_gradient = weight_gradient;
  p.device = device;
  return p;
}

SpikeConv2dProblem conv(Device device, bool weight_gradient = false) {
  SpikeConv2dProblem p;
  p.N = 2;
  p.C = 3;
  p.H = 8;
  p.W = 8;
  p.O = 4;
  p.kh = 3;
  p.kw = 3;
  p.weight_gradient = weight_gradient;
  p.device = device;
  return p;
}

// The statement throws spikeops::Error whose message contains every needle.
void expect_error(const std::function<void()>& statement, const std::vector<std::string>& needles) {
  for (const std::string& needle : needles) EXPECT_ERROR(statement(), needle);
}

double just_above(double x) { return std::nextafter(x, 2.0); }

}  // namespace

TEST(SpikeGemmPolicy, NeedsFiringRateFromTheMinimumSizeOn) {
  for (Device device : {Device::kCPU, Device::kCUDA}) {
    SpikeGemmProblem p = gemm(device);
    EXPECT_TRUE(spike_gemm_needs_firing_rate(p));
    p.N -= 1;
    EXPECT_FALSE(spike_gemm_needs_firing_rate(p));
    p = gemm(device);
    p.K = 0;
    EXPECT_FALSE(spike_gemm_needs_firing_rate(p));
  }
  // Sizes whose product overflows int64 are large, not negative.
  SpikeGemmProblem huge = gemm(Device::kCPU);
  huge.M = huge.K = huge.N = int64_t{1} << 40;
  EXPECT_TRUE(spike_gemm_needs_firing_rate(huge));
}

TEST(SpikeGemmPolicy, CpuDenseAboveItsThresholds) {
  const SpikeGemmProblem forward = gemm(Device::kCPU), grad = gemm(Device::kCPU, true);
  EXPECT_EQ(choose_spike_gemm_kernel(forward, kCpuDenseAboveRate), SpikeGemmKernel::kEvents);
  EXPECT_EQ(choose_spike_gemm_kernel(forward, just_above(kCpuDenseAboveRate)), SpikeGemmKernel::kDense);
  EXPECT_EQ(choose_spike_gemm_kernel(grad, kCpuDenseAboveRateWeightGradient), SpikeGemmKernel::kEvents);
  EXPECT_EQ(choose_spike_gemm_kernel(grad, just_above(kCpuDenseAboveRateWeightGradient)), SpikeGemmKernel::kDense);
  EXPECT_EQ(choose_spike_gemm_kernel(forward, 0.0), SpikeGemmKernel::kEvents);
  EXPECT_EQ(choose_spike_gemm_kernel(forward, 1.0), SpikeGemmKernel::kDense);
  EXPECT_EQ(choose_spike_gemm_kernel(forward, -1.0), SpikeGemmKernel::kEvents);  // unknown
  SpikeGemmProblem small = forward;
  small.N -= 1;  // under the minimum size the rate does not matter
  EXPECT_EQ(choose_spike_gemm_kernel(small, 1.0), SpikeGemmKernel::kEvents);
}

TEST(SpikeGemmPolicy, CudaTiledThenTensorCores) {
  for (bool weight_gradient : {false, true}) {
    SpikeGemmProblem p = gemm(Device::kCUDA, weight_gradient);
    EXPECT_EQ(choose_spike_gemm_kernel(p, kCudaTiledAboveRate), SpikeGemmKernel::kEvents);
    EXPECT_EQ(choose_spike_gemm_kernel(p, just_above(kCudaTiledAboveRate)), SpikeGemmKernel::kTiledEvents);
    EXPECT_EQ(choose_spike_gemm_kernel(p, kCudaTensorCoreAboveRate), SpikeGemmKernel::kTiledEvents);
    EXPECT_EQ(choose_spike_gemm_kernel(p, just_above(kCudaTensorCoreAboveRate)), SpikeGemmKernel::kTensorCore);
    EXPECT_EQ(choose_spike_gemm_kernel(p, -0.5), SpikeGemmKernel::kEvents);
    p.tensor_cores = false;
    EXPECT_EQ(choose_spike_gemm_kernel(p, 1.0), SpikeGemmKernel::kTiledEvents);
    p.M = 1;  // small
    EXPECT_EQ(choose_spike_gemm_kernel(p, 1.0), SpikeGemmKernel::kEvents);
  }
}

TEST(SpikeGemmPolicy, RefusesBadArguments) {
  SpikeGemmProblem p = gemm(Device::kCPU);
  p.M = -1;
  expect_error([&] { spike_gemm_needs_firing_rate(p); }, {"spike_gemm_needs_firing_rate", "problem.M", "non-negative"});
  expect_error([&] { choose_spike_gemm_kernel(p, 0.5); }, {"choose_spike_gemm_kernel", "problem.M", "-1"});
  p = gemm(Device::kCPU);
  p.K = -2;
  expect_error([&] { choose_spike_gemm_kernel(p, 0.5); }, {"problem.K"});
  p = gemm(Device::kCPU);
  p.N = -3;
  expect_error([&] { choose_spike_gemm_kernel(p, 0.5); }, {"problem.N"});
  p = gemm(Device::kCPU);
  p.device = static_cast<Device>(5);
  expect_error([&] { spike_gemm_needs_firing_rate(p); }, {"problem.device", "kCPU or Device::kCUDA"});
  p = gemm(Device::kCPU);
  expect_error([&] { choose_spike_gemm_kernel(p, 1.5); }, {"choose_spike_gemm_kernel", "firing_rate", "at most 1"});
  expect_error([&] { choose_spike_gemm_kernel(p, std::numeric_limits<double>::quiet_NaN()); }, {"firing_rate"});
}

TEST(SpikeConvPolicy, CpuDenseAboveItsThresholds) {
  const SpikeConv2dProblem forward = conv(Device::kCPU), grad = conv(Device::kCPU, true);
  EXPECT_TRUE(spike_conv2d_needs_firing_rate(forward));
  EXPECT_EQ(choose_spike_conv2d_kernel(forward, kCpuConvDenseAboveRate), SpikeConvKernel::kEvents);
  EXPECT_EQ(choose_spike_conv2d_kernel(forward, just_above(kCpuConvDenseAboveRate)), SpikeConvKernel::kDense);
  EXPECT_EQ(choose_spike_conv2d_kernel(grad, kCpuConvDenseAboveRateWeightGradient), SpikeConvKernel::kEvents);
  EXPECT_EQ(choose_spike_conv2d_kernel(grad, just_above(kCpuConvDenseAboveRateWeightGradient)),
            SpikeConvKernel::kDense);
  EXPECT_EQ(choose_spike_conv2d_kernel(forward, -1.0), SpikeConvKernel::kEvents);
  SpikeConv2dProblem empty = forward;
  empty.N = 0;
  EXPECT_FALSE(spike_conv2d_needs_firing_rate(empty));
  EXPECT_EQ(choose_spike_conv2d_kernel(empty, 1.0), SpikeConvKernel::kEvents);
}

TEST(SpikeConvPolicy, CudaIsTheSpikeGemm) {
  const SpikeConv2dProblem p = conv(Device::kCUDA);
  EXPECT_FALSE(spike_conv2d_needs_firing_rate(p));
  EXPECT_EQ(choose_spike_conv2d_kernel(p, 1.0), SpikeConvKernel::kEvents);
  EXPECT_EQ(choose_spike_conv2d_kernel(conv(Device::kCUDA, true), 1.0), SpikeConvKernel::kEvents);
}

TEST(SpikeConvPolicy, RefusesBadArguments) {
  const char* names[] = {"problem.N", "problem.C", "problem.H", "problem.W", "problem.O", "problem.kh", "problem.kw"};
  for (int i = 0; i < 7; ++i) {
    SpikeConv2dProblem p = conv(Device::kCPU);
    int64_t* sizes[] = {&p.N, &p.C, &p.H, &p.W, &p.O, &p.kh, &p.kw};
    *sizes[i] = -1;
    expect_error([&] { choose_spike_conv2d_kernel(p, 0.1); }, {"choose_spike_conv2d_kernel", names[i], "non-negative"});
    expect_error([&] { spike_conv2d_needs_firing_rate(p); }, {"spike_conv2d_needs_firing_rate", names[i]});
  }
  SpikeConv2dProblem p = conv(Device::kCPU);
  p.device = static_cast<Device>(-1);
  expect_error([&] { choose_spike_conv2d_kernel(p, 0.1); }, {"problem.device"});
  p = conv(Device::kCPU);
  expect_error([&] { choose_spike_conv2d_kernel(p, 1.01); }, {"choose_spike_conv2d_kernel", "firing_rate"});
}

TEST(SpikeAccumulate, RefusesDenseOnTheCpu) {
  std::vector<uint8_t> spikes = {1, 0, 1, 1};
  std::vector<float> rows = {1, 2, 3, 4}, out(4);
  SpikeAccumulateArgs a;
  a.spikes = make_tensor_view(spikes.data(), DType::kUInt8, {2, 2});
  a.rows = make_tensor_view(rows.data(), DType::kFloat32, {2, 2});
  a.out = make_tensor_view(out.data(), DType::kFloat32, {2, 2});
  a.kernel = SpikeGemmKernel::kDense;
  expect_error([&] { spike_accumulate(a); }, {"spike_accumulate", "kernel", "kDense has no CPU kernel"});
  a.kernel = SpikeGemmKernel::kAuto;  // the core's own kernel, whatever the rate
  a.firing_rate = 1.0;
  spike_accumulate(a);
  EXPECT_EQ(out, (std::vector<float>{1, 2, 4, 6}));
}
