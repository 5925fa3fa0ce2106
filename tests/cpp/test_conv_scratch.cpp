// The spike convolution's weight gradient on the CPU: its scratch memory stays bounded (it does not grow with
// the image or the batch), and its bands of output rows give the plain loops' sums exactly.
//
// This executable replaces the global operator new/delete to count the bytes the library allocates during a
// call (a test of its own, so no other test runs with the counting allocator).
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "op_reference.hpp"
#include "spikeops/detail/numeric.hpp"
#include "spikeops/spikeops.hpp"
#include "test_util.hpp"

namespace {

std::atomic<int64_t> live_bytes{0};
std::atomic<int64_t> peak_bytes{0};

// Each block carries its size in a header (16 bytes keeps operator new's alignment).
constexpr size_t kHeader = 16;

void* counted_alloc(size_t size) {
  void* block = std::malloc(size + kHeader);
  if (block == nullptr) throw std::bad_alloc();
  *static_cast<size_t*>(block) = size;
  const int64_t now = live_bytes += int64_t(size);
  int64_t peak = peak_bytes.load();
  while (now > peak && !peak_bytes.compare_exchange_weak(peak, now)) {
  }
  return static_cast<char*>(block) + kHeader;
}

void counted_free(void* p) {
  if (p == nullptr) return;
  void* block = static_cast<char*>(p) - kHeader;
  live_bytes -= int64_t(*static_cast<size_t*>(block));
  std::free(block);
}

}  // namespace

void* operator new(size_t size) { return counted_alloc(size); }
void* operator new[](size_t size) { return counted_alloc(size); }
void operator delete(void* p) noexcept { counted_free(p); }
void operator delete[](void* p) noexcept { counted_free(p); }
void operator delete(void* p, size_t) noexcept { counted_free(p); }
void operator delete[](void* p, size_t) noexcept { counted_free(p); }

using namespace spikeops;

namespace {

// The most bytes allocated at once, beyond what was live before, while fn runs.
template <typename Fn>
int64_t peak_scratch(Fn&& fn) {
  const int64_t before = live_bytes.load();
  peak_bytes = before;
  fn();
  return peak_bytes.load() - before;
}

constexpr int64_t kMiB = int64_t(1) << 20;

uint16_t bf16_of_integer(float v) { return static_cast<uint16_t>(detail::float_bits(v) >> 16); }  // exact here

// A weight gradient with 0/1 spikes and integer output gradients (exact sums), against op_reference.
struct GradCase {
  op_reference::ConvShape s;
  std::vector<uint8_t> spikes;
  std::vector<float> dy, expected;
};

GradCase make_case(op_reference::ConvShape s, double rate, std::mt19937& rng) {
  GradCase c{s, op_reference::spikes(size_t(s.N * s.C * s.H * s.W), rate, rng), {}, {}};
  c.dy = op_reference::integers(size_t(s.N * s.O * s.OH() * s.OW()), 3, rng);
  c.expected = op_reference::conv2d_weight_grad(s, op_reference::as_values(c.spikes), c.dy);
  return c;
}

// [n, c, h, w] stored [n, h, w, c].
template <typename T>
std::vector<T> to_nhwc(const std::vector<T>& src, int64_t n, int64_t c, int64_t hw) {
  std::vector<T> dst(src.size());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < c; ++j)
      for (int64_t p = 0; p < hw; ++p) dst[size_t((i * hw + p) * c + j)] = src[size_t((i * c + j) * hw + p)];
  return dst;
}
TensorView nhwc_view(void* data, DType dtype, int64_t n, int64_t c, int64_t h, int64_t w) {
  TensorView v = make_tensor_view(data, dtype, {n, c, h, w});
  v.strides[0] = h * w * c;
  v.strides[1] = 1;
  v.strides[2] = w * c;
  v.strides[3] = c;
  return v;
}

// grad_weight of the case, with grad_out in `dtype` and both layouts.
std::vector<float> weight_grad(GradCase& c, DType dtype, bool channels_last) {
  const op_reference::ConvShape& s = c.s;
  const int64_t OH = s.OH(), OW = s.OW();
  std::vector<uint8_t> spikes = channels_last ? to_nhwc(c.spikes, s.N, s.C, s.H * s.W) : c.spikes;
  std::vector<float> dy = channels_last ? to_nhwc(c.dy, s.N, s.O, OH * OW) : c.dy;
  std::vector<uint16_t> dy16(dy.size());
  for (size_t i = 0; i < dy.size(); ++i) dy16[i] = bf16_of_integer(dy[i]);
  void* dy_data = dtype == DType::kFloat32 ? static_cast<void*>(dy.data()) : static_cast<void*>(dy16.data());
  std::vector<float> gw(c.expected.size(), -1.0f);
  SpikeConv2dWeightGradArgs a;
  if (channels_last) {
    a.spikes = nhwc_view(spikes.data(), DType::kUInt8, s.N, s.C, s.H, s.W);
    a.grad_out = nhwc_view(dy_data, dtype, s.N, s.O, OH, OW);
  } else {
    a.spikes = make_tensor_view(spikes.data(), DType::kUInt8, {s.N, s.C, s.H, s.W});
    a.grad_out = make_tensor_view(dy_data, dtype, {s.N, s.O, OH, OW});
  }
  a.grad_weight = make_tensor_view(gw.data(), DType::kFloat32, {s.O, s.C / s.conv.groups, s.kh, s.kw});
  a.conv = s.conv;
  spike_conv2d_weight_grad(a);
  return gw;
}

// One spike in a large single-channel image, one output channel: the gradient padded to 16 channels per
// pixel took 16 times grad_out (67 MB here), plus 8 bytes per input pixel per thread for the spike list.
TEST(ConvScratch, WeightGradScratchDoesNotGrowWithTheImage) {
  const int64_t H = 1024, W = 1024, OH = H - 2, OW = W - 2;
  std::vector<uint8_t> spikes(size_t(H * W), 0);
  spikes[size_t(500 * W + 700)] = 1;
  std::vector<float> dy(size_t(OH * OW));
  for (size_t i = 0; i < dy.size(); ++i) dy[i] = float(i % 1000);
  std::vector<float> gw(9, -1.0f);
  SpikeConv2dWeightGradArgs a;
  a.spikes = make_tensor_view(spikes.data(), DType::kUInt8, {1, 1, H, W});
  a.grad_out = make_tensor_view(dy.data(), DType::kFloat32, {1, 1, OH, OW});
  a.grad_weight = make_tensor_view(gw.data(), DType::kFloat32, {1, 1, 3, 3});
  const int64_t scratch = peak_scratch([&] { spike_conv2d_weight_grad(a); });
  EXPECT_LE(scratch, 12 * kMiB) << "the grad_out is " << dy.size() * 4 / kMiB << " MiB";
  for (int64_t ky = 0; ky < 3; ++ky)
    for (int64_t kx = 0; kx < 3; ++kx) {  // the spike (500, 700) reaches output (500 - ky, 700 - kx) by tap (ky, kx)
      EXPECT_EQ(gw[size_t(ky * 3 + kx)], dy[size_t((500 - ky) * OW + 700 - kx)]) << "tap " << ky << ", " << kx;
    }
}

// A bfloat16 output gradient was converted to float32 whole (twice its size, growing with the batch).
TEST(ConvScratch, WeightGradScratchDoesNotGrowWithTheBatch) {
  const int64_t N = 64, C = 2, H = 130, W = 130, O = 16, OH = H - 2, OW = W - 2;
  std::vector<uint8_t> spikes(size_t(N * C * H * W), 0);
  spikes[size_t(((7 * C + 1) * H + 60) * W + 61)] = 1;
  std::vector<uint16_t> dy(size_t(N * O * OH * OW), bf16_of_integer(1.0f));
  std::vector<float> gw(size_t(O * C * 9), -1.0f);
  for (bool channels_last : {false, true}) {
    SCOPED_TRACE(channels_last ? "channels-last" : "NCHW");
    SpikeConv2dWeightGradArgs a;
    a.spikes = channels_last ? nhwc_view(spikes.data(), DType::kUInt8, N, C, H, W)
                             : make_tensor_view(spikes.data(), DType::kUInt8, {N, C, H, W});
    a.grad_out = channels_last ? nhwc_view(dy.data(), DType::kBFloat16, N, O, OH, OW)
                               : make_tensor_view(dy.data(), DType::kBFloat16, {N, O, OH, OW});
    a.grad_weight = make_tensor_view(gw.data(), DType::kFloat32, {O, C, 3, 3});
    const int64_t scratch = peak_scratch([&] { spike_conv2d_weight_grad(a); });
    EXPECT_LE(scratch, 12 * kMiB) << "the grad_out is " << dy.size() * 2 / kMiB << " MiB";
    for (int64_t o = 0; o < O; ++o)
      for (int64_t i = 0; i < 9; ++i) EXPECT_EQ(gw[size_t((o * C + 1) * 9 + i)], 1.0f);
  }
}

// Images whose padded gradient spans several bands (or one output row per band), with strides, padding,
// dilation and groups, in both layouts and with a bfloat16 gradient: the plain loops' sums exactly.
TEST(ConvScratch, WeightGradInBandsMatchesPlainLoop) {
  std::mt19937 rng(19);
  std::vector<GradCase> cases;
  op_reference::ConvShape s{2, 2, 700, 300, 2, 3, 3, {}};  // 16-float rows: about 3 bands of 218 rows
  s.conv.padding[0] = 1;
  cases.push_back(make_case(s, 0.3, rng));
  s = {1, 4, 420, 260, 4, 3, 2, {}};
  s.conv.stride[0] = 2;
  s.conv.dilation[0] = 3;
  s.conv.padding[1] = 2;
  s.conv.groups = 2;
  cases.push_back(make_case(s, 0.5, rng));
  s = {2, 1, 6, 66000, 3, 3, 3, {}};  // one output row is more than a band: a band per row
  s.conv.padding[0] = s.conv.padding[1] = 1;
  cases.push_back(make_case(s, 0.2, rng));
  for (GradCase& c : cases) {
    SCOPED_TRACE("H " + std::to_string(c.s.H) + " W " + std::to_string(c.s.W));
    for (bool channels_last : {false, true}) {
      if (channels_last && c.s.C == 1) continue;  // (then the spikes are NCHW too, and grad_out must be)
      EXPECT_EQ(weight_grad(c, DType::kFloat32, channels_last), c.expected) << "float32, channels-last " << channels_last;
      EXPECT_EQ(weight_grad(c, DType::kBFloat16, channels_last), c.expected) << "bfloat16, channels-last " << channels_last;
    }
  }
}

}  // namespace
