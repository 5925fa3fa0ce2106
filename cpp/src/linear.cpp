// Public entry point of the dense linear layer on values: validation, then the CPU or CUDA back end.
#include "spikeops/linear.hpp"

#include <string>

#include "backend.hpp"
#include "validate.hpp"

namespace spikeops {

void linear(const LinearArgs& a) {
  validate::Checker check("linear");
  check.tensor(a.x, "x", 2, {DType::kFloat32});
  check.tensor(a.weight_t, "weight_t", 2, {DType::kFloat32});
  check.same_device(a.weight_t, "weight_t", a.x, "x");
  const int64_t M = a.x.shape[0], K = a.x.shape[1], O = a.weight_t.shape[1];
  if (a.weight_t.shape[0] != K) {
    check.fail("weight_t", "must have shape [K, O] with K = " + std::to_string(K) + " (the columns of x " +
                               a.x.shape_string() + "), got " + a.weight_t.shape_string());
  }
  if (a.bias.defined()) {
    check.tensor(a.bias, "bias", 1, {DType::kFloat32});
    check.shape_is(a.bias, "bias", {O});
    check.same_device(a.bias, "bias", a.x, "x");
  }
  check.tensor(a.out, "out", 2, {DType::kFloat32});
  check.shape_is(a.out, "out", {M, O});
  check.same_device(a.out, "out", a.x, "x");
  if (a.out.numel() == 0) return;
  if (a.x.device == Device::kCUDA) {
    cuda::linear(a);
  } else {
    cpu::linear(a);
  }
}

}  // namespace spikeops
