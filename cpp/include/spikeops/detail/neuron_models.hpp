// Internal: every neuron model's definition, and the switch from a NeuronKind to it.
#pragma once

#include <string>

#include "spikeops/detail/neuron_model.hpp"
#include "spikeops/detail/neurons/alif.hpp"
#include "spikeops/detail/neurons/gated_lif.hpp"
#include "spikeops/detail/neurons/lif_family.hpp"
#include "spikeops/detail/neurons/lif_variants.hpp"
#include "spikeops/detail/neurons/non_spiking.hpp"
#include "spikeops/detail/neurons/nonlinear_if.hpp"
#include "spikeops/error.hpp"

namespace spikeops {

// Calls f(NeuronDef<kind>{}); throws spikeops::Error for a kind outside the enum.
template <typename F>
void with_neuron_def(NeuronKind kind, F&& f) {
  switch (kind) {
#define SPIKEOPS_NEURON_CASE(ID, NAME)          \
  case NeuronKind::k##NAME:                     \
    f(NeuronDef<NeuronKind::k##NAME>{});        \
    return;
    SPIKEOPS_FOR_EACH_NEURON_KIND(SPIKEOPS_NEURON_CASE)
#undef SPIKEOPS_NEURON_CASE
  }
  throw Error("kind must be a NeuronKind, got " + std::to_string(static_cast<int>(kind)));
}

// Calls f(Model{}), the step type of these parameters.
template <typename F>
void with_neuron_model(const NeuronParams& p, F&& f) {
  with_neuron_def(p.kind, [&](auto def) { decltype(def)::dispatch(p, f); });
}

}  // namespace spikeops
