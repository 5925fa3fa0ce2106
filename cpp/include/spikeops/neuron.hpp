// Multi-step spiking neurons: fused forward and backward over T time steps, for every neuron model.
//
// A neuron model is defined once, in its header under spikeops/detail/neurons/ (docs/adding_a_neuron.md): its
// state variables (V first), its parameters, one step of its equations and that step's derivatives. The CPU and
// CUDA kernels, the validation and the bindings are generic over that definition. Every spiking model fires
// S[t] = heaviside(u[t]) with u the model's fire input (H - v_threshold for the LIF family; the non-spiking
// readouts never fire and output their potential, their saved value, instead); the backward
// replaces dS/du by the surrogate derivative σ'(u), or by a [T, N] tensor of σ'(u) the caller computed (a
// surrogate the core has no formula for); with detach_reset the reset does not propagate gradient through S.
//
// IF, LIF and ParametricLIF (SpikingJelly's contract, float32):
//   charge  IF: H = V + X;  LIF / ParametricLIF: H = V + (X - (V - Vr)) k (decay_input) or V - (V - Vr) k + X,
//           k = 1/tau (LIF) or sigmoid(w) (ParametricLIF: learnable[0] = k), Vr = v_reset (hard) or 0 (soft)
//   fire    S = (H - v_threshold >= 0)
//   reset   hard: V = S ? v_reset : H      soft: V = H - S * v_threshold
#pragma once

#include <array>

#include "spikeops/config.hpp"
#include "spikeops/surrogate.hpp"
#include "spikeops/tensor.hpp"

namespace spikeops {

// The models: X(id, Name). The id is stable (model files and Python store it); Python mirrors the enum.
#define SPIKEOPS_FOR_EACH_NEURON_KIND(X) \
  X(0, IF)                               \
  X(1, LIF)                              \
  X(2, ParametricLIF)                    \
  X(3, QIF)                              \
  X(4, EIF)                              \
  X(5, Izhikevich)                       \
  X(6, ALIF)                             \
  X(7, KLIF)                             \
  X(8, CUBALIF)                          \
  X(9, ComplementaryLIF)                 \
  X(10, NonSpikingIF)                    \
  X(11, NonSpikingLIF)                   \
  X(12, GatedLIF)

enum class NeuronKind : int {
#define SPIKEOPS_NEURON_ENUM(ID, NAME) k##NAME = ID,
  SPIKEOPS_FOR_EACH_NEURON_KIND(SPIKEOPS_NEURON_ENUM)
#undef SPIKEOPS_NEURON_ENUM
};

// "LIF", ...; "unknown neuron" for a value outside the enum.
const char* neuron_name(NeuronKind kind);

// Room for the scalar parameters of any model beyond the common ones below (a model names each slot).
constexpr int kMaxNeuronExtraParams = 8;

struct NeuronParams {
  NeuronKind kind = NeuronKind::kLIF;
  float v_threshold = 1.0f;
  bool hard_reset = true;    // false: soft reset (SpikingJelly's v_reset=None)
  float v_reset = 0.0f;      // used by the hard reset and as the leak target
  double tau = 2.0;          // membrane time constant of the models that have one; > 1 and <= FLT_MAX
  bool decay_input = true;   // LIF family
  bool detach_reset = false;
  Surrogate surrogate{};
  std::array<float, kMaxNeuronExtraParams> extra{};  // model-specific scalars, see neuron_info(kind).extra_names
};

// What a model keeps and learns, per neuron (all float32).
struct NeuronInfo {
  const char* name;
  int states;     // state variables; state 0 is V (what v_seq reports)
  int saved;      // values the forward saves per neuron-step for the backward (4 bytes each)
  int learnable;  // learnable scalars, passed as a [learnable] tensor (e.g. ParametricLIF's k)
  int extra;      // NeuronParams::extra slots the model reads
  const char* const* extra_names;  // their names, for messages and bindings
  bool saved_grad;  // whether the backward takes a gradient for the saved values (grad_saved): they are an output
  bool spiking;     // false for a model that never fires: its output is its potential, saved value 0
};

// Throws spikeops::Error for a kind outside the enum.
NeuronInfo neuron_info(NeuronKind kind);

// Throws spikeops::Error naming the parameter that is out of range.
void validate_neuron_params(const NeuronParams& p);

// Arguments of the multi-step forward. T = x_seq.shape[0], N = x_seq.shape[1], S/K/P = the model's states,
// saved values and learnable scalars (neuron_info). All tensors contiguous and on one device, except that x_seq
// may give the same input at every step: strides [0, 1] (one row read T times instead of copied). A tensor
// documented [S, N] (or [K, T, N], [P, N]) may drop its leading dimension when that dimension is 1.
struct NeuronForwardArgs {
  TensorView x_seq;        // in  [T, N] float32 / float16 / bfloat16 (strides [N, 1] or [0, 1])
  TensorView state_init;   // in  [S, N] float32: the state before step 0
  TensorView learnable;    // in  [P] float32 when P > 0, e.g. ParametricLIF's k = sigmoid(w)
  TensorView spike_seq;    // out [T, N] float32 / float16 / bfloat16 / uint8: spikes, exactly 0 or 1
  TensorView state_final;  // out [S, N] float32: the state after step T-1
  TensorView saved;        // out, optional [K, T, N] float32: what the backward needs (LIF family: H)
  TensorView v_seq;        // out, optional [T, N] float32: V after every step (SpikingJelly's store_v_seq)
  void* stream = nullptr;  // cudaStream_t for CUDA tensors
};

// Arguments of the multi-step backward. It reads only what the forward saved and the initial state: the rest
// is recomputed (the LIF family keeps 4 bytes, float32 H, per neuron-step).
struct NeuronBackwardArgs {
  TensorView grad_spike_seq;      // in, optional [T, N] float32 / float16 / bfloat16; absent: 0 (spikes that reach
                                  //     no loss: LIAF's, the readouts')
  TensorView grad_v_seq;          // in, optional [T, N] float32: gradient reaching v_seq
  TensorView grad_state_final;    // in, optional [S, N] float32: gradient reaching state_final
  TensorView grad_saved;          // in, optional [K, T, N] float32: gradient reaching the saved values, for the
                                  //     models whose NeuronInfo::saved_grad is true (LIAF outputs act(H))
  TensorView saved;               // in  [K, T, N] float32, from the forward
  TensorView state_init;          // in  [S, N] float32
  TensorView learnable;           // in  [P] float32 when P > 0
  TensorView surrogate_grad_seq;  // in, optional [T, N] float32: σ'(u) to use instead of params.surrogate's
  TensorView grad_x_seq;          // out [T, N] float32 / float16 / bfloat16
  TensorView grad_state_init;     // out [S, N] float32
  TensorView grad_learnable;      // out [P, N] float32 when P > 0: per neuron, summed over t
  void* stream = nullptr;
};

void neuron_multistep_forward(const NeuronParams& params, const NeuronForwardArgs& args);
void neuron_multistep_backward(const NeuronParams& params, const NeuronBackwardArgs& args);

}  // namespace spikeops
