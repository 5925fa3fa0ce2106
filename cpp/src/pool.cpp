// Public entry point of 2-D pooling: validation, then the CPU or CUDA back end.
#include "spikeops/pool.hpp"

#include <limits>
#include <string>

#include "backend.hpp"
#include "validate.hpp"

namespace spikeops {

void pool2d(const Pool2dArgs& a) {
  validate::Checker check("pool2d");
  if (a.kind != PoolKind::kMax && a.kind != PoolKind::kAvg) check.fail("kind", "must be PoolKind::kMax or kAvg");
  check.tensor(a.input, "input", 4, {DType::kFloat32, DType::kUInt8});
  const int64_t limit = std::numeric_limits<int32_t>::max();
  const auto pair = [](const int64_t* v) { return "(" + std::to_string(v[0]) + ", " + std::to_string(v[1]) + ")"; };
  for (int i = 0; i < 2; ++i) {
    if (a.kernel[i] < 1 || a.kernel[i] > limit) {
      check.fail("kernel", "must be >= 1 and below 2^31, got " + pair(a.kernel));
    }
    if (a.stride[i] < 1 || a.stride[i] > limit) {
      check.fail("stride", "must be >= 1 and below 2^31, got " + pair(a.stride));
    }
    if (a.padding[i] < 0 || 2 * a.padding[i] > a.kernel[i]) {
      check.fail("padding", "must be >= 0 and at most half the kernel " + pair(a.kernel) + ", got " +
                                pair(a.padding));
    }
  }
  const int64_t N = a.input.shape[0], C = a.input.shape[1], H = a.input.shape[2], W = a.input.shape[3];
  if (H + 2 * a.padding[0] < a.kernel[0] || W + 2 * a.padding[1] < a.kernel[1]) {
    check.fail("kernel", pair(a.kernel) + " does not fit the padded input of " + std::to_string(H + 2 * a.padding[0]) +
                             " x " + std::to_string(W + 2 * a.padding[1]));
  }
  const int64_t OH = (H + 2 * a.padding[0] - a.kernel[0]) / a.stride[0] + 1;
  const int64_t OW = (W + 2 * a.padding[1] - a.kernel[1]) / a.stride[1] + 1;
  const bool spikes = a.input.dtype == DType::kUInt8;
  const DType out_dtype = spikes && a.kind == PoolKind::kMax ? DType::kUInt8 : DType::kFloat32;
  check.tensor(a.out, "out", 4, {out_dtype});
  check.shape_is(a.out, "out", {N, C, OH, OW});
  check.same_device(a.out, "out", a.input, "input");
  if (a.out.numel() == 0) return;
  const PoolGeometry g{N * C, H, W, OH, OW, a.kernel[0], a.kernel[1], a.stride[0], a.stride[1], a.padding[0],
                       a.padding[1]};
  if (a.input.device == Device::kCUDA) {
    cuda::pool2d(g, a);
  } else {
    cpu::pool2d(g, a);
  }
}

}  // namespace spikeops
