// Public entry points of the multi-step neurons: validation, then the CPU or CUDA kernel.
#include "spikeops/neuron.hpp"

#include <cmath>
#include <limits>
#include <string>

#include "backend.hpp"
#include "spikeops/detail/neuron_math.hpp"
#include "spikeops/error.hpp"
#include "validate.hpp"

namespace spikeops {

const char* neuron_name(NeuronKind kind) {
  switch (kind) {
    case NeuronKind::kIF: return "IF";
    case NeuronKind::kLIF: return "LIF";
    case NeuronKind::kParametricLIF: return "ParametricLIF";
  }
  return "unknown neuron";
}

void validate_neuron_params(const NeuronParams& p) {
  const int kind = static_cast<int>(p.kind);
  if (kind < 0 || kind > 2) {
    throw Error("neuron params: kind must be a NeuronKind (0 IF, 1 LIF, 2 ParametricLIF), got " +
                std::to_string(kind));
  }
  if (!std::isfinite(p.v_threshold)) {
    throw Error("neuron params: v_threshold must be finite, got " + std::to_string(p.v_threshold));
  }
  if (p.hard_reset && !std::isfinite(p.v_reset)) {
    throw Error("neuron params: v_reset must be finite, got " + std::to_string(p.v_reset));
  }
  // tau is a double but the kernels compute in float32: beyond float32's range, 1/tau would be a subnormal
  // (or, past about 7e45, 0) and the neuron a silent integrator of nothing.
  if (p.kind == NeuronKind::kLIF &&
      !(p.tau > 1.0 && p.tau <= static_cast<double>(std::numeric_limits<float>::max()))) {
    throw Error("neuron params: tau must be a finite number > 1 that fits float32 (<= 3.4e38), got " +
                std::to_string(p.tau));
  }
  validate_surrogate(p.surrogate, "neuron params: surrogate");
}

namespace {

constexpr auto kFloat32 = DType::kFloat32;
constexpr auto kFloat16 = DType::kFloat16;
constexpr auto kBFloat16 = DType::kBFloat16;
constexpr auto kUInt8 = DType::kUInt8;

// The decay tensor of a ParametricLIF: [1] float32 on the device of `ref`.
void check_decay(const validate::Checker& check, const NeuronParams& p, const TensorView& decay,
                 const TensorView& ref, const char* ref_arg) {
  if (p.kind != NeuronKind::kParametricLIF) return;
  check.tensor(decay, "decay", 1, {kFloat32});
  check.shape_is(decay, "decay", {1});
  check.same_device(decay, "decay", ref, ref_arg);
}

}  // namespace

void neuron_multistep_forward(const NeuronParams& p, const NeuronForwardArgs& a) {
  validate::Checker check("neuron_multistep_forward");
  check.nested([&] { validate_neuron_params(p); });
  // x_seq may repeat one row at every step (strides [0, 1]): checked as the contiguous [T, N] it stands for.
  TensorView x_seq = a.x_seq;
  if (repeats_one_row(x_seq)) x_seq.strides[0] = x_seq.shape[1];
  check.tensor(x_seq, "x_seq", 2, {kFloat32, kFloat16, kBFloat16});
  const int64_t T = a.x_seq.shape[0], N = a.x_seq.shape[1];
  check.tensor(a.v_init, "v_init", 1, {kFloat32});
  check.shape_is(a.v_init, "v_init", {N});
  check.tensor(a.spike_seq, "spike_seq", 2, {kFloat32, kFloat16, kBFloat16, kUInt8});
  check.shape_is(a.spike_seq, "spike_seq", {T, N});
  check.tensor(a.v_final, "v_final", 1, {kFloat32});
  check.shape_is(a.v_final, "v_final", {N});
  check.same_device(a.v_init, "v_init", a.x_seq, "x_seq");
  check.same_device(a.spike_seq, "spike_seq", a.x_seq, "x_seq");
  check.same_device(a.v_final, "v_final", a.x_seq, "x_seq");
  if (a.h_seq.defined()) {
    check.tensor(a.h_seq, "h_seq", 2, {kFloat32});
    check.shape_is(a.h_seq, "h_seq", {T, N});
    check.same_device(a.h_seq, "h_seq", a.x_seq, "x_seq");
  }
  if (a.v_seq.defined()) {
    check.tensor(a.v_seq, "v_seq", 2, {kFloat32});
    check.shape_is(a.v_seq, "v_seq", {T, N});
    check.same_device(a.v_seq, "v_seq", a.x_seq, "x_seq");
  }
  check_decay(check, p, a.decay, a.x_seq, "x_seq");
  if (N == 0) return;
  if (a.x_seq.device == Device::kCUDA) {
    cuda::neuron_forward(p, a);
  } else {
    cpu::neuron_forward(p, a);
  }
}

void neuron_multistep_backward(const NeuronParams& p, const NeuronBackwardArgs& a) {
  validate::Checker check("neuron_multistep_backward");
  check.nested([&] { validate_neuron_params(p); });
  check.tensor(a.h_seq, "h_seq", 2, {kFloat32});
  const int64_t T = a.h_seq.shape[0], N = a.h_seq.shape[1];
  check.tensor(a.grad_spike_seq, "grad_spike_seq", 2, {kFloat32, kFloat16, kBFloat16});
  check.shape_is(a.grad_spike_seq, "grad_spike_seq", {T, N});
  check.same_device(a.grad_spike_seq, "grad_spike_seq", a.h_seq, "h_seq");
  if (a.grad_v_seq.defined()) {
    check.tensor(a.grad_v_seq, "grad_v_seq", 2, {kFloat32});
    check.shape_is(a.grad_v_seq, "grad_v_seq", {T, N});
    check.same_device(a.grad_v_seq, "grad_v_seq", a.h_seq, "h_seq");
  }
  if (a.grad_v_final.defined()) {
    check.tensor(a.grad_v_final, "grad_v_final", 1, {kFloat32});
    check.shape_is(a.grad_v_final, "grad_v_final", {N});
    check.same_device(a.grad_v_final, "grad_v_final", a.h_seq, "h_seq");
  }
  check.tensor(a.grad_x_seq, "grad_x_seq", 2, {kFloat32, kFloat16, kBFloat16});
  check.shape_is(a.grad_x_seq, "grad_x_seq", {T, N});
  check.same_device(a.grad_x_seq, "grad_x_seq", a.h_seq, "h_seq");
  check.tensor(a.grad_v_init, "grad_v_init", 1, {kFloat32});
  check.shape_is(a.grad_v_init, "grad_v_init", {N});
  check.same_device(a.grad_v_init, "grad_v_init", a.h_seq, "h_seq");
  if (p.kind == NeuronKind::kParametricLIF) {
    check_decay(check, p, a.decay, a.h_seq, "h_seq");
    check.tensor(a.v_init, "v_init", 1, {kFloat32});
    check.shape_is(a.v_init, "v_init", {N});
    check.same_device(a.v_init, "v_init", a.h_seq, "h_seq");
    check.tensor(a.grad_decay, "grad_decay", 1, {kFloat32});
    check.shape_is(a.grad_decay, "grad_decay", {N});
    check.same_device(a.grad_decay, "grad_decay", a.h_seq, "h_seq");
  }
  if (N == 0) return;
  if (a.h_seq.device == Device::kCUDA) {
    cuda::neuron_backward(p, a);
  } else {
    cpu::neuron_backward(p, a);
  }
}

}  // namespace spikeops
