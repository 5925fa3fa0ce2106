// Running a loaded model, layer by layer over all T steps (see model.hpp), on the CPU or a GPU: one
// interpreter over the public ops of the core, with the activations in the memory of the place the model runs
// (Model::to), so a layer's behaviour is written once for both devices.
//
// An activation is [rows, features] in C order, rows = T * batch in step-major order ([T, batch, ...], the
// layout the multi-step neuron kernel takes as [T, batch * features]). Until the first neuron of a directly
// encoded network the activation is the same at every step, so it is kept (and computed) once per sample:
// rows = batch, `time_invariant`. Spikes are 1 byte; a layer fed spikes only adds (spike_accumulate for
// linear, spike_conv2d for conv2d), a layer fed real values multiplies (linear, conv2d).
#include <chrono>
#include <limits>
#include <mutex>
#include <sstream>

#include "device_memory.hpp"
#include "model/model_impl.hpp"
#include "spikeops/build_info.hpp"
#include "spikeops/conv2d.hpp"
#include "spikeops/encoding.hpp"
#include "spikeops/error.hpp"
#include "spikeops/linear.hpp"
#include "spikeops/neuron.hpp"
#include "spikeops/pool.hpp"
#include "spikeops/spike_conv.hpp"
#include "spikeops/spike_count.hpp"
#include "spikeops/spike_gemm.hpp"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the model file holds little-endian float32; a big-endian reader is not written"
#endif

namespace spikeops {

namespace {

// host[0:n] (the model's own memory) copied into `buffer` (memory of `place`), or, on the CPU, used where it
// is. Null when empty.
const float* place_weights(const Place& place, Buffer& buffer, const float* host, std::size_t n) {
  if (n == 0) return nullptr;
  if (!place.on_cuda()) return host;
  float* p = static_cast<float*>(buffer.reserve(n * sizeof(float)));
  copy_from_host(place, p, host, n * sizeof(float));
  return p;
}
const float* place_weights(const Place& place, Buffer& buffer, const std::vector<float>& host) {
  return place_weights(place, buffer, host.data(), host.size());
}

std::unique_ptr<Placement> make_placement(const Model::Impl& m, Device device, int index) {
  auto p = std::make_unique<Placement>(device, index);
  p->weights.reserve(m.layers.size());
  for (const ModelLayer& L : m.layers) {
    p->weights.emplace_back(device, index);
    LayerWeights& W = p->weights.back();
    W.weight_t_data = place_weights(p->place, W.weight_t, L.weight_t);
    W.packed_data = place_weights(p->place, W.packed, L.packed);
    W.bias_data = place_weights(p->place, W.bias, L.bias);
    W.learnable_data = place_weights(p->place, W.learnable, L.learnable);
  }
  // The copies are complete (and their failures reported) before any run reads them.
  synchronize(p->place);
  p->activations.reserve(m.layers.size() + 1);
  for (std::size_t i = 0; i <= m.layers.size(); ++i) p->activations.emplace_back(device, index);
  return p;
}

float* reserve_values(Activation& y, int64_t n) { return static_cast<float*>(y.values.reserve(std::size_t(n) * sizeof(float))); }
uint8_t* reserve_bits(Activation& y, int64_t n) { return static_cast<uint8_t*>(y.bits.reserve(std::size_t(n))); }

void encode(const Model::Impl& m, Placement& P, const float* input, int64_t batch, uint64_t seed, Activation& a) {
  const int64_t F = shape_numel(m.input_shape);
  const std::size_t input_bytes = std::size_t(batch * F) * sizeof(float);
  a.features = F;
  if (m.encoding == InputEncoding::kDirect) {
    a.spikes = false;
    a.time_invariant = true;
    a.rows = batch;
    copy_from_host(P.place, reserve_values(a, batch * F), input, input_bytes);
    return;
  }
  a.spikes = true;
  a.time_invariant = false;
  a.rows = m.time_steps * batch;
  const float* x = input;
  if (P.place.on_cuda()) {
    float* copy = static_cast<float*>(P.input.reserve(input_bytes));
    copy_from_host(P.place, copy, input, input_bytes);
    x = copy;
  }
  PoissonEncodeArgs args;
  args.input = P.place.view(x, DType::kFloat32, {batch, F});
  args.out = P.place.view(reserve_bits(a, a.rows * F), DType::kUInt8, {m.time_steps, batch, F});
  args.seed = seed;
  args.stream = P.place.stream;
  poisson_encode(args);
}

void run_linear(const Place& place, const ModelLayer& L, const LayerWeights& W, const Activation& a, Activation& y,
                LayerReport& report) {
  y.spikes = false;
  y.time_invariant = a.time_invariant;
  y.rows = a.rows;
  y.features = L.O;
  float* out = reserve_values(y, y.rows * L.O);
  if (a.spikes) {
    const uint8_t* s = a.bits.as<const uint8_t>();
    SpikeAccumulateArgs args;
    args.spikes = place.view(s, DType::kUInt8, {a.rows, L.K});
    const int64_t tiles = (L.O + kPackedTileN - 1) / kPackedTileN;
    args.rows = place.view(W.packed_data, DType::kFloat32, {tiles, L.K, int64_t(kPackedTileN)});
    args.rows_layout = RowsLayout::kPacked;
    if (W.bias_data != nullptr) args.bias = place.view(W.bias_data, DType::kFloat32, {L.O});
    args.out = place.view(out, DType::kFloat32, {a.rows, L.O});
    args.stream = place.stream;
    spike_accumulate(args);
    report.synaptic_ops += count_nonzero(args.spikes, place.stream) * L.O;
  } else {
    LinearArgs args;
    args.x = place.view(a.values.as<const float>(), DType::kFloat32, {a.rows, L.K});
    args.weight_t = place.view(W.weight_t_data, DType::kFloat32, {L.K, L.O});
    if (W.bias_data != nullptr) args.bias = place.view(W.bias_data, DType::kFloat32, {L.O});
    args.out = place.view(out, DType::kFloat32, {a.rows, L.O});
    args.stream = place.stream;
    linear(args);
    report.dense_macs += a.rows * L.K * L.O;
  }
}

Conv2dParams conv_params(const ModelLayer& L) {
  Conv2dParams p;
  p.stride[0] = L.stride.h;
  p.stride[1] = L.stride.w;
  p.padding[0] = L.padding.h;
  p.padding[1] = L.padding.w;
  p.dilation[0] = L.dilation.h;
  p.dilation[1] = L.dilation.w;
  return p;
}

// Event-driven on the CPU: each nonzero input adds (spikes) or multiply-adds (real values) its weight row
// into the output pixels it reaches, so the work follows the number of events.
void run_conv2d(const Place& place, const ModelLayer& L, const LayerWeights& W, const Activation& a, Activation& y,
                LayerReport& report) {
  const int64_t C = L.in_shape[0], H = L.in_shape[1], Wd = L.in_shape[2], OH = L.out_shape[1], OW = L.out_shape[2];
  y.spikes = false;
  y.time_invariant = a.time_invariant;
  y.rows = a.rows;
  y.features = L.O * OH * OW;
  float* out = reserve_values(y, y.rows * y.features);
  const TensorView weight =
      place.view(W.weight_t_data, DType::kFloat32, {1, L.kernel.h, L.kernel.w, C, conv2d_packed_channels(L.O)});
  const TensorView bias = W.bias_data != nullptr ? place.view(W.bias_data, DType::kFloat32, {L.O}) : TensorView{};
  const TensorView out_view = place.view(out, DType::kFloat32, {a.rows, L.O, OH, OW});
  if (a.spikes) {
    SpikeConv2dArgs args;
    args.spikes = place.view(a.bits.as<const uint8_t>(), DType::kUInt8, {a.rows, C, H, Wd});
    args.weight = weight;
    args.weight_layout = ConvWeightLayout::kPacked;
    args.bias = bias;
    args.out = out_view;
    args.conv = conv_params(L);
    int64_t additions = 0;
    args.synaptic_ops = &additions;
    args.stream = place.stream;
    spike_conv2d(args);
    report.synaptic_ops += additions;
  } else {
    Conv2dArgs args;
    args.input = place.view(a.values.as<const float>(), DType::kFloat32, {a.rows, C, H, Wd});
    args.weight = weight;
    args.weight_layout = ConvWeightLayout::kPacked;
    args.bias = bias;
    args.out = out_view;
    args.conv = conv_params(L);
    args.stream = place.stream;
    conv2d(args);
    report.dense_macs += a.rows * OH * OW * L.K * L.O;
  }
}

// Max pooling of spikes is their OR (spikes out); the average of spikes, and pooling of values, are values.
void run_pool(const Place& place, const ModelLayer& L, const Activation& a, Activation& y) {
  const int64_t C = L.in_shape[0], H = L.in_shape[1], W = L.in_shape[2], OH = L.out_shape[1], OW = L.out_shape[2];
  const bool is_max = L.kind == LayerKind::kMaxPool2d;
  y.time_invariant = a.time_invariant;
  y.rows = a.rows;
  y.features = C * OH * OW;
  y.spikes = is_max && a.spikes;
  Pool2dArgs args;
  args.kind = is_max ? PoolKind::kMax : PoolKind::kAvg;
  args.kernel[0] = L.kernel.h;
  args.kernel[1] = L.kernel.w;
  args.stride[0] = L.stride.h;
  args.stride[1] = L.stride.w;
  args.padding[0] = L.padding.h;
  args.padding[1] = L.padding.w;
  args.count_include_pad = L.count_include_pad;
  args.input = a.spikes ? place.view(a.bits.as<const uint8_t>(), DType::kUInt8, {a.rows, C, H, W})
                        : place.view(a.values.as<const float>(), DType::kFloat32, {a.rows, C, H, W});
  args.out = y.spikes ? place.view(reserve_bits(y, y.rows * y.features), DType::kUInt8, {a.rows, C, OH, OW})
                      : place.view(reserve_values(y, y.rows * y.features), DType::kFloat32, {a.rows, C, OH, OW});
  args.stream = place.stream;
  pool2d(args);
}

void run_neuron(const Model::Impl& m, const Place& place, const ModelLayer& L, const LayerWeights& W,
                const Activation& a, Activation& y, int64_t batch, LayerReport& report) {
  const int64_t T = m.time_steps, F = a.features, N = batch * F;
  // The neuron kernel takes float32 [T, batch * F]: real values of every step are that already, and a
  // time-invariant input is read in place at every step (strides [0, 1]); spikes (a neuron fed them directly)
  // become 0/1 values in scratch.
  const float* x = a.values.as<const float>();
  if (a.spikes) {
    const int64_t n = (a.time_invariant ? 1 : T) * N;
    float* converted = static_cast<float*>(y.scratch.reserve(std::size_t(n) * sizeof(float)));
    bytes_to_float(place, a.bits.as<const uint8_t>(), n, converted);
    x = converted;
  }
  y.spikes = true;
  y.time_invariant = false;
  y.rows = T * batch;
  y.features = F;
  // Every input starts from the layer's initial states (a fresh reset_net per batch): state s fills row s.
  const int64_t S = int64_t(L.state_init.size());
  float* state_init = static_cast<float*>(y.state_init.reserve(std::size_t(S * N) * sizeof(float)));
  for (int64_t s = 0; s < S; ++s) fill(place, state_init + s * N, N, L.state_init[std::size_t(s)]);
  NeuronForwardArgs args;
  args.x_seq = place.view(x, DType::kFloat32, {T, N});  // only read
  if (a.time_invariant) args.x_seq.strides[0] = 0;
  args.state_init = place.view(state_init, DType::kFloat32, {S, N});
  if (!L.learnable.empty()) {
    args.learnable = place.view(W.learnable_data, DType::kFloat32, {int64_t(L.learnable.size())});
  }
  args.spike_seq = place.view(reserve_bits(y, T * N), DType::kUInt8, {T, N});
  args.state_final = place.view(y.state_final.reserve(std::size_t(S * N) * sizeof(float)), DType::kFloat32, {S, N});
  args.stream = place.stream;
  neuron_multistep_forward(L.neuron, args);
  report.spikes += count_nonzero(args.spike_seq, place.stream);
  report.neuron_steps += T * N;
}

// Model::run: every layer writes its output into buffers kept by the placement, so after the first run of a
// batch size the large allocations (activations, the neurons' input sequences) are reused and touch no fresh
// pages. Writes the summed scores [batch, num_outputs].
void run_layers(Model::Impl& m, Placement& P, const float* input, int64_t batch, uint64_t seed, float* scores) {
  const Place& place = P.place;
  encode(m, P, input, batch, seed, P.activations[0]);
  const Activation* a = &P.activations[0];
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    const ModelLayer& L = m.layers[i];
    const LayerWeights& W = P.weights[i];
    LayerReport& report = m.reports[i];
    Activation& y = P.activations[i + 1];
    const auto start = std::chrono::steady_clock::now();
    switch (L.kind) {
      case LayerKind::kLinear: run_linear(place, L, W, *a, y, report); break;
      case LayerKind::kConv2d: run_conv2d(place, L, W, *a, y, report); break;
      case LayerKind::kFlatten: break;  // C order: the same memory, the next layer reads it as it is
      case LayerKind::kMaxPool2d:
      case LayerKind::kAvgPool2d: run_pool(place, L, *a, y); break;
      case LayerKind::kNeuron: run_neuron(m, place, L, W, *a, y, batch, report); break;
    }
    if (L.kind != LayerKind::kFlatten) a = &y;
    synchronize(place);  // a layer's time includes its kernels
    report.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  // The last layer's output on the host: where it is on the CPU, else copied.
  const int64_t J = shape_numel(m.layers.back().out_shape), T = m.time_steps;
  const int64_t rows = a->time_invariant ? batch : T * batch;
  const std::size_t bytes = std::size_t(rows * J) * (a->spikes ? 1 : sizeof(float));
  const void* device_output = a->spikes ? static_cast<const void*>(a->bits.as<const uint8_t>())
                                        : static_cast<const void*>(a->values.as<const float>());
  const void* output = device_output;
  if (place.on_cuda()) {
    P.last_output.resize((bytes + sizeof(float) - 1) / sizeof(float));
    copy_to_host(place, P.last_output.data(), device_output, bytes);
    synchronize(place);
    output = P.last_output.data();
  }
  // scores[b, j] = sum over t of y[t, b, j], in step order.
  const uint8_t* bits = static_cast<const uint8_t*>(output);
  const float* values = static_cast<const float*>(output);
  for (int64_t t = 0; t < T; ++t) {
    const int64_t row0 = a->time_invariant ? 0 : t * batch;
    for (int64_t i = 0; i < batch * J; ++i) {
      const int64_t src = row0 * J + i;
      scores[i] += a->spikes ? float(bits[src] != 0) : values[src];
    }
  }
}

}  // namespace

int64_t Model::time_steps() const { return impl_->time_steps; }
InputEncoding Model::encoding() const { return impl_->encoding; }
const std::vector<int64_t>& Model::input_shape() const { return impl_->input_shape; }
int64_t Model::input_numel() const { return shape_numel(impl_->input_shape); }
int64_t Model::num_outputs() const { return shape_numel(impl_->layers.back().out_shape); }
int64_t Model::num_layers() const { return int64_t(impl_->layers.size()); }
std::vector<LayerReport> Model::reports() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->reports;
}

void Model::reset_reports() {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  for (LayerReport& r : impl_->reports) {
    r.synaptic_ops = r.dense_macs = r.spikes = r.neuron_steps = 0;
    r.seconds = 0.0;
  }
}

int64_t Model::workspace_bytes(int64_t batch) const {
  if (batch < 0) throw Error("Model::workspace_bytes: batch must be >= 0, got " + std::to_string(batch));
  // Every layer keeps its output (float32 or 1-byte spikes) for all T steps, a neuron also its float32 input
  // sequence and its S float32 states before and after the run; a bound (layers that run once per sample are
  // counted T times). Saturates instead of overflowing.
  double per_step = double(input_numel()) * 4.0, per_sample = 0.0;
  for (const ModelLayer& L : impl_->layers) {
    const double n = double(shape_numel(L.out_shape));
    per_step += L.kind == LayerKind::kNeuron ? n * 5.0 : L.spike_output ? n : n * 4.0;
    if (L.kind == LayerKind::kNeuron) per_sample += n * 8.0 * double(L.state_init.size());
  }
  const double total = (per_step * double(impl_->time_steps) + per_sample) * double(batch);
  return total >= 9.0e18 ? std::numeric_limits<int64_t>::max() : int64_t(total);
}

InferenceResult Model::run(const float* input, int64_t batch, uint64_t seed) {
  Impl& m = *impl_;
  if (batch < 0) throw Error("Model::run: batch must be >= 0, got " + std::to_string(batch));
  if (input == nullptr && batch > 0) throw Error("Model::run: input is null");
  if (batch > 0 && input_numel() > std::numeric_limits<int64_t>::max() / batch / m.time_steps) {
    throw Error("Model::run: batch " + std::to_string(batch) + " is too large");
  }
  InferenceResult result;
  result.batch = batch;
  result.num_outputs = num_outputs();
  result.scores.assign(std::size_t(batch * result.num_outputs), 0.0f);
  result.predictions.assign(std::size_t(batch), 0);
  if (batch == 0) return result;

  {
    std::lock_guard<std::mutex> lock(m.mutex);
    if (!m.placement) m.placement = make_placement(m, Device::kCPU, 0);
    run_layers(m, *m.placement, input, batch, seed, result.scores.data());
  }
  const int64_t J = result.num_outputs;
  for (int64_t b = 0; b < batch; ++b) {
    const float* s = result.scores.data() + b * J;
    int64_t best = 0;
    for (int64_t j = 1; j < J; ++j) {
      if (s[j] > s[best] || (s[j] != s[j] && s[best] == s[best])) best = j;  // torch.argmax: NaN is the max
    }
    result.predictions[std::size_t(b)] = best;
  }
  return result;
}

void Model::to(Device device, int device_index) {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  if (device == Device::kCPU) {
    if (impl_->placement && impl_->placement->place.on_cuda()) impl_->placement.reset();  // made again on use
    return;
  }
  if (device != Device::kCUDA) throw Error("Model::to: unknown device " + std::to_string(int(device)));
  if (device_index < 0) throw Error("Model::to: device_index must be >= 0, got " + std::to_string(device_index));
  if (impl_->placement && impl_->placement->place.on_cuda() && impl_->placement->place.index == device_index) return;
  if (!build_info().cuda) {
    throw Error("Model::to(CUDA): this spikeops was built without CUDA (rebuild with nvcc on the PATH or "
                "-DSPIKEOPS_CUDA=ON)");
  }
  const int count = cuda_device_count();
  if (device_index >= count) {
    throw DeviceError("Model::to(CUDA, " + std::to_string(device_index) + "): there are " + std::to_string(count) +
                      " CUDA devices");
  }
  impl_->placement = make_placement(*impl_, Device::kCUDA, device_index);  // on failure the model stays where it was
}

Device Model::device() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->placement && impl_->placement->place.on_cuda() ? Device::kCUDA : Device::kCPU;
}
int Model::device_index() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->placement ? impl_->placement->place.index : 0;
}

std::string Model::summary() const {
  std::ostringstream out;
  out << "spikeops model " << impl_->source << ": T=" << impl_->time_steps << ", encoding "
      << (impl_->encoding == InputEncoding::kDirect ? "direct" : "poisson") << ", input "
      << shape_to_string(impl_->input_shape) << "\n";
  for (const ModelLayer& L : impl_->layers) {
    out << "  " << L.name << ": " << L.type;
    if (L.kind == LayerKind::kNeuron) out << " (" << neuron_name(L.neuron.kind) << ")";
    out << " -> " << shape_to_string(L.out_shape);
    if (L.kind == LayerKind::kLinear || L.kind == LayerKind::kConv2d) {
      out << (L.spike_input ? " (spike input: accumulate only)" : " (real input: dense)");
    }
    out << "\n";
  }
  return out.str();
}

}  // namespace spikeops
