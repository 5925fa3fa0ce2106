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
  double tau = 2.0;          // LIF only, must be > 1 and <= FLT_MAX; k = float(1 / tau)
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

}  // namespace spikeops
