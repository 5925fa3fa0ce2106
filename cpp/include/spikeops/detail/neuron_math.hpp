// Internal: per-step math the LIF-style models share (charge, fire, reset and their derivatives), host and
// device code, and the small helpers the kernels use to read x_seq. Not part of the API: see
// spikeops/neuron.hpp.
#pragma once

#include <cstdint>

#include "spikeops/config.hpp"
#include "spikeops/neuron.hpp"
#include "spikeops/tensor.hpp"

namespace spikeops {

enum class ChargeKind : int {
  kIF = 0,             // H = V + X
  kDecayInput = 1,     // H = V + (X - (V - Vr)) * k
  kNoDecayInput = 2,   // H = V - (V - Vr) * k + X
};

template <ChargeKind C>
SPIKEOPS_HD float neuron_charge(float v, float x, float k, float vr) {
  if (C == ChargeKind::kIF) return v + x;
  if (C == ChargeKind::kDecayInput) return v + (x - (v - vr)) * k;
  return v - (v - vr) * k + x;
}

// dH/dV and dH/dX of the charge.
template <ChargeKind C>
SPIKEOPS_HD float neuron_charge_dv(float k) {
  return C == ChargeKind::kIF ? 1.0f : 1.0f - k;
}
template <ChargeKind C>
SPIKEOPS_HD float neuron_charge_dx(float k) {
  return C == ChargeKind::kDecayInput ? k : 1.0f;
}

// dH/dk given H and the previous V: for decay_input X - (V - Vr) = (H - V) / k, which avoids re-reading X.
template <ChargeKind C>
SPIKEOPS_HD float neuron_charge_dk(float h, float v_prev, float k, float vr) {
  if (C == ChargeKind::kDecayInput) return (h - v_prev) / k;
  if (C == ChargeKind::kNoDecayInput) return vr - v_prev;
  return 0.0f;
}

SPIKEOPS_HD float neuron_fire(float h, float v_threshold) { return h - v_threshold >= 0.0f ? 1.0f : 0.0f; }

template <bool kHardReset>
SPIKEOPS_HD float neuron_reset(float h, float spike, float v_threshold, float v_reset) {
  if (kHardReset) return spike != 0.0f ? v_reset : h;
  return h - spike * v_threshold;
}

// dV/dH of the reset at fixed S, and dV/dS.
template <bool kHardReset>
SPIKEOPS_HD float neuron_reset_dh(float spike) {
  return kHardReset ? 1.0f - spike : 1.0f;
}
template <bool kHardReset>
SPIKEOPS_HD float neuron_reset_ds(float h, float v_threshold, float v_reset) {
  return kHardReset ? v_reset - h : -v_threshold;
}

// V after the reset of H, whether it fired or not: how a model that saves H rebuilds V.
template <bool kHardReset>
SPIKEOPS_HD float neuron_reset_of(float h, float v_threshold, float v_reset) {
  return neuron_reset<kHardReset>(h, neuron_fire(h, v_threshold), v_threshold, v_reset);
}

// The whole dV/dH of the reset: at fixed S, plus through S = heaviside(H - v_threshold) with σ'(u) = sg in place
// of dS/dH (through_spike is 0 with detach_reset, else 1).
template <bool kHardReset>
SPIKEOPS_HD float neuron_reset_grad(float h, float spike, float sg, float through_spike, float v_threshold,
                                    float v_reset) {
  return neuron_reset_dh<kHardReset>(spike) + through_spike * neuron_reset_ds<kHardReset>(h, v_threshold, v_reset) * sg;
}

// Whether x_seq gives the same input at every step: [T, N] with strides [0, 1].
inline bool repeats_one_row(const TensorView& x_seq) {
  return x_seq.ndim == 2 && x_seq.strides[0] == 0 && (x_seq.strides[1] == 1 || x_seq.shape[1] <= 1);
}

// Elements of x_seq between one step's input and the next: N, or 0 when it repeats one row.
inline int64_t input_step(const TensorView& x_seq) { return repeats_one_row(x_seq) ? 0 : x_seq.shape[1]; }

// k of a LIF neuron: 1/tau rounded once to float32 (what `x * (1 / tau)` does to a float32 tensor in torch).
inline float lif_decay(double tau) { return static_cast<float>(1.0 / tau); }

}  // namespace spikeops
