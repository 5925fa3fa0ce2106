// Internal: the device back ends behind the validated public entry points. Not installed.
#pragma once

#include "spikeops/neuron.hpp"
#include "spikeops/spike_gemm.hpp"
#include "spikeops/surrogate.hpp"

namespace spikeops {

namespace cpu {
void neuron_forward(const NeuronParams& p, const NeuronForwardArgs& a);
void neuron_backward(const NeuronParams& p, const NeuronBackwardArgs& a);
void heaviside_forward(const TensorView& x, const TensorView& spike);
void surrogate_backward(const Surrogate& s, const TensorView& grad_spike, const TensorView& x,
                        const TensorView& grad_x);
void spike_accumulate(const SpikeAccumulateArgs& a);
int64_t count_spikes(const uint8_t* row, int64_t K);  // nonzero bytes of row[0:K], one thread
const char* simd_level();  // the clone the running CPU uses: "avx512", "avx2" or "baseline"
int max_threads();
int thread_num();  // in a parallel region: this thread's index below max_threads()
void set_max_threads(int n);
}  // namespace cpu

namespace cuda {
bool compiled();
const char* architectures();  // e.g. "80-real;90"
void neuron_forward(const NeuronParams& p, const NeuronForwardArgs& a);
void neuron_backward(const NeuronParams& p, const NeuronBackwardArgs& a);
void heaviside_forward(const TensorView& x, const TensorView& spike, void* stream);
void surrogate_backward(const Surrogate& s, const TensorView& grad_spike, const TensorView& x,
                        const TensorView& grad_x, void* stream);
void spike_accumulate(const SpikeAccumulateArgs& a);
}  // namespace cuda

}  // namespace spikeops
