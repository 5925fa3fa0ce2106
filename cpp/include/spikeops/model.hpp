// Inference runtime for networks exported by spikeops.export (the file format: docs/model_format.md).
//
//   spikeops::Model model = spikeops::Model::load("mnist.spikeops");
//   spikeops::InferenceResult r = model.run(images, batch);   // images: [batch, *input_shape] float32
//   r.predictions[b], r.scores[b * r.num_outputs + j], model.reports()  (firing rates, synaptic operations)
//
// The network runs layer by layer over all T steps at once: stateless layers see [T * batch, ...] rows, neurons
// the [T, batch * features] sequence (the fused multi-step kernel). Between layers, spikes are 1 byte each and
// a layer fed spikes adds the weight rows its spikes select (the spike GEMM), with no multiplies; a layer fed
// real values (the encoded input, average pooling) is a dense float32 product.
//
// Threads: one Model may be shared by several threads. run(), to(), reports(), reset_reports(), device() and
// device_index() take the model's lock, so runs of one Model take turns (each still uses
// spikeops::cpu_threads() threads on the CPU); they give the same results as the same calls made one after
// another. For runs in parallel, load one Model per thread. Moving or destroying a Model while another
// thread uses it is not allowed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "spikeops/config.hpp"
#include "spikeops/tensor.hpp"

namespace spikeops {

enum class InputEncoding : int {
  kDirect = 0,   // the input itself at every step
  kPoisson = 1,  // a spike where u <= x, u uniform in [0, 1) per element and step
};

// What one layer did, summed over the run() calls since the last reset_reports().
struct LayerReport {
  std::string name;                   // the module's path in the exported PyTorch network
  std::string type;                   // "linear", "conv2d", "lif", ...
  std::vector<int64_t> output_shape;  // one sample, one step
  bool spike_input = false;           // fed 1-byte spikes (accumulate-only) rather than real values
  int64_t synaptic_ops = 0;           // accumulates performed: one weight added per (input spike, fan-out)
  int64_t dense_macs = 0;             // multiply-accumulates of a layer fed real values
  int64_t spikes = 0;                 // neurons: spikes emitted
  int64_t neuron_steps = 0;           // neurons: neuron updates (features x T x samples)
  double seconds = 0.0;               // wall time spent in the layer
  double firing_rate() const { return neuron_steps > 0 ? double(spikes) / double(neuron_steps) : 0.0; }
};

struct InferenceResult {
  int64_t batch = 0;
  int64_t num_outputs = 0;
  std::vector<float> scores;         // [batch, num_outputs]: the last layer's output summed over T (spike counts
                                     // when it is a neuron)
  std::vector<int64_t> predictions;  // [batch]: argmax of scores, the first index on ties
};

class Model {
 public:
  // Read and validate a model file. Throws spikeops::Error naming the file and what is wrong (unreadable,
  // truncated, not this format, unknown version, unsupported layer, shapes that disagree, ...).
  static Model load(const std::string& path);
  // The same from bytes in memory; `source` names them in messages.
  static Model from_buffer(const void* data, std::size_t size, const std::string& source = "<buffer>");

  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;
  ~Model();

  int64_t time_steps() const;
  InputEncoding encoding() const;
  const std::vector<int64_t>& input_shape() const;  // one sample
  int64_t input_numel() const;                      // product of input_shape
  int64_t num_outputs() const;                      // per sample
  int64_t num_layers() const;
  // A bound on the bytes of activations run() keeps for this batch size (excluding the weights). The buffers
  // stay with the model and are reused by later runs of the same or a smaller batch.
  int64_t workspace_bytes(int64_t batch) const;

  // Where run() computes: the CPU (the default) or a CUDA device. Moving to a GPU copies the weights there
  // once (throws spikeops::Error when the library was built without CUDA, DeviceError when that device does
  // not exist); to(Device::kCPU) frees the GPU copy. Inputs and results stay in host memory either way.
  void to(Device device, int device_index = 0);
  Device device() const;
  int device_index() const;  // 0 on the CPU

  // Runs the network on `batch` samples (`input`: [batch, *input_shape] float32, contiguous, host memory) on
  // device(). `seed` drives the Poisson encoder (ignored for direct encoding); the CPU and the GPU draw the
  // same spikes. Thread-safe: concurrent runs of one Model take turns (see the top of this file).
  InferenceResult run(const float* input, int64_t batch, uint64_t seed = 0);

  // A copy of the reports, taken under the model's lock (a reference would change under a reader while
  // another thread runs the model).
  std::vector<LayerReport> reports() const;
  void reset_reports();
  std::string summary() const;  // one line per layer: type, output shape, parameters

  struct Impl;  // opaque: the loaded layers (defined inside the library)

 private:
  explicit Model(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace spikeops
