// The model runtime on a GPU (Model::to(Device::kCUDA)): the same layers as the CPU path (model_run.cpp), in
// the same activation layout, with the same per-element formulas (model_math.hpp) and, except in the spike
// GEMM, the same order of summation per output, so that with exactly representable sums the two give
// identical spikes and scores. (The CPU spike GEMM adds even and odd spikes in two accumulators, the CUDA one
// in one: with arbitrary float weights a linear layer fed spikes may differ in the last bits.)
//
// An activation is [rows, features] in C order, rows = T * batch step-major, or rows = batch while it is the
// same at every step (time_invariant). Spikes are 1 byte; a linear layer fed spikes runs the spike GEMM
// (spike_accumulate, accumulate only), a convolution fed spikes adds the weights its spikes select and skips
// the zeros. Counters of spikes and synaptic operations are summed on the device and read once per run.
//
// The kernels other than the spike GEMM and the neuron are simple one-thread-per-output loops: the layers
// they serve (the encoder, the first dense layer, pooling, small convolutions) are small next to the
// neurons' T steps, and their order of accumulation is the CPU's. Not tuned: no GPU has run them yet.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <vector>

#include "backend.hpp"
#include "cpu/conv_events_cpu.hpp"
#include "cuda_utils.cuh"
#include "model/model_impl.hpp"
#include "kernel_math.hpp"
#include "spikeops/error.hpp"
#include "spikeops/neuron.hpp"
#include "spikeops/spike_gemm.hpp"

namespace spikeops {
namespace cuda {

namespace {

// Device memory that grows on demand and is kept for later runs (as the CPU path keeps its vectors).
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& other) noexcept : data_(other.data_), capacity_(other.capacity_) {
    other.data_ = nullptr;
    other.capacity_ = 0;
  }
  DeviceBuffer& operator=(DeviceBuffer&&) = delete;
  ~DeviceBuffer() {
    if (data_ != nullptr) static_cast<void>(cudaFree(data_));
  }

  // At least `bytes` bytes; the contents are lost when it grows.
  void* reserve(std::size_t bytes) {
    if (bytes > capacity_) {
      if (data_ != nullptr) check_cuda(cudaFree(data_), "cudaFree");
      data_ = nullptr;
      capacity_ = 0;
      check_cuda(cudaMalloc(&data_, bytes), "cudaMalloc (model runtime buffer)");
      capacity_ = bytes;
    }
    return data_;
  }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data_);
  }

 private:
  void* data_ = nullptr;
  std::size_t capacity_ = 0;
};

// A host vector copied to a new device buffer on `stream` (nothing for an empty vector: the pointer stays
// null). The caller synchronizes the stream before `host` goes away.
template <typename T>
void upload(DeviceBuffer& buffer, const std::vector<T>& host, cudaStream_t stream) {
  if (host.empty()) return;
  void* p = buffer.reserve(host.size() * sizeof(T));
  check_cuda(cudaMemcpyAsync(p, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice, stream),
             "cudaMemcpyAsync (weights)");
}

struct DeviceLayer {
  DeviceBuffer weight_t, packed, bias, decay;
};

struct DeviceActivation {
  bool spikes = false;
  bool time_invariant = false;
  int64_t rows = 0, features = 0;
  DeviceBuffer values, bits, scratch, v_init, v_final;
  float* values_ptr() const { return values.as<float>(); }
  uint8_t* bits_ptr() const { return bits.as<uint8_t>(); }
};

using Counter = unsigned long long;

// ---- Kernels ----

__global__ void poisson_encode_kernel(const float* input, int64_t per_step, int64_t n, uint64_t key, uint8_t* out) {
  for (int64_t i = global_thread_index(); i < n; i += grid_thread_count()) {
    out[i] = kernel_math::poisson_spike(key, i, input[i % per_step]);
  }
}

// Sums `value` over the warp and adds it to *counter from lane 0; every lane of the warp must call it.
__device__ __forceinline__ void warp_count(Counter value, Counter* counter) {
#pragma unroll
  for (int d = 16; d > 0; d /= 2) value += __shfl_down_sync(0xffffffffu, value, d);
  if (threadIdx.x % 32 == 0 && value != 0) atomicAdd(counter, value);
}

// The nonzero bytes of s[0:n], added to *counter. Launched with a multiple of 32 threads per block and no
// early exit, so every lane reaches warp_count.
__global__ void count_kernel(const uint8_t* s, int64_t n, Counter* counter) {
  Counter count = 0;
  for (int64_t i = global_thread_index(); i < n; i += grid_thread_count()) count += s[i] != 0;
  warp_count(count, counter);
}

// y[r, o] = bias[o] + sum over k of x[r, k] * W^T[k, o], zero inputs skipped, k ascending (the CPU's order).
__global__ void dense_linear_kernel(const float* x, int64_t rows, int64_t K, int64_t O, const float* wt,
                                    const float* bias, float* y) {
  for (int64_t i = global_thread_index(); i < rows * O; i += grid_thread_count()) {
    const int64_t r = i / O, o = i % O;
    const float* xr = x + r * K;
    float acc = bias != nullptr ? bias[o] : 0.0f;
    for (int64_t k = 0; k < K; ++k) {
      const float v = xr[k];
      if (v != 0.0f) acc += v * wt[k * O + o];
    }
    y[i] = acc;
  }
}

// One output out[r, o, oy, ox] per thread: bias plus, over (ky, kx, c), the weight of every nonzero input
// the taps reach (times the input for real values). For one output this visits its inputs in the CPU
// kernel's order (tap, then channel). With spikes, the threads of channel 0 count the (input spike, tap) pairs: their
// sum times O is the CPU's count of weight additions. wt holds the CPU kernel's weight rows [C * kh * kw, ld]
// (cpu::pack_conv_weight).
template <bool kSpikes>
__global__ void conv2d_kernel(const cpu::ConvGeometry g, int64_t ld, const void* input, int64_t rows,
                              const float* wt, const float* bias, float* out, Counter* taps_counter) {
  const int64_t P = g.OH * g.OW, n = rows * g.O * P;
  Counter taps = 0;
  for (int64_t i = global_thread_index(); i < n; i += grid_thread_count()) {
    const int64_t ox = i % g.OW, oy = (i / g.OW) % g.OH, o = (i / P) % g.O, r = i / (P * g.O);
    float acc = bias != nullptr ? bias[o] : 0.0f;
    for (int64_t ky = 0; ky < g.kh; ++ky) {
      const int64_t iy = oy * g.sh - g.ph + ky * g.dh;
      if (iy < 0 || iy >= g.H) continue;
      for (int64_t kx = 0; kx < g.kw; ++kx) {
        const int64_t ix = ox * g.sw - g.pw + kx * g.dw;
        if (ix < 0 || ix >= g.W) continue;
        // the CPU kernel's weight rows (cpu::pack_conv_weight): row (ky * kw + kx) * C + c
        const float* w = wt + (ky * g.kw + kx) * g.C * ld + o;
        const int64_t pixel = (r * g.C * g.H + iy) * g.W + ix;  // + c * H * W
        for (int64_t c = 0; c < g.C; ++c) {
          const int64_t at = pixel + c * g.H * g.W;
          if (kSpikes) {
            if (static_cast<const uint8_t*>(input)[at] == 0) continue;
            acc += w[c * ld];
            taps += o == 0;
          } else {
            const float v = static_cast<const float*>(input)[at];
            if (v != 0.0f) acc += v * w[c * ld];
          }
        }
      }
    }
    out[i] = acc;
  }
  if (kSpikes) warp_count(taps, taps_counter);
}

struct PoolShape {
  int64_t H, W, OH, OW, kh, kw, sh, sw, ph, pw;
};

// The input window of pooling output i (over planes * OH * OW): its plane's offset and [y0, y1) x [x0, x1).
struct Window {
  int64_t plane_offset, y0, y1, x0, x1;
};
__device__ __forceinline__ Window window_of(const PoolShape& g, int64_t i) {
  const int64_t ox = i % g.OW, oy = (i / g.OW) % g.OH, plane = i / (g.OH * g.OW);
  Window w;
  w.plane_offset = plane * g.H * g.W;
  kernel_math::pool_window(oy, g.H, g.kh, g.sh, g.ph, w.y0, w.y1);
  kernel_math::pool_window(ox, g.W, g.kw, g.sw, g.pw, w.x0, w.x1);
  return w;
}

// Max pooling of spikes: the OR of the window.
__global__ void max_pool_spikes_kernel(const PoolShape g, const uint8_t* in, int64_t planes, uint8_t* out) {
  const int64_t n = planes * g.OH * g.OW;
  for (int64_t i = global_thread_index(); i < n; i += grid_thread_count()) {
    const Window w = window_of(g, i);
    const uint8_t* p = in + w.plane_offset;
    uint8_t any = 0;
    for (int64_t iy = w.y0; iy < w.y1; ++iy) {
      for (int64_t ix = w.x0; ix < w.x1; ++ix) any |= p[iy * g.W + ix];
    }
    out[i] = any != 0;
  }
}

// Max or average pooling of real values, or the average of spikes (as 0/1), as the CPU computes them.
template <bool kMax, typename In>
__global__ void pool_values_kernel(const PoolShape g, const In* in, int64_t planes, bool count_include_pad,
                                   float* out) {
  const int64_t n = planes * g.OH * g.OW;
  for (int64_t i = global_thread_index(); i < n; i += grid_thread_count()) {
    const Window w = window_of(g, i);
    const int64_t y0 = w.y0, y1 = w.y1, x0 = w.x0, x1 = w.x1;
    const In* p = in + w.plane_offset;
    if (kMax) {
      float m = -INFINITY;
      bool nan = false;
      for (int64_t iy = y0; iy < y1; ++iy) {
        for (int64_t ix = x0; ix < x1; ++ix) {
          const float v = static_cast<float>(p[iy * g.W + ix]);
          m = v > m ? v : m;
          nan |= v != v;
        }
      }
      out[i] = nan ? NAN : m;  // torch propagates NaN
    } else {
      float sum = 0.0f;
      for (int64_t iy = y0; iy < y1; ++iy) {
        for (int64_t ix = x0; ix < x1; ++ix) sum += static_cast<float>(p[iy * g.W + ix]);
      }
      out[i] = sum / (count_include_pad ? float(g.kh * g.kw) : float((y1 - y0) * (x1 - x0)));
    }
  }
}

// A neuron's float32 input from spikes: x[i] = 0 or 1.
__global__ void spikes_as_values_kernel(const uint8_t* s, int64_t n, float* x) {
  for (int64_t i = global_thread_index(); i < n; i += grid_thread_count()) x[i] = s[i] != 0 ? 1.0f : 0.0f;
}

__global__ void fill_kernel(float* p, int64_t n, float value) {
  for (int64_t i = global_thread_index(); i < n; i += grid_thread_count()) p[i] = value;
}

// scores[i] = sum over t of y[t, i] (i over batch * J), in step order, starting from 0 as the CPU does.
template <typename In>
__global__ void scores_kernel(const In* y, bool time_invariant, int64_t T, int64_t n, float* scores) {
  for (int64_t i = global_thread_index(); i < n; i += grid_thread_count()) {
    float s = 0.0f;
    for (int64_t t = 0; t < T; ++t) {
      const In v = y[(time_invariant ? 0 : t * n) + i];
      s += sizeof(In) == 1 ? float(v != In(0)) : static_cast<float>(v);
    }
    scores[i] = s;
  }
}

// Launches one thread per work item, at most kMaxCountingBlocks blocks for the kernels that count into one
// counter (they grid-stride, so fewer blocks mean fewer atomics on that address).
constexpr unsigned int kMaxCountingBlocks = 4096;
template <typename Kernel, typename... Args>
void launch(const char* name, cudaStream_t stream, int64_t work_items, Kernel kernel, Args... args) {
  if (work_items <= 0) return;
  kernel<<<grid_blocks(work_items), kThreadsPerBlock, 0, stream>>>(args...);
  check_launch(name);
}
template <typename Kernel, typename... Args>
void launch_counting(const char* name, cudaStream_t stream, int64_t work_items, Kernel kernel, Args... args) {
  if (work_items <= 0) return;
  kernel<<<std::min(grid_blocks(work_items), kMaxCountingBlocks), kThreadsPerBlock, 0, stream>>>(args...);
  check_launch(name);
}

}  // namespace

struct ModelDevice {
  int device_index = 0;
  cudaStream_t stream = nullptr;
  std::vector<DeviceLayer> layers;
  std::vector<DeviceActivation> activations;  // [0]: the encoded input, [i + 1]: layer i's output
  DeviceBuffer input;                         // the batch, copied from the host (Poisson encoding)
  DeviceBuffer counters;                      // per layer: input spikes, (spike, tap) pairs or output spikes
  DeviceBuffer scores;

  ~ModelDevice() {  // runs under the deleter's DeviceGuard
    if (stream != nullptr) static_cast<void>(cudaStreamDestroy(stream));
  }
};

void ModelDeviceDeleter::operator()(ModelDevice* d) const noexcept {
  if (d == nullptr) return;
  try {
    DeviceGuard guard(d->device_index);  // the buffers are freed on their device
    delete d;
    return;
  } catch (...) {
    // The device could not be made current (the context is gone at process exit): free what can be freed.
  }
  delete d;
}

int model_device_index(const ModelDevice& d) { return d.device_index; }

ModelDevicePtr model_to_device(const Model::Impl& m, int device_index) {
  int count = 0;
  check_cuda(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
  if (device_index >= count) {
    throw DeviceError("Model::to(CUDA, " + std::to_string(device_index) + "): there are " + std::to_string(count) +
                      " CUDA devices");
  }
  DeviceGuard guard(device_index);
  ModelDevicePtr d(new ModelDevice);
  d->device_index = device_index;
  check_cuda(cudaStreamCreateWithFlags(&d->stream, cudaStreamNonBlocking), "cudaStreamCreate");
  d->layers.resize(m.layers.size());
  std::vector<std::vector<float>> decays(m.layers.size());
  for (std::size_t i = 0; i < m.layers.size(); ++i) {
    const ModelLayer& L = m.layers[i];
    DeviceLayer& D = d->layers[i];
    upload(D.weight_t, L.weight_t, d->stream);
    upload(D.packed, L.packed, d->stream);
    upload(D.bias, L.bias, d->stream);
    if (L.neuron.kind == NeuronKind::kParametricLIF && L.kind == LayerKind::kNeuron) {
      decays[i] = {L.decay};
      upload(D.decay, decays[i], d->stream);
    }
  }
  // The copies are complete before any run reads them (and before `decays` goes away).
  check_cuda(cudaStreamSynchronize(d->stream), "Model::to(CUDA): copying the weights");
  d->activations.resize(m.layers.size() + 1);
  return d;
}

namespace {

TensorView device_view(void* p, DType dtype, std::initializer_list<int64_t> shape, int device_index) {
  return make_tensor_view(p, dtype, shape, Device::kCUDA, device_index);
}

void run_linear(const ModelLayer& L, DeviceLayer& D, const DeviceActivation& a, DeviceActivation& y, int index,
                cudaStream_t stream, Counter* counter) {
  y.spikes = false;
  y.time_invariant = a.time_invariant;
  y.rows = a.rows;
  y.features = L.O;
  float* out = static_cast<float*>(y.values.reserve(std::size_t(y.rows * L.O) * sizeof(float)));
  const float* bias = D.bias.as<const float>();
  if (a.spikes) {
    SpikeAccumulateArgs args;
    args.spikes = device_view(a.bits_ptr(), DType::kUInt8, {a.rows, L.K}, index);
    const int64_t tiles = (L.O + kPackedTileN - 1) / kPackedTileN;
    args.rows = device_view(D.packed.as<float>(), DType::kFloat32, {tiles, L.K, int64_t(kPackedTileN)}, index);
    args.rows_layout = RowsLayout::kPacked;
    if (bias != nullptr) args.bias = device_view(const_cast<float*>(bias), DType::kFloat32, {L.O}, index);
    args.out = device_view(out, DType::kFloat32, {a.rows, L.O}, index);
    args.stream = stream;
    ::spikeops::spike_accumulate(args);  // the validated entry point
    launch_counting("count_kernel", stream, a.rows * L.K, count_kernel, static_cast<const uint8_t*>(a.bits_ptr()),
           a.rows * L.K, counter);
  } else {
    launch("dense_linear_kernel", stream, a.rows * L.O, dense_linear_kernel, static_cast<const float*>(a.values_ptr()),
           a.rows, L.K, L.O, D.weight_t.as<const float>(), bias, out);
  }
}

void run_conv2d(const ModelLayer& L, DeviceLayer& D, const DeviceActivation& a, DeviceActivation& y,
                cudaStream_t stream, Counter* counter) {
  const cpu::ConvGeometry g = conv_geometry(L);
  const int64_t ld = cpu::conv_padded_channels(g.O);
  y.spikes = false;
  y.time_invariant = a.time_invariant;
  y.rows = a.rows;
  y.features = g.O * g.OH * g.OW;
  float* out = static_cast<float*>(y.values.reserve(std::size_t(y.rows * y.features) * sizeof(float)));
  const float* wt = D.weight_t.as<const float>();
  const float* bias = D.bias.as<const float>();
  const int64_t n = y.rows * y.features;
  if (a.spikes) {
    launch_counting("conv2d_kernel<spikes>", stream, n, conv2d_kernel<true>, g, ld, static_cast<const void*>(a.bits_ptr()),
           a.rows, wt, bias, out, counter);
  } else {
    launch("conv2d_kernel<values>", stream, n, conv2d_kernel<false>, g, ld, static_cast<const void*>(a.values_ptr()),
           a.rows, wt, bias, out, counter);
  }
}

void run_pool(const ModelLayer& L, const DeviceActivation& a, DeviceActivation& y, cudaStream_t stream) {
  const PoolShape g{L.in_shape[1], L.in_shape[2], L.out_shape[1], L.out_shape[2], L.kernel.h,
                    L.kernel.w,    L.stride.h,    L.stride.w,     L.padding.h,    L.padding.w};
  y.time_invariant = a.time_invariant;
  y.rows = a.rows;
  y.features = L.in_shape[0] * g.OH * g.OW;
  y.spikes = L.spike_output;
  const int64_t planes = a.rows * L.in_shape[0], n = y.rows * y.features;
  const bool is_max = L.kind == LayerKind::kMaxPool2d;
  if (is_max && a.spikes) {
    uint8_t* out = static_cast<uint8_t*>(y.bits.reserve(std::size_t(n)));
    launch("max_pool_spikes_kernel", stream, n, max_pool_spikes_kernel, g, static_cast<const uint8_t*>(a.bits_ptr()),
           planes, out);
    return;
  }
  float* out = static_cast<float*>(y.values.reserve(std::size_t(n) * sizeof(float)));
  if (a.spikes) {  // average pooling of spikes: their mean, a real value
    launch("pool_values_kernel<avg, spikes>", stream, n, pool_values_kernel<false, uint8_t>, g,
           static_cast<const uint8_t*>(a.bits_ptr()), planes, L.count_include_pad, out);
  } else if (is_max) {
    launch("pool_values_kernel<max>", stream, n, pool_values_kernel<true, float>, g,
           static_cast<const float*>(a.values_ptr()), planes, L.count_include_pad, out);
  } else {
    launch("pool_values_kernel<avg>", stream, n, pool_values_kernel<false, float>, g,
           static_cast<const float*>(a.values_ptr()), planes, L.count_include_pad, out);
  }
}

void run_neuron(const Model::Impl& m, const ModelLayer& L, DeviceLayer& D, const DeviceActivation& a,
                DeviceActivation& y, int64_t batch, int index, cudaStream_t stream, Counter* counter) {
  const int64_t T = m.time_steps, F = a.features, N = batch * F;
  // Real values of every step are the float32 [T, N] the kernel takes, and a time-invariant input is read in
  // place at every step (strides [0, 1]); spikes become 0/1 values in scratch first (as on the CPU).
  float* x = a.values_ptr();
  if (a.spikes) {
    const int64_t n = (a.time_invariant ? 1 : T) * N;
    x = static_cast<float*>(y.scratch.reserve(std::size_t(n) * sizeof(float)));
    launch("spikes_as_values_kernel", stream, n, spikes_as_values_kernel, static_cast<const uint8_t*>(a.bits_ptr()),
           n, x);
  }
  y.spikes = true;
  y.time_invariant = false;
  y.rows = T * batch;
  y.features = F;
  uint8_t* spikes = static_cast<uint8_t*>(y.bits.reserve(std::size_t(T * N)));
  float* v_init = static_cast<float*>(y.v_init.reserve(std::size_t(N) * sizeof(float)));
  float* v_final = static_cast<float*>(y.v_final.reserve(std::size_t(N) * sizeof(float)));
  launch("fill_kernel", stream, N, fill_kernel, v_init, N, L.neuron.hard_reset ? L.neuron.v_reset : 0.0f);
  NeuronForwardArgs args;
  args.x_seq = device_view(x, DType::kFloat32, {T, N}, index);
  if (a.time_invariant) args.x_seq.strides[0] = 0;
  args.v_init = device_view(v_init, DType::kFloat32, {N}, index);
  if (L.neuron.kind == NeuronKind::kParametricLIF) args.decay = device_view(D.decay.as<float>(), DType::kFloat32, {1}, index);
  args.spike_seq = device_view(spikes, DType::kUInt8, {T, N}, index);
  args.v_final = device_view(v_final, DType::kFloat32, {N}, index);
  args.stream = stream;
  ::spikeops::neuron_multistep_forward(L.neuron, args);
  launch_counting("count_kernel", stream, T * N, count_kernel, static_cast<const uint8_t*>(spikes), T * N, counter);
}

}  // namespace

void model_run(const Model::Impl& m, ModelDevice& d, const float* input, int64_t batch, uint64_t seed,
               std::vector<LayerReport>& reports, float* scores) {
  DeviceGuard guard(d.device_index);
  const cudaStream_t stream = d.stream;
  const int index = d.device_index;
  const std::size_t L_count = m.layers.size();
  Counter* counters = static_cast<Counter*>(d.counters.reserve(std::max<std::size_t>(L_count, 1) * sizeof(Counter)));
  check_cuda(cudaMemsetAsync(counters, 0, L_count * sizeof(Counter), stream), "cudaMemsetAsync (counters)");

  // The encoded input: the batch itself (direct, the same at every step) or T steps of Poisson spikes.
  const int64_t F = shape_numel(m.input_shape);
  const std::size_t input_bytes = std::size_t(batch * F) * sizeof(float);
  DeviceActivation& a0 = d.activations[0];
  a0.features = F;
  if (m.encoding == InputEncoding::kDirect) {
    a0.spikes = false;
    a0.time_invariant = true;
    a0.rows = batch;
    check_cuda(cudaMemcpyAsync(a0.values.reserve(input_bytes), input, input_bytes, cudaMemcpyHostToDevice, stream),
               "cudaMemcpyAsync (input)");
  } else {
    a0.spikes = true;
    a0.time_invariant = false;
    a0.rows = m.time_steps * batch;
    float* x = static_cast<float*>(d.input.reserve(input_bytes));
    check_cuda(cudaMemcpyAsync(x, input, input_bytes, cudaMemcpyHostToDevice, stream), "cudaMemcpyAsync (input)");
    uint8_t* bits = static_cast<uint8_t*>(a0.bits.reserve(std::size_t(a0.rows * F)));
    launch("poisson_encode_kernel", stream, a0.rows * F, poisson_encode_kernel, static_cast<const float*>(x),
           batch * F, a0.rows * F, kernel_math::mix64(seed), bits);
  }

  const DeviceActivation* a = &d.activations[0];
  for (std::size_t i = 0; i < L_count; ++i) {
    const ModelLayer& L = m.layers[i];
    DeviceLayer& D = d.layers[i];
    DeviceActivation& y = d.activations[i + 1];
    const auto start = std::chrono::steady_clock::now();
    switch (L.kind) {
      case LayerKind::kLinear: run_linear(L, D, *a, y, index, stream, counters + i); break;
      case LayerKind::kConv2d: run_conv2d(L, D, *a, y, stream, counters + i); break;
      case LayerKind::kFlatten: break;  // C order: the same memory
      case LayerKind::kMaxPool2d:
      case LayerKind::kAvgPool2d: run_pool(L, *a, y, stream); break;
      case LayerKind::kNeuron: run_neuron(m, L, D, *a, y, batch, index, stream, counters + i); break;
    }
    if (L.kind != LayerKind::kFlatten) a = &y;
    // The layer's time includes its kernels: wait for them (a few microseconds per layer).
    check_cuda(cudaStreamSynchronize(stream), "model layer");
    reports[i].seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

  const int64_t n = batch * shape_numel(m.layers.back().out_shape);
  float* s = static_cast<float*>(d.scores.reserve(std::size_t(n) * sizeof(float)));
  if (a->spikes) {
    launch("scores_kernel<spikes>", stream, n, scores_kernel<uint8_t>, static_cast<const uint8_t*>(a->bits_ptr()),
           a->time_invariant, m.time_steps, n, s);
  } else {
    launch("scores_kernel<values>", stream, n, scores_kernel<float>, static_cast<const float*>(a->values_ptr()),
           a->time_invariant, m.time_steps, n, s);
  }
  std::vector<Counter> counts(L_count);
  check_cuda(cudaMemcpyAsync(scores, s, std::size_t(n) * sizeof(float), cudaMemcpyDeviceToHost, stream),
             "cudaMemcpyAsync (scores)");
  if (L_count > 0) {
    check_cuda(cudaMemcpyAsync(counts.data(), counters, L_count * sizeof(Counter), cudaMemcpyDeviceToHost, stream),
               "cudaMemcpyAsync (counters)");
  }
  check_cuda(cudaStreamSynchronize(stream), "model run");

  // The reports, as the CPU path counts them.
  const DeviceActivation* in = &d.activations[0];
  for (std::size_t i = 0; i < L_count; ++i) {
    const ModelLayer& L = m.layers[i];
    LayerReport& r = reports[i];
    const int64_t c = int64_t(counts[i]);
    switch (L.kind) {
      case LayerKind::kLinear:
        if (in->spikes) {
          r.synaptic_ops += c * L.O;
        } else {
          r.dense_macs += in->rows * L.K * L.O;
        }
        break;
      case LayerKind::kConv2d:
        if (in->spikes) {
          r.synaptic_ops += c * L.O;
        } else {
          r.dense_macs += in->rows * L.out_shape[1] * L.out_shape[2] * L.K * L.O;
        }
        break;
      case LayerKind::kNeuron:
        r.spikes += c;
        r.neuron_steps += m.time_steps * batch * in->features;
        break;
      default: break;
    }
    if (L.kind != LayerKind::kFlatten) in = &d.activations[i + 1];
  }
}

}  // namespace cuda
}  // namespace spikeops
