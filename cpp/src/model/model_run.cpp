// Running a loaded model on the CPU, layer by layer over all T steps (see model.hpp).
//
// An activation is [rows, features] in C order, rows = T * batch in step-major order ([T, batch, ...], the
// layout the multi-step neuron kernel takes as [T, batch * features]). Until the first neuron of a directly
// encoded network the activation is the same at every step, so it is kept (and computed) once per sample:
// rows = batch, `time_invariant`. Spikes are 1 byte; a layer fed spikes runs on the spike GEMM.
#include <algorithm>
#include <cstring>
#include <limits>
#include <sstream>

#include "backend.hpp"
#include "model/model_impl.hpp"
#include "spikeops/error.hpp"
#include "spikeops/neuron.hpp"
#include "spikeops/spike_gemm.hpp"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the model file holds little-endian float32; a big-endian reader is not written"
#endif

namespace spikeops {

namespace {

struct Activation {
  bool spikes = false;
  bool time_invariant = false;
  int64_t rows = 0;
  int64_t features = 0;
  std::vector<float> values;   // float activations, [rows, features]
  std::vector<uint8_t> bits;   // spikes, [rows, features]
};

int64_t count_spikes(const uint8_t* s, int64_t n) {
  int64_t count = 0;
#pragma omp parallel for reduction(+ : count) schedule(static) if (n >= (int64_t(1) << 16))
  for (int64_t i = 0; i < n; ++i) count += s[i] != 0;
  return count;
}

// splitmix64: a counter-based generator, so every element's draw is independent of the thread that makes it.
inline uint64_t mix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

Activation encode(const Model::Impl& m, const float* input, int64_t batch, uint64_t seed) {
  const int64_t F = shape_numel(m.input_shape);
  Activation a;
  a.features = F;
  if (m.encoding == InputEncoding::kDirect) {
    a.time_invariant = true;
    a.rows = batch;
    a.values.assign(input, input + batch * F);
    return a;
  }
  // Poisson: a spike where u <= x, u uniform in [0, 1) with 24 random bits (a float32's resolution).
  a.spikes = true;
  a.rows = m.time_steps * batch;
  a.bits.resize(std::size_t(a.rows * F));
  const int64_t per_step = batch * F;
  const uint64_t key = mix64(seed);
  uint8_t* out = a.bits.data();
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < a.rows * F; ++i) {
    const float u = float(mix64(key ^ uint64_t(i)) >> 40) * (1.0f / 16777216.0f);
    out[i] = u <= input[i % per_step] ? 1 : 0;
  }
  return a;
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

Activation run_linear(const ModelLayer& L, const Activation& a, LayerReport& report) {
  Activation y;
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
  return y;
}

// Input pixel (iy, ix) of kernel tap (ky, kx) for output pixel (oy, ox), or false when it is padding.
inline bool tap(const ModelLayer& L, int64_t H, int64_t W, int64_t oy, int64_t ox, int64_t ky, int64_t kx,
                int64_t& iy, int64_t& ix) {
  iy = oy * L.stride.h - L.padding.h + ky * L.dilation.h;
  ix = ox * L.stride.w - L.padding.w + kx * L.dilation.w;
  return iy >= 0 && iy < H && ix >= 0 && ix < W;
}

Activation run_conv2d(const ModelLayer& L, const Activation& a, LayerReport& report) {
  const int64_t C = L.in_shape[0], H = L.in_shape[1], W = L.in_shape[2];
  const int64_t OH = L.out_shape[1], OW = L.out_shape[2], P = OH * OW, O = L.O, K = L.K;
  const int64_t kh = L.kernel.h, kw = L.kernel.w;
  Activation y;
  y.time_invariant = a.time_invariant;
  y.rows = a.rows;
  y.features = O * P;
  y.values.resize(std::size_t(y.rows * y.features));
  float* out = y.values.data();

  if (!a.spikes) {
    // Direct convolution of real values, one output pixel at a time: acc[O] += x * W^T[k, :] per input tap.
    const float* x = a.values.data();
    const float* wt = L.weight_t.data();
#pragma omp parallel
    {
      std::vector<float> acc(static_cast<std::size_t>(O));
#pragma omp for schedule(static)
      for (int64_t rp = 0; rp < a.rows * P; ++rp) {
        const int64_t r = rp / P, p = rp % P, oy = p / OW, ox = p % OW;
        for (int64_t o = 0; o < O; ++o) acc[std::size_t(o)] = L.bias.empty() ? 0.0f : L.bias[std::size_t(o)];
        for (int64_t c = 0; c < C; ++c) {
          for (int64_t ky = 0; ky < kh; ++ky) {
            for (int64_t kx = 0; kx < kw; ++kx) {
              int64_t iy, ix;
              if (!tap(L, H, W, oy, ox, ky, kx, iy, ix)) continue;
              const float v = x[((r * C + c) * H + iy) * W + ix];
              if (v == 0.0f) continue;
              const float* w = wt + ((c * kh + ky) * kw + kx) * O;
              for (int64_t o = 0; o < O; ++o) acc[std::size_t(o)] += v * w[o];
            }
          }
        }
        for (int64_t o = 0; o < O; ++o) out[(r * O + o) * P + p] = acc[std::size_t(o)];
      }
    }
    report.dense_macs += a.rows * P * K * O;
    return y;
  }

  // Spikes: unfold the input in bytes (im2col, [pixels, K] with K ordered (c, ky, kx) like the weight) and run
  // the spike GEMM, a chunk of samples at a time so the unfolded bytes stay around 8 MB.
  const int64_t chunk = std::max<int64_t>(1, (int64_t(8) << 20) / std::max<int64_t>(1, P * K));
  std::vector<uint8_t> cols;
  std::vector<float> tmp;
  for (int64_t r0 = 0; r0 < a.rows; r0 += chunk) {
    const int64_t n = std::min(chunk, a.rows - r0);
    cols.assign(std::size_t(n * P * K), 0);
    const uint8_t* s = a.bits.data() + r0 * C * H * W;
#pragma omp parallel for schedule(static)
    for (int64_t rp = 0; rp < n * P; ++rp) {
      const int64_t r = rp / P, p = rp % P, oy = p / OW, ox = p % OW;
      uint8_t* col = cols.data() + rp * K;
      for (int64_t c = 0; c < C; ++c) {
        for (int64_t ky = 0; ky < kh; ++ky) {
          for (int64_t kx = 0; kx < kw; ++kx) {
            int64_t iy, ix;
            if (tap(L, H, W, oy, ox, ky, kx, iy, ix)) col[(c * kh + ky) * kw + kx] = s[((r * C + c) * H + iy) * W + ix];
          }
        }
      }
    }
    report.synaptic_ops += count_spikes(cols.data(), n * P * K) * O;
    tmp.resize(std::size_t(n * P * O));
    spike_linear_rows(L, cols.data(), n * P, tmp.data());
    // [n, P, O] -> [n, O, P]
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n; ++r) {
      for (int64_t p = 0; p < P; ++p) {
        for (int64_t o = 0; o < O; ++o) out[((r0 + r) * O + o) * P + p] = tmp[std::size_t((r * P + p) * O + o)];
      }
    }
  }
  return y;
}

Activation run_pool(const ModelLayer& L, const Activation& a) {
  const int64_t C = L.in_shape[0], H = L.in_shape[1], W = L.in_shape[2];
  const int64_t OH = L.out_shape[1], OW = L.out_shape[2];
  const bool is_max = L.kind == LayerKind::kMaxPool2d;
  Activation y;
  y.time_invariant = a.time_invariant;
  y.rows = a.rows;
  y.features = C * OH * OW;
  y.spikes = L.spike_output;
  if (y.spikes) {
    y.bits.resize(std::size_t(y.rows * y.features));
  } else {
    y.values.resize(std::size_t(y.rows * y.features));
  }
  const int64_t planes = a.rows * C;
#pragma omp parallel for schedule(static) if (planes * OH * OW >= 4096)
  for (int64_t rc = 0; rc < planes; ++rc) {
    for (int64_t oy = 0; oy < OH; ++oy) {
      for (int64_t ox = 0; ox < OW; ++ox) {
        const int64_t o = (rc * OH + oy) * OW + ox;
        const int64_t y0 = oy * L.stride.h - L.padding.h, x0 = ox * L.stride.w - L.padding.w;
        if (y.spikes) {  // max of 0/1 spikes: their OR; padding never wins
          uint8_t any = 0;
          for (int64_t iy = std::max<int64_t>(y0, 0); iy < std::min(y0 + L.kernel.h, H); ++iy) {
            for (int64_t ix = std::max<int64_t>(x0, 0); ix < std::min(x0 + L.kernel.w, W); ++ix) {
              any |= a.bits[std::size_t((rc * H + iy) * W + ix)] != 0;
            }
          }
          y.bits[std::size_t(o)] = any;
          continue;
        }
        float m = -std::numeric_limits<float>::infinity(), sum = 0.0f;
        int64_t inside = 0;
        for (int64_t iy = std::max<int64_t>(y0, 0); iy < std::min(y0 + L.kernel.h, H); ++iy) {
          for (int64_t ix = std::max<int64_t>(x0, 0); ix < std::min(x0 + L.kernel.w, W); ++ix) {
            const int64_t i = (rc * H + iy) * W + ix;
            const float v = a.spikes ? float(a.bits[std::size_t(i)] != 0) : a.values[std::size_t(i)];
            // torch's max pooling propagates NaN
            if (v > m || v != v) m = v;
            sum += v;
            ++inside;
          }
        }
        // Padding is at most half the kernel, so (floor mode) a window always lies within the padded input
        // and counting the padding means dividing by the whole kernel.
        y.values[std::size_t(o)] = is_max ? m : sum / float(L.count_include_pad ? L.kernel.h * L.kernel.w : inside);
      }
    }
  }
  return y;
}

Activation run_neuron(const Model::Impl& m, const ModelLayer& L, Activation a, int64_t batch,
                      LayerReport& report) {
  const int64_t T = m.time_steps, F = a.features, N = batch * F;
  // The neuron kernel takes float32 [T, batch * F] (a neuron fed spikes directly gets them as 0/1 values).
  std::vector<float> x(std::size_t(T * N));
  for (int64_t t = 0; t < T; ++t) {
    const int64_t src_row = a.time_invariant ? 0 : t * batch;
    float* dst = x.data() + t * N;
    if (a.spikes) {
      const uint8_t* s = a.bits.data() + src_row * F;
      for (int64_t i = 0; i < N; ++i) dst[i] = s[i] != 0 ? 1.0f : 0.0f;
    } else {
      std::memcpy(dst, a.values.data() + src_row * F, std::size_t(N) * sizeof(float));
    }
  }
  Activation y;
  y.spikes = true;
  y.rows = T * batch;
  y.features = F;
  y.bits.resize(std::size_t(T * N));
  std::vector<float> v_init(std::size_t(N), L.neuron.hard_reset ? L.neuron.v_reset : 0.0f);
  std::vector<float> v_final(static_cast<std::size_t>(N));
  float decay = L.decay;
  NeuronForwardArgs args;
  args.x_seq = make_tensor_view(x.data(), DType::kFloat32, {T, N});
  args.v_init = make_tensor_view(v_init.data(), DType::kFloat32, {N});
  if (L.neuron.kind == NeuronKind::kParametricLIF) args.decay = make_tensor_view(&decay, DType::kFloat32, {1});
  args.spike_seq = make_tensor_view(y.bits.data(), DType::kUInt8, {T, N});
  args.v_final = make_tensor_view(v_final.data(), DType::kFloat32, {N});
  neuron_multistep_forward(L.neuron, args);
  report.spikes += count_spikes(y.bits.data(), T * N);
  report.neuron_steps += T * N;
  return y;
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
  }
}

int64_t Model::workspace_bytes(int64_t batch) const {
  if (batch < 0) throw Error("Model::workspace_bytes: batch must be >= 0, got " + std::to_string(batch));
  // The largest input + output pair of any layer, all T steps, float32, plus the neuron's copies of its
  // input and state; a bound, not an exact count. Saturates instead of overflowing.
  const double T = double(impl_->time_steps);
  double worst = 0.0, in = double(input_numel()) * 4.0;
  for (const ModelLayer& L : impl_->layers) {
    const double out = double(shape_numel(L.out_shape)) * 4.0;
    double extra = L.kind == LayerKind::kNeuron ? out + 8.0 : 0.0;
    if (L.kind == LayerKind::kConv2d && L.spike_input) extra = 8.0 * (1 << 20) / double(batch > 0 ? batch : 1) / T + out;
    worst = std::max(worst, in + out + extra);
    in = out;
  }
  const double total = worst * T * double(batch);
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

  Activation a = encode(m, input, batch, seed);
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    const ModelLayer& L = m.layers[i];
    LayerReport& report = m.reports[i];
    switch (L.kind) {
      case LayerKind::kLinear: a = run_linear(L, a, report); break;
      case LayerKind::kConv2d: a = run_conv2d(L, a, report); break;
      case LayerKind::kFlatten: break;  // C order: the same memory
      case LayerKind::kMaxPool2d:
      case LayerKind::kAvgPool2d: a = run_pool(L, a); break;
      case LayerKind::kNeuron: a = run_neuron(m, L, std::move(a), batch, report); break;
    }
  }

  // scores[b, j] = sum over t of y[t, b, j], in step order.
  const int64_t J = result.num_outputs, T = m.time_steps;
  for (int64_t t = 0; t < T; ++t) {
    const int64_t row0 = a.time_invariant ? 0 : t * batch;
    for (int64_t i = 0; i < batch * J; ++i) {
      const int64_t src = row0 * J + i;
      result.scores[std::size_t(i)] += a.spikes ? float(a.bits[std::size_t(src)] != 0) : a.values[std::size_t(src)];
    }
  }
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
