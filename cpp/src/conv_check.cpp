#include "conv_check.hpp"

#include <cstdint>
#include <limits>
#include <string>

namespace spikeops {
namespace conv_check {

namespace {

std::string pair_string(const int64_t* v) { return "(" + std::to_string(v[0]) + ", " + std::to_string(v[1]) + ")"; }

// A 4-D [N, C, H, W] tensor whose strides are those of channels-last memory ([H*W*C, 1, W*C, C]; the strides
// of size-1 dimensions do not matter).
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

}  // namespace

int64_t output_size(const validate::Checker& check, int64_t in, int64_t kernel, int64_t stride, int64_t padding,
                    int64_t dilation) {
  const int64_t span = dilation * (kernel - 1) + 1;
  if (in + 2 * padding < span) {
    check.fail("kernel", "of " + std::to_string(kernel) + " with dilation " + std::to_string(dilation) +
                             " does not fit the padded input of " + std::to_string(in + 2 * padding));
  }
  return (in + 2 * padding - span) / stride + 1;
}

bool channels_last_layout(const TensorView& t) { return !t.is_contiguous() && nhwc_strides(t); }

void layout(const validate::Checker& check, const TensorView& t, const char* arg, bool channels_last,
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

ConvGeometry geometry(const validate::Checker& check, const TensorView& input, const char* input_arg,
                      std::initializer_list<DType> input_dtypes, bool allow_channels_last, const TensorView& weight,
                      const char* weight_arg, ConvWeightLayout weight_layout,
                      std::initializer_list<DType> weight_dtypes, int64_t outputs, const Conv2dParams& p) {
  const bool channels_last = allow_channels_last && channels_last_layout(input);
  if (channels_last && input.device == Device::kCUDA) {
    check.fail(input_arg, "must be contiguous (NCHW) on CUDA (channels-last spikes are read on the CPU only), got "
                          "shape " + input.shape_string() + " stored channels-last");
  }
  layout(check, input, input_arg, channels_last, input_dtypes);
  // The weight's [O, C / groups, kh, kw], from either layout.
  int64_t O = 0, Cg = 0, kh = 0, kw = 0;
  if (weight_layout == ConvWeightLayout::kOIHW) {
    check.tensor(weight, weight_arg, 4, weight_dtypes);
    O = weight.shape[0];
    Cg = weight.shape[1];
    kh = weight.shape[2];
    kw = weight.shape[3];
  } else if (weight_layout == ConvWeightLayout::kPacked) {
    check.tensor(weight, weight_arg, 5, {DType::kFloat32});
    O = outputs;
    Cg = weight.shape[3];
    kh = weight.shape[1];
    kw = weight.shape[2];
  } else {
    check.fail("weight_layout", "must be ConvWeightLayout::kOIHW or ConvWeightLayout::kPacked");
  }
  check.same_device(weight, weight_arg, input, input_arg);
  // Coordinates and per-sample sizes are kept in 32 bits inside the CPU kernels (and the checks below stay
  // far from int64 overflow).
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
  const int64_t C = input.shape[1], H = input.shape[2], W = input.shape[3];
  if (p.groups < 1 || C % p.groups != 0 || O % p.groups != 0) {
    check.fail("conv.groups", "must be a positive divisor of the input channels (" + std::to_string(C) +
                                  ") and the output channels (" + std::to_string(O) + "), got " +
                                  std::to_string(p.groups));
  }
  if (Cg * p.groups != C) {
    check.fail(weight_arg, "must have C / groups = " + std::to_string(C / p.groups) + " input channels for " +
                               input_arg + " " + input.shape_string() + " and groups " + std::to_string(p.groups) +
                               ", got " + weight.shape_string());
  }
  if (weight_layout == ConvWeightLayout::kPacked) {
    const int64_t ld = conv2d_packed_channels(O / p.groups);
    if (weight.shape[0] != p.groups || weight.shape[4] != ld) {
      check.fail(weight_arg, "must have the packed shape [groups, kh, kw, C / groups, " + std::to_string(ld) +
                                 "] for " + std::to_string(O) + " outputs in " + std::to_string(p.groups) +
                                 " groups, got " + weight.shape_string());
    }
  }
  if (kh < 1 || kw < 1) check.fail(weight_arg, "must have a kernel of at least 1x1, got " + weight.shape_string());
  if (kh > limit || kw > limit || kh * kw > limit || C > limit / (kh * kw)) {
    check.fail(weight_arg, "is too large for the event-driven convolution (C * kh * kw must be below 2^31), got " +
                               weight.shape_string());
  }
  const int64_t Hp = H + 2 * p.padding[0], Wp = W + 2 * p.padding[1];  // shapes are checked non-negative
  if (H > limit || W > limit || Hp > limit || Wp > limit || Hp * Wp > limit) {
    check.fail(input_arg, std::string("is too large for the event-driven convolution (the zero-padded plane, ") +
                              std::to_string(Hp) + " x " + std::to_string(Wp) + ", must have fewer than 2^31 pixels)");
  }
  const int64_t OH = output_size(check, H, kh, p.stride[0], p.padding[0], p.dilation[0]);
  const int64_t OW = output_size(check, W, kw, p.stride[1], p.padding[1], p.dilation[1]);
  return ConvGeometry{C,  H,           W,           O,           OH,           OW,           kh,           kw,
                      p.stride[0], p.stride[1], p.padding[0], p.padding[1], p.dilation[0], p.dilation[1], p.groups,
                      channels_last};
}

}  // namespace conv_check
}  // namespace spikeops
