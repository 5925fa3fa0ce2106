// Valid parameters of every neuron model, for the tests that run each NeuronKind (test_neuron_models.cpp,
// test_cuda.cpp). The kinds come from SPIKEOPS_FOR_EACH_NEURON_KIND, so a new model is run by every such test;
// model_case() has no default, so the compiler (-Wswitch) and the test (an unknown kind fails) ask for its row.
#pragma once

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <utility>
#include <vector>

#include "spikeops/neuron.hpp"

namespace spikeops_test {

inline std::vector<spikeops::NeuronKind> all_neuron_kinds() {
  return {
#define SPIKEOPS_TEST_KIND(ID, NAME) spikeops::NeuronKind::k##NAME,
      SPIKEOPS_FOR_EACH_NEURON_KIND(SPIKEOPS_TEST_KIND)
#undef SPIKEOPS_TEST_KIND
  };
}

// One model's parameters and what it reads. Inputs in [x_lo, x_hi] from states in `state_range` keep it at
// least 0.1 below its threshold for 8 steps at tau = 2 (checked by the tests that rely on it).
struct ModelCase {
  std::array<float, spikeops::kMaxNeuronExtraParams> extra{};
  std::vector<float> learnable;  // the P learnable scalars
  float v_reset = -0.1f;
  bool has_hard_reset = true;
  bool reads_decay_input = false;
  bool reads_detach_reset = true;
  bool fires = true;  // false: a non-spiking readout (no spike, no reset)
  int variants = 1;  // settings beyond reset, decay_input and detach: KLIF's scale_reset 0 and 1
  float x_lo = -0.2f, x_hi = 0.3f;
  std::vector<std::pair<float, float>> state_range{{-0.2f, 0.5f}};  // per state: uniform initial values
};

inline ModelCase model_case(spikeops::NeuronKind kind) {
  using spikeops::NeuronKind;
  ModelCase m;
  switch (kind) {
    case NeuronKind::kIF:
      m.x_lo = -0.05f, m.x_hi = 0.08f;  // IF integrates without leak: 8 steps of 0.08 from 0.3 stay below 0.9
      m.state_range = {{-0.2f, 0.3f}};
      return m;
    case NeuronKind::kLIF:
      m.reads_decay_input = true;
      return m;
    case NeuronKind::kParametricLIF:
      m.learnable = {0.4f};  // k = sigmoid(w)
      m.reads_decay_input = true;
      return m;
    case NeuronKind::kQIF:
      m.extra = {0.8f, 1.0f, 0.0f};  // v_c, a0, v_rest (SpikingJelly's defaults)
      m.x_lo = -0.1f, m.x_hi = 0.15f;
      m.state_range = {{-0.1f, 0.5f}};
      return m;
    case NeuronKind::kEIF:
      // delta_T, theta_rh, v_rest (SpikingJelly's defaults). The exponential drives V up by at least 0.2 per
      // step: inputs below -0.3 hold it near 0.
      m.extra = {1.0f, 0.8f, 0.0f};
      m.x_lo = -0.6f, m.x_hi = -0.3f;
      m.state_range = {{-0.3f, 0.4f}};
      return m;
    case NeuronKind::kIzhikevich:
      m.extra = {0.8f, 1.0f, -0.1f, 2.0f, 1.0f, 0.2f};  // v_c, a0, v_rest, tau_w, a, b (b > 0: spikes move W)
      m.v_reset = 0.0f;
      m.x_lo = -0.1f, m.x_hi = 0.3f;
      m.state_range = {{-0.1f, 0.4f}, {0.0f, 0.4f}};
      return m;
    case NeuronKind::kALIF:
      m.extra = {0.9f, 0.5f};  // adapt_decay in [0, 1), beta
      m.reads_decay_input = true;
      m.state_range = {{-0.2f, 0.5f}, {0.0f, 0.5f}};  // A >= 0: the threshold is at least v_threshold
      return m;
    case NeuronKind::kKLIF:
      // k > 0; H stays in (0.05, 1.2), away from relu(k H)'s kink at 0 and below the threshold of k H.
      m.learnable = {0.8f};
      m.v_reset = 0.1f;
      m.reads_decay_input = true;
      m.variants = 2;
      m.x_lo = 0.15f, m.x_hi = 0.4f;
      m.state_range = {{0.2f, 0.6f}};
      return m;
    case NeuronKind::kCUBALIF:
      m.extra = {0.5f, 0.75f};  // c_decay, v_decay
      m.x_lo = -0.1f, m.x_hi = 0.08f;
      m.state_range = {{-0.2f, 0.4f}, {-0.1f, 0.1f}};
      return m;
    case NeuronKind::kComplementaryLIF:
      m.has_hard_reset = false;
      m.reads_detach_reset = false;
      m.state_range = {{-0.2f, 0.5f}, {0.0f, 0.5f}};
      return m;
    case NeuronKind::kNonSpikingIF:
    case NeuronKind::kNonSpikingLIF:
      m.has_hard_reset = false;
      m.reads_detach_reset = false;
      m.fires = false;
      m.x_lo = -1.0f, m.x_hi = 1.0f;
      m.state_range = {{-1.0f, 1.0f}};
      return m;
    case NeuronKind::kGatedLIF:
      // V, S (the previous spike: any value in [0, 1] is differentiable), then the constant states K in (0, 1),
      // D, G, R and v_threshold; K <= 0.6 and X <= 0.15 keep V below 0.4, under thresholds from 0.8.
      m.has_hard_reset = false;
      m.reads_detach_reset = false;
      m.x_lo = -0.2f, m.x_hi = 0.15f;
      m.state_range = {{-0.2f, 0.5f}, {0.0f, 1.0f}, {0.3f, 0.6f}, {0.0f, 0.1f}, {0.2f, 0.8f}, {0.1f, 0.6f},
                       {0.8f, 1.2f}};
      return m;
  }
  ADD_FAILURE() << "no test parameters for neuron kind " << static_cast<int>(kind) << ": add its row to model_case";
  return m;
}

// The parameters of one configuration: tau = 2, v_threshold = 1; `variant` < model_case(kind).variants.
inline spikeops::NeuronParams model_params(spikeops::NeuronKind kind, bool hard_reset, bool decay_input,
                                           bool detach_reset, int variant, spikeops::Surrogate surrogate) {
  const ModelCase m = model_case(kind);
  spikeops::NeuronParams p;
  p.kind = kind;
  p.tau = 2.0;
  p.v_threshold = 1.0f;
  p.hard_reset = hard_reset;
  p.v_reset = m.v_reset;
  p.decay_input = decay_input;
  p.detach_reset = detach_reset;
  p.surrogate = surrogate;
  p.extra = m.extra;
  if (kind == spikeops::NeuronKind::kKLIF) p.extra[0] = static_cast<float>(variant);  // scale_reset
  return p;
}

inline std::string model_label(const spikeops::NeuronParams& p, int variant) {
  return std::string(spikeops::neuron_name(p.kind)) + (p.hard_reset ? " hard" : " soft") + " reset, decay_input " +
         std::to_string(p.decay_input) + ", detach_reset " + std::to_string(p.detach_reset) + ", variant " +
         std::to_string(variant) + ", surrogate " + spikeops::surrogate_name(p.surrogate.kind);
}

}  // namespace spikeops_test
