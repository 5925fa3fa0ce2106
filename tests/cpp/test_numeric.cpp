// The scalar helpers the CPU and CUDA kernels share (numeric.hpp): 16-bit float conversions and exp.
#include <cmath>
#include <cstdint>

#include "spikeops/detail/numeric.hpp"
#include "spikeops/detail/surrogate_math.hpp"
#include "spikeops/spikeops.hpp"
#include "test_util.hpp"

using namespace spikeops;

namespace {

TEST(Numeric, HalfRoundTripsEveryValue) {
  bool half_ok = true;
  for (uint32_t h = 0; h < 0x10000u; ++h) {
    const float f = detail::half_to_float(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    half_ok = half_ok && detail::float_to_half(f) == h;
  }
  EXPECT_TRUE(half_ok);
}

TEST(Numeric, HalfSpotValues) {
  EXPECT_EQ(detail::half_to_float(0x3c00), 1.0f);
  EXPECT_EQ(detail::float_to_half(65520.0f), 0x7c00);  // rounds up to infinity
}

TEST(Numeric, BFloat16RoundsToNearestEven) {
  EXPECT_EQ(detail::float_to_bfloat16(1.0f), 0x3f80);
  EXPECT_EQ(detail::float_to_bfloat16(detail::bits_float(0x3f808000u)), 0x3f80);  // tie to even
  EXPECT_EQ(detail::float_to_bfloat16(detail::bits_float(0x3f818000u)), 0x3f82);
}

TEST(Numeric, ExpNonpositiveIsAccurate) {
  bool exp_ok = true;
  for (float x = -80.0f; x <= 0.0f; x += 0.01f) {
    const double ref = std::exp(static_cast<double>(x));
    exp_ok = exp_ok && std::fabs(detail::exp_nonpositive(x) - ref) <= 4e-7 * ref;
  }
  EXPECT_TRUE(exp_ok);
}

TEST(Numeric, ExpNonpositiveEdges) {
  EXPECT_EQ(detail::exp_nonpositive(0.0f), 1.0f);
  EXPECT_EQ(detail::exp_nonpositive(-0.0f), 1.0f);
  EXPECT_GT(detail::exp_nonpositive(-87.0f), 0.0f);
  EXPECT_EQ(detail::exp_nonpositive(-87.5f), 0.0f);  // below float32's normal range
  EXPECT_EQ(detail::exp_nonpositive(-INFINITY), 0.0f);
  EXPECT_TRUE(std::isnan(detail::exp_nonpositive(NAN)));
  EXPECT_TRUE(std::isnan(detail::exp_nonpositive(-NAN)));  // a NaN whose sign bit is set
}

TEST(Numeric, ExpFloatIsAccurateOverFloat32sRange) {
  bool exp_ok = true;
  for (float x = -86.9f; x <= 88.7f; x += 0.013f) {
    const double ref = std::exp(static_cast<double>(x));
    exp_ok = exp_ok && std::fabs(detail::exp_float(x) - ref) <= 4e-7 * ref;
  }
  EXPECT_TRUE(exp_ok);
  EXPECT_EQ(detail::exp_float(0.0f), 1.0f);
  EXPECT_EQ(detail::exp_float(-0.0f), 1.0f);
  EXPECT_TRUE(std::isfinite(detail::exp_float(88.72f)));  // n = 128: 2^n applied in two factors
  EXPECT_EQ(detail::exp_float(88.73f), INFINITY);
  EXPECT_EQ(detail::exp_float(INFINITY), INFINITY);
  EXPECT_EQ(detail::exp_float(-87.5f), 0.0f);
  EXPECT_EQ(detail::exp_float(-INFINITY), 0.0f);
  EXPECT_TRUE(std::isnan(detail::exp_float(NAN)));
  EXPECT_TRUE(std::isnan(detail::exp_float(-NAN)));
}

TEST(Numeric, SurrogateDerivativesStayFiniteForLargeAlpha) {
  // The derivative of each smooth surrogate at x = 0 for the largest alphas float32 holds: no intermediate may
  // overflow to inf (inf * 0 is NaN) or underflow to 0 (1 / 0 is inf).
  for (float x : {0.0f, 1e-30f, 1.0f}) {
    EXPECT_TRUE(std::isfinite(surrogate_grad(SurrogateKind::kATan, 3e38f, 0.0f, x))) << x;
    EXPECT_TRUE(std::isfinite(surrogate_grad(SurrogateKind::kPiecewiseQuadratic, 1.9e19f, 0.0f, x))) << x;
    EXPECT_TRUE(std::isfinite(surrogate_grad(SurrogateKind::kSoftSign, 1e30f, 0.0f, x))) << x;
  }
  EXPECT_FLOAT_EQ(surrogate_grad(SurrogateKind::kSoftSign, 1e30f, 0.0f, 0.0f), 5e29f);  // α / 2
  EXPECT_TRUE(std::isnan(surrogate_grad(SurrogateKind::kErf, 2.0f, 0.0f, -NAN)));
  EXPECT_EQ(surrogate_grad(SurrogateKind::kSigmoid, 4.0f, 0.0f, INFINITY), 0.0f);
  EXPECT_EQ(surrogate_grad(SurrogateKind::kPiecewiseExp, 1.0f, 0.0f, -INFINITY), 0.0f);
}

}  // namespace
