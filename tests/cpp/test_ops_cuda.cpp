// The public ops on CUDA tensors against the same ops on the CPU (identical results) and the plain-loop
// references: spike_conv2d (every parameter, both weight layouts, 16-bit dtypes, the weight gradient, the
// synaptic-operation count), conv2d on values, pool2d, poisson_encode, linear and count_nonzero. On a GPU in a
// CUDA build (skipped without one), on the CPU in a cudasim build.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "op_reference.hpp"
#include "spikeops/detail/numeric.hpp"
#include "spikeops/spikeops.hpp"
#include "cuda_test_util.hpp"
#include "test_util.hpp"

using namespace spikeops;
using cuda_test::DeviceArray;
using cuda_test::on_device;
using op_reference::ConvShape;
using op_reference::PoolShape;

namespace {

class OnCuda : public ::testing::Test {
 protected:
  void SetUp() override {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) GTEST_SKIP() << "no CUDA device";
    ASSERT_EQ(cudaStreamCreate(&stream_), cudaSuccess);
  }
  void TearDown() override {
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }
  cudaStream_t stream_ = nullptr;
};

ConvShape shape(int64_t N, int64_t C, int64_t H, int64_t W, int64_t O, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t groups) {
  ConvShape s{N, C, H, W, O, kh, kw, {}};
  s.conv.stride[0] = sh;
  s.conv.stride[1] = sw;
  s.conv.padding[0] = ph;
  s.conv.padding[1] = pw;
  s.conv.dilation[0] = dh;
  s.conv.dilation[1] = dw;
  s.conv.groups = groups;
  return s;
}

const ConvShape kConvShapes[] = {
    shape(2, 3, 7, 6, 5, 3, 3, 1, 1, 1, 1, 1, 1, 1),
    shape(1, 4, 9, 8, 6, 3, 2, 2, 1, 0, 1, 1, 2, 2),   // stride, padding, dilation, groups
    shape(2, 6, 6, 6, 6, 3, 3, 1, 2, 2, 1, 2, 1, 6),   // depthwise
    shape(1, 2, 4, 5, 20, 1, 1, 1, 1, 0, 0, 1, 1, 1),  // 1x1, more outputs than one padded vector
    shape(0, 3, 5, 5, 4, 3, 3, 1, 1, 0, 0, 1, 1, 1),   // empty batch
    shape(2, 2, 3, 3, 3, 3, 3, 2, 2, 0, 0, 1, 1, 1),   // one output pixel
};

class SpikeConvCuda : public OnCuda, public ::testing::WithParamInterface<int> {};

TEST_P(SpikeConvCuda, ForwardMatchesCpuAndReference) {
  const ConvShape s = kConvShapes[GetParam()];
  std::mt19937 rng(41 + GetParam());
  const int64_t Cg = s.C / s.conv.groups, ld = conv2d_packed_channels(s.O / s.conv.groups);
  const std::vector<uint8_t> x = op_reference::spikes(static_cast<size_t>(s.N * s.C * s.H * s.W), 0.3, rng);
  std::vector<float> w = op_reference::integers(static_cast<size_t>(s.O * Cg * s.kh * s.kw), 8, rng);
  std::vector<float> bias = op_reference::integers(static_cast<size_t>(s.O), 8, rng);
  std::vector<float> packed(static_cast<size_t>(s.conv.groups * s.kh * s.kw * Cg * ld));
  const TensorView w_view = make_tensor_view(w.data(), DType::kFloat32, {s.O, Cg, s.kh, s.kw});
  const TensorView packed_view =
      make_tensor_view(packed.data(), DType::kFloat32, {s.conv.groups, s.kh, s.kw, Cg, ld});
  pack_conv2d_weight(w_view, packed_view, s.conv.groups);
  const std::vector<float> xf = op_reference::as_values(x);
  const std::vector<float> expected = op_reference::conv2d(s, xf, w, bias);
  const int64_t expected_ops = op_reference::conv2d_synaptic_ops(s, xf);

  DeviceArray<uint8_t> dx(x);
  DeviceArray<float> dw(w), dpacked(packed), dbias(bias);
  for (ConvWeightLayout layout : {ConvWeightLayout::kOIHW, ConvWeightLayout::kPacked}) {
    for (bool count : {false, true}) {
      DeviceArray<float> dout(std::vector<float>(expected.size(), 99.0f));
      SpikeConv2dArgs a;
      a.spikes = on_device(make_tensor_view(nullptr, DType::kUInt8, {s.N, s.C, s.H, s.W}), dx.data());
      a.weight_layout = layout;
      a.weight = layout == ConvWeightLayout::kPacked ? on_device(packed_view, dpacked.data()) : on_device(w_view, dw.data());
      a.bias = on_device(make_tensor_view(nullptr, DType::kFloat32, {s.O}), dbias.data());
      a.out = on_device(make_tensor_view(nullptr, DType::kFloat32, {s.N, s.O, s.OH(), s.OW()}), dout.data());
      a.conv = s.conv;
      int64_t ops = -1;
      if (count) a.synaptic_ops = &ops;
      a.stream = stream_;
      spike_conv2d(a);
      ASSERT_EQ(cudaStreamSynchronize(stream_), cudaSuccess);
      EXPECT_EQ(dout.download(), expected);
      if (count) EXPECT_EQ(ops, expected_ops);
    }
  }

  // The CPU op gives the same outputs and count.
  std::vector<float> cpu_out(expected.size());
  int64_t cpu_ops = -1;
  SpikeConv2dArgs c;
  c.spikes = make_tensor_view(const_cast<uint8_t*>(x.data()), DType::kUInt8, {s.N, s.C, s.H, s.W});
  c.weight = w_view;
  c.bias = make_tensor_view(bias.data(), DType::kFloat32, {s.O});
  c.out = make_tensor_view(cpu_out.data(), DType::kFloat32, {s.N, s.O, s.OH(), s.OW()});
  c.conv = s.conv;
  c.synaptic_ops = &cpu_ops;
  spike_conv2d(c);
  EXPECT_EQ(cpu_out, expected);
  EXPECT_EQ(cpu_ops, expected_ops);
}

TEST_P(SpikeConvCuda, SixteenBitDtypesMatchCpu) {
  const ConvShape s = kConvShapes[GetParam()];
  std::mt19937 rng(43 + GetParam());
  const int64_t Cg = s.C / s.conv.groups;
  const std::vector<uint8_t> x = op_reference::spikes(static_cast<size_t>(s.N * s.C * s.H * s.W), 0.4, rng);
  const std::vector<float> wf = op_reference::integers(static_cast<size_t>(s.O * Cg * s.kh * s.kw), 8, rng);
  const std::vector<float> bf = op_reference::integers(static_cast<size_t>(s.O), 8, rng);
  for (DType dtype : {DType::kFloat16, DType::kBFloat16}) {
    auto narrow = [dtype](const std::vector<float>& v) {
      std::vector<uint16_t> out(v.size());
      for (size_t i = 0; i < v.size(); ++i) {
        out[i] = dtype == DType::kFloat16 ? detail::float_to_half(v[i]) : detail::float_to_bfloat16(v[i]);
      }
      return out;
    };
    std::vector<uint16_t> w = narrow(wf), bias = narrow(bf);
    const int64_t n_out = s.N * s.O * s.OH() * s.OW();
    std::vector<uint16_t> cpu_out(static_cast<size_t>(n_out));
    SpikeConv2dArgs c;
    c.spikes = make_tensor_view(const_cast<uint8_t*>(x.data()), DType::kUInt8, {s.N, s.C, s.H, s.W});
    c.weight = make_tensor_view(w.data(), dtype, {s.O, Cg, s.kh, s.kw});
    c.bias = make_tensor_view(bias.data(), dtype, {s.O});
    c.out = make_tensor_view(cpu_out.data(), dtype, {s.N, s.O, s.OH(), s.OW()});
    c.conv = s.conv;
    spike_conv2d(c);
    DeviceArray<uint8_t> dx(x);
    DeviceArray<uint16_t> dw(w), dbias(bias), dout(std::vector<uint16_t>(static_cast<size_t>(n_out), 0xFFFF));
    SpikeConv2dArgs a = c;
    a.spikes = on_device(c.spikes, dx.data());
    a.weight = on_device(c.weight, dw.data());
    a.bias = on_device(c.bias, dbias.data());
    a.out = on_device(c.out, dout.data());
    a.stream = stream_;
    spike_conv2d(a);
    ASSERT_EQ(cudaStreamSynchronize(stream_), cudaSuccess);
    EXPECT_EQ(dout.download(), cpu_out) << dtype_name(dtype);
  }
}

TEST_P(SpikeConvCuda, WeightGradMatchesCpuAndReference) {
  const ConvShape s = kConvShapes[GetParam()];
  std::mt19937 rng(47 + GetParam());
  const int64_t Cg = s.C / s.conv.groups, n_w = s.O * Cg * s.kh * s.kw;
  const std::vector<uint8_t> x = op_reference::spikes(static_cast<size_t>(s.N * s.C * s.H * s.W), 0.3, rng);
  const std::vector<float> dy = op_reference::integers(static_cast<size_t>(s.N * s.O * s.OH() * s.OW()), 8, rng);
  const std::vector<float> expected = op_reference::conv2d_weight_grad(s, op_reference::as_values(x), dy);
  for (DType dtype : {DType::kFloat32, DType::kBFloat16}) {
    // float32 gradients as float32; bfloat16: grad_out and grad_weight in bfloat16 (integers up to 256 are exact).
    std::vector<uint8_t> dy_bytes(dy.size() * dtype_size(dtype)), cpu_grad(static_cast<size_t>(n_w) * dtype_size(dtype));
    for (size_t i = 0; i < dy.size(); ++i) {
      if (dtype == DType::kFloat32) {
        std::memcpy(dy_bytes.data() + 4 * i, &dy[i], 4);
      } else {
        const uint16_t b = detail::float_to_bfloat16(dy[i]);
        std::memcpy(dy_bytes.data() + 2 * i, &b, 2);
      }
    }
    SpikeConv2dWeightGradArgs c;
    c.spikes = make_tensor_view(const_cast<uint8_t*>(x.data()), DType::kUInt8, {s.N, s.C, s.H, s.W});
    c.grad_out = make_tensor_view(dy_bytes.data(), dtype, {s.N, s.O, s.OH(), s.OW()});
    c.grad_weight = make_tensor_view(cpu_grad.data(), dtype, {s.O, Cg, s.kh, s.kw});
    c.conv = s.conv;
    spike_conv2d_weight_grad(c);
    DeviceArray<uint8_t> dx(x), ddy(dy_bytes), dgrad(std::vector<uint8_t>(cpu_grad.size(), 0xAB));
    SpikeConv2dWeightGradArgs a = c;
    a.spikes = on_device(c.spikes, dx.data());
    a.grad_out = on_device(c.grad_out, ddy.data());
    a.grad_weight = on_device(c.grad_weight, dgrad.data());
    a.stream = stream_;
    spike_conv2d_weight_grad(a);
    ASSERT_EQ(cudaStreamSynchronize(stream_), cudaSuccess);
    EXPECT_EQ(dgrad.download(), cpu_grad) << dtype_name(dtype);
    if (dtype == DType::kFloat32) {
      std::vector<float> got(static_cast<size_t>(n_w));
      std::memcpy(got.data(), cpu_grad.data(), cpu_grad.size());
      EXPECT_EQ(got, expected);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, SpikeConvCuda,
                         ::testing::Range(0, int(sizeof(kConvShapes) / sizeof(kConvShapes[0]))));

TEST_F(OnCuda, SpikeConvRejectsChannelsLast) {
  SpikeConv2dArgs a;
  a.spikes = make_tensor_view(reinterpret_cast<void*>(64), DType::kUInt8, {2, 3, 4, 4}, Device::kCUDA);
  a.spikes.strides[1] = 1;
  a.spikes.strides[2] = 12;
  a.spikes.strides[3] = 3;
  a.weight = make_tensor_view(reinterpret_cast<void*>(64), DType::kFloat32, {4, 3, 3, 3}, Device::kCUDA);
  a.out = make_tensor_view(reinterpret_cast<void*>(64), DType::kFloat32, {2, 4, 2, 2}, Device::kCUDA);
  EXPECT_ERROR(spike_conv2d(a), "spike_conv2d: spikes must be contiguous (NCHW) on CUDA");
}

TEST_P(SpikeConvCuda, ValuesConvMatchesCpuBitForBit) {
  const ConvShape s = kConvShapes[GetParam()];
  std::mt19937 rng(53 + GetParam());
  std::normal_distribution<float> d;
  const int64_t Cg = s.C / s.conv.groups, ld = conv2d_packed_channels(s.O / s.conv.groups);
  std::vector<float> x(static_cast<size_t>(s.N * s.C * s.H * s.W)), w(static_cast<size_t>(s.O * Cg * s.kh * s.kw)), bias(static_cast<size_t>(s.O));
  for (float& v : x) v = rng() % 3 == 0 ? 0.0f : d(rng);
  for (float& v : w) v = d(rng);
  for (float& v : bias) v = d(rng);
  std::vector<float> packed(static_cast<size_t>(s.conv.groups * s.kh * s.kw * Cg * ld));
  const TensorView packed_view =
      make_tensor_view(packed.data(), DType::kFloat32, {s.conv.groups, s.kh, s.kw, Cg, ld});
  pack_conv2d_weight(make_tensor_view(w.data(), DType::kFloat32, {s.O, Cg, s.kh, s.kw}), packed_view, s.conv.groups);
  std::vector<float> cpu_out(static_cast<size_t>(s.N * s.O * s.OH() * s.OW()));
  Conv2dArgs c;
  c.input = make_tensor_view(x.data(), DType::kFloat32, {s.N, s.C, s.H, s.W});
  c.weight = packed_view;
  c.weight_layout = ConvWeightLayout::kPacked;
  c.bias = make_tensor_view(bias.data(), DType::kFloat32, {s.O});
  c.out = make_tensor_view(cpu_out.data(), DType::kFloat32, {s.N, s.O, s.OH(), s.OW()});
  c.conv = s.conv;
  conv2d(c);
  DeviceArray<float> dx(x), dpacked(packed), dbias(bias), dout(std::vector<float>(cpu_out.size(), 99.0f));
  Conv2dArgs a = c;
  a.input = on_device(c.input, dx.data());
  a.weight = on_device(c.weight, dpacked.data());
  a.bias = on_device(c.bias, dbias.data());
  a.out = on_device(c.out, dout.data());
  a.stream = stream_;
  conv2d(a);
  ASSERT_EQ(cudaStreamSynchronize(stream_), cudaSuccess);
  const std::vector<float> got = dout.download();
  for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i] + 0.0f, cpu_out[i] + 0.0f) << i;  // sign of zero aside
}

const PoolShape kPoolShapes[] = {
    {2, 3, 8, 8, 2, 2, 2, 2, 0, 0},
    {1, 2, 7, 9, 3, 3, 2, 2, 1, 1},
    {1, 3, 6, 7, 3, 2, 1, 3, 1, 0},
    {0, 2, 4, 4, 2, 2, 2, 2, 0, 0},
};

class PoolCuda : public OnCuda, public ::testing::WithParamInterface<int> {};

TEST_P(PoolCuda, MatchesCpu) {
  const PoolShape s = kPoolShapes[GetParam()];
  std::mt19937 rng(59 + GetParam());
  std::normal_distribution<float> d;
  std::vector<float> xf(static_cast<size_t>(s.N * s.C * s.H * s.W));
  for (float& v : xf) v = d(rng);
  if (xf.size() > 3) xf[3] = std::nanf("");
  const std::vector<uint8_t> xs = op_reference::spikes(xf.size(), 0.3, rng);
  DeviceArray<float> dxf(xf);
  DeviceArray<uint8_t> dxs(xs);
  const int64_t n = s.N * s.C * s.OH() * s.OW();
  for (bool spikes : {false, true}) {
    for (PoolKind kind : {PoolKind::kMax, PoolKind::kAvg}) {
      for (bool include_pad : {true, false}) {
        const DType out_dtype = spikes && kind == PoolKind::kMax ? DType::kUInt8 : DType::kFloat32;
        Pool2dArgs c;
        c.kind = kind;
        c.kernel[0] = s.kh;
        c.kernel[1] = s.kw;
        c.stride[0] = s.sh;
        c.stride[1] = s.sw;
        c.padding[0] = s.ph;
        c.padding[1] = s.pw;
        c.count_include_pad = include_pad;
        std::vector<uint8_t> cpu_out(static_cast<size_t>(n) * dtype_size(out_dtype));
        c.input = spikes ? make_tensor_view(const_cast<uint8_t*>(xs.data()), DType::kUInt8, {s.N, s.C, s.H, s.W})
                         : make_tensor_view(xf.data(), DType::kFloat32, {s.N, s.C, s.H, s.W});
        c.out = make_tensor_view(cpu_out.data(), out_dtype, {s.N, s.C, s.OH(), s.OW()});
        pool2d(c);
        DeviceArray<uint8_t> dout(std::vector<uint8_t>(cpu_out.size(), 0xCD));
        Pool2dArgs a = c;
        a.input = spikes ? on_device(c.input, dxs.data()) : on_device(c.input, dxf.data());
        a.out = on_device(c.out, dout.data());
        a.stream = stream_;
        pool2d(a);
        ASSERT_EQ(cudaStreamSynchronize(stream_), cudaSuccess);
        EXPECT_EQ(dout.download(), cpu_out) << spikes << " " << int(kind) << " " << include_pad;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, PoolCuda, ::testing::Range(0, int(sizeof(kPoolShapes) / sizeof(kPoolShapes[0]))));

TEST_F(OnCuda, PoissonEncodeMatchesCpu) {
  const int64_t T = 3, B = 5, F = 37;
  std::mt19937 rng(61);
  std::uniform_real_distribution<float> d(-0.1f, 1.1f);
  std::vector<float> x(static_cast<size_t>(B * F));
  for (float& v : x) v = d(rng);
  std::vector<uint8_t> cpu(static_cast<size_t>(T * B * F));
  PoissonEncodeArgs c;
  c.input = make_tensor_view(x.data(), DType::kFloat32, {B, F});
  c.out = make_tensor_view(cpu.data(), DType::kUInt8, {T, B, F});
  c.seed = 987654321;
  poisson_encode(c);
  DeviceArray<float> dx(x);
  DeviceArray<uint8_t> dout(std::vector<uint8_t>(cpu.size(), 7));
  PoissonEncodeArgs a = c;
  a.input = on_device(c.input, dx.data());
  a.out = on_device(c.out, dout.data());
  a.stream = stream_;
  poisson_encode(a);
  ASSERT_EQ(cudaStreamSynchronize(stream_), cudaSuccess);
  EXPECT_EQ(dout.download(), cpu);
  int64_t expected = 0;
  for (uint8_t v : cpu) expected += v;
  EXPECT_EQ(count_nonzero(a.out, stream_), expected);
  EXPECT_EQ(count_nonzero(c.out), expected);
}

TEST_F(OnCuda, LinearMatchesCpuBitForBit) {
  const int64_t M = 7, K = 45, O = 13;
  std::mt19937 rng(67);
  std::normal_distribution<float> d;
  std::vector<float> x(static_cast<size_t>(M * K)), wt(static_cast<size_t>(K * O)), bias(static_cast<size_t>(O));
  for (float& v : x) v = rng() % 3 == 0 ? 0.0f : d(rng);
  for (float& v : wt) v = d(rng);
  for (float& v : bias) v = d(rng);
  std::vector<float> cpu(static_cast<size_t>(M * O));
  LinearArgs c;
  c.x = make_tensor_view(x.data(), DType::kFloat32, {M, K});
  c.weight_t = make_tensor_view(wt.data(), DType::kFloat32, {K, O});
  c.bias = make_tensor_view(bias.data(), DType::kFloat32, {O});
  c.out = make_tensor_view(cpu.data(), DType::kFloat32, {M, O});
  linear(c);
  DeviceArray<float> dx(x), dwt(wt), dbias(bias), dout(std::vector<float>(cpu.size(), 5.0f));
  LinearArgs a = c;
  a.x = on_device(c.x, dx.data());
  a.weight_t = on_device(c.weight_t, dwt.data());
  a.bias = on_device(c.bias, dbias.data());
  a.out = on_device(c.out, dout.data());
  a.stream = stream_;
  linear(a);
  ASSERT_EQ(cudaStreamSynchronize(stream_), cudaSuccess);
  EXPECT_EQ(dout.download(), cpu);
}

}  // namespace
