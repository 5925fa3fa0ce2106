// Compiled instead of cuda/ when the library is built without CUDA: every CUDA entry point says so.
#include <string>

#include "backend.hpp"
#include "dense_semantics.hpp"
#include "spikeops/error.hpp"

namespace spikeops {
namespace cuda {
namespace {
// op: the public function; arg: the argument whose device chose CUDA.
[[noreturn]] void no_cuda(const char* op = nullptr, const char* arg = nullptr) {
  const std::string what = "is on a CUDA device, but this spikeops was built without CUDA "
                           "(rebuild with nvcc on the PATH or -DSPIKEOPS_CUDA=ON)";
  if (op == nullptr) throw Error("a tensor " + what);
  throw Error(std::string(op) + ": " + arg + " " + what);
}
}  // namespace

bool compiled() { return false; }
const char* architectures() { return ""; }
void neuron_forward(const NeuronParams&, const NeuronForwardArgs&) { no_cuda("neuron_multistep_forward", "x_seq"); }
void neuron_backward(const NeuronParams&, const NeuronBackwardArgs&) { no_cuda("neuron_multistep_backward", "saved"); }
void heaviside_forward(const TensorView&, const TensorView&, void*) { no_cuda("heaviside_forward", "x"); }
void surrogate_backward(const Surrogate&, const TensorView&, const TensorView&, const TensorView&, void*) {
  no_cuda("surrogate_backward", "x");
}
void spike_accumulate(const SpikeAccumulateArgs&) { no_cuda("spike_accumulate", "spikes"); }
int64_t spike_conv2d(const ConvGeometry&, const SpikeConv2dArgs&) { no_cuda("spike_conv2d", "spikes"); }
void spike_conv2d_weight_grad(const ConvGeometry&, const SpikeConv2dWeightGradArgs&) {
  no_cuda("spike_conv2d_weight_grad", "spikes");
}
void conv2d(const ConvGeometry&, const Conv2dArgs&) { no_cuda("conv2d", "input"); }
void pool2d(const PoolGeometry&, const Pool2dArgs&) { no_cuda("pool2d", "input"); }
void poisson_encode(const PoissonEncodeArgs&) { no_cuda("poisson_encode", "input"); }
void linear(const LinearArgs&) { no_cuda("linear", "x"); }
int64_t count_nonzero(const TensorView&, void*) { no_cuda("count_nonzero", "spikes"); }
SpikeValueCounts spike_bytes(const TensorView&, const TensorView&, void*) { no_cuda("spike_bytes", "values"); }
void dense_nonfinite_columns(const SpikeAccumulateArgs&) { no_cuda("spike_accumulate", "rows"); }
void dense_nonfinite_channels(const ConvGeometry&, const SpikeConv2dArgs&) { no_cuda("spike_conv2d", "weight"); }
void dense_nonfinite_channels(const ConvGeometry&, const SpikeConv2dWeightGradArgs&) {
  no_cuda("spike_conv2d_weight_grad", "grad_out");
}

// Without CUDA there are no CUDA devices, so the runtime's memory helpers are never reached with one (the
// model refuses Model::to(CUDA) first); if they were, they say why.
int device_count() { return 0; }
void* device_alloc(std::size_t, int) { no_cuda(); }
void device_free(void*, int) noexcept {}
void* stream_create(int) { no_cuda(); }
void stream_destroy(void*, int) noexcept {}
void stream_synchronize(void*, int) { no_cuda(); }
void copy_async(void*, const void*, std::size_t, CopyKind, void*, int) { no_cuda(); }
void fill(float*, int64_t, float, void*, int) { no_cuda(); }
void bytes_to_float(const uint8_t*, int64_t, float*, void*, int) { no_cuda(); }

}  // namespace cuda
}  // namespace spikeops
