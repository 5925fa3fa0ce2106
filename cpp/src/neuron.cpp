// Public entry points of the multi-step neurons: validation, then the CPU or CUDA kernel.
#include "spikeops/neuron.hpp"

#include <cmath>
#include <string>

#include "backend.hpp"
#include "spikeops/detail/neuron_math.hpp"
#include "spikeops/detail/neuron_models.hpp"
#include "spikeops/error.hpp"
#include "validate.hpp"

namespace spikeops {

const char* neuron_name(NeuronKind kind) {
  switch (kind) {
#define SPIKEOPS_NEURON_NAME(ID, NAME) \
  case NeuronKind::k##NAME:            \
    return #NAME;
    SPIKEOPS_FOR_EACH_NEURON_KIND(SPIKEOPS_NEURON_NAME)
#undef SPIKEOPS_NEURON_NAME
  }
  return "unknown neuron";
}

NeuronInfo neuron_info(NeuronKind kind) {
  NeuronInfo info{};
  with_neuron_def(kind, [&](auto def) {
    using D = decltype(def);
    info = {neuron_name(kind), D::kStates, D::kSaved, D::kLearnable, D::kExtra, D::kExtraNames,
            takes_saved_grad<D>::value, model_spikes<D>::value};
  });
  return info;
}

namespace {

std::string known_kinds() {
  std::string s;
#define SPIKEOPS_NEURON_LIST(ID, NAME) s += (s.empty() ? "" : ", ") + std::to_string(ID) + " " #NAME;
  SPIKEOPS_FOR_EACH_NEURON_KIND(SPIKEOPS_NEURON_LIST)
#undef SPIKEOPS_NEURON_LIST
  return s;
}

}  // namespace

void validate_neuron_params(const NeuronParams& p) {
  if (std::string(neuron_name(p.kind)) == "unknown neuron") {
    throw Error("neuron params: kind must be a NeuronKind (" + known_kinds() + "), got " +
                std::to_string(static_cast<int>(p.kind)));
  }
  if (!std::isfinite(p.v_threshold)) {
    throw Error("neuron params: v_threshold must be finite, got " + std::to_string(p.v_threshold));
  }
  if (p.hard_reset && !std::isfinite(p.v_reset)) {
    throw Error("neuron params: v_reset must be finite, got " + std::to_string(p.v_reset));
  }
  with_neuron_def(p.kind, [&](auto def) {
    using D = decltype(def);
    for (int i = 0; i < D::kExtra; ++i) {
      if (!std::isfinite(p.extra[i])) {
        throw Error(std::string("neuron params: ") + D::kExtraNames[i] + " (extra[" + std::to_string(i) +
                    "]) must be finite, got " + std::to_string(p.extra[i]));
      }
    }
    try {
      D::validate(p);
    } catch (const Error& e) {
      throw Error(std::string("neuron params: ") + neuron_name(p.kind) + " " + e.what());
    }
  });
  validate_surrogate(p.surrogate, "neuron params: surrogate");
}

namespace {

constexpr auto kFloat32 = DType::kFloat32;
constexpr auto kFloat16 = DType::kFloat16;
constexpr auto kBFloat16 = DType::kBFloat16;
constexpr auto kUInt8 = DType::kUInt8;

// A float32 tensor of `shape`; with `per_model` (a leading dimension of the model's states, saved values or
// learnable scalars), also `shape` without that dimension when it is 1 ([S, N] or [N] for a one-state model).
void check_float32(const validate::Checker& check, const TensorView& t, const char* arg,
                   std::initializer_list<int64_t> shape, const TensorView& ref, const char* ref_arg,
                   bool per_model = true) {
  const int ndim = static_cast<int>(shape.size());
  const bool dropped = per_model && *shape.begin() == 1 && t.defined() && t.ndim == ndim - 1;
  check.tensor(t, arg, dropped ? ndim - 1 : ndim, {kFloat32});
  if (dropped) {
    if (ndim == 2) check.shape_is(t, arg, {shape.begin()[1]});
    if (ndim == 3) check.shape_is(t, arg, {shape.begin()[1], shape.begin()[2]});
  } else {
    check.shape_is(t, arg, shape);
  }
  check.same_device(t, arg, ref, ref_arg);
}

void check_learnable(const validate::Checker& check, const NeuronInfo& m, const TensorView& learnable,
                     const TensorView& ref, const char* ref_arg) {
  if (m.learnable == 0) return;
  check.tensor(learnable, "learnable", 1, {kFloat32});
  check.shape_is(learnable, "learnable", {m.learnable});
  check.same_device(learnable, "learnable", ref, ref_arg);
}

}  // namespace

void neuron_multistep_forward(const NeuronParams& p, const NeuronForwardArgs& a) {
  validate::Checker check("neuron_multistep_forward");
  check.nested([&] { validate_neuron_params(p); });
  const NeuronInfo m = neuron_info(p.kind);
  // x_seq may repeat one row at every step (strides [0, 1]): checked as the contiguous [T, N] it stands for.
  TensorView x_seq = a.x_seq;
  if (repeats_one_row(x_seq)) x_seq.strides[0] = x_seq.shape[1];
  check.tensor(x_seq, "x_seq", 2, {kFloat32, kFloat16, kBFloat16});
  const int64_t T = a.x_seq.shape[0], N = a.x_seq.shape[1], S = m.states;
  check_float32(check, a.state_init, "state_init", {S, N}, a.x_seq, "x_seq");
  check.tensor(a.spike_seq, "spike_seq", 2, {kFloat32, kFloat16, kBFloat16, kUInt8});
  check.shape_is(a.spike_seq, "spike_seq", {T, N});
  check.same_device(a.spike_seq, "spike_seq", a.x_seq, "x_seq");
  check_float32(check, a.state_final, "state_final", {S, N}, a.x_seq, "x_seq");
  if (a.saved.defined()) check_float32(check, a.saved, "saved", {m.saved, T, N}, a.x_seq, "x_seq");
  if (a.v_seq.defined()) check_float32(check, a.v_seq, "v_seq", {T, N}, a.x_seq, "x_seq", false);
  check_learnable(check, m, a.learnable, a.x_seq, "x_seq");
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
  const NeuronInfo m = neuron_info(p.kind);
  const int64_t K = m.saved, S = m.states;
  const bool dropped = K == 1 && a.saved.defined() && a.saved.ndim == 2;
  check.tensor(a.saved, "saved", dropped ? 2 : 3, {kFloat32});
  const int64_t T = a.saved.shape[dropped ? 0 : 1], N = a.saved.shape[dropped ? 1 : 2];
  check_float32(check, a.saved, "saved", {K, T, N}, a.saved, "saved");
  if (a.grad_spike_seq.defined()) {
    check.tensor(a.grad_spike_seq, "grad_spike_seq", 2, {kFloat32, kFloat16, kBFloat16});
    check.shape_is(a.grad_spike_seq, "grad_spike_seq", {T, N});
    check.same_device(a.grad_spike_seq, "grad_spike_seq", a.saved, "saved");
  }
  if (a.grad_v_seq.defined()) check_float32(check, a.grad_v_seq, "grad_v_seq", {T, N}, a.saved, "saved", false);
  if (a.grad_state_final.defined()) {
    check_float32(check, a.grad_state_final, "grad_state_final", {S, N}, a.saved, "saved");
  }
  if (a.grad_saved.defined()) {
    if (!m.saved_grad) {
      check.fail("grad_saved", std::string("must be empty: ") + m.name +
                                   "'s saved values are not an output, so no gradient reaches them");
    }
    check_float32(check, a.grad_saved, "grad_saved", {K, T, N}, a.saved, "saved");
  }
  if (a.surrogate_grad_seq.defined()) {
    check_float32(check, a.surrogate_grad_seq, "surrogate_grad_seq", {T, N}, a.saved, "saved", false);
  }
  check_float32(check, a.state_init, "state_init", {S, N}, a.saved, "saved");
  check_learnable(check, m, a.learnable, a.saved, "saved");
  check.tensor(a.grad_x_seq, "grad_x_seq", 2, {kFloat32, kFloat16, kBFloat16});
  check.shape_is(a.grad_x_seq, "grad_x_seq", {T, N});
  check.same_device(a.grad_x_seq, "grad_x_seq", a.saved, "saved");
  check_float32(check, a.grad_state_init, "grad_state_init", {S, N}, a.saved, "saved");
  if (m.learnable > 0) {
    check_float32(check, a.grad_learnable, "grad_learnable", {m.learnable, N}, a.saved, "saved");
  }
  if (N == 0) return;
  if (a.saved.device == Device::kCUDA) {
    cuda::neuron_backward(p, a);
  } else {
    cpu::neuron_backward(p, a);
  }
}

}  // namespace spikeops
