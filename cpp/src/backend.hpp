// Internal: the device back ends behind the validated public entry points. Not installed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "conv_geometry.hpp"
#include "spikeops/conv2d.hpp"
#include "spikeops/encoding.hpp"
#include "spikeops/linear.hpp"
#include "spikeops/neuron.hpp"
#include "spikeops/pool.hpp"
#include "spikeops/spike_conv.hpp"
#include "spikeops/spike_count.hpp"
#include "spikeops/spike_gemm.hpp"
#include "spikeops/surrogate.hpp"

namespace spikeops {

// A pooling's shape, validated: planes = N * C of [H, W] each into [OH, OW].
struct PoolGeometry {
  int64_t planes, H, W, OH, OW, kh, kw, sh, sw, ph, pw;
};

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
// The elements of a float32, float16 or bfloat16 tensor (in memory order) as float32: its own memory, or
// `buffer` filled with the converted values.
const float* as_float32(const TensorView& t, std::vector<float>& buffer);
int64_t spike_conv2d(const ConvGeometry& g, const SpikeConv2dArgs& a);  // returns the weight additions
void spike_conv2d_weight_grad(const ConvGeometry& g, const SpikeConv2dWeightGradArgs& a);
void conv2d(const ConvGeometry& g, const Conv2dArgs& a);
void pool2d(const PoolGeometry& g, const Pool2dArgs& a);
void poisson_encode(const PoissonEncodeArgs& a);
void linear(const LinearArgs& a);
int64_t count_nonzero(const uint8_t* s, int64_t n);  // in parallel
SpikeValueCounts spike_bytes(const TensorView& values, const TensorView& bytes);  // in parallel
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
// Returns the weight additions when a.synaptic_ops is set (waiting for the stream), else 0.
int64_t spike_conv2d(const ConvGeometry& g, const SpikeConv2dArgs& a);
void spike_conv2d_weight_grad(const ConvGeometry& g, const SpikeConv2dWeightGradArgs& a);
void conv2d(const ConvGeometry& g, const Conv2dArgs& a);
void pool2d(const PoolGeometry& g, const Pool2dArgs& a);
void poisson_encode(const PoissonEncodeArgs& a);
void linear(const LinearArgs& a);
int64_t count_nonzero(const TensorView& t, void* stream);  // waits for the stream
SpikeValueCounts spike_bytes(const TensorView& values, const TensorView& bytes, void* stream);  // waits

// Device memory and streams for the model runtime (device_memory.hpp wraps them).
int device_count();
void* device_alloc(std::size_t bytes, int device_index);
void device_free(void* p, int device_index) noexcept;
void* stream_create(int device_index);
void stream_destroy(void* stream, int device_index) noexcept;
void stream_synchronize(void* stream, int device_index);
enum class CopyKind { kHostToDevice, kDeviceToHost };
void copy_async(void* dst, const void* src, std::size_t bytes, CopyKind kind, void* stream, int device_index);
void fill(float* p, int64_t n, float value, void* stream, int device_index);
void bytes_to_float(const uint8_t* s, int64_t n, float* x, void* stream, int device_index);  // x[i] = s[i] != 0
}  // namespace cuda

}  // namespace spikeops
