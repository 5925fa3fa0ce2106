// Public entry points of the spike convolution and the dense convolution of values: validation, weight
// packing, then the CPU or CUDA back end.
#include "spikeops/spike_conv.hpp"

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "backend.hpp"
#include "conv_check.hpp"
#include "dense_semantics.hpp"
#include "cpu/conv_events_cpu.hpp"
#include "spikeops/conv2d.hpp"
#include "validate.hpp"

namespace spikeops {

namespace {

constexpr std::initializer_list<DType> kFloatTypes = {DType::kFloat32, DType::kFloat16, DType::kBFloat16};

// A kPacked weight's O comes from the output: checks that it is a 4-D tensor first.
int64_t packed_outputs(const validate::Checker& check, ConvWeightLayout layout, const TensorView& out,
                       const char* out_arg) {
  if (layout != ConvWeightLayout::kPacked) return -1;
  if (!out.defined() || out.ndim != 4) check.tensor(out, out_arg, 4, kFloatTypes);  // fails with the reason
  return out.shape[1];
}

}  // namespace

int64_t conv2d_output_size(int64_t in, int64_t kernel, int64_t stride, int64_t padding, int64_t dilation) {
  validate::Checker check("conv2d_output_size");
  const int64_t limit = std::numeric_limits<int32_t>::max();
  if (in < 0 || kernel < 1 || stride < 1 || padding < 0 || dilation < 1 || in > limit || kernel > limit ||
      stride > limit || padding > limit || dilation > limit) {
    check.fail("arguments", "need 0 <= in, 1 <= kernel, stride, dilation, 0 <= padding, all below 2^31, got " +
                                std::to_string(in) + ", " + std::to_string(kernel) + ", " + std::to_string(stride) +
                                ", " + std::to_string(padding) + ", " + std::to_string(dilation));
  }
  return conv_check::output_size(check, in, kernel, stride, padding, dilation);
}

void pack_conv2d_weight(const TensorView& weight, const TensorView& packed, int64_t groups) {
  validate::Checker check("pack_conv2d_weight");
  check.tensor(weight, "weight", 4, kFloatTypes);
  if (weight.device != Device::kCPU) check.fail("weight", "must be on the CPU");
  const int64_t O = weight.shape[0], Cg = weight.shape[1], kh = weight.shape[2], kw = weight.shape[3];
  if (groups < 1 || O % groups != 0) {
    check.fail("groups", "must be a positive divisor of the output channels (" + std::to_string(O) + "), got " +
                             std::to_string(groups));
  }
  check.tensor(packed, "packed", 5, {DType::kFloat32});
  check.shape_is(packed, "packed", {groups, kh, kw, Cg, conv2d_packed_channels(O / groups)});
  check.same_device(packed, "packed", weight, "weight");
  if (packed.numel() == 0) return;
  ConvGeometry g{};
  g.C = Cg * groups;
  g.O = O;
  g.kh = kh;
  g.kw = kw;
  g.groups = groups;
  std::vector<float> converted;
  cpu::pack_conv_weight(g, cpu::as_float32(weight, converted), static_cast<float*>(packed.data));
}

void spike_conv2d(const SpikeConv2dArgs& a) {
  validate::Checker check("spike_conv2d");
  const ConvGeometry g =
      conv_check::geometry(check, a.spikes, "spikes", {DType::kUInt8}, true, a.weight, "weight", a.weight_layout,
                           kFloatTypes, packed_outputs(check, a.weight_layout, a.out, "out"), a.conv);
  const int64_t N = a.spikes.shape[0];
  if (a.bias.defined()) {
    check.tensor(a.bias, "bias", 1, kFloatTypes);
    check.shape_is(a.bias, "bias", {g.O});
    check.same_device(a.bias, "bias", a.spikes, "spikes");
  }
  conv_check::layout(check, a.out, "out", g.channels_last, kFloatTypes);
  check.shape_is(a.out, "out", {N, g.O, g.OH, g.OW});
  check.same_device(a.out, "out", a.spikes, "spikes");
  if (a.synaptic_ops != nullptr) *a.synaptic_ops = 0;
  if (a.out.numel() == 0) return;
  int64_t count = 0;
  if (a.spikes.device == Device::kCUDA) {
    count = cuda::spike_conv2d(g, a);
    cuda::dense_nonfinite_channels(g, a);
  } else {
    check_spike_bytes(check, a.spikes);
    count = cpu::spike_conv2d(g, a);
    cpu::dense_nonfinite_channels(g, a);
  }
  if (a.synaptic_ops != nullptr) *a.synaptic_ops = count;
}

void spike_conv2d_weight_grad(const SpikeConv2dWeightGradArgs& a) {
  validate::Checker check("spike_conv2d_weight_grad");
  const ConvGeometry g = conv_check::geometry(check, a.spikes, "spikes", {DType::kUInt8}, true, a.grad_weight,
                                              "grad_weight", ConvWeightLayout::kOIHW, kFloatTypes, -1, a.conv);
  const int64_t N = a.spikes.shape[0];
  conv_check::layout(check, a.grad_out, "grad_out", g.channels_last, kFloatTypes);
  check.shape_is(a.grad_out, "grad_out", {N, g.O, g.OH, g.OW});
  check.same_device(a.grad_out, "grad_out", a.spikes, "spikes");
  if (a.grad_weight.numel() == 0) return;
  if (a.spikes.device == Device::kCUDA) {
    cuda::spike_conv2d_weight_grad(g, a);
    cuda::dense_nonfinite_channels(g, a);
  } else {
    check_spike_bytes(check, a.spikes);
    cpu::spike_conv2d_weight_grad(g, a);
    cpu::dense_nonfinite_channels(g, a);
  }
}

void conv2d(const Conv2dArgs& a) {
  validate::Checker check("conv2d");
  const ConvGeometry g =
      conv_check::geometry(check, a.input, "input", {DType::kFloat32}, false, a.weight, "weight", a.weight_layout,
                           {DType::kFloat32}, packed_outputs(check, a.weight_layout, a.out, "out"), a.conv);
  const int64_t N = a.input.shape[0];
  if (a.bias.defined()) {
    check.tensor(a.bias, "bias", 1, {DType::kFloat32});
    check.shape_is(a.bias, "bias", {g.O});
    check.same_device(a.bias, "bias", a.input, "input");
  }
  check.tensor(a.out, "out", 4, {DType::kFloat32});
  check.shape_is(a.out, "out", {N, g.O, g.OH, g.OW});
  check.same_device(a.out, "out", a.input, "input");
  if (a.out.numel() == 0) return;
  if (a.input.device == Device::kCUDA) {
    cuda::conv2d(g, a);
  } else {
    cpu::conv2d(g, a);
  }
}

}  // namespace spikeops
