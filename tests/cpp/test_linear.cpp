// linear (dense, on float32 values) on the CPU against a plain loop, and its argument errors.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "spikeops/spikeops.hpp"
#include "test_util.hpp"

using namespace spikeops;

namespace {

// bias + sum over k ascending of x * w, zero inputs skipped, every product and sum rounded to float32.
std::vector<float> reference(const std::vector<float>& x, const std::vector<float>& wt, const std::vector<float>& bias,
                             int64_t M, int64_t K, int64_t O) {
  std::vector<float> y(static_cast<size_t>(M * O));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t o = 0; o < O; ++o) {
      float acc = bias.empty() ? 0.0f : bias[static_cast<size_t>(o)];
      for (int64_t k = 0; k < K; ++k) {
        const float v = x[static_cast<size_t>(m * K + k)];
        if (v == 0.0f) continue;
        const float p = v * wt[static_cast<size_t>(k * O + o)];
        acc += p;
      }
      y[static_cast<size_t>(m * O + o)] = acc;
    }
  return y;
}

struct LinearCase {
  int64_t M, K, O;
  bool bias;
};

class Linear : public ::testing::TestWithParam<LinearCase> {};

TEST_P(Linear, MatchesLoopBitForBit) {
  const LinearCase c = GetParam();
  std::mt19937 rng(17);
  std::normal_distribution<float> d;
  std::vector<float> x(static_cast<size_t>(c.M * c.K)), wt(static_cast<size_t>(c.K * c.O)), bias(c.bias ? static_cast<size_t>(c.O) : 0);
  for (float& v : x) v = rng() % 3 == 0 ? 0.0f : d(rng);  // zeros are skipped
  for (float& v : wt) v = d(rng);
  for (float& v : bias) v = d(rng);
  std::vector<float> y(static_cast<size_t>(c.M * c.O), -1.0f);
  LinearArgs a;
  a.x = make_tensor_view(x.data(), DType::kFloat32, {c.M, c.K});
  a.weight_t = make_tensor_view(wt.data(), DType::kFloat32, {c.K, c.O});
  if (c.bias) a.bias = make_tensor_view(bias.data(), DType::kFloat32, {c.O});
  a.out = make_tensor_view(y.data(), DType::kFloat32, {c.M, c.O});
  linear(a);
  const std::vector<float> expected = reference(x, wt, bias, c.M, c.K, c.O);
  ASSERT_EQ(y.size(), expected.size());
  for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(y[i], expected[i]) << i;
}

INSTANTIATE_TEST_SUITE_P(Shapes, Linear,
                         ::testing::Values(LinearCase{3, 7, 5, true}, LinearCase{1, 1, 1, false},
                                           LinearCase{64, 100, 33, true}, LinearCase{0, 4, 3, true},
                                           LinearCase{2, 0, 3, true}, LinearCase{5, 8, 0, false}));

TEST(LinearErrors, NameTheArgument) {
  float x[6] = {}, w[12] = {}, y[8] = {};
  LinearArgs a;
  a.x = make_tensor_view(x, DType::kFloat32, {2, 3});
  a.weight_t = make_tensor_view(w, DType::kFloat32, {3, 4});
  a.out = make_tensor_view(y, DType::kFloat32, {2, 4});
  linear(a);
  LinearArgs bad = a;
  bad.weight_t = make_tensor_view(w, DType::kFloat32, {4, 3});
  EXPECT_ERROR(linear(bad), "linear: weight_t must have shape [K, O] with K = 3");
  bad = a;
  bad.out = make_tensor_view(y, DType::kFloat32, {4, 2});
  EXPECT_ERROR(linear(bad), "linear: out must have shape [2, 4]");
  bad = a;
  bad.bias = make_tensor_view(w, DType::kFloat32, {3});
  EXPECT_ERROR(linear(bad), "linear: bias must have shape [4]");
  bad = a;
  bad.x.dtype = DType::kFloat16;
  EXPECT_ERROR(linear(bad), "linear: x must have dtype float32");
  bad = a;
  bad.weight_t.device = Device::kCUDA;
  EXPECT_ERROR(linear(bad), "linear: weight_t must be on the same device as x");
}

}  // namespace
