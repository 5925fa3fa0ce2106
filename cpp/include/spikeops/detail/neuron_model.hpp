// Internal: what a neuron model defines, and the generic kernels rely on (docs/adding_a_neuron.md).
//
// A model is a NeuronDef<kind> specialization, the model's host side:
//   kStates, kSaved, kLearnable   state variables (V first), float32 values saved per neuron-step, learnable
//                                 scalars (as spikeops::NeuronInfo reports them)
//   kExtraNames, kExtra           the names of the NeuronParams::extra slots it reads, and how many
//   validate(params)              throws spikeops::Error naming a model parameter that is out of range
//   dispatch(params, f)           calls f(Model{}) with the step type for these parameters (a template per
//                                 reset mode, charge variant, ..., so the kernels branch once, not per element)
// and step types, with the same kStates/kSaved/kLearnable plus:
//   kNeedsPrev                    whether backward() reads the state before the step
//   kConstStates (optional, 0)    the last kConstStates states are per-neuron constants (per-channel
//                                 parameters expanded to the neurons): step() reads them and never writes
//                                 them, and with kNeedsPrev the kernels give backward() their values in `prev`
//                                 at every step; backward() adds its dL/d(constant) to their rows of g
//   Consts consts(params)         host: the step's constants
//   bind(consts, learnable)       host/device: put the learnable scalars (device memory on CUDA) into consts
//   step(c, s, x, saved)          one forward step: advances the state s[kStates] with input x, writes
//                                 saved[kSaved], returns the spike (0 or 1)
//   fire_input(c, saved)          u, the surrogate's argument: the spike was heaviside(u)
//   state_after(c, saved, s)      the state after a step, rebuilt from that step's saved values (only the
//                                 variables backward() reads; needed only when kNeedsPrev)
//   backward(c, saved, prev, sg, gs, through_spike, g, gl)
//                                 one backward step: sg = σ'(u), gs = dL/dS; g[kStates] holds dL/d(state after
//                                 the step) and becomes dL/d(state before it); gl[kLearnable] accumulates
//                                 dL/d(learnable); through_spike is 0 with detach_reset, else 1; returns dL/dX.
//   kSavedGrad (optional)         true when the saved values may also be an output (LIAF returns act(H), H being
//                                 LIF's saved value): backward() then takes a ninth argument, gsaved[kSaved],
//                                 the gradient reaching them from outside, and NeuronDef repeats the flag.
//   kSpiking (optional)           false (on both types) for a model that never fires, whose output is its saved
//                                 potential (the non-spiking readouts): the kernels then skip the surrogate.
// All step functions are SPIKEOPS_HD: the CPU and CUDA kernels run the same code.
#pragma once

#include <type_traits>

#include "spikeops/config.hpp"
#include "spikeops/neuron.hpp"

namespace spikeops {

template <NeuronKind K>
struct NeuronDef;

// M::kSavedGrad, false when M does not declare it.
template <typename M, typename = void>
struct takes_saved_grad : std::false_type {};
template <typename M>
struct takes_saved_grad<M, std::void_t<decltype(M::kSavedGrad)>> : std::integral_constant<bool, M::kSavedGrad> {};

// D::kSpiking (a NeuronDef or a step type), true when D does not declare it.
template <typename D, typename = void>
struct model_spikes : std::true_type {};
template <typename D>
struct model_spikes<D, std::void_t<decltype(D::kSpiking)>> : std::integral_constant<bool, D::kSpiking> {};

// One backward step of model M for the kernels: gsaved (dL/d(saved values) from outside, zeros when there is
// none) reaches the models that take it (validation refuses a gradient for the saved values of the others).
template <typename M>
SPIKEOPS_HD float model_backward(const typename M::Consts& c, const float* saved, const float* prev, float sg,
                                 float gs, float through_spike, float* g, float* gl, const float* gsaved) {
  if constexpr (takes_saved_grad<M>::value) {
    return M::backward(c, saved, prev, sg, gs, through_spike, g, gl, gsaved);
  } else {
    (void)gsaved;
    return M::backward(c, saved, prev, sg, gs, through_spike, g, gl);
  }
}

// M::kConstStates, or 0 for a model without constant states.
template <typename M, typename = void>
struct NeuronConstStates : std::integral_constant<int, 0> {};
template <typename M>
struct NeuronConstStates<M, std::void_t<decltype(M::kConstStates)>> : std::integral_constant<int, M::kConstStates> {};

}  // namespace spikeops
