// ALIF: a LIF neuron with an adaptive threshold (Bellec et al. 2018's LSNN, Norse's lsnn_feed_forward_step
// semantics). States V and A (the adaptation); k = 1/tau and rho = 1 - 1/tau_adapt as float32 multipliers.
//
//   charge  H = V + (X - (V - Vr)) k  (decay_input)  or  V - (V - Vr) k + X
//   adapt   A' = A rho,  B = v_threshold + beta A'          (the step's threshold)
//   fire    u = H - B, S = (u >= 0)
//   reset   hard: V = S ? v_reset : H;   soft: V = H - S B;   A = A' + S  (S not detached by detach_reset)
//
// Saved: H and B (8 bytes per neuron-step); the backward needs no earlier state.
#pragma once

#include <string>

#include "spikeops/detail/neuron_math.hpp"
#include "spikeops/detail/neuron_model.hpp"
#include "spikeops/detail/neurons/nonlinear_if.hpp"
#include "spikeops/error.hpp"

namespace spikeops {

template <ChargeKind C, bool kHardReset>
struct ALIFModel {
  static constexpr int kStates = 2, kSaved = 2, kLearnable = 0;
  static constexpr bool kNeedsPrev = false;

  struct Consts {
    float k, vr, vth, v_reset, rho, beta;
  };

  static Consts consts(const NeuronParams& p) {
    return {lif_decay(p.tau), p.hard_reset ? p.v_reset : 0.0f, p.v_threshold, p.v_reset, p.extra[0], p.extra[1]};
  }
  SPIKEOPS_HD static void bind(Consts&, const float*) {}

  SPIKEOPS_HD static float step(const Consts& c, float* s, float x, float* saved) {
    const float h = neuron_charge<C>(s[0], x, c.k, c.vr);
    const float a = s[1] * c.rho;
    const float b = c.vth + c.beta * a;
    const float spike = h - b >= 0.0f ? 1.0f : 0.0f;
    s[0] = kHardReset ? (spike != 0.0f ? c.v_reset : h) : h - spike * b;
    s[1] = a + spike;
    saved[0] = h;
    saved[1] = b;
    return spike;
  }

  SPIKEOPS_HD static float fire_input(const Consts&, const float* saved) { return saved[0] - saved[1]; }

  SPIKEOPS_HD static void state_after(const Consts& c, const float* saved, float* s) {
    const float h = saved[0], b = saved[1];
    const float spike = h - b >= 0.0f ? 1.0f : 0.0f;
    s[0] = kHardReset ? (spike != 0.0f ? c.v_reset : h) : h - spike * b;
    s[1] = (b - c.vth) / c.beta + spike;  // not read by the backward (kNeedsPrev is false)
  }

  // g = (dL/dV, dL/dA) after the step in, before it out.
  SPIKEOPS_HD static float backward(const Consts& c, const float* saved, const float*, float sg, float gs,
                                    float through_spike, float* g, float*) {
    const float h = saved[0], b = saved[1];
    const float spike = h - b >= 0.0f ? 1.0f : 0.0f;
    const float dv_ds = kHardReset ? c.v_reset - h : -b;
    const float gu = (gs + g[1] + through_spike * g[0] * dv_ds) * sg;
    const float gh = gu + g[0] * (kHardReset ? 1.0f - spike : 1.0f);
    const float gb = -gu - (kHardReset ? 0.0f : g[0] * spike);
    g[1] = c.rho * (g[1] + c.beta * gb);
    g[0] = gh * neuron_charge_dv<C>(c.k);
    return gh * neuron_charge_dx<C>(c.k);
  }
};

template <>
struct NeuronDef<NeuronKind::kALIF> {
  static constexpr int kStates = 2, kSaved = 2, kLearnable = 0;  // states V, A; saved H, B
  static constexpr const char* kExtraNames[] = {"adapt_decay", "beta"};
  static constexpr int kExtra = 2;
  static void validate(const NeuronParams& p) {
    detail::validate_tau(p);
    if (!(p.extra[0] >= 0.0f && p.extra[0] < 1.0f)) {
      throw Error("adapt_decay (1 - 1/tau_adapt) must be in [0, 1), got " + std::to_string(p.extra[0]));
    }
    if (!(p.extra[1] >= 0.0f)) throw Error("beta must be >= 0, got " + std::to_string(p.extra[1]));
  }
  template <typename F>
  static void dispatch(const NeuronParams& p, F&& f) {
    const bool hard = p.hard_reset;
    if (p.decay_input) {
      return hard ? f(ALIFModel<ChargeKind::kDecayInput, true>{}) : f(ALIFModel<ChargeKind::kDecayInput, false>{});
    }
    return hard ? f(ALIFModel<ChargeKind::kNoDecayInput, true>{}) : f(ALIFModel<ChargeKind::kNoDecayInput, false>{});
  }
};

}  // namespace spikeops
