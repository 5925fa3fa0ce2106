// SpikingJelly 2.0's LIF variants with a fused kernel: KLIF, CUBALIF and ComplementaryLIF. Operations in
// SpikingJelly's order (dividing by tau where it does), so float32 results match it.
//
// KLIF (learnable[0] = k):
//   H = V + (X - (V - Vr)) / tau  (decay_input)  or  V - (V - Vr) / tau + X;   F = relu(k H)
//   u = F - v_threshold;  reset of F, or with scale_reset of F / k (soft: F / k - S v_threshold / k)
//   saved: H (4 bytes per neuron-step)
// CUBALIF (states V, C):
//   C' = C c_decay + X;  H = V v_decay + C';  u = H - v_threshold;  reset of H.     saved: H
// ComplementaryLIF (states V, M; soft reset, never detached):
//   H = V - V / tau + X;  u = H - v_threshold;  M' = M sigmoid(H / tau) + S;  V' = H - S (v_threshold + sigmoid(M'))
//   saved: H and the incoming M (8 bytes per neuron-step)
#pragma once

#include <cmath>
#include <string>

#include "spikeops/detail/neuron_math.hpp"
#include "spikeops/detail/numeric.hpp"
#include "spikeops/detail/neuron_model.hpp"
#include "spikeops/detail/neurons/nonlinear_if.hpp"
#include "spikeops/error.hpp"

namespace spikeops {

// SpikingJelly's LIF charge with a float32 division by tau.
template <bool kDecayInput>
SPIKEOPS_HD float lif_charge_div(float v, float x, float tau, float vr) {
  return kDecayInput ? v + (x - (v - vr)) / tau : v - (v - vr) / tau + x;
}

template <bool kDecayInput, bool kHardReset, bool kScaleReset>
struct KLIFModel {
  static constexpr int kStates = 1, kSaved = 1, kLearnable = 1;
  static constexpr bool kNeedsPrev = false;

  struct Consts {
    float tau, vr, vth, v_reset, k;
  };
  static Consts consts(const NeuronParams& p) {
    return {static_cast<float>(p.tau), p.hard_reset ? p.v_reset : 0.0f, p.v_threshold, p.v_reset, 1.0f};
  }
  SPIKEOPS_HD static void bind(Consts& c, const float* learnable) { c.k = learnable[0]; }

  SPIKEOPS_HD static float relu(float x) { return x < 0.0f ? 0.0f : x; }  // NaN stays NaN, as torch.relu

  SPIKEOPS_HD static float reset(const Consts& c, float f, float spike) {
    if (!kScaleReset) return neuron_reset<kHardReset>(f, spike, c.vth, c.v_reset);
    const float g = f / c.k;
    return kHardReset ? (spike != 0.0f ? c.v_reset : g) : g - spike * (c.vth / c.k);
  }

  SPIKEOPS_HD static float step(const Consts& c, float* s, float x, float* saved) {
    const float h = lif_charge_div<kDecayInput>(s[0], x, c.tau, c.vr);
    const float f = relu(c.k * h);
    const float spike = neuron_fire(f, c.vth);
    s[0] = reset(c, f, spike);
    saved[0] = h;
    return spike;
  }
  SPIKEOPS_HD static float fire_input(const Consts& c, const float* saved) { return relu(c.k * saved[0]) - c.vth; }
  SPIKEOPS_HD static void state_after(const Consts& c, const float* saved, float* s) {
    const float f = relu(c.k * saved[0]);
    s[0] = reset(c, f, neuron_fire(f, c.vth));
  }

  SPIKEOPS_HD static float backward(const Consts& c, const float* saved, const float*, float sg, float gs,
                                    float through_spike, float* g, float* gl) {
    const float h = saved[0], kh = c.k * h, f = relu(kh);
    const float spike = neuron_fire(f, c.vth);
    float dv_df, dv_ds, dv_dk = 0.0f;
    if (!kScaleReset) {
      dv_df = neuron_reset_dh<kHardReset>(spike);
      dv_ds = neuron_reset_ds<kHardReset>(f, c.vth, c.v_reset);
    } else if (kHardReset) {
      dv_df = (1.0f - spike) / c.k;
      dv_ds = c.v_reset - f / c.k;
      dv_dk = -(1.0f - spike) * f / (c.k * c.k);
    } else {
      dv_df = 1.0f / c.k;
      dv_ds = -c.vth / c.k;
      dv_dk = -(f - spike * c.vth) / (c.k * c.k);
    }
    const float gf = g[0] * dv_df + (gs + through_spike * g[0] * dv_ds) * sg;
    const float gp = kh > 0.0f ? gf : 0.0f;
    gl[0] += gp * h + g[0] * dv_dk;
    const float gh = gp * c.k;
    g[0] = gh * (1.0f - 1.0f / c.tau);
    return kDecayInput ? gh / c.tau : gh;
  }
};

template <bool kHardReset>
struct CUBALIFModel {
  static constexpr int kStates = 2, kSaved = 1, kLearnable = 0;
  static constexpr bool kNeedsPrev = false;

  struct Consts {
    float c_decay, v_decay, vth, v_reset;
  };
  static Consts consts(const NeuronParams& p) { return {p.extra[0], p.extra[1], p.v_threshold, p.v_reset}; }
  SPIKEOPS_HD static void bind(Consts&, const float*) {}

  SPIKEOPS_HD static float step(const Consts& c, float* s, float x, float* saved) {
    s[1] = s[1] * c.c_decay + x;
    const float h = s[0] * c.v_decay + s[1];
    const float spike = neuron_fire(h, c.vth);
    s[0] = neuron_reset<kHardReset>(h, spike, c.vth, c.v_reset);
    saved[0] = h;
    return spike;
  }
  SPIKEOPS_HD static float fire_input(const Consts& c, const float* saved) { return saved[0] - c.vth; }
  SPIKEOPS_HD static void state_after(const Consts& c, const float* saved, float* s) {
    s[0] = neuron_reset_of<kHardReset>(saved[0], c.vth, c.v_reset);
  }

  // g = (dL/dV, dL/dC) after the step in, before it out.
  SPIKEOPS_HD static float backward(const Consts& c, const float* saved, const float*, float sg, float gs,
                                    float through_spike, float* g, float*) {
    const float h = saved[0];
    const float spike = neuron_fire(h, c.vth);
    const float dv_dh = neuron_reset_grad<kHardReset>(h, spike, sg, through_spike, c.vth, c.v_reset);
    const float gh = gs * sg + g[0] * dv_dh;
    const float gc = g[1] + gh;  // dL/dC' (C' feeds H and the next step)
    g[0] = gh * c.v_decay;
    g[1] = gc * c.c_decay;
    return gc;
  }
};

struct ComplementaryLIFModel {
  static constexpr int kStates = 2, kSaved = 2, kLearnable = 0;
  static constexpr bool kNeedsPrev = false;

  struct Consts {
    float tau, vth;
  };
  static Consts consts(const NeuronParams& p) { return {static_cast<float>(p.tau), p.v_threshold}; }
  SPIKEOPS_HD static void bind(Consts&, const float*) {}

  SPIKEOPS_HD static float sigmoid(float x) { return 1.0f / (1.0f + detail::exp_float(-x)); }

  SPIKEOPS_HD static float step(const Consts& c, float* s, float x, float* saved) {
    const float h = s[0] - (s[0] - 0.0f) / c.tau + x;
    const float spike = neuron_fire(h, c.vth);
    saved[0] = h;
    saved[1] = s[1];
    s[1] = s[1] * sigmoid(h / c.tau) + spike;
    s[0] = h - spike * (c.vth + sigmoid(s[1]));
    return spike;
  }
  SPIKEOPS_HD static float fire_input(const Consts& c, const float* saved) { return saved[0] - c.vth; }
  SPIKEOPS_HD static void state_after(const Consts& c, const float* saved, float* s) {
    const float h = saved[0], spike = neuron_fire(h, c.vth);
    s[1] = saved[1] * sigmoid(h / c.tau) + spike;
    s[0] = h - spike * (c.vth + sigmoid(s[1]));
  }

  // g = (dL/dV, dL/dM) after the step in, before it out.
  SPIKEOPS_HD static float backward(const Consts& c, const float* saved, const float*, float sg, float gs, float,
                                    float* g, float*) {
    const float h = saved[0], m = saved[1];
    const float spike = neuron_fire(h, c.vth);
    const float q = sigmoid(h / c.tau);
    const float m_new = m * q + spike;
    const float r = sigmoid(m_new);
    const float gm = g[1] - g[0] * spike * r * (1.0f - r);  // dL/dM'
    const float gspike = gs + gm - g[0] * (c.vth + r);
    const float gh = g[0] + gspike * sg + gm * m * q * (1.0f - q) / c.tau;
    g[1] = gm * q;
    g[0] = gh * (1.0f - 1.0f / c.tau);
    return gh;
  }
};

template <>
struct NeuronDef<NeuronKind::kKLIF> {
  static constexpr int kStates = 1, kSaved = 1, kLearnable = 1;  // learnable[0] = k
  static constexpr const char* kExtraNames[] = {"scale_reset"};
  static constexpr int kExtra = 1;
  static void validate(const NeuronParams& p) {
    detail::validate_tau(p);
    if (p.extra[0] != 0.0f && p.extra[0] != 1.0f) {
      throw Error("scale_reset must be 0 or 1, got " + std::to_string(p.extra[0]));
    }
  }
  template <typename F>
  static void dispatch(const NeuronParams& p, F&& f) {
    if (p.decay_input) return dispatch_reset<true>(p, f);
    return dispatch_reset<false>(p, f);
  }

 private:
  template <bool kDI, typename F>
  static void dispatch_reset(const NeuronParams& p, F&& f) {
    const bool scale = p.extra[0] != 0.0f;
    if (p.hard_reset) return scale ? f(KLIFModel<kDI, true, true>{}) : f(KLIFModel<kDI, true, false>{});
    return scale ? f(KLIFModel<kDI, false, true>{}) : f(KLIFModel<kDI, false, false>{});
  }
};

template <>
struct NeuronDef<NeuronKind::kCUBALIF> {
  static constexpr int kStates = 2, kSaved = 1, kLearnable = 0;  // states V, C
  static constexpr const char* kExtraNames[] = {"c_decay", "v_decay"};
  static constexpr int kExtra = 2;
  static void validate(const NeuronParams&) {}
  template <typename F>
  static void dispatch(const NeuronParams& p, F&& f) {
    return p.hard_reset ? f(CUBALIFModel<true>{}) : f(CUBALIFModel<false>{});
  }
};

template <>
struct NeuronDef<NeuronKind::kComplementaryLIF> {
  static constexpr int kStates = 2, kSaved = 2, kLearnable = 0;  // states V, M; saved H, M
  static constexpr const char* kExtraNames[] = {nullptr};
  static constexpr int kExtra = 0;
  static void validate(const NeuronParams& p) {
    detail::validate_tau(p);
    if (p.hard_reset) throw Error("has only the soft reset (v_reset = None)");
  }
  template <typename F>
  static void dispatch(const NeuronParams&, F&& f) {
    f(ComplementaryLIFModel{});
  }
};

}  // namespace spikeops
