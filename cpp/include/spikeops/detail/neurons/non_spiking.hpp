// SpikingJelly 2.0's NonSpikingIFNode and NonSpikingLIFNode: a membrane potential that never fires and is the
// layer's output (readout layers decode it over T). One state, V; no spike, no reset, no threshold, so the
// surrogate and reset parameters have no effect (the spikes are all 0). Operations as SpikingJelly's:
//   NonSpikingIF:  V' = V + X
//   NonSpikingLIF: V' = V + (X - V) / tau   (a float32 division)
// saved: V' (4 bytes per neuron-step), which is the output: its gradient reaches the backward as gsaved.
#pragma once

#include "spikeops/detail/neuron_model.hpp"
#include "spikeops/detail/neurons/nonlinear_if.hpp"

namespace spikeops {

template <bool kLeaky>
struct NonSpikingModel {
  static constexpr int kStates = 1, kSaved = 1, kLearnable = 0;
  static constexpr bool kNeedsPrev = false;
  static constexpr bool kSavedGrad = true;
  static constexpr bool kSpiking = false;

  struct Consts {
    float tau;
  };
  static Consts consts(const NeuronParams& p) { return {static_cast<float>(p.tau)}; }
  SPIKEOPS_HD static void bind(Consts&, const float*) {}

  SPIKEOPS_HD static float step(const Consts& c, float* s, float x, float* saved) {
    s[0] = kLeaky ? s[0] + (x - s[0]) / c.tau : s[0] + x;
    saved[0] = s[0];
    return 0.0f;
  }
  // No threshold: a constant fire input, far from it, whose derivative (what a spike's gradient would
  // multiply) is 0, as the spike's is.
  SPIKEOPS_HD static float fire_input(const Consts&, const float*) { return -1.0f; }
  SPIKEOPS_HD static void state_after(const Consts&, const float* saved, float* s) { s[0] = saved[0]; }

  // g[0]: dL/dV' from the next step in, dL/dV out; gsaved[0]: dL/dV' from the output. The spike's gradient
  // and σ' have nothing to reach.
  SPIKEOPS_HD static float backward(const Consts& c, const float*, const float*, float, float, float, float* g,
                                    float*, const float* gsaved) {
    const float gv = g[0] + gsaved[0];
    const float gx = kLeaky ? gv / c.tau : gv;  // as autograd of SpikingJelly's expression rounds it
    g[0] = kLeaky ? gv - gx : gv;
    return gx;
  }
};

// The host side of both: they differ in the leak only (NonSpikingLIF reads tau).
template <bool kLeaky>
struct NonSpikingDef {
  static constexpr int kStates = 1, kSaved = 1, kLearnable = 0;
  static constexpr const char* kExtraNames[] = {nullptr};
  static constexpr int kExtra = 0;
  static constexpr bool kSavedGrad = true;  // V', the output
  static constexpr bool kSpiking = false;
  static void validate(const NeuronParams& p) {
    if (kLeaky) detail::validate_tau(p);
  }
  template <typename F>
  static void dispatch(const NeuronParams&, F&& f) {
    f(NonSpikingModel<kLeaky>{});
  }
};

template <>
struct NeuronDef<NeuronKind::kNonSpikingIF> : NonSpikingDef<false> {};
template <>
struct NeuronDef<NeuronKind::kNonSpikingLIF> : NonSpikingDef<true> {};

}  // namespace spikeops
