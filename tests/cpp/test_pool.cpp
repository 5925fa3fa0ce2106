// pool2d on the CPU against the plain-loop reference, and its argument errors.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "op_reference.hpp"
#include "spikeops/spikeops.hpp"
#include "test_util.hpp"

using namespace spikeops;
using op_reference::PoolShape;

namespace {

// Bitwise equality, so that NaN equals NaN.
void expect_same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(std::memcmp(&a[i], &b[i], sizeof(float)), 0) << "at " << i << ": " << a[i] << " vs " << b[i];
  }
}

Pool2dArgs args_for(const PoolShape& s, PoolKind kind, bool include_pad) {
  Pool2dArgs a;
  a.kind = kind;
  a.kernel[0] = s.kh;
  a.kernel[1] = s.kw;
  a.stride[0] = s.sh;
  a.stride[1] = s.sw;
  a.padding[0] = s.ph;
  a.padding[1] = s.pw;
  a.count_include_pad = include_pad;
  return a;
}

const PoolShape kShapes[] = {
    {2, 3, 8, 8, 2, 2, 2, 2, 0, 0},  // the 2x2 fast path
    {1, 2, 7, 9, 2, 2, 2, 2, 0, 0},  // odd sizes: the last row and column are dropped (floor mode)
    {2, 2, 7, 5, 3, 3, 2, 2, 1, 1},  // padding
    {1, 3, 6, 7, 3, 2, 1, 3, 1, 0},  // rectangular kernel and stride
    {1, 1, 5, 5, 5, 5, 1, 1, 2, 2},  // the whole plane
    {0, 3, 4, 4, 2, 2, 2, 2, 0, 0},  // empty batch
};

class PoolValues : public ::testing::TestWithParam<int> {};

TEST_P(PoolValues, MatchesReference) {
  const PoolShape s = kShapes[GetParam()];
  std::mt19937 rng(7 + GetParam());
  std::normal_distribution<float> d;
  std::vector<float> x(static_cast<size_t>(s.N * s.C * s.H * s.W));
  for (float& v : x) v = d(rng);
  if (x.size() > 5) x[5] = std::nanf("");  // max pooling propagates NaN
  for (PoolKind kind : {PoolKind::kMax, PoolKind::kAvg}) {
    for (bool include_pad : {true, false}) {
      Pool2dArgs a = args_for(s, kind, include_pad);
      std::vector<float> out(static_cast<size_t>(s.N * s.C * s.OH() * s.OW()), -7.0f);
      a.input = make_tensor_view(x.data(), DType::kFloat32, {s.N, s.C, s.H, s.W});
      a.out = make_tensor_view(out.data(), DType::kFloat32, {s.N, s.C, s.OH(), s.OW()});
      pool2d(a);
      expect_same_bits(out, op_reference::pool2d(s, x, kind == PoolKind::kMax, include_pad));
    }
  }
}

TEST_P(PoolValues, SpikesMatchReference) {
  const PoolShape s = kShapes[GetParam()];
  std::mt19937 rng(11 + GetParam());
  const std::vector<uint8_t> x = op_reference::spikes(static_cast<size_t>(s.N * s.C * s.H * s.W), 0.2, rng);
  const std::vector<float> xf = op_reference::as_values(x);
  const int64_t n = s.N * s.C * s.OH() * s.OW();
  // Max: the OR, in bytes.
  Pool2dArgs a = args_for(s, PoolKind::kMax, true);
  std::vector<uint8_t> out(static_cast<size_t>(n), 9);
  a.input = make_tensor_view(const_cast<uint8_t*>(x.data()), DType::kUInt8, {s.N, s.C, s.H, s.W});
  a.out = make_tensor_view(out.data(), DType::kUInt8, {s.N, s.C, s.OH(), s.OW()});
  pool2d(a);
  const std::vector<float> max_ref = op_reference::pool2d(s, xf, true, true);
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(float(out[static_cast<size_t>(i)]), max_ref[static_cast<size_t>(i)]) << i;
  // Average: the window's firing rate, in float32.
  for (bool include_pad : {true, false}) {
    Pool2dArgs b = args_for(s, PoolKind::kAvg, include_pad);
    std::vector<float> avg(static_cast<size_t>(n), -1.0f);
    b.input = a.input;
    b.out = make_tensor_view(avg.data(), DType::kFloat32, {s.N, s.C, s.OH(), s.OW()});
    pool2d(b);
    expect_same_bits(avg, op_reference::pool2d(s, xf, false, include_pad));
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, PoolValues, ::testing::Range(0, int(sizeof(kShapes) / sizeof(kShapes[0]))));

TEST(Pool2d, ErrorsNameTheArgument) {
  float x[2 * 3 * 4 * 4] = {}, y[2 * 3 * 2 * 2] = {};
  uint8_t s[2 * 3 * 4 * 4] = {};
  Pool2dArgs a;
  a.input = make_tensor_view(x, DType::kFloat32, {2, 3, 4, 4});
  a.out = make_tensor_view(y, DType::kFloat32, {2, 3, 2, 2});
  pool2d(a);  // the valid call
  Pool2dArgs bad = a;
  bad.out = make_tensor_view(y, DType::kFloat32, {2, 3, 2, 1});
  EXPECT_ERROR(pool2d(bad), "pool2d: out must have shape [2, 3, 2, 2]");
  bad = a;
  bad.kernel[1] = 0;
  EXPECT_ERROR(pool2d(bad), "pool2d: kernel must be >= 1");
  bad = a;
  bad.stride[0] = 0;
  EXPECT_ERROR(pool2d(bad), "pool2d: stride must be >= 1");
  bad = a;
  bad.padding[0] = 2;
  EXPECT_ERROR(pool2d(bad), "pool2d: padding must be >= 0 and at most half the kernel (2, 2), got (2, 0)");
  bad = a;
  bad.kernel[0] = bad.kernel[1] = 5;
  EXPECT_ERROR(pool2d(bad), "pool2d: kernel (5, 5) does not fit the padded input of 4 x 4");
  bad = a;
  bad.input = make_tensor_view(s, DType::kUInt8, {2, 3, 4, 4});  // max of spikes: uint8 out
  EXPECT_ERROR(pool2d(bad), "pool2d: out must have dtype uint8, got float32");
  bad.kind = PoolKind::kAvg;
  pool2d(bad);  // the average of spikes is float32
  bad = a;
  bad.input.dtype = DType::kFloat16;
  EXPECT_ERROR(pool2d(bad), "pool2d: input must have dtype float32/uint8, got float16");
  bad = a;
  bad.out.device = Device::kCUDA;
  EXPECT_ERROR(pool2d(bad), "pool2d: out must be on the same device as input");
  bad = a;
  bad.kind = static_cast<PoolKind>(5);
  EXPECT_ERROR(pool2d(bad), "pool2d: kind must be");
}

}  // namespace
