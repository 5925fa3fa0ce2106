// The event-driven spike convolution on the CPU (spike_conv.hpp): forward and weight gradient against plain
// loops over the definition (integer values: exact sums), in both memory formats, and the errors.
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "spikeops/detail/numeric.hpp"
#include "spikeops/spikeops.hpp"
#include "test_util.hpp"

using namespace spikeops;

namespace {

// One convolution with its inputs and the plain loops' output and weight gradient.
struct ConvCase {
  int64_t N, C, H, W, O, kh, kw, groups;
  Conv2dParams p;
  int64_t Cg = 0, Og = 0, OH = 0, OW = 0;
  std::vector<uint8_t> s;
  std::vector<float> w, b, dy, y_ref, gw_ref;
};

std::vector<ConvCase> conv_cases() {
  std::vector<ConvCase> cases(4);
  cases[0] = {2, 3, 7, 9, 5, 3, 3, 1, {}};
  cases[0].p.padding[0] = cases[0].p.padding[1] = 1;
  cases[1] = {1, 8, 11, 6, 12, 3, 2, 4, {}};
  cases[1].p.stride[0] = 2;
  cases[1].p.dilation[1] = 2;
  cases[1].p.padding[0] = 1;
  cases[2] = {3, 130, 5, 5, 140, 1, 1, 1, {}};  // several mask words and register chunks
  cases[3] = {2, 6, 10, 10, 4, 5, 5, 2, {}};
  cases[3].p.stride[1] = 3;
  cases[3].p.padding[1] = 2;
  std::mt19937 rng(11);
  for (ConvCase& c : cases) {
    c.p.groups = c.groups;
    c.Cg = c.C / c.groups;
    c.Og = c.O / c.groups;
    c.OH = conv2d_output_size(c.H, c.kh, c.p.stride[0], c.p.padding[0], c.p.dilation[0]);
    c.OW = conv2d_output_size(c.W, c.kw, c.p.stride[1], c.p.padding[1], c.p.dilation[1]);
    const int64_t Cg = c.Cg, Og = c.Og, OH = c.OH, OW = c.OW;
    c.s.resize(c.N * c.C * c.H * c.W);
    for (auto& v : c.s) v = (rng() % 3 == 0) ? 1 : 0;
    c.w.resize(c.O * Cg * c.kh * c.kw);
    c.b.resize(c.O);
    c.dy.resize(c.N * c.O * OH * OW);
    for (auto& v : c.w) v = static_cast<float>(static_cast<int>(rng() % 17) - 8);
    for (auto& v : c.b) v = static_cast<float>(static_cast<int>(rng() % 17) - 8);
    for (auto& v : c.dy) v = static_cast<float>(static_cast<int>(rng() % 9) - 4);
    c.y_ref.resize(c.dy.size());
    c.gw_ref.assign(c.w.size(), 0.0f);
    for (int64_t n = 0; n < c.N; ++n) {
      for (int64_t o = 0; o < c.O; ++o) {
        for (int64_t oy = 0; oy < OH; ++oy) {
          for (int64_t ox = 0; ox < OW; ++ox) {
            const int64_t out_i = ((n * c.O + o) * OH + oy) * OW + ox;
            float sum = c.b[o];
            for (int64_t cl = 0; cl < Cg; ++cl) {
              for (int64_t ky = 0; ky < c.kh; ++ky) {
                for (int64_t kx = 0; kx < c.kw; ++kx) {
                  const int64_t iy = oy * c.p.stride[0] - c.p.padding[0] + ky * c.p.dilation[0];
                  const int64_t ix = ox * c.p.stride[1] - c.p.padding[1] + kx * c.p.dilation[1];
                  if (iy < 0 || iy >= c.H || ix < 0 || ix >= c.W) continue;
                  const int64_t ci = (o / Og) * Cg + cl;
                  if (c.s[((n * c.C + ci) * c.H + iy) * c.W + ix] == 0) continue;
                  const int64_t wi = ((o * Cg + cl) * c.kh + ky) * c.kw + kx;
                  sum += c.w[wi];
                  c.gw_ref[wi] += c.dy[out_i];
                }
              }
            }
            c.y_ref[out_i] = sum;
          }
        }
      }
    }
  }
  return cases;
}

std::string describe(const ConvCase& c) {
  return "N " + std::to_string(c.N) + " C " + std::to_string(c.C) + " H " + std::to_string(c.H) + " W " +
         std::to_string(c.W) + " O " + std::to_string(c.O) + " kernel " + std::to_string(c.kh) + "x" +
         std::to_string(c.kw) + " groups " + std::to_string(c.groups);
}

SpikeConv2dArgs forward_args(ConvCase& c, float* y) {
  SpikeConv2dArgs a;
  a.spikes = make_tensor_view(c.s.data(), DType::kUInt8, {c.N, c.C, c.H, c.W});
  a.weight = make_tensor_view(c.w.data(), DType::kFloat32, {c.O, c.Cg, c.kh, c.kw});
  a.bias = make_tensor_view(c.b.data(), DType::kFloat32, {c.O});
  a.out = make_tensor_view(y, DType::kFloat32, {c.N, c.O, c.OH, c.OW});
  a.conv = c.p;
  return a;
}

SpikeConv2dWeightGradArgs weight_grad_args(ConvCase& c, float* gw) {
  SpikeConv2dWeightGradArgs g;
  g.spikes = make_tensor_view(c.s.data(), DType::kUInt8, {c.N, c.C, c.H, c.W});
  g.grad_out = make_tensor_view(c.dy.data(), DType::kFloat32, {c.N, c.O, c.OH, c.OW});
  g.grad_weight = make_tensor_view(gw, DType::kFloat32, {c.O, c.Cg, c.kh, c.kw});
  g.conv = c.p;
  return g;
}

// An [n, c, h, w] view of memory stored [n, h, w, c] (torch.channels_last).
TensorView nhwc_view(void* data, DType dtype, int64_t n, int64_t c, int64_t h, int64_t w) {
  TensorView v = make_tensor_view(data, dtype, {n, c, h, w});
  v.strides[0] = h * w * c;
  v.strides[1] = 1;
  v.strides[2] = w * c;
  v.strides[3] = c;
  return v;
}

template <typename Vector>
Vector to_nhwc(const Vector& src, int64_t n, int64_t c, int64_t h, int64_t w) {
  Vector dst(src.size());
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < c; ++j) {
      for (int64_t p = 0; p < h * w; ++p) dst[(i * h * w + p) * c + j] = src[(i * c + j) * h * w + p];
    }
  }
  return dst;
}

TEST(SpikeConv2d, ForwardMatchesPlainLoop) {
  for (ConvCase& c : conv_cases()) {
    SCOPED_TRACE(describe(c));
    std::vector<float> y(c.dy.size(), NAN);
    spike_conv2d(forward_args(c, y.data()));
    EXPECT_EQ(y, c.y_ref);
  }
}

TEST(SpikeConv2d, WeightGradMatchesPlainLoop) {
  for (ConvCase& c : conv_cases()) {
    SCOPED_TRACE(describe(c));
    std::vector<float> gw(c.w.size(), NAN);
    spike_conv2d_weight_grad(weight_grad_args(c, gw.data()));
    EXPECT_EQ(gw, c.gw_ref);
  }
}

// Channels-last spikes, output and output gradient: [N, H, W, C] memory, the same sums.
TEST(SpikeConv2d, ChannelsLastMatchesPlainLoop) {
  for (ConvCase& c : conv_cases()) {
    SCOPED_TRACE(describe(c));
    std::vector<float> y(c.dy.size(), NAN), gw(c.w.size(), NAN);
    const SpikeConv2dArgs a = forward_args(c, y.data());
    const SpikeConv2dWeightGradArgs g = weight_grad_args(c, gw.data());
    std::vector<uint8_t> s_cl = to_nhwc(c.s, c.N, c.C, c.H, c.W);
    std::vector<float> dy_cl = to_nhwc(c.dy, c.N, c.O, c.OH, c.OW), y_cl(c.dy.size(), NAN), gw_cl(c.w.size(), NAN);
    SpikeConv2dArgs cl = a;
    cl.spikes = nhwc_view(s_cl.data(), DType::kUInt8, c.N, c.C, c.H, c.W);
    cl.out = nhwc_view(y_cl.data(), DType::kFloat32, c.N, c.O, c.OH, c.OW);
    spike_conv2d(cl);
    EXPECT_EQ(y_cl, to_nhwc(c.y_ref, c.N, c.O, c.OH, c.OW));
    SpikeConv2dWeightGradArgs gcl = g;
    gcl.spikes = cl.spikes;
    gcl.grad_out = nhwc_view(dy_cl.data(), DType::kFloat32, c.N, c.O, c.OH, c.OW);
    gcl.grad_weight = make_tensor_view(gw_cl.data(), DType::kFloat32, {c.O, c.Cg, c.kh, c.kw});
    spike_conv2d_weight_grad(gcl);
    EXPECT_EQ(gw_cl, c.gw_ref);
    if (c.C > 1 && c.H * c.W > 1) {  // (otherwise both layouts are the same memory)
      cl.out = a.out;  // NCHW out for channels-last spikes: refused
      EXPECT_ERROR(spike_conv2d(cl), "out must be stored channels-last (torch.channels_last) like spikes");
    }
  }
}

// bfloat16 output: the float32 sums rounded once.
TEST(SpikeConv2d, BFloat16OutputIsSumRoundedOnce) {
  for (ConvCase& c : conv_cases()) {
    SCOPED_TRACE(describe(c));
    std::vector<uint16_t> y16(c.dy.size());
    SpikeConv2dArgs a = forward_args(c, nullptr);
    a.out = make_tensor_view(y16.data(), DType::kBFloat16, {c.N, c.O, c.OH, c.OW});
    spike_conv2d(a);
    bool same = true;
    for (size_t i = 0; i < y16.size(); ++i) same = same && y16[i] == detail::float_to_bfloat16(c.y_ref[i]);
    EXPECT_TRUE(same);
  }
}

// A valid [2, 3, 5, 5] * [4, 3, 3, 3] call on the CPU, which each error test spoils in one argument.
struct ConvCall {
  uint8_t s[2 * 3 * 5 * 5] = {};
  float w[4 * 3 * 3 * 3] = {}, o[2 * 4 * 3 * 3] = {};
  SpikeConv2dArgs a;
  ConvCall() {
    a.spikes = make_tensor_view(s, DType::kUInt8, {2, 3, 5, 5});
    a.weight = make_tensor_view(w, DType::kFloat32, {4, 3, 3, 3});
    a.out = make_tensor_view(o, DType::kFloat32, {2, 4, 3, 3});
  }
  ConvCall(const ConvCall&) = delete;
  ConvCall& operator=(const ConvCall&) = delete;
};

TEST(SpikeConv2d, RejectsBadShapes) {
  ConvCall call;
  const SpikeConv2dArgs& a = call.a;
  spike_conv2d(a);  // the valid call
  SpikeConv2dArgs bad = a;
  bad.out = make_tensor_view(call.o, DType::kFloat32, {2, 4, 3, 2});
  EXPECT_ERROR(spike_conv2d(bad), "out must have shape [2, 4, 3, 3]");
  bad = a;
  bad.weight = make_tensor_view(call.w, DType::kFloat32, {4, 2, 3, 3});
  EXPECT_ERROR(spike_conv2d(bad), "weight must have C / groups = 3 input channels");
  bad = a;
  bad.weight = make_tensor_view(call.w, DType::kFloat32, {4, 3, 7, 1});
  EXPECT_ERROR(spike_conv2d(bad), "spike_conv2d: kernel of 7 with dilation 1 does not fit the padded input of 5");
  bad = a;
  bad.bias = make_tensor_view(call.w, DType::kFloat32, {3});
  EXPECT_ERROR(spike_conv2d(bad), "bias must have shape [4]");
}

TEST(SpikeConv2d, RejectsBadConvParams) {
  ConvCall call;
  SpikeConv2dArgs bad = call.a;
  bad.conv.groups = 2;
  EXPECT_ERROR(spike_conv2d(bad), "conv.groups must be a positive divisor of the input channels (3)");
  bad = call.a;
  bad.conv.dilation[1] = 0;
  EXPECT_ERROR(spike_conv2d(bad), "conv.dilation must be >= 1 and below 2^31, got (1, 0)");
  bad.conv.dilation[1] = int64_t(1) << 62;  // dilation * (kernel - 1) would overflow
  EXPECT_ERROR(spike_conv2d(bad), "conv.dilation must be >= 1 and below 2^31");
}

TEST(SpikeConv2d, RejectsSizesThatOverflow) {
  ConvCall call;
  SpikeConv2dArgs bad = call.a;
  bad.conv.padding[0] = bad.conv.padding[1] = int64_t(1) << 29;  // a padded plane of 2^60 pixels
  bad.conv.stride[0] = bad.conv.stride[1] = int64_t(1) << 30;
  EXPECT_ERROR(spike_conv2d(bad), "spikes is too large for the event-driven convolution (the zero-padded plane");
  EXPECT_ERROR(conv2d_output_size(4, 3, 1, 0, int64_t(1) << 62), "conv2d_output_size: arguments need");
}

TEST(SpikeConv2d, ChannelsLastSpikesAreRefusedOnCuda) {
  ConvCall call;
  SpikeConv2dArgs bad = call.a;
  bad.spikes.device = bad.weight.device = bad.out.device = Device::kCUDA;
  bad.spikes.strides[1] = 1;  // channels-last: CPU only
  bad.spikes.strides[2] = 15;
  bad.spikes.strides[3] = 3;
  EXPECT_ERROR(spike_conv2d(bad), "spikes must be contiguous (NCHW) on CUDA");
}

TEST(SpikeConv2d, WeightGradRejectsBadDtype) {
  ConvCall call;
  SpikeConv2dWeightGradArgs g;
  g.spikes = call.a.spikes;
  g.grad_out = call.a.out;
  g.grad_weight = make_tensor_view(call.w, DType::kUInt8, {4, 3, 3, 3});
  EXPECT_ERROR(spike_conv2d_weight_grad(g), "grad_weight must have dtype float32/float16/bfloat16, got uint8");
}

// Empty batch: nothing to do, no error.
TEST(SpikeConv2d, EmptyBatchIsValid) {
  ConvCall call;
  SpikeConv2dArgs a = call.a;
  a.spikes = make_tensor_view(call.s, DType::kUInt8, {0, 3, 5, 5});
  a.out = make_tensor_view(call.o, DType::kFloat32, {0, 4, 3, 3});
  EXPECT_NO_THROW(spike_conv2d(a));
}

}  // namespace
