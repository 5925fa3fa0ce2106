// Multi-step spiking neurons (IF, LIF, ParametricLIF): fused forward and backward over T time steps.
//
// Per neuron and step t (SpikingJelly's contract, computed in float32):
//   charge  H[t] = f(V[t-1], X[t])
//             IF:                      H = V + X
//             LIF / ParametricLIF, decay_input:      H = V + (X - (V - Vr)) * k
//             LIF / ParametricLIF, not decay_input:  H = V - (V - Vr) * k + X
//           with k = 1/tau (LIF) or sigmoid(w) (ParametricLIF, passed in as a tensor), Vr = v_reset (hard reset) or 0 (soft reset)
//   fire    S[t] = (H[t] - v_threshold >= 0)
//   reset   hard: V[t] = S ? v_reset : H[t]      soft: V[t] = H[t] - S * v_threshold
// Backward replaces dS/dH by the surrogate derivative σ'(H - v_threshold); with detach_reset the reset
// does not propagate gradient through S.
#pragma once

#include "spikeops/config.hpp"
#include "spikeops/surrogate.hpp"
#include "spikeops/tensor.hpp"

namespace spikeops {

enum class NeuronKind : int {
  kIF = 0,
  kLIF = 1,
  kParametricLIF = 2,
};

const char* neuron_name(NeuronKind kind);

struct NeuronParams {
  NeuronKind kind = NeuronKind::kLIF;
  float v_threshold = 1.0f;
  bool hard_reset = true;    // false: soft reset (SpikingJelly's v_reset=None)
  float v_reset = 0.0f;      // used by the hard reset and as the leak target
  double tau = 2.0;          // LIF only, must be > 1; k = float(1 / tau)
  bool decay_input = true;   // LIF and ParametricLIF
  bool detach_reset = false;
  Surrogate surrogate{};
};

// Throws spikeops::Error naming the parameter that is out of range.
void validate_neuron_params(const NeuronParams& p);

// Arguments of the multi-step forward. T = x_seq.shape[0], N = x_seq.shape[1]; all tensors contiguous and on
// one device, except that x_seq may give the same input at every step: strides [0, 1] (one row of N values in
// memory, e.g. a static image's first layer, read T times instead of copied).
struct NeuronForwardArgs {
  TensorView x_seq;      // in  [T, N] float32 / float16 / bfloat16: input current (strides [N, 1] or [0, 1])
  TensorView v_init;     // in  [N] float32: membrane potential before step 0
  TensorView decay;      // in  [1] float32, ParametricLIF only: k = sigmoid(w), computed by the caller
  TensorView spike_seq;  // out [T, N] float32 / float16 / bfloat16 / uint8: spikes, exactly 0 or 1
  TensorView v_final;    // out [N] float32: membrane potential after step T-1
  TensorView h_seq;      // out, optional [T, N] float32: charged potential H, what the backward needs
  TensorView v_seq;      // out, optional [T, N] float32: V after every step (SpikingJelly's store_v_seq)
  void* stream = nullptr;  // cudaStream_t for CUDA tensors
};

// Arguments of the multi-step backward. Only H and the initial V are read: S and V[t] are recomputed from H,
// so training keeps 4 bytes (float32 H) per neuron-step.
struct NeuronBackwardArgs {
  TensorView grad_spike_seq;  // in  [T, N] float32 / float16 / bfloat16
  TensorView grad_v_seq;      // in, optional [T, N] float32: gradient reaching v_seq
  TensorView grad_v_final;    // in, optional [N] float32: gradient reaching v_final
  TensorView h_seq;           // in  [T, N] float32, from the forward
  TensorView v_init;          // in  [N] float32, ParametricLIF only (the others do not need it)
  TensorView decay;           // in  [1] float32, ParametricLIF only: k
  TensorView grad_x_seq;      // out [T, N] float32 / float16 / bfloat16
  TensorView grad_v_init;     // out [N] float32
  TensorView grad_decay;      // out [N] float32, ParametricLIF only: per neuron, sum over t of dL/dk
  void* stream = nullptr;
};

void neuron_multistep_forward(const NeuronParams& params, const NeuronForwardArgs& args);
void neuron_multistep_backward(const NeuronParams& params, const NeuronBackwardArgs& args);

// ---- The per-step math, shared by the CPU and CUDA kernels. ----

enum class ChargeKind : int {
  kIF = 0,             // H = V + X
  kDecayInput = 1,     // H = V + (X - (V - Vr)) * k
  kNoDecayInput = 2,   // H = V - (V - Vr) * k + X
};

// The charge a neuron uses (LIF and ParametricLIF differ only in where k comes from).
inline ChargeKind charge_kind(const NeuronParams& p) {
  if (p.kind == NeuronKind::kIF) return ChargeKind::kIF;
  return p.decay_input ? ChargeKind::kDecayInput : ChargeKind::kNoDecayInput;
}

// The leak target in the charge: v_reset with a hard reset, 0 with a soft reset.
inline float charge_v_rest(const NeuronParams& p) { return p.hard_reset ? p.v_reset : 0.0f; }

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

// Whether x_seq gives the same input at every step: [T, N] with strides [0, 1].
inline bool repeats_one_row(const TensorView& x_seq) {
  return x_seq.ndim == 2 && x_seq.strides[0] == 0 && (x_seq.strides[1] == 1 || x_seq.shape[1] <= 1);
}

// Elements of x_seq between one step's input and the next: N, or 0 when it repeats one row.
inline int64_t input_step(const TensorView& x_seq) { return repeats_one_row(x_seq) ? 0 : x_seq.shape[1]; }

// k of a LIF neuron: 1/tau rounded once to float32 (what `x * (1 / tau)` does to a float32 tensor in torch).
inline float lif_decay(double tau) { return static_cast<float>(1.0 / tau); }

// k as known on the host: 1 for IF (unused by its charge), 1/tau for LIF. A ParametricLIF's k is a tensor
// (`decay`) that the kernels read themselves, possibly from device memory; 0 stands in here.
inline float host_decay(const NeuronParams& p) {
  switch (p.kind) {
    case NeuronKind::kLIF: return lif_decay(p.tau);
    case NeuronKind::kParametricLIF: return 0.0f;
    default: return 1.0f;
  }
}

}  // namespace spikeops
