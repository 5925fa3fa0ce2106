// The scalar helpers the CPU and CUDA kernels share (numeric.hpp): 16-bit float conversions and exp.
#include <cmath>
#include <cstdint>

#include "spikeops/detail/numeric.hpp"
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

}  // namespace
