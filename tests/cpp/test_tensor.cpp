// TensorView (tensor.hpp): the checks every entry point relies on.
#include <cstdint>

#include "spikeops/spikeops.hpp"
#include "test_util.hpp"

using namespace spikeops;

namespace {

TEST(TensorView, NegativeSizeIsRefused) {
  float x[1] = {};
  int64_t neg = -3;
  EXPECT_ERROR(make_tensor_view(x, DType::kFloat32, &neg, 1), "shape[0] must be >= 0");
}

}  // namespace
