// Internal: a loaded model, ready to run. The loader (model_file.cpp) fills it and checks every field; the
// runtime (model_run.cpp) trusts it.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "device_memory.hpp"
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
  std::vector<float> weight_t;  // W^T [K, O] (conv2d: the ConvWeightLayout::kPacked rows), unless packed
  std::vector<float> packed;    // linear fed spikes: W^T in the spike GEMM's kPacked layout
  std::vector<float> bias;      // [O] or empty

  // conv2d and pooling
  Pair kernel, stride, padding, dilation{1, 1};
  bool count_include_pad = true;

  // neurons: the model's parameters, its learnable scalars ([P], e.g. ParametricLIF's k = sigmoid(w) as
  // exported) and each state's value before step 0 ([S]; every neuron of the layer starts there)
  NeuronParams neuron;
  std::vector<float> learnable;
  std::vector<float> state_init;
};

// A layer's output over the run: [rows, features] in C order, rows = T * batch in step-major order, or
// rows = batch when it is the same at every step (time_invariant). Spikes are 1 byte. The buffers are memory
// of the place the model runs.
struct Activation {
  explicit Activation(Device device = Device::kCPU, int index = 0)
      : values(device, index), bits(device, index), scratch(device, index), state_init(device, index),
        state_final(device, index) {}
  bool spikes = false;
  bool time_invariant = false;
  int64_t rows = 0;
  int64_t features = 0;
  Buffer values;   // real values (float32)
  Buffer bits;     // spikes (uint8)
  Buffer scratch;  // the layer's temporary (a neuron's float input sequence)
  Buffer state_init, state_final;  // a neuron's states [S, batch * features] before the first and after the last step
};

// A layer's weights where the model runs: on a GPU, copies of ModelLayer's vectors (the views point into
// them); on the CPU the views point into ModelLayer itself.
struct LayerWeights {
  explicit LayerWeights(Device device = Device::kCPU, int index = 0)
      : weight_t(device, index), packed(device, index), bias(device, index), learnable(device, index) {}
  Buffer weight_t, packed, bias, learnable;
  const float *weight_t_data = nullptr, *packed_data = nullptr, *bias_data = nullptr, *learnable_data = nullptr;
};

// Where and with what memory the model runs (Model::to): the stream, the weights and the activations.
struct Placement {
  Placement(Device device, int index) : stream(device, index), input(device, index) {
    place.device = device;
    place.index = index;
    place.stream = stream.get();
  }
  OwnedStream stream;  // destroyed last, after the memory its work used
  Place place;
  std::vector<LayerWeights> weights;
  std::vector<Activation> activations;  // [0]: the encoded input, [i + 1]: layer i's output
  Buffer input;                         // the batch in the place's memory (Poisson encoding)
  std::vector<float> last_output;       // the last layer's output copied to the host (on a GPU)
};

struct Model::Impl {
  std::string source;
  int64_t time_steps = 1;
  InputEncoding encoding = InputEncoding::kDirect;
  Shape input_shape;
  std::vector<ModelLayer> layers;
  std::vector<LayerReport> reports;
  std::unique_ptr<Placement> placement;  // made by Model::to or the first run (the CPU); reused by run()
  // Guards `reports` and `placement` (its stream and activation buffers, which every run rewrites): runs of
  // one model take turns (model.hpp). The loaded layers above are never written after loading.
  mutable std::mutex mutex;
};

inline int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::string shape_to_string(const Shape& s);

}  // namespace spikeops
