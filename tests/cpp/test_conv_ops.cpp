// conv2d (values), spike_conv2d with a packed weight and its synaptic-operation count, and
// pack_conv2d_weight, on the CPU against the plain-loop references; their argument errors.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "op_reference.hpp"
#include "spikeops/spikeops.hpp"
#include "test_util.hpp"

using namespace spikeops;
using op_reference::ConvShape;

namespace {

ConvShape shape(int64_t N, int64_t C, int64_t H, int64_t W, int64_t O, int64_t kh, int64_t kw, int64_t stride,
                int64_t padding, int64_t dilation, int64_t groups) {
  ConvShape s{N, C, H, W, O, kh, kw, {}};
  s.conv.stride[0] = stride;
  s.conv.stride[1] = stride == 1 ? 1 : stride - 1;
  s.conv.padding[0] = padding;
  s.conv.padding[1] = padding;
  s.conv.dilation[0] = dilation;
  s.conv.dilation[1] = 1;
  s.conv.groups = groups;
  return s;
}

const ConvShape kShapes[] = {
    shape(2, 3, 8, 8, 5, 3, 3, 1, 1, 1, 1),    // narrow: the CPU's direct kernel for values
    shape(1, 4, 9, 7, 40, 3, 2, 2, 1, 1, 1),   // more outputs than one vector, stride 2 x 1
    shape(2, 6, 8, 9, 4, 3, 3, 1, 2, 2, 2),    // groups, dilation
    shape(1, 3, 5, 5, 3, 1, 1, 3, 0, 1, 3),    // depthwise 1x1, stride 3 x 2
    shape(0, 2, 4, 4, 3, 3, 3, 1, 0, 1, 1),    // empty batch
};

std::vector<float> packed_weight(const ConvShape& s, std::vector<float>& w) {
  const int64_t Cg = s.C / s.conv.groups, ld = conv2d_packed_channels(s.O / s.conv.groups);
  std::vector<float> packed(static_cast<size_t>(s.conv.groups * s.kh * s.kw * Cg * ld), -1.0f);
  pack_conv2d_weight(make_tensor_view(w.data(), DType::kFloat32, {s.O, Cg, s.kh, s.kw}),
                     make_tensor_view(packed.data(), DType::kFloat32, {s.conv.groups, s.kh, s.kw, Cg, ld}),
                     s.conv.groups);
  return packed;
}

class ConvOps : public ::testing::TestWithParam<int> {};

TEST_P(ConvOps, ValuesMatchReferenceInBothLayouts) {
  const ConvShape s = kShapes[GetParam()];
  std::mt19937 rng(23 + GetParam());
  std::normal_distribution<float> d;
  const int64_t Cg = s.C / s.conv.groups;
  std::vector<float> x(static_cast<size_t>(s.N * s.C * s.H * s.W)), w(static_cast<size_t>(s.O * Cg * s.kh * s.kw)), bias(static_cast<size_t>(s.O));
  for (float& v : x) v = rng() % 4 == 0 ? 0.0f : d(rng);
  for (float& v : w) v = d(rng);
  for (float& v : bias) v = d(rng);
  std::vector<float> packed = packed_weight(s, w);
  const std::vector<float> expected = op_reference::conv2d(s, x, w, bias);
  for (ConvWeightLayout layout : {ConvWeightLayout::kOIHW, ConvWeightLayout::kPacked}) {
    std::vector<float> out(expected.size(), 99.0f);
    Conv2dArgs a;
    a.input = make_tensor_view(x.data(), DType::kFloat32, {s.N, s.C, s.H, s.W});
    a.weight_layout = layout;
    a.weight = layout == ConvWeightLayout::kPacked
                   ? make_tensor_view(packed.data(), DType::kFloat32,
                                      {s.conv.groups, s.kh, s.kw, Cg, conv2d_packed_channels(s.O / s.conv.groups)})
                   : make_tensor_view(w.data(), DType::kFloat32, {s.O, Cg, s.kh, s.kw});
    a.bias = make_tensor_view(bias.data(), DType::kFloat32, {s.O});
    a.out = make_tensor_view(out.data(), DType::kFloat32, {s.N, s.O, s.OH(), s.OW()});
    a.conv = s.conv;
    conv2d(a);
    for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i] + 0.0f, expected[i] + 0.0f) << i;  // sign of zero aside
  }
}

TEST_P(ConvOps, SpikesWithPackedWeightAndCount) {
  const ConvShape s = kShapes[GetParam()];
  std::mt19937 rng(29 + GetParam());
  const int64_t Cg = s.C / s.conv.groups;
  const std::vector<uint8_t> x = op_reference::spikes(static_cast<size_t>(s.N * s.C * s.H * s.W), 0.3, rng);
  std::vector<float> w = op_reference::integers(static_cast<size_t>(s.O * Cg * s.kh * s.kw), 8, rng);
  std::vector<float> bias = op_reference::integers(static_cast<size_t>(s.O), 8, rng);
  std::vector<float> packed = packed_weight(s, w);
  const std::vector<float> xf = op_reference::as_values(x);
  const std::vector<float> expected = op_reference::conv2d(s, xf, w, bias);
  for (ConvWeightLayout layout : {ConvWeightLayout::kOIHW, ConvWeightLayout::kPacked}) {
    std::vector<float> out(expected.size(), 99.0f);
    int64_t ops = -1;
    SpikeConv2dArgs a;
    a.spikes = make_tensor_view(const_cast<uint8_t*>(x.data()), DType::kUInt8, {s.N, s.C, s.H, s.W});
    a.weight_layout = layout;
    a.weight = layout == ConvWeightLayout::kPacked
                   ? make_tensor_view(packed.data(), DType::kFloat32,
                                      {s.conv.groups, s.kh, s.kw, Cg, conv2d_packed_channels(s.O / s.conv.groups)})
                   : make_tensor_view(w.data(), DType::kFloat32, {s.O, Cg, s.kh, s.kw});
    a.bias = make_tensor_view(bias.data(), DType::kFloat32, {s.O});
    a.out = make_tensor_view(out.data(), DType::kFloat32, {s.N, s.O, s.OH(), s.OW()});
    a.conv = s.conv;
    a.synaptic_ops = &ops;
    spike_conv2d(a);
    EXPECT_EQ(out, expected);
    EXPECT_EQ(ops, op_reference::conv2d_synaptic_ops(s, xf));
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, ConvOps, ::testing::Range(0, int(sizeof(kShapes) / sizeof(kShapes[0]))));

TEST(ConvOpsErrors, NameTheArgument) {
  float x[2 * 4 * 5 * 5] = {}, w[6 * 2 * 3 * 3] = {}, o[2 * 6 * 3 * 3] = {}, packed[2 * 3 * 3 * 2 * 16] = {};
  Conv2dArgs a;
  a.input = make_tensor_view(x, DType::kFloat32, {2, 4, 5, 5});
  a.weight = make_tensor_view(w, DType::kFloat32, {6, 2, 3, 3});
  a.out = make_tensor_view(o, DType::kFloat32, {2, 6, 3, 3});
  a.conv.groups = 2;
  conv2d(a);  // the valid call
  Conv2dArgs bad = a;
  bad.weight_layout = ConvWeightLayout::kPacked;
  EXPECT_ERROR(conv2d(bad), "conv2d: weight must be a 5-D tensor");
  bad.weight = make_tensor_view(packed, DType::kFloat32, {2, 3, 3, 2, 16});
  conv2d(bad);  // the packed layout of the same weight
  bad.weight = make_tensor_view(packed, DType::kFloat32, {1, 3, 3, 2, 16});
  EXPECT_ERROR(conv2d(bad), "conv2d: weight must have the packed shape [groups, kh, kw, C / groups, 16]");
  bad = a;
  bad.input.dtype = DType::kUInt8;
  EXPECT_ERROR(conv2d(bad), "conv2d: input must have dtype float32, got uint8");
  bad = a;
  bad.weight.dtype = DType::kFloat16;
  EXPECT_ERROR(conv2d(bad), "conv2d: weight must have dtype float32, got float16");
  bad = a;
  bad.out = make_tensor_view(o, DType::kFloat32, {2, 6, 3, 2});
  EXPECT_ERROR(conv2d(bad), "conv2d: out must have shape [2, 6, 3, 3]");
  bad = a;
  bad.conv.groups = 3;
  EXPECT_ERROR(conv2d(bad), "conv2d: conv.groups must be a positive divisor");
  bad = a;
  bad.weight_layout = static_cast<ConvWeightLayout>(7);
  EXPECT_ERROR(conv2d(bad), "conv2d: weight_layout must be");

  const TensorView oihw = make_tensor_view(w, DType::kFloat32, {6, 2, 3, 3});
  EXPECT_ERROR(pack_conv2d_weight(oihw, make_tensor_view(packed, DType::kFloat32, {2, 3, 3, 2, 8}), 2),
               "pack_conv2d_weight: packed must have shape [2, 3, 3, 2, 16]");
  EXPECT_ERROR(pack_conv2d_weight(oihw, make_tensor_view(packed, DType::kFloat32, {4, 3, 3, 2, 16}), 4),
               "pack_conv2d_weight: groups must be a positive divisor of the output channels (6), got 4");

  SpikeConv2dArgs s;
  uint8_t spikes[2 * 4 * 5 * 5] = {};
  s.spikes = make_tensor_view(spikes, DType::kUInt8, {2, 4, 5, 5});
  s.weight = make_tensor_view(packed, DType::kFloat32, {2, 3, 3, 2, 16});
  s.weight_layout = ConvWeightLayout::kPacked;
  s.out = make_tensor_view(o, DType::kFloat32, {2, 6, 3});
  s.conv.groups = 2;
  EXPECT_ERROR(spike_conv2d(s), "spike_conv2d: out must be a 4-D tensor");
  s.out = make_tensor_view(o, DType::kFloat32, {2, 6, 3, 3});
  int64_t ops = -1;
  s.synaptic_ops = &ops;
  spike_conv2d(s);
  EXPECT_EQ(ops, 0);  // no spikes
}

}  // namespace
