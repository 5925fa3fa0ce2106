// Public entry point of the Poisson encoder: validation, then the CPU or CUDA back end.
#include "spikeops/encoding.hpp"

#include "backend.hpp"
#include "validate.hpp"

namespace spikeops {

void poisson_encode(const PoissonEncodeArgs& a) {
  validate::Checker check("poisson_encode");
  check.tensor(a.input, "input", 2, {DType::kFloat32});
  check.tensor(a.out, "out", 3, {DType::kUInt8});
  if (a.out.shape[1] != a.input.shape[0] || a.out.shape[2] != a.input.shape[1]) {
    check.fail("out", "must have shape [T, " + std::to_string(a.input.shape[0]) + ", " +
                          std::to_string(a.input.shape[1]) + "] for input " + a.input.shape_string() + ", got " +
                          a.out.shape_string());
  }
  check.same_device(a.out, "out", a.input, "input");
  if (a.out.numel() == 0) return;
  if (a.input.device == Device::kCUDA) {
    cuda::poisson_encode(a);
  } else {
    cpu::poisson_encode(a);
  }
}

}  // namespace spikeops
