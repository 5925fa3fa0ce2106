// Compiled instead of cuda/ when the library is built without CUDA: every CUDA entry point says so.
#include "backend.hpp"
#include "model/model_impl.hpp"
#include "spikeops/error.hpp"

namespace spikeops {
namespace cuda {
namespace {
[[noreturn]] void no_cuda() {
  throw Error("a tensor is on a CUDA device, but this spikeops was built without CUDA "
              "(rebuild with nvcc on the PATH or -DSPIKEOPS_CUDA=ON)");
}
}  // namespace

bool compiled() { return false; }
const char* architectures() { return ""; }
void neuron_forward(const NeuronParams&, const NeuronForwardArgs&) { no_cuda(); }
void neuron_backward(const NeuronParams&, const NeuronBackwardArgs&) { no_cuda(); }
void heaviside_forward(const TensorView&, const TensorView&, void*) { no_cuda(); }
void surrogate_backward(const Surrogate&, const TensorView&, const TensorView&, const TensorView&, void*) {
  no_cuda();
}
void spike_accumulate(const SpikeAccumulateArgs&) { no_cuda(); }

// No ModelDevice is ever made without CUDA.
void ModelDeviceDeleter::operator()(ModelDevice*) const noexcept {}
ModelDevicePtr model_to_device(const Model::Impl&, int) {
  throw Error("Model::to(CUDA): this spikeops was built without CUDA (rebuild with nvcc on the PATH or "
              "-DSPIKEOPS_CUDA=ON)");
}
int model_device_index(const ModelDevice&) { no_cuda(); }
void model_run(const Model::Impl&, ModelDevice&, const float*, int64_t, uint64_t, std::vector<LayerReport>&, float*) {
  no_cuda();
}

}  // namespace cuda
}  // namespace spikeops
