// SpikingJelly 2.0's GatedLIFNode (GLIF, Yao et al. 2022). With a = sigmoid(alpha) etc., per step:
//   H = ((K V - D) + I) - K V G S - R S,   u = H - v_threshold,   S' = heaviside(u),   V' = H
// where K = 1 - a (1 - tau), D = (1 - a) linear_decay, R = (1 - g) v_subreset, G = g, S the previous step's
// spike (not detached), and I = X (1 - b (1 - conduct[t])) the input current, computed by the caller.
//
// Why this shape: GLIF's parameters are learnable per layer or per channel, while the core's learnable scalars
// are one value for all neurons. So the caller feeds I as x_seq (conduct[t] and beta enter only there, and
// autograd differentiates them), and passes K, D, G, R and v_threshold as constant states: per-neuron state
// rows (the channel's value expanded) that step() reads and never changes. Their dL/d(state) then accumulates
// over all steps in the generic backward's grad_state_init, which autograd sums back per channel. The kernels
// give backward() a model's constant states (kConstStates, the last ones) in `prev` at every step.
//
// States: V, S (the previous spike: 0 before the first step of a call), K, D, G, R, v_threshold.
// Saved: H and u (8 bytes per neuron-step): H is the next step's V; u gives the spike and σ'(u) without the
// per-neuron threshold, which fire_input() cannot read. Operations in SpikingJelly's order, so float32 spikes
// and V match it bit for bit.
#pragma once

#include "spikeops/detail/neuron_math.hpp"
#include "spikeops/detail/neuron_model.hpp"
#include "spikeops/error.hpp"

namespace spikeops {

struct GatedLIFModel {
  static constexpr int kStates = 7, kSaved = 2, kLearnable = 0;
  static constexpr int kConstStates = 5;  // K, D, G, R, v_threshold
  static constexpr bool kNeedsPrev = true;

  struct Consts {};
  static Consts consts(const NeuronParams&) { return {}; }
  SPIKEOPS_HD static void bind(Consts&, const float*) {}

  SPIKEOPS_HD static float step(const Consts&, float* s, float x, float* saved) {
    const float kv = s[2] * s[0];
    float h = (kv - s[3]) + x;
    h = (h - kv * s[4] * s[1]) - s[5] * s[1];
    const float u = h - s[6];
    const float spike = u >= 0.0f ? 1.0f : 0.0f;
    saved[0] = h;
    saved[1] = u;
    s[0] = h;
    s[1] = spike;
    return spike;
  }
  SPIKEOPS_HD static float fire_input(const Consts&, const float* saved) { return saved[1]; }
  SPIKEOPS_HD static void state_after(const Consts&, const float* saved, float* s) {
    s[0] = saved[0];
    s[1] = saved[1] >= 0.0f ? 1.0f : 0.0f;
  }

  // g = (dL/dV, dL/dS, dL/dK, dL/dD, dL/dG, dL/dR, dL/dv_threshold) after the step in, before it out; the
  // constant states' rows keep accumulating. dL/dS after the step reaches this step's spike (S' = spike), so it
  // joins the output's gs before the surrogate.
  SPIKEOPS_HD static float backward(const Consts&, const float*, const float* prev, float sg, float gs, float,
                                    float* g, float*) {
    const float v = prev[0], s = prev[1], k = prev[2], gate = prev[4], r = prev[5];
    const float gu = (gs + g[1]) * sg;
    const float gh = g[0] + gu;
    const float kv = k * v;
    const float keep = 1.0f - gate * s;  // dH/d(K V)
    g[0] = gh * k * keep;
    g[1] = -gh * (kv * gate + r);
    g[2] += gh * v * keep;
    g[3] -= gh;
    g[4] -= gh * kv * s;
    g[5] -= gh * s;
    g[6] -= gu;
    return gh;
  }
};

template <>
struct NeuronDef<NeuronKind::kGatedLIF> {
  static constexpr int kStates = 7, kSaved = 2, kLearnable = 0;  // states V, S, K, D, G, R, v_threshold
  static constexpr const char* kExtraNames[] = {nullptr};
  static constexpr int kExtra = 0;
  static void validate(const NeuronParams& p) {
    if (p.hard_reset) throw Error("has no reset (V' = H): v_reset must be None");
  }
  template <typename F>
  static void dispatch(const NeuronParams&, F&& f) {
    f(GatedLIFModel{});
  }
};

}  // namespace spikeops
