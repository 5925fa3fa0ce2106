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
  const double s12 = 1 / (1 + std::exp(1.2));  // sigmoid(-1.2)
  struct Case {
    SurrogateKind kind;
    double at0, at_x, at_minus_x;
  } cases[] = {
      {SurrogateKind::kSigmoid, 1.0, 4 * s12 * (1 - s12), 4 * s12 * (1 - s12)},
      {SurrogateKind::kATan, 1.0, 1.0 / (1 + std::pow(pi / 2 * 2 * x, 2)), 1.0 / (1 + std::pow(pi / 2 * 2 * x, 2))},
      {SurrogateKind::kPiecewiseQuadratic, 1.0, 1 - x, 1 - x},
      {SurrogateKind::kPiecewiseExp, 0.5, 0.5 * std::exp(-x), 0.5 * std::exp(-x)},
      {SurrogateKind::kSoftSign, 1.0, 1 / (4 * std::pow(0.5 + x, 2)), 1 / (4 * std::pow(0.5 + x, 2))},
      {SurrogateKind::kSuperSpike, 1.0, 1 / std::pow(1 + x, 2), 1 / std::pow(1 + x, 2)},
      {SurrogateKind::kErf, 2 / std::sqrt(pi), 2 / std::sqrt(pi) * std::exp(-std::pow(2 * x, 2)),
       2 / std::sqrt(pi) * std::exp(-std::pow(2 * x, 2))},
      {SurrogateKind::kRect, 1.0, 1.0, 1.0},
      {SurrogateKind::kPiecewiseLeakyReLU, 0.5, 0.5, 0.5},
      {SurrogateKind::kFastSigmoid, 1.0, 1 / std::pow(25 * x + 1, 2), 1 / std::pow(25 * x + 1, 2)},
      {SurrogateKind::kNonzeroSignLogAbs, 1.0, 1 / (1 + x), 1 / (1 + x)},
      {SurrogateKind::kS2NN, 1.0, 1 / (1 + x), 4 * s12 * (1 - s12)},  // β/(x + 1) on x >= 0, sigmoid's below
      {SurrogateKind::kQPseudoSpike, 1.0, 1 / std::pow(1 + 2 * x, 2), 1 / std::pow(1 + 2 * x, 2)},
      {SurrogateKind::kLeakyKReLU, 1.0, 1.0, 0.0},                // k on x >= 0, leak below
      {SurrogateKind::kFakeNumericalGradient, 0.3, 0.3, 0.3},     // min(1/|x|, 0.3)
      {SurrogateKind::kLogTailedReLU, 0.0, 1.0, 0.0},             // α = 0 on x <= 0
      {SurrogateKind::kSquarewaveFourierSeries, 0.5, 0.5 * std::cos(pi / 4 * x), 0.5 * std::cos(pi / 4 * x)},
      {SurrogateKind::kDeterministicPass, 1.0, 1.0, 1.0},
  };
  static_assert(sizeof(cases) / sizeof(cases[0]) == kNumSurrogateKinds, "a case per kind");
  for (const Case& c : cases) {
    SCOPED_TRACE(surrogate_name(c.kind));
    const Surrogate s = default_surrogate(c.kind);
    EXPECT_LE(std::fabs(surrogate_grad(s, 0.0f) - c.at0), 1e-6 * std::fabs(c.at0));
    EXPECT_LE(std::fabs(surrogate_grad(s, static_cast<float>(x)) - c.at_x), 1e-6 * std::fabs(c.at_x) + 1e-12);
    EXPECT_LE(std::fabs(surrogate_grad(s, static_cast<float>(-x)) - c.at_minus_x),
              1e-6 * std::fabs(c.at_minus_x) + 1e-12);
  }
}

// The parameters beyond the defaults and the edges of the new piecewise formulas, against SpikingJelly's code.
TEST(Surrogate, FormulasAtTheirEdges) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  // S2NN: β/(x + 1) from x = 0 on (NaN goes there too, as where(x < 0, ...) sends it), 0 at +inf.
  EXPECT_FLOAT_EQ(surrogate_grad(SurrogateKind::kS2NN, 4.0f, 3.0f, 1.0f), 1.5f);
  EXPECT_EQ(surrogate_grad(SurrogateKind::kS2NN, 4.0f, 3.0f, inf), 0.0f);
  EXPECT_EQ(surrogate_grad(SurrogateKind::kS2NN, 4.0f, 3.0f, -inf), 0.0f);
  EXPECT_TRUE(std::isnan(surrogate_grad(SurrogateKind::kS2NN, 4.0f, 3.0f, nan)));
  // QPseudoSpike with α = 3: (1 + |x|)^-3.
  EXPECT_FLOAT_EQ(surrogate_grad(SurrogateKind::kQPseudoSpike, 3.0f, 0.0f, -1.0f), 0.125f);
  EXPECT_EQ(surrogate_grad(SurrogateKind::kQPseudoSpike, 3.0f, 0.0f, inf), 0.0f);
  // LeakyKReLU (leak = alpha, k = beta): k from x = 0 on, leak below and for NaN (its mask x >= 0 is false).
  EXPECT_EQ(surrogate_grad(SurrogateKind::kLeakyKReLU, 0.1f, 2.0f, 0.0f), 2.0f);
  EXPECT_EQ(surrogate_grad(SurrogateKind::kLeakyKReLU, 0.1f, 2.0f, -1e-30f), 0.1f);
  EXPECT_EQ(surrogate_grad(SurrogateKind::kLeakyKReLU, 0.1f, 2.0f, nan), 0.1f);
  // FakeNumericalGradient: min(1/|x|, α); 1/(-0) = -inf and NaN stays NaN (clamp_max keeps both).
  EXPECT_FLOAT_EQ(surrogate_grad(SurrogateKind::kFakeNumericalGradient, 0.3f, 0.0f, -5.0f), 0.2f);
  EXPECT_EQ(surrogate_grad(SurrogateKind::kFakeNumericalGradient, 0.3f, 0.0f, -0.0f), -inf);
  EXPECT_EQ(surrogate_grad(SurrogateKind::kFakeNumericalGradient, 0.3f, 0.0f, inf), 0.0f);
  EXPECT_TRUE(std::isnan(surrogate_grad(SurrogateKind::kFakeNumericalGradient, 0.3f, 0.0f, nan)));
  // LogTailedReLU: α up to 0 included, 1 up to 1 included, 1/x above; NaN gets 1 (neither mask holds).
  EXPECT_EQ(surrogate_grad(SurrogateKind::kLogTailedReLU, 0.1f, 0.0f, 0.0f), 0.1f);
  EXPECT_EQ(surrogate_grad(SurrogateKind::kLogTailedReLU, 0.1f, 0.0f, 1.0f), 1.0f);
  EXPECT_EQ(surrogate_grad(SurrogateKind::kLogTailedReLU, 0.1f, 0.0f, 4.0f), 0.25f);
  EXPECT_EQ(surrogate_grad(SurrogateKind::kLogTailedReLU, 0.1f, 0.0f, nan), 1.0f);
  // SquarewaveFourierSeries with n = 3, T = 4: cos(π x / 2) + cos(3π x / 2), times 1; n = 1 is 0.
  const double pi = 3.14159265358979323846;
  EXPECT_NEAR(surrogate_grad(SurrogateKind::kSquarewaveFourierSeries, 4.0f, 3.0f, 0.7f),
              std::cos(pi / 2 * 0.7) + std::cos(3 * pi / 2 * 0.7), 1e-6);
  EXPECT_EQ(surrogate_grad(SurrogateKind::kSquarewaveFourierSeries, 4.0f, 1.0f, 0.7f), 0.0f);
  EXPECT_EQ(surrogate_grad(SurrogateKind::kDeterministicPass, 1.0f, 0.0f, nan), 1.0f);
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
    const SurrogateKind kind = static_cast<SurrogateKind>(k);
    if (kind == SurrogateKind::kLeakyKReLU || kind == SurrogateKind::kFakeNumericalGradient ||
        kind == SurrogateKind::kLogTailedReLU || kind == SurrogateKind::kDeterministicPass ||
        kind == SurrogateKind::kQPseudoSpike) {
      continue;  // their own ranges: the test below
    }
    Surrogate s = default_surrogate(kind);
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

// Kinds that never divide by alpha take any finite alpha (LogTailedReLU's default is 0, LeakyKReLU's leak too);
// QPseudoSpike needs alpha > 1 (2/(alpha - 1)); SquarewaveFourierSeries' n (beta) is a loop count.
TEST(Surrogate, ValidateChecksEachKindsOwnRanges) {
  for (const SurrogateKind kind : {SurrogateKind::kLeakyKReLU, SurrogateKind::kFakeNumericalGradient,
                                   SurrogateKind::kLogTailedReLU, SurrogateKind::kDeterministicPass}) {
    SCOPED_TRACE(surrogate_name(kind));
    for (const float ok : {0.0f, -2.0f, 1e-40f, 3e38f}) validate_surrogate({kind, ok, 1.0f}, "sg");
    EXPECT_ERROR(validate_surrogate({kind, std::numeric_limits<float>::infinity(), 1.0f}, "sg"),
                 "sg.alpha of " + std::string(surrogate_name(kind)) + " must be finite");
    EXPECT_ERROR(validate_surrogate({kind, 1.0f, std::numeric_limits<float>::quiet_NaN()}, "sg"), "sg.beta");
  }
  validate_surrogate({SurrogateKind::kQPseudoSpike, 1.0000001f, 0.0f}, "sg");
  for (const float bad : {1.0f, 0.5f, -3.0f}) {
    EXPECT_ERROR(validate_surrogate({SurrogateKind::kQPseudoSpike, bad, 0.0f}, "sg"),
                 "sg.alpha of QPseudoSpike must be > 1");
  }
  validate_surrogate({SurrogateKind::kSquarewaveFourierSeries, 8.0f, 1.0f}, "sg");
  validate_surrogate({SurrogateKind::kSquarewaveFourierSeries, 8.0f, 16777216.0f}, "sg");
  for (const float bad : {0.0f, 2.5f, -1.0f, 16777218.0f}) {
    EXPECT_ERROR(validate_surrogate({SurrogateKind::kSquarewaveFourierSeries, 8.0f, bad}, "sg"),
                 "sg.beta of SquarewaveFourierSeries (its n) must be an integer in [1, 2^24]");
  }
  EXPECT_ERROR(validate_surrogate({SurrogateKind::kSquarewaveFourierSeries, 0.0f, 2.0f}, "sg"),
               "sg.alpha of SquarewaveFourierSeries must be a finite number > 0");
}

}  // namespace
