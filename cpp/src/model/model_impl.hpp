// Internal: a loaded model, ready to run. The loader (model_file.cpp) fills it and checks every field; the
// runtime (model_run.cpp) trusts it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cpu/conv_events_cpu.hpp"
#include "spikeops/model.hpp"
#include "spikeops/neuron.hpp"

namespace spikeops {

using Shape = std::vector<int64_t>;

enum class LayerKind { kLinear, kConv2d, kFlatten, kMaxPool2d, kAvgPool2d, kNeuron };

struct Pair {
  int64_t h = 0, w = 0;
};

struct ModelLayer {
  LayerKind kind = LayerKind::kFlatten;
  std::string name;         // the PyTorch module path
  std::string type;         // as in the file: "linear", "lif", ...
  Shape in_shape, out_shape;
  bool spike_input = false;  // the input of this layer is 1-byte spikes
  bool spike_output = false;

  // linear and conv2d: y = x . W^T + b with K = in_features (linear) or C * kh * kw (conv2d), O outputs.
  int64_t K = 0, O = 0;
  std::vector<float> weight_t;  // W^T [K, O] (conv2d: cpu::pack_conv_weight's rows), unless packed
  std::vector<float> packed;    // linear fed spikes: W^T in the spike GEMM's kPacked layout
  std::vector<float> bias;      // [O] or empty

  // conv2d and pooling
  Pair kernel, stride, padding, dilation{1, 1};
  bool count_include_pad = true;

  // neurons
  NeuronParams neuron;
  float decay = 0.0f;  // ParametricLIF: k = sigmoid(w) as exported
};

// A conv2d layer's shape for the event-driven kernel (in_shape and out_shape are [C, H, W]; one group).
inline cpu::ConvGeometry conv_geometry(const ModelLayer& L) {
  return cpu::ConvGeometry{L.in_shape[0],  L.in_shape[1], L.in_shape[2], L.O,          L.out_shape[1],
                           L.out_shape[2], L.kernel.h,    L.kernel.w,    L.stride.h,   L.stride.w,
                           L.padding.h,    L.padding.w,   L.dilation.h,  L.dilation.w, 1};
}

// A layer's output over the run: [rows, features] in C order, rows = T * batch in step-major order, or
// rows = batch when it is the same at every step (time_invariant). Spikes are 1 byte.
struct Activation {
  bool spikes = false;
  bool time_invariant = false;
  int64_t rows = 0;
  int64_t features = 0;
  std::vector<float> values;   // real values
  std::vector<uint8_t> bits;   // spikes
  std::vector<float> scratch;  // the layer's temporary (a neuron's float input sequence, ...)
};

namespace cuda {
// The model on a GPU (cuda/model_cuda.cu): the weights, the activation buffers and a stream.
struct ModelDevice;
struct ModelDeviceDeleter {
  void operator()(ModelDevice* d) const noexcept;
};
using ModelDevicePtr = std::unique_ptr<ModelDevice, ModelDeviceDeleter>;
}  // namespace cuda

struct Model::Impl {
  std::string source;
  int64_t time_steps = 1;
  InputEncoding encoding = InputEncoding::kDirect;
  Shape input_shape;
  std::vector<ModelLayer> layers;
  std::vector<LayerReport> reports;
  std::vector<Activation> activations;  // [0]: the encoded input, [i + 1]: layer i's output; reused by run()
  cuda::ModelDevicePtr device;          // set while the model runs on a GPU (Model::to)
};

namespace cuda {
// Copies the weights of `m` to GPU `device_index` (throws without CUDA or without that device).
ModelDevicePtr model_to_device(const Model::Impl& m, int device_index);
int model_device_index(const ModelDevice& d);
// Model::run on the GPU: `input` [batch, *input_shape] in host memory, `scores` [batch, num_outputs] written
// in host memory (the last layer's output summed over T, in step order). Adds to `reports`.
void model_run(const Model::Impl& m, ModelDevice& d, const float* input, int64_t batch, uint64_t seed,
               std::vector<LayerReport>& reports, float* scores);
}  // namespace cuda

inline int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::string shape_to_string(const Shape& s);

}  // namespace spikeops
