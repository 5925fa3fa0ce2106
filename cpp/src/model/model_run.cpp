// Running a loaded model on the CPU, layer by layer over all T steps (see model.hpp).
//
// An activation is [rows, features] in C order, rows = T * batch in step-major order ([T, batch, ...], the
// layout the multi-step neuron kernel takes as [T, batch * features]). Until the first neuron of a directly
// encoded network the activation is the same at every step, so it is kept (and computed) once per sample:
// rows = batch, `time_invariant`. Spikes are 1 byte; a layer fed spikes only adds (the spike GEMM for linear,
// the event-driven kernel of conv_events_cpu for conv2d).
#include <algorithm>
#include <chrono>
#include <limits>
#include <sstream>

#include "backend.hpp"
#include "cpu/conv_direct_cpu.hpp"
#include "cpu/conv_events_cpu.hpp"
#include "model/model_impl.hpp"
#include "kernel_math.hpp"
#include "spikeops/error.hpp"
#include "spikeops/neuron.hpp"
#include "spikeops/spike_gemm.hpp"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the model file holds little-endian float32; a big-endian reader is not written"
#endif

namespace spikeops {

namespace {

// The nonzero bytes of s[0:n]: the spike GEMM's (vectorized) counter over chunks, in parallel.
int64_t count_spikes(const uint8_t* s, int64_t n) {
  constexpr int64_t kChunk = int64_t(1) << 16;
  int64_t count = 0;
#pragma omp parallel for reduction(+ : count) schedule(static) if (n >= 2 * kChunk)
  for (int64_t c = 0; c < n; c += kChunk) count += cpu::count_spikes(s + c, std::min(kChunk, n - c));
  return count;
}

void encode(const Model::Impl& m, const float* input, int64_t batch, uint64_t seed, Activation& a) {
  const int64_t F = shape_numel(m.input_shape);
  a.features = F;
  if (m.encoding == InputEncoding::kDirect) {
    a.spikes = false;
    a.time_invariant = true;
    a.rows = batch;
    a.values.assign(input, input + batch * F);
    return;
  }
  // Poisson: the same draws as the CUDA path (kernel_math::poisson_spike).
  a.spikes = true;
  a.time_invariant = false;
  a.rows = m.time_steps * batch;
  a.bits.resize(std::size_t(a.rows * F));
  const int64_t per_step = batch * F;
  const uint64_t key = kernel_math::mix64(seed);
  uint8_t* out = a.bits.data();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < a.rows * F; ++i) out[i] = kernel_math::poisson_spike(key, i, input[i % per_step]);
}

// y[r, :] = bias + sum over k of x[r, k] * W^T[k, :]; zero inputs are skipped.
void dense_linear(const ModelLayer& L, const float* x, int64_t rows, float* y) {
  const int64_t K = L.K, O = L.O;
  const float* wt = L.weight_t.data();
#pragma omp parallel for schedule(static) if (rows * K * O >= (int64_t(1) << 16))
  for (int64_t r = 0; r < rows; ++r) {
    float* acc = y + r * O;
    for (int64_t o = 0; o < O; ++o) acc[o] = L.bias.empty() ? 0.0f : L.bias[std::size_t(o)];
    const float* xr = x + r * K;
    for (int64_t k = 0; k < K; ++k) {
      const float v = xr[k];
      if (v == 0.0f) continue;
      const float* w = wt + k * O;
      for (int64_t o = 0; o < O; ++o) acc[o] += v * w[o];
    }
  }
}

// The spike GEMM: out [rows, O] = bias + the sum of the weight rows each row's spikes select.
void spike_linear_rows(const ModelLayer& L, const uint8_t* s, int64_t rows, float* out) {
  SpikeAccumulateArgs args;
  args.spikes = make_tensor_view(const_cast<uint8_t*>(s), DType::kUInt8, {rows, L.K});
  const int64_t tiles = (L.O + kPackedTileN - 1) / kPackedTileN;
  args.rows = make_tensor_view(const_cast<float*>(L.packed.data()), DType::kFloat32, {tiles, L.K, int64_t(kPackedTileN)});
  args.rows_layout = RowsLayout::kPacked;
  if (!L.bias.empty()) args.bias = make_tensor_view(const_cast<float*>(L.bias.data()), DType::kFloat32, {L.O});
  args.out = make_tensor_view(out, DType::kFloat32, {rows, L.O});
  spike_accumulate(args);
}

void run_linear(const ModelLayer& L, const Activation& a, Activation& y, LayerReport& report) {
  y.spikes = false;
  y.time_invariant = a.time_invariant;
  y.rows = a.rows;
  y.features = L.O;
  y.values.resize(std::size_t(y.rows * L.O));
  if (a.spikes) {
    if (y.rows > 0) spike_linear_rows(L, a.bits.data(), a.rows, y.values.data());
    report.synaptic_ops += count_spikes(a.bits.data(), a.rows * a.features) * L.O;
  } else {
    dense_linear(L, a.values.data(), a.rows, y.values.data());
    report.dense_macs += a.rows * L.K * L.O;
  }
}

void run_conv2d(const ModelLayer& L, const Activation& a, Activation& y, LayerReport& report) {
  const cpu::ConvGeometry g = conv_geometry(L);
  y.spikes = false;
  y.time_invariant = a.time_invariant;
  y.rows = a.rows;
  y.features = g.O * g.OH * g.OW;
  y.values.resize(std::size_t(y.rows * y.features));
  const float* bias = L.bias.empty() ? nullptr : L.bias.data();
  // Event-driven: each nonzero input adds (spikes) or multiply-adds (real values) its weight column into
  // the output pixels it reaches, so the work follows the number of events. A narrow layer fed real values
  // (an image into a few channels) is computed densely instead, with the same result.
  if (a.spikes) {
    report.synaptic_ops += cpu::conv2d_events_spikes(g, a.bits.data(), a.rows, L.weight_t.data(), bias, y.values.data());
  } else {
    if (cpu::conv2d_direct_applies(g, L.weight_t.data())) {
      cpu::conv2d_direct_values(g, a.values.data(), a.rows, L.weight_t.data(), bias, y.values.data());
    } else {
      cpu::conv2d_events_values(g, a.values.data(), a.rows, L.weight_t.data(), bias, y.values.data());
    }
    report.dense_macs += a.rows * g.OH * g.OW * L.K * L.O;
  }
}

// The clipped window [begin, end) of every output coordinate along one axis (padding never contributes).
struct Windows {
  std::vector<int64_t> begin, end;
};
Windows pool_windows(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t pad) {
  Windows w;
  w.begin.resize(std::size_t(out));
  w.end.resize(std::size_t(out));
  for (int64_t o = 0; o < out; ++o) {
    kernel_math::pool_window(o, in, kernel, stride, pad, w.begin[std::size_t(o)], w.end[std::size_t(o)]);
  }
  return w;
}

// Pools every [H, W] plane of `in` into [OH, OW]: `reduce(plane, y0, y1, x0, x1)` gives one output.
template <typename In, typename Out, typename Reduce>
void pool_planes(const ModelLayer& L, const In* in, int64_t planes, Out* out, Reduce reduce) {
  const int64_t H = L.in_shape[1], W = L.in_shape[2], OH = L.out_shape[1], OW = L.out_shape[2];
  const Windows wy = pool_windows(H, OH, L.kernel.h, L.stride.h, L.padding.h);
  const Windows wx = pool_windows(W, OW, L.kernel.w, L.stride.w, L.padding.w);
#pragma omp parallel for schedule(static) if (planes * OH * OW >= 16384)
  for (int64_t pl = 0; pl < planes; ++pl) {
    const In* plane = in + pl * H * W;
    Out* o = out + pl * OH * OW;
    for (int64_t oy = 0; oy < OH; ++oy) {
      for (int64_t ox = 0; ox < OW; ++ox) {
        o[oy * OW + ox] = reduce(plane, W, wy.begin[std::size_t(oy)], wy.end[std::size_t(oy)],
                                 wx.begin[std::size_t(ox)], wx.end[std::size_t(ox)]);
      }
    }
  }
}

// Max pooling of real values with 2x2 windows that tile the input (kernel 2 == stride, no padding), planes
// [p0, p1) of in [planes, H, W] into out [planes, H / 2, W / 2]: pool_planes' result (the largest value, or NaN
// if the window holds one) without its per-output window bounds and loops.
void max_pool_2x2(const float* in, int64_t p0, int64_t p1, int64_t H, int64_t W, float* out) {
  const int64_t OH = H / 2, OW = W / 2;
  for (int64_t pl = p0; pl < p1; ++pl) {
    for (int64_t oy = 0; oy < OH; ++oy) {
      const float* r0 = in + (pl * H + 2 * oy) * W;
      const float* r1 = r0 + W;
      float* o = out + (pl * OH + oy) * OW;
      for (int64_t ox = 0; ox < OW; ++ox) {
        const float a = r0[2 * ox], b = r0[2 * ox + 1], c = r1[2 * ox], d = r1[2 * ox + 1];
        const float ab = a > b ? a : b, cd = c > d ? c : d;
        const bool nan = (a != a) | (b != b) | (c != c) | (d != d);
        o[ox] = nan ? std::numeric_limits<float>::quiet_NaN() : (ab > cd ? ab : cd);
      }
    }
  }
}

void run_pool(const ModelLayer& L, const Activation& a, Activation& y) {
  y.time_invariant = a.time_invariant;
  y.rows = a.rows;
  y.features = L.in_shape[0] * L.out_shape[1] * L.out_shape[2];
  y.spikes = L.spike_output;
  const int64_t planes = a.rows * L.in_shape[0];
  if (L.kind == LayerKind::kMaxPool2d && a.spikes) {
    // the max of 0/1 spikes is their OR
    y.bits.resize(std::size_t(y.rows * y.features));
    pool_planes(L, a.bits.data(), planes, y.bits.data(),
                [](const uint8_t* p, int64_t W, int64_t y0, int64_t y1, int64_t x0, int64_t x1) {
                  uint8_t any = 0;
                  for (int64_t iy = y0; iy < y1; ++iy) {
                    for (int64_t ix = x0; ix < x1; ++ix) any |= p[iy * W + ix];
                  }
                  return uint8_t(any != 0);
                });
    return;
  }
  const float* in = a.values.data();
  if (a.spikes) {  // average pooling of spikes: their mean, a real value
    const std::size_t n = std::size_t(a.rows * a.features);
    y.scratch.resize(n);
    for (std::size_t i = 0; i < n; ++i) y.scratch[i] = a.bits[i] != 0 ? 1.0f : 0.0f;
    in = y.scratch.data();
  }
  y.values.resize(std::size_t(y.rows * y.features));
  if (L.kind == LayerKind::kMaxPool2d && L.kernel.h == 2 && L.kernel.w == 2 && L.stride.h == 2 && L.stride.w == 2 &&
      L.padding.h == 0 && L.padding.w == 0) {
    const int64_t H = L.in_shape[1], W = L.in_shape[2];
    constexpr int64_t kPlanes = 64;  // per iteration
#pragma omp parallel for schedule(static) if (planes * H * W >= 65536)
    for (int64_t p0 = 0; p0 < planes; p0 += kPlanes) {
      max_pool_2x2(in, p0, std::min(planes, p0 + kPlanes), H, W, y.values.data());
    }
  } else if (L.kind == LayerKind::kMaxPool2d) {
    pool_planes(L, in, planes, y.values.data(),
                [](const float* p, int64_t W, int64_t y0, int64_t y1, int64_t x0, int64_t x1) {
                  float m = -std::numeric_limits<float>::infinity();
                  bool nan = false;
                  for (int64_t iy = y0; iy < y1; ++iy) {
                    for (int64_t ix = x0; ix < x1; ++ix) {
                      const float v = p[iy * W + ix];
                      m = v > m ? v : m;  // branch-free: a compare of random values mispredicts
                      nan |= v != v;
                    }
                  }
                  return nan ? std::numeric_limits<float>::quiet_NaN() : m;  // torch propagates NaN
                });
  } else {
    // Padding is at most half the kernel, so (floor mode) a window lies within the padded input and
    // counting the padding means dividing by the whole kernel; torch sums in this order, then divides.
    const float whole = float(L.kernel.h * L.kernel.w);
    const bool include_pad = L.count_include_pad;
    pool_planes(L, in, planes, y.values.data(),
                [whole, include_pad](const float* p, int64_t W, int64_t y0, int64_t y1, int64_t x0, int64_t x1) {
                  float sum = 0.0f;
                  for (int64_t iy = y0; iy < y1; ++iy) {
                    for (int64_t ix = x0; ix < x1; ++ix) sum += p[iy * W + ix];
                  }
                  return sum / (include_pad ? whole : float((y1 - y0) * (x1 - x0)));
                });
  }
}

void run_neuron(const Model::Impl& m, const ModelLayer& L, const Activation& a, Activation& y, int64_t batch,
                LayerReport& report) {
  const int64_t T = m.time_steps, F = a.features, N = batch * F;
  // The neuron kernel takes float32 [T, batch * F]: real values of every step are that already, and a
  // time-invariant input is read in place at every step (strides [0, 1]); spikes (a neuron fed them directly)
  // become 0/1 values in scratch.
  const float* x = a.values.data();
  if (a.spikes) {
    const int64_t rows = a.time_invariant ? 1 : T;
    y.scratch.resize(std::size_t(rows * N));
    const uint8_t* s = a.bits.data();
    for (int64_t i = 0; i < rows * N; ++i) y.scratch[std::size_t(i)] = s[i] != 0 ? 1.0f : 0.0f;
    x = y.scratch.data();
  }
  y.spikes = true;
  y.time_invariant = false;
  y.rows = T * batch;
  y.features = F;
  y.bits.resize(std::size_t(T * N));
  std::vector<float> v_init(std::size_t(N), L.neuron.hard_reset ? L.neuron.v_reset : 0.0f);
  std::vector<float> v_final(static_cast<std::size_t>(N));
  float decay = L.decay;
  NeuronForwardArgs args;
  args.x_seq = make_tensor_view(const_cast<float*>(x), DType::kFloat32, {T, N});  // only read
  if (a.time_invariant) args.x_seq.strides[0] = 0;
  args.v_init = make_tensor_view(v_init.data(), DType::kFloat32, {N});
  if (L.neuron.kind == NeuronKind::kParametricLIF) args.decay = make_tensor_view(&decay, DType::kFloat32, {1});
  args.spike_seq = make_tensor_view(y.bits.data(), DType::kUInt8, {T, N});
  args.v_final = make_tensor_view(v_final.data(), DType::kFloat32, {N});
  neuron_multistep_forward(L.neuron, args);
  report.spikes += count_spikes(y.bits.data(), T * N);
  report.neuron_steps += T * N;
}

// Model::run on the CPU: every layer writes its output into buffers kept by the model, so after the first run
// of a batch size the large allocations (activations, the neurons' input sequences) are reused and touch no
// fresh pages. Writes the summed scores [batch, num_outputs].
void run_cpu(Model::Impl& m, const float* input, int64_t batch, uint64_t seed, float* scores) {
  m.activations.resize(m.layers.size() + 1);
  encode(m, input, batch, seed, m.activations[0]);
  const Activation* a = &m.activations[0];
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    const ModelLayer& L = m.layers[i];
    LayerReport& report = m.reports[i];
    Activation& y = m.activations[i + 1];
    const auto start = std::chrono::steady_clock::now();
    switch (L.kind) {
      case LayerKind::kLinear: run_linear(L, *a, y, report); break;
      case LayerKind::kConv2d: run_conv2d(L, *a, y, report); break;
      case LayerKind::kFlatten: break;  // C order: the same memory, the next layer reads it as it is
      case LayerKind::kMaxPool2d:
      case LayerKind::kAvgPool2d: run_pool(L, *a, y); break;
      case LayerKind::kNeuron: run_neuron(m, L, *a, y, batch, report); break;
    }
    if (L.kind != LayerKind::kFlatten) a = &y;
    report.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  // scores[b, j] = sum over t of y[t, b, j], in step order.
  const int64_t J = shape_numel(m.layers.back().out_shape), T = m.time_steps;
  for (int64_t t = 0; t < T; ++t) {
    const int64_t row0 = a->time_invariant ? 0 : t * batch;
    for (int64_t i = 0; i < batch * J; ++i) {
      const int64_t src = row0 * J + i;
      scores[i] += a->spikes ? float(a->bits[std::size_t(src)] != 0) : a->values[std::size_t(src)];
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
const std::vector<LayerReport>& Model::reports() const { return impl_->reports; }

void Model::reset_reports() {
  for (LayerReport& r : impl_->reports) {
    r.synaptic_ops = r.dense_macs = r.spikes = r.neuron_steps = 0;
    r.seconds = 0.0;
  }
}

int64_t Model::workspace_bytes(int64_t batch) const {
  if (batch < 0) throw Error("Model::workspace_bytes: batch must be >= 0, got " + std::to_string(batch));
  // Every layer keeps its output (float32 or 1-byte spikes) for all T steps, a neuron also its float32 input
  // sequence; a bound (layers that run once per sample are counted T times). Saturates instead of overflowing.
  double per_step = double(input_numel()) * 4.0;
  for (const ModelLayer& L : impl_->layers) {
    const double n = double(shape_numel(L.out_shape));
    per_step += L.kind == LayerKind::kNeuron ? n * 5.0 : L.spike_output ? n : n * 4.0;
  }
  const double total = per_step * double(impl_->time_steps) * double(batch);
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

  if (m.device) {
    cuda::model_run(m, *m.device, input, batch, seed, m.reports, result.scores.data());
  } else {
    run_cpu(m, input, batch, seed, result.scores.data());
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
  if (device == Device::kCPU) {
    impl_->device.reset();
    return;
  }
  if (device != Device::kCUDA) throw Error("Model::to: unknown device " + std::to_string(int(device)));
  if (device_index < 0) throw Error("Model::to: device_index must be >= 0, got " + std::to_string(device_index));
  if (impl_->device && cuda::model_device_index(*impl_->device) == device_index) return;
  impl_->device = cuda::model_to_device(*impl_, device_index);
}

Device Model::device() const { return impl_->device ? Device::kCUDA : Device::kCPU; }
int Model::device_index() const { return impl_->device ? cuda::model_device_index(*impl_->device) : 0; }

std::string Model::summary() const {
  std::ostringstream out;
  out << "spikeops model " << impl_->source << ": T=" << impl_->time_steps << ", encoding "
      << (impl_->encoding == InputEncoding::kDirect ? "direct" : "poisson") << ", input "
      << shape_to_string(impl_->input_shape) << "\n";
  for (const ModelLayer& L : impl_->layers) {
    out << "  " << L.name << ": " << L.type << " -> " << shape_to_string(L.out_shape);
    if (L.kind == LayerKind::kLinear || L.kind == LayerKind::kConv2d) {
      out << (L.spike_input ? " (spike input: accumulate only)" : " (real input: dense)");
    }
    out << "\n";
  }
  return out.str();
}

}  // namespace spikeops
