// Public entry points of the event-driven spike convolution: validation, weight packing, the CPU kernels.
#include "spikeops/spike_conv.hpp"

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>
#include <vector>

#include "cpu/conv_events_cpu.hpp"
#include "cpu/simd.hpp"
#include "validate.hpp"

namespace spikeops {

namespace {

// Element conversions go through load_row / store_row (int counts) in pieces of this many.
constexpr int64_t kConvertChunk = int64_t(1) << 20;

// All arguments are below 2^31 (checked by the callers), so nothing here overflows.
int64_t output_size(const validate::Checker& check, int64_t in, int64_t kernel, int64_t stride, int64_t padding,
                    int64_t dilation) {
  const int64_t span = dilation * (kernel - 1) + 1;
  if (in + 2 * padding < span) {
    check.fail("kernel", "of " + std::to_string(kernel) + " with dilation " + std::to_string(dilation) +
                             " does not fit the padded input of " + std::to_string(in + 2 * padding));
  }
  return (in + 2 * padding - span) / stride + 1;
}

std::string pair_string(const int64_t* v) { return "(" + std::to_string(v[0]) + ", " + std::to_string(v[1]) + ")"; }

// A 4-D [N, C, H, W] tensor whose strides are those of channels-last memory (torch.channels_last: [H*W*C, 1,
// W*C, C]; the strides of size-1 dimensions do not matter).
bool nhwc_strides(const TensorView& t) {
  if (t.ndim != 4) return false;
  if (t.numel() == 0) return true;
  const int64_t C = t.shape[1], H = t.shape[2], W = t.shape[3];
  const int64_t expected[4] = {H * W * C, 1, W * C, C};
  for (int d = 0; d < 4; ++d) {
    if (t.shape[d] != 1 && t.strides[d] != expected[d]) return false;
  }
  return true;
}

// Spikes stored channels-last: the kernels' channels_last path (a tensor that is both, e.g. with one channel,
// takes the NCHW path).
bool channels_last_layout(const TensorView& t) { return !t.is_contiguous() && nhwc_strides(t); }

// A 4-D tensor in the layout of the spikes: contiguous (NCHW), or channels-last when the spikes are; then the
// other checks of Checker::tensor.
void check_layout(const validate::Checker& check, const TensorView& t, const char* arg, bool channels_last,
                  std::initializer_list<DType> dtypes) {
  if (!channels_last || !t.defined() || t.ndim != 4) {
    if (t.defined() && t.ndim == 4 && !t.is_contiguous() && !channels_last) {
      check.fail(arg, "must be contiguous (NCHW) or, with spikes stored so too, channels-last (shape " +
                          t.shape_string() + ")");
    }
    check.tensor(t, arg, 4, dtypes);
    return;
  }
  if (!nhwc_strides(t)) {
    check.fail(arg, "must be stored channels-last (torch.channels_last) like spikes, got shape " + t.shape_string() +
                        " with other strides");
  }
  TensorView nhwc = t;  // the same memory seen as a contiguous [N, H, W, C], for the other checks
  nhwc.shape[1] = t.shape[2];
  nhwc.shape[2] = t.shape[3];
  nhwc.shape[3] = t.shape[1];
  nhwc.strides[3] = 1;
  nhwc.strides[2] = t.shape[1];
  nhwc.strides[1] = t.shape[1] * t.shape[3];
  nhwc.strides[0] = t.shape[1] * t.shape[3] * t.shape[2];
  check.tensor(nhwc, arg, 4, dtypes);
}

// Checks the parameters and the tensors that every entry point shares; returns the geometry.
cpu::ConvGeometry check_conv(const validate::Checker& check, const TensorView& spikes, const TensorView& weight,
                             const char* weight_arg, const Conv2dParams& p) {
  const bool channels_last = channels_last_layout(spikes);
  check_layout(check, spikes, "spikes", channels_last, {DType::kUInt8});
  if (spikes.device != Device::kCPU) {
    check.fail("spikes", "must be a CPU tensor (the event-driven convolution has no CUDA kernel; "
                         "spikeops.functional.spike_conv2d runs CUDA tensors as a spike GEMM over the unfolded input)");
  }
  check.tensor(weight, weight_arg, 4, {DType::kFloat32, DType::kFloat16, DType::kBFloat16});
  check.same_device(weight, weight_arg, spikes, "spikes");
  // Coordinates and per-sample sizes are kept in 32 bits inside the kernels (and the checks below stay far
  // from int64 overflow).
  const int64_t limit = std::numeric_limits<int32_t>::max();
  for (int i = 0; i < 2; ++i) {
    if (p.stride[i] < 1 || p.stride[i] > limit) {
      check.fail("conv.stride", "must be >= 1 and below 2^31, got " + pair_string(p.stride));
    }
    if (p.dilation[i] < 1 || p.dilation[i] > limit) {
      check.fail("conv.dilation", "must be >= 1 and below 2^31, got " + pair_string(p.dilation));
    }
    if (p.padding[i] < 0 || p.padding[i] > limit) {
      check.fail("conv.padding", "must be >= 0 and below 2^31, got " + pair_string(p.padding));
    }
  }
  const int64_t C = spikes.shape[1], H = spikes.shape[2], W = spikes.shape[3];
  const int64_t O = weight.shape[0];
  if (p.groups < 1 || C % p.groups != 0 || O % p.groups != 0) {
    check.fail("conv.groups", "must be a positive divisor of the input channels (" + std::to_string(C) +
                                  ") and the output channels (" + std::to_string(O) + "), got " +
                                  std::to_string(p.groups));
  }
  if (weight.shape[1] * p.groups != C) {
    check.fail(weight_arg, "must have C / groups = " + std::to_string(C / p.groups) + " input channels for spikes " +
                               spikes.shape_string() + " and groups " + std::to_string(p.groups) + ", got " +
                               weight.shape_string());
  }
  const int64_t kh = weight.shape[2], kw = weight.shape[3];
  if (kh < 1 || kw < 1) check.fail(weight_arg, "must have a kernel of at least 1x1, got " + weight.shape_string());
  if (kh > limit || kw > limit || kh * kw > limit || C > limit / (kh * kw)) {
    check.fail(weight_arg, "is too large for the event-driven convolution (C * kh * kw must be below 2^31), got " +
                               weight.shape_string());
  }
  const int64_t Hp = H + 2 * p.padding[0], Wp = W + 2 * p.padding[1];  // shapes are checked non-negative
  if (H > limit || W > limit || Hp > limit || Wp > limit || Hp * Wp > limit) {
    check.fail("spikes", "is too large for the event-driven convolution (the zero-padded plane, " +
                             std::to_string(Hp) + " x " + std::to_string(Wp) + ", must have fewer than 2^31 pixels)");
  }
  const int64_t OH = output_size(check, H, kh, p.stride[0], p.padding[0], p.dilation[0]);
  const int64_t OW = output_size(check, W, kw, p.stride[1], p.padding[1], p.dilation[1]);
  return cpu::ConvGeometry{C,           H,           W,           O,          OH,           OW,
                           kh,          kw,          p.stride[0], p.stride[1], p.padding[0], p.padding[1],
                           p.dilation[0], p.dilation[1], p.groups, channels_last};
}

// The elements of a float32, float16 or bfloat16 tensor (in memory order) as float32: its own memory, or
// `buffer` filled with the converted values.
const float* as_float32(const TensorView& t, std::vector<float>& buffer) {
  if (t.dtype == DType::kFloat32) return static_cast<const float*>(t.data);
  const int64_t n = t.numel();
  buffer.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; i += kConvertChunk) {
    cpu::load_row(t.dtype, t.data, i, static_cast<int>(std::min(kConvertChunk, n - i)), buffer.data() + i);
  }
  return buffer.data();
}

// t's elements (float16 or bfloat16, in memory order) = values, rounded once.
void store_from_float32(const float* values, const TensorView& t) {
  const int64_t n = t.numel();
  for (int64_t i = 0; i < n; i += kConvertChunk) {
    cpu::store_row(t.dtype, t.data, i, static_cast<int>(std::min(kConvertChunk, n - i)), values + i);
  }
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
  return output_size(check, in, kernel, stride, padding, dilation);
}

void spike_conv2d(const SpikeConv2dArgs& a) {
  validate::Checker check("spike_conv2d");
  const cpu::ConvGeometry g = check_conv(check, a.spikes, a.weight, "weight", a.conv);
  const int64_t N = a.spikes.shape[0];
  if (a.bias.defined()) {
    check.tensor(a.bias, "bias", 1, {DType::kFloat32, DType::kFloat16, DType::kBFloat16});
    check.shape_is(a.bias, "bias", {g.O});
    check.same_device(a.bias, "bias", a.spikes, "spikes");
  }
  check_layout(check, a.out, "out", g.channels_last, {DType::kFloat32, DType::kFloat16, DType::kBFloat16});
  check.shape_is(a.out, "out", {N, g.O, g.OH, g.OW});
  check.same_device(a.out, "out", a.spikes, "spikes");
  if (a.out.numel() == 0) return;

  // The kernel's weight rows (cpu::pack_conv_weight), from the weight as float32.
  std::vector<float> w_float;
  std::vector<float> wt(static_cast<size_t>(g.C * g.kh * g.kw * cpu::conv_padded_channels(g.O / g.groups)));
  cpu::pack_conv_weight(g, as_float32(a.weight, w_float), wt.data());
  std::vector<float> bias;
  if (a.bias.defined()) {
    bias.resize(static_cast<size_t>(g.O));
    cpu::load_row(a.bias.dtype, a.bias.data, 0, static_cast<int>(g.O), bias.data());
  }
  std::vector<float> buffer;  // float32 results for a float16 or bfloat16 out
  float* out = static_cast<float*>(a.out.data);
  if (a.out.dtype != DType::kFloat32) {
    buffer.resize(static_cast<size_t>(a.out.numel()));
    out = buffer.data();
  }
  cpu::conv2d_events_spikes(g, static_cast<const uint8_t*>(a.spikes.data), N, wt.data(),
                            bias.empty() ? nullptr : bias.data(), out);
  if (a.out.dtype != DType::kFloat32) store_from_float32(buffer.data(), a.out);
}

void spike_conv2d_weight_grad(const SpikeConv2dWeightGradArgs& a) {
  validate::Checker check("spike_conv2d_weight_grad");
  const cpu::ConvGeometry g = check_conv(check, a.spikes, a.grad_weight, "grad_weight", a.conv);
  const int64_t N = a.spikes.shape[0];
  check_layout(check, a.grad_out, "grad_out", g.channels_last, {DType::kFloat32, DType::kFloat16, DType::kBFloat16});
  check.shape_is(a.grad_out, "grad_out", {N, g.O, g.OH, g.OW});
  check.same_device(a.grad_out, "grad_out", a.spikes, "spikes");
  const int64_t Cg = g.C / g.groups, Og = g.O / g.groups, ldg = cpu::conv_padded_channels(Og);
  const int64_t taps = g.kh * g.kw;
  if (a.grad_weight.numel() == 0) return;
  std::vector<float> grad_wt(static_cast<size_t>(g.C * taps * ldg), 0.0f);
  if (a.grad_out.numel() > 0) {
    std::vector<float> converted;  // float32 copy of a float16 or bfloat16 grad_out
    cpu::conv2d_events_weight_grad(g, static_cast<const uint8_t*>(a.spikes.data), N, as_float32(a.grad_out, converted),
                                   grad_wt.data());
  }
  // [C * kh * kw, ldg] -> [O, Cg, kh, kw]
  std::vector<float> line(static_cast<size_t>(Cg * taps));
  for (int64_t o = 0; o < g.O; ++o) {
    const int64_t grp = o / Og;
    for (int64_t i = 0; i < Cg * taps; ++i) line[static_cast<size_t>(i)] = grad_wt[static_cast<size_t>((grp * Cg * taps + i) * ldg + o % Og)];
    cpu::store_row(a.grad_weight.dtype, a.grad_weight.data, o * Cg * taps, static_cast<int>(Cg * taps), line.data());
  }
}

}  // namespace spikeops
