// poisson_encode and count_nonzero on the CPU against plain loops, and their argument errors.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "op_reference.hpp"
#include "spikeops/spikeops.hpp"
#include "test_util.hpp"

using namespace spikeops;

namespace {

struct EncodeCase {
  int64_t T, B, F;
};

class PoissonEncode : public ::testing::TestWithParam<EncodeCase> {};

TEST_P(PoissonEncode, MatchesTheDocumentedDraws) {
  const EncodeCase c = GetParam();
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> d(-0.25f, 1.25f);  // below 0 never fires, 1 and above always
  std::vector<float> x(static_cast<size_t>(c.B * c.F));
  for (float& v : x) v = d(rng);
  if (!x.empty()) x[0] = std::nanf("");  // NaN never fires
  for (uint64_t seed : {uint64_t(0), uint64_t(12345), ~uint64_t(0)}) {
    std::vector<uint8_t> out(static_cast<size_t>(c.T * c.B * c.F), 7);
    PoissonEncodeArgs a;
    a.input = make_tensor_view(x.data(), DType::kFloat32, {c.B, c.F});
    a.out = make_tensor_view(out.data(), DType::kUInt8, {c.T, c.B, c.F});
    a.seed = seed;
    poisson_encode(a);
    for (int64_t i = 0; i < int64_t(out.size()); ++i) {
      ASSERT_EQ(out[static_cast<size_t>(i)], op_reference::poisson_spike(seed, i, x[static_cast<size_t>(i % (c.B * c.F))])) << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, PoissonEncode,
                         ::testing::Values(EncodeCase{4, 3, 17}, EncodeCase{1, 1, 1}, EncodeCase{0, 2, 5},
                                           EncodeCase{3, 0, 5}, EncodeCase{2, 64, 784}));

TEST(PoissonEncode, RateFollowsTheInput) {
  const int64_t T = 200, F = 4;
  std::vector<float> x = {0.0f, 0.25f, 0.5f, 1.0f};
  std::vector<uint8_t> out(static_cast<size_t>(T * F));
  PoissonEncodeArgs a;
  a.input = make_tensor_view(x.data(), DType::kFloat32, {1, F});
  a.out = make_tensor_view(out.data(), DType::kUInt8, {T, 1, F});
  poisson_encode(a);
  for (int64_t f = 0; f < F; ++f) {
    int64_t n = 0;
    for (int64_t t = 0; t < T; ++t) n += out[static_cast<size_t>(t * F + f)];
    EXPECT_NEAR(double(n) / T, x[static_cast<size_t>(f)], 0.1) << f;
  }
}

TEST(PoissonEncode, ErrorsNameTheArgument) {
  float x[6] = {};
  uint8_t s[12] = {};
  PoissonEncodeArgs a;
  a.input = make_tensor_view(x, DType::kFloat32, {2, 3});
  a.out = make_tensor_view(s, DType::kUInt8, {2, 2, 3});
  poisson_encode(a);
  PoissonEncodeArgs bad = a;
  bad.out = make_tensor_view(s, DType::kUInt8, {2, 3, 2});
  EXPECT_ERROR(poisson_encode(bad), "poisson_encode: out must have shape [T, 2, 3] for input [2, 3]");
  bad = a;
  bad.out.dtype = DType::kFloat32;
  EXPECT_ERROR(poisson_encode(bad), "poisson_encode: out must have dtype uint8");
  bad = a;
  bad.input = make_tensor_view(x, DType::kFloat32, {6});
  EXPECT_ERROR(poisson_encode(bad), "poisson_encode: input must be a 2-D tensor");
  bad = a;
  bad.out.device = Device::kCUDA;
  EXPECT_ERROR(poisson_encode(bad), "poisson_encode: out must be on the same device as input");
}

TEST(CountNonzero, MatchesLoop) {
  std::mt19937 rng(5);
  for (int64_t n : {int64_t(0), int64_t(1), int64_t(63), int64_t(1000), int64_t(300001)}) {
    const std::vector<uint8_t> s = op_reference::spikes(static_cast<size_t>(n), 0.3, rng);
    int64_t expected = 0;
    for (uint8_t v : s) expected += v != 0;
    EXPECT_EQ(count_nonzero(make_tensor_view(const_cast<uint8_t*>(s.data()), DType::kUInt8, {n})), expected) << n;
    if (n == 1000) {
      EXPECT_EQ(count_nonzero(make_tensor_view(const_cast<uint8_t*>(s.data()), DType::kUInt8, {10, 4, 25})), expected);
    }
  }
}

TEST(CountNonzero, ErrorsNameTheArgument) {
  float x[4] = {};
  EXPECT_ERROR(count_nonzero(make_tensor_view(x, DType::kFloat32, {4})),
               "count_nonzero: spikes must have dtype uint8, got float32");
  EXPECT_ERROR(count_nonzero(TensorView{}), "count_nonzero: spikes is required");
  TensorView strided = make_tensor_view(x, DType::kUInt8, {2, 2});
  strided.strides[0] = 4;
  EXPECT_ERROR(count_nonzero(strided), "count_nonzero: spikes must be contiguous");
}

}  // namespace
