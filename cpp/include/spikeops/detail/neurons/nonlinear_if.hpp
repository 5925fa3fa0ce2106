// SpikingJelly 2.0's nonlinear integrate-and-fire neurons: QIF, EIF and Izhikevich (QIF with an adaptation
// current w). Operations in SpikingJelly's order, dividing by tau as it does, so float32 results match it.
//
//   QIF         H = V + (X + a0 (V - v_rest)(V - v_c)) / tau
//   EIF         H = V + ((X + v_rest) - V + delta_T exp((V - theta_rh) / delta_T)) / tau
//   Izhikevich  H = V + ((X + a0 (V - v_rest)(V - v_c)) - W) / tau
//               W' = (W + (a (H - v_rest) - W) / tau_w) + b S     (S not detached by detach_reset)
//   fire        u = H - v_threshold, S = (u >= 0); reset as the LIF family (hard to v_reset, or subtract)
//
// Saved: H (4 bytes per neuron-step). dH/dV needs V[t-1], rebuilt from H[t-1] by the reset.
#pragma once

#include <cmath>
#include <string>

#include "spikeops/detail/neuron_math.hpp"
#include "spikeops/detail/numeric.hpp"
#include "spikeops/detail/neuron_model.hpp"
#include "spikeops/error.hpp"

namespace spikeops {

enum class NonlinearIF { kQIF, kEIF, kIzhikevich };

template <NonlinearIF F, bool kHardReset>
struct NonlinearIFModel {
  static constexpr int kStates = F == NonlinearIF::kIzhikevich ? 2 : 1, kSaved = 1, kLearnable = 0;
  static constexpr bool kNeedsPrev = true;

  struct Consts {
    float tau, vth, v_reset;
    float p0, p1, v_rest;  // QIF / Izhikevich: v_c, a0; EIF: delta_T, theta_rh
    float tau_w, a, b;     // Izhikevich only
  };

  static Consts consts(const NeuronParams& p) {
    const auto& e = p.extra;
    Consts c{static_cast<float>(p.tau), p.v_threshold, p.v_reset, e[0], e[1], e[2], 0.0f, 0.0f, 0.0f};
    if (F == NonlinearIF::kIzhikevich) {
      c.tau_w = e[3];
      c.a = e[4];
      c.b = e[5];
    }
    return c;
  }
  SPIKEOPS_HD static void bind(Consts&, const float*) {}

  // The charge's drive before the division by tau, and its derivative in V.
  SPIKEOPS_HD static float drive(const Consts& c, float v, float x) {
    if (F == NonlinearIF::kEIF) return ((x + c.v_rest) - v) + c.p0 * detail::exp_float((v - c.p1) / c.p0);
    return x + c.p1 * (v - c.v_rest) * (v - c.p0);
  }
  SPIKEOPS_HD static float drive_dv(const Consts& c, float v) {
    if (F == NonlinearIF::kEIF) return detail::exp_float((v - c.p1) / c.p0) - 1.0f;
    return c.p1 * ((v - c.p0) + (v - c.v_rest));
  }

  SPIKEOPS_HD static float step(const Consts& c, float* s, float x, float* saved) {
    const float v = s[0];
    const float h = F == NonlinearIF::kIzhikevich ? v + (drive(c, v, x) - s[1]) / c.tau : v + drive(c, v, x) / c.tau;
    const float spike = neuron_fire(h, c.vth);
    if (F == NonlinearIF::kIzhikevich) s[1] = (s[1] + (c.a * (h - c.v_rest) - s[1]) / c.tau_w) + c.b * spike;
    s[0] = neuron_reset<kHardReset>(h, spike, c.vth, c.v_reset);
    saved[0] = h;
    return spike;
  }

  SPIKEOPS_HD static float fire_input(const Consts& c, const float* saved) { return saved[0] - c.vth; }

  // Only V, which the backward reads (Izhikevich's W is not needed by it).
  SPIKEOPS_HD static void state_after(const Consts& c, const float* saved, float* s) {
    s[0] = neuron_reset_of<kHardReset>(saved[0], c.vth, c.v_reset);
  }

  SPIKEOPS_HD static float backward(const Consts& c, const float* saved, const float* prev, float sg, float gs,
                                    float through_spike, float* g, float*) {
    const float h = saved[0];
    const float spike = neuron_fire(h, c.vth);
    const float dv_dh = neuron_reset_grad<kHardReset>(h, spike, sg, through_spike, c.vth, c.v_reset);
    float gh = gs * sg + g[0] * dv_dh;
    if (F == NonlinearIF::kIzhikevich) {
      gh += g[1] * (c.a / c.tau_w + c.b * sg);
      g[1] = g[1] * (1.0f - 1.0f / c.tau_w) - gh / c.tau;
    }
    g[0] = gh * (1.0f + drive_dv(c, prev[0]) / c.tau);
    return gh / c.tau;
  }
};

namespace detail {

inline void validate_tau(const NeuronParams& p) {
  if (!(p.tau > 1.0 && p.tau <= static_cast<double>(std::numeric_limits<float>::max()))) {
    throw Error("tau must be a finite number > 1 that fits float32 (<= 3.4e38), got " + std::to_string(p.tau));
  }
}

inline void require_positive(float value, const char* name) {
  if (!(value > 0.0f)) throw Error(std::string(name) + " must be > 0, got " + std::to_string(value));
}

template <NonlinearIF F, typename Fn>
void dispatch_nonlinear_if(const NeuronParams& p, Fn&& f) {
  return p.hard_reset ? f(NonlinearIFModel<F, true>{}) : f(NonlinearIFModel<F, false>{});
}

}  // namespace detail

template <>
struct NeuronDef<NeuronKind::kQIF> {
  static constexpr int kStates = 1, kSaved = 1, kLearnable = 0;
  static constexpr const char* kExtraNames[] = {"v_c", "a0", "v_rest"};
  static constexpr int kExtra = 3;
  static void validate(const NeuronParams& p) {
    detail::validate_tau(p);
    detail::require_positive(p.extra[1], "a0");
  }
  template <typename F>
  static void dispatch(const NeuronParams& p, F&& f) {
    detail::dispatch_nonlinear_if<NonlinearIF::kQIF>(p, f);
  }
};

template <>
struct NeuronDef<NeuronKind::kEIF> {
  static constexpr int kStates = 1, kSaved = 1, kLearnable = 0;
  static constexpr const char* kExtraNames[] = {"delta_T", "theta_rh", "v_rest"};
  static constexpr int kExtra = 3;
  static void validate(const NeuronParams& p) {
    detail::validate_tau(p);
    detail::require_positive(p.extra[0], "delta_T");
  }
  template <typename F>
  static void dispatch(const NeuronParams& p, F&& f) {
    detail::dispatch_nonlinear_if<NonlinearIF::kEIF>(p, f);
  }
};

template <>
struct NeuronDef<NeuronKind::kIzhikevich> {
  static constexpr int kStates = 2, kSaved = 1, kLearnable = 0;  // states V, W
  static constexpr const char* kExtraNames[] = {"v_c", "a0", "v_rest", "tau_w", "a", "b"};
  static constexpr int kExtra = 6;
  static void validate(const NeuronParams& p) {
    detail::validate_tau(p);
    detail::require_positive(p.extra[1], "a0");
    detail::require_positive(p.extra[3], "tau_w");
  }
  template <typename F>
  static void dispatch(const NeuronParams& p, F&& f) {
    detail::dispatch_nonlinear_if<NonlinearIF::kIzhikevich>(p, f);
  }
};

}  // namespace spikeops
