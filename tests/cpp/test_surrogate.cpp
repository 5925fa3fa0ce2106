// The surrogate derivatives (surrogate.hpp): the formulas against SpikingJelly's, and the elementwise entry
// points heaviside_forward and surrogate_backward.
#include <cmath>
#include <cstdint>
#include <limits>

#include "spikeops/detail/surrogate_math.hpp"
#include "spikeops/spikeops.hpp"
#include "test_util.hpp"

using namespace spikeops;

namespace {

// Spot values of the formulas at x = 0 and x = ±0.3 with SpikingJelly's default parameters.
TEST(Surrogate, FormulasMatchSpikingJelly) {
  const double pi = 3.14159265358979323846, x = 0.3;
  struct Case {
    SurrogateKind kind;
    double at0, at_x;
  } cases[] = {
      {SurrogateKind::kSigmoid, 1.0, 4.0 / (1 + std::exp(-1.2)) * (1 - 1 / (1 + std::exp(-1.2)))},
      {SurrogateKind::kATan, 1.0, 1.0 / (1 + std::pow(pi / 2 * 2 * x, 2))},
      {SurrogateKind::kPiecewiseQuadratic, 1.0, 1 - x},
      {SurrogateKind::kPiecewiseExp, 0.5, 0.5 * std::exp(-x)},
      {SurrogateKind::kSoftSign, 1.0, 1 / (4 * std::pow(0.5 + x, 2))},
      {SurrogateKind::kSuperSpike, 1.0, 1 / std::pow(1 + x, 2)},
      {SurrogateKind::kErf, 2 / std::sqrt(pi), 2 / std::sqrt(pi) * std::exp(-std::pow(2 * x, 2))},
      {SurrogateKind::kRect, 1.0, 1.0},
      {SurrogateKind::kPiecewiseLeakyReLU, 0.5, 0.5},
      {SurrogateKind::kFastSigmoid, 1.0, 1 / std::pow(25 * x + 1, 2)},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(surrogate_name(c.kind));
    const Surrogate s = default_surrogate(c.kind);
    EXPECT_LT(std::fabs(surrogate_grad(s, 0.0f) - c.at0), 1e-6 * std::fabs(c.at0));
    EXPECT_LT(std::fabs(surrogate_grad(s, static_cast<float>(x)) - c.at_x), 1e-6 * std::fabs(c.at_x) + 1e-12);
    EXPECT_LT(std::fabs(surrogate_grad(s, static_cast<float>(-x)) - c.at_x), 1e-6 * std::fabs(c.at_x) + 1e-12);
  }
}

TEST(Surrogate, HeavisideFiresAtZero) {
  float xs[4] = {-1.0f, 0.0f, 0.25f, 2.0f};
  uint8_t spk[4];
  heaviside_forward(make_tensor_view(xs, DType::kFloat32, {4}), make_tensor_view(spk, DType::kUInt8, {4}));
  EXPECT_TRUE(spk[0] == 0 && spk[1] == 1 && spk[2] == 1 && spk[3] == 1);
}

TEST(Surrogate, BackwardScalesGradientByDerivative) {
  float xs[4] = {-1.0f, 0.0f, 0.25f, 2.0f}, g[4] = {1, 2, 3, 4}, gx[4];
  const Surrogate atan = default_surrogate(SurrogateKind::kATan);
  surrogate_backward(atan, make_tensor_view(g, DType::kFloat32, {4}), make_tensor_view(xs, DType::kFloat32, {4}),
                     make_tensor_view(gx, DType::kFloat32, {4}));
  for (int i = 0; i < 4; ++i) EXPECT_LT(std::fabs(gx[i] - g[i] * surrogate_grad(atan, xs[i])), 1e-7f) << "at " << i;
}

TEST(Surrogate, HeavisideRejectsMismatchedShapes) {
  float x[6] = {};
  uint8_t s[6];
  EXPECT_ERROR(heaviside_forward(make_tensor_view(x, DType::kFloat32, {6}), make_tensor_view(s, DType::kUInt8, {5})),
               "spike must have the shape of x");
}

// alpha must be a normal float32: the derivatives divide by it (1/(2w) of PiecewiseLeakyReLU, 1/alpha), so a
// subnormal alpha gave an infinite gradient; 0 (what 1e-50 rounds to) and inf were already rejected.
TEST(Surrogate, ValidateRejectsAlphaOutsideNormalFloat32) {
  for (int k = 0; k < kNumSurrogateKinds; ++k) {
    Surrogate s = default_surrogate(static_cast<SurrogateKind>(k));
    s.alpha = std::numeric_limits<float>::min();  // the smallest normal float32 stays valid
    validate_surrogate(s, "sg");
    for (const float bad : {std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::min() / 2, 0.0f,
                            std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()}) {
      s.alpha = bad;
      EXPECT_ERROR(validate_surrogate(s, "sg"), "sg.alpha");
    }
  }
  float x[2] = {0.0f, 0.5f}, g[2] = {1.0f, 1.0f}, gx[2];
  Surrogate plrelu = default_surrogate(SurrogateKind::kPiecewiseLeakyReLU);
  plrelu.alpha = 1e-40f;
  EXPECT_ERROR(surrogate_backward(plrelu, make_tensor_view(g, DType::kFloat32, {2}),
                                  make_tensor_view(x, DType::kFloat32, {2}), make_tensor_view(gx, DType::kFloat32, {2})),
               "alpha of PiecewiseLeakyReLU must be a finite number > 0 that float32 holds as a normal number");
}

}  // namespace
