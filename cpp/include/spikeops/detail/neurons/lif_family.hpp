// IF, LIF and ParametricLIF (SpikingJelly's IFNode, LIFNode, ParametricLIFNode): one state (V), saving H.
//
//   charge  IF: H = V + X;  decay_input: H = V + (X - (V - Vr)) k;  otherwise: H = V - (V - Vr) k + X
//           k = 1/tau rounded once to float32 (LIF), or learnable[0] = sigmoid(w) (ParametricLIF)
//           Vr = v_reset with a hard reset, 0 with a soft one
//   fire    u = H - v_threshold, S = (u >= 0)
//   reset   hard: V = S ? v_reset : H;   soft: V = H - S * v_threshold
//
// The backward reads H only (S and V are recomputed from it); ParametricLIF's dL/dk also needs V[t-1], rebuilt
// from H[t-1]. dH/dk = (H - V) / k with decay_input, which avoids saving X. H may also be an output (LIAF
// returns act(H)): its gradient from outside, gsaved[0], joins dL/dH.
#pragma once

#include <cmath>
#include <limits>
#include <string>

#include "spikeops/detail/neuron_math.hpp"
#include "spikeops/detail/neuron_model.hpp"
#include "spikeops/error.hpp"

namespace spikeops {

template <ChargeKind C, bool kHardReset, bool kLearnedDecay>
struct LIFFamilyModel {
  static constexpr int kStates = 1, kSaved = 1, kLearnable = kLearnedDecay ? 1 : 0;
  static constexpr bool kNeedsPrev = kLearnedDecay;  // dL/dk needs V[t-1]
  static constexpr bool kSavedGrad = true;

  struct Consts {
    float k, vr, vth, v_reset;
  };

  static Consts consts(const NeuronParams& p) {
    // IF ignores k; a ParametricLIF's k is bound from `learnable` by the kernel.
    const float k = p.kind == NeuronKind::kLIF ? lif_decay(p.tau) : 1.0f;
    return {k, p.hard_reset ? p.v_reset : 0.0f, p.v_threshold, p.v_reset};
  }
  SPIKEOPS_HD static void bind(Consts& c, const float* learnable) {
    if (kLearnedDecay) c.k = learnable[0];
  }

  SPIKEOPS_HD static float step(const Consts& c, float* s, float x, float* saved) {
    const float h = neuron_charge<C>(s[0], x, c.k, c.vr);
    const float spike = neuron_fire(h, c.vth);
    saved[0] = h;
    s[0] = neuron_reset<kHardReset>(h, spike, c.vth, c.v_reset);
    return spike;
  }

  SPIKEOPS_HD static float fire_input(const Consts& c, const float* saved) { return saved[0] - c.vth; }

  SPIKEOPS_HD static void state_after(const Consts& c, const float* saved, float* s) {
    s[0] = neuron_reset_of<kHardReset>(saved[0], c.vth, c.v_reset);
  }

  // g: dL/dV[t] in, dL/dV[t-1] out; gl[0] += dL/dk; gsaved[0]: dL/dH[t] from outside; returns dL/dX[t].
  SPIKEOPS_HD static float backward(const Consts& c, const float* saved, const float* prev, float sg, float gs,
                                    float through_spike, float* g, float* gl, const float* gsaved) {
    const float h = saved[0];
    const float spike = neuron_fire(h, c.vth);
    const float dv_dh = neuron_reset_grad<kHardReset>(h, spike, sg, through_spike, c.vth, c.v_reset);
    const float gh = gs * sg + g[0] * dv_dh + gsaved[0];
    g[0] = gh * neuron_charge_dv<C>(c.k);
    if (kLearnedDecay) gl[0] += gh * neuron_charge_dk<C>(h, prev[0], c.k, c.vr);
    return gh * neuron_charge_dx<C>(c.k);
  }
};

namespace detail {

template <bool kLearnedDecay, typename F>
void dispatch_lif_family(const NeuronParams& p, ChargeKind c, F&& f) {
  const bool hard = p.hard_reset;
  switch (c) {
    case ChargeKind::kIF:
      return hard ? f(LIFFamilyModel<ChargeKind::kIF, true, false>{})
                  : f(LIFFamilyModel<ChargeKind::kIF, false, false>{});
    case ChargeKind::kDecayInput:
      return hard ? f(LIFFamilyModel<ChargeKind::kDecayInput, true, kLearnedDecay>{})
                  : f(LIFFamilyModel<ChargeKind::kDecayInput, false, kLearnedDecay>{});
    case ChargeKind::kNoDecayInput:
      return hard ? f(LIFFamilyModel<ChargeKind::kNoDecayInput, true, kLearnedDecay>{})
                  : f(LIFFamilyModel<ChargeKind::kNoDecayInput, false, kLearnedDecay>{});
  }
}

}  // namespace detail

template <>
struct NeuronDef<NeuronKind::kIF> {
  static constexpr int kStates = 1, kSaved = 1, kLearnable = 0;
  static constexpr const char* kExtraNames[] = {nullptr};
  static constexpr int kExtra = 0;
  static constexpr bool kSavedGrad = true;  // H, an output of LIAF
  static void validate(const NeuronParams&) {}
  template <typename F>
  static void dispatch(const NeuronParams& p, F&& f) {
    detail::dispatch_lif_family<false>(p, ChargeKind::kIF, f);
  }
};

template <>
struct NeuronDef<NeuronKind::kLIF> {
  static constexpr int kStates = 1, kSaved = 1, kLearnable = 0;
  static constexpr const char* kExtraNames[] = {nullptr};
  static constexpr int kExtra = 0;
  static constexpr bool kSavedGrad = true;  // H, an output of LIAF
  static void validate(const NeuronParams& p) {
    // tau is a double but the kernels compute in float32: beyond float32's range 1/tau would be a subnormal
    // (or, past about 7e45, 0) and the neuron a silent integrator of nothing.
    if (!(p.tau > 1.0 && p.tau <= static_cast<double>(std::numeric_limits<float>::max()))) {
      throw Error("tau must be a finite number > 1 that fits float32 (<= 3.4e38), got " + std::to_string(p.tau));
    }
  }
  template <typename F>
  static void dispatch(const NeuronParams& p, F&& f) {
    detail::dispatch_lif_family<false>(p, p.decay_input ? ChargeKind::kDecayInput : ChargeKind::kNoDecayInput, f);
  }
};

template <>
struct NeuronDef<NeuronKind::kParametricLIF> {
  static constexpr int kStates = 1, kSaved = 1, kLearnable = 1;  // learnable[0] = k = sigmoid(w)
  static constexpr const char* kExtraNames[] = {nullptr};
  static constexpr int kExtra = 0;
  static constexpr bool kSavedGrad = true;  // H, an output of LIAF
  static void validate(const NeuronParams&) {}
  template <typename F>
  static void dispatch(const NeuronParams& p, F&& f) {
    detail::dispatch_lif_family<true>(p, p.decay_input ? ChargeKind::kDecayInput : ChargeKind::kNoDecayInput, f);
  }
};

}  // namespace spikeops
