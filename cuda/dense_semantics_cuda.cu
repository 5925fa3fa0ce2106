// CUDA side of dense_semantics.hpp. Without reading anything back to the host (so it also runs under CUDA
// graph capture): one kernel flags the output columns (channels) whose operand holds inf or NaN, one thread
// per column walking it; a second kernel, one thread per output element, returns at once unless its column is
// flagged, and otherwise recomputes the element as the dense product does (0 x inf = 0 x NaN = NaN).
#include "backend.hpp"
#include "cuda_utils.cuh"
#include "dense_semantics.hpp"
#include "dense_semantics_math.hpp"

namespace spikeops {
namespace cuda {

using namespace dense_math;

namespace {

// A zeroed byte per column in stream-ordered device memory, freed with the stream.
class Flags {
 public:
  Flags(int64_t n, cudaStream_t stream) : stream_(stream) {
    check_cuda(cudaMallocAsync(reinterpret_cast<void**>(&flags_), static_cast<size_t>(n), stream_),
               "cudaMallocAsync (non-finite flags)");
  }
  ~Flags() { static_cast<void>(cudaFreeAsync(flags_, stream_)); }
  Flags(const Flags&) = delete;
  Flags& operator=(const Flags&) = delete;
  uint8_t* get() const { return flags_; }

 private:
  cudaStream_t stream_;
  uint8_t* flags_ = nullptr;
};

__global__ void flag_rows_kernel(const float* rows, RowsLayout layout, int64_t K, int64_t N, uint8_t* flags) {
  for (int64_t n = global_thread_index(); n < N; n += grid_thread_count()) {
    bool bad = false;
    for (int64_t k = 0; k < K && !bad; ++k) bad = !finite(row_value(rows, layout, K, N, k, n));
    flags[n] = bad;
  }
}

__global__ void dense_columns_kernel(const uint8_t* spikes, int64_t M, int64_t K, const float* rows,
                                     RowsLayout layout, const float* bias, DType out_dtype, void* out,
                                     bool out_transposed, int64_t N, const uint8_t* flags) {
  for (int64_t i = global_thread_index(); i < M * N; i += grid_thread_count()) {
    const int64_t m = i / N, n = i % N;
    if (!flags[n]) continue;
    float sum = dense_column_value(spikes, K, 1, K, rows, layout, N, m, n);
    if (bias != nullptr) sum += bias[n];
    store_from_float(out_dtype, out, out_transposed ? n * M + m : m * N + n, sum);
  }
}

// flags[o] = whether any of the `count` values of channel o, at base(o) + j * step for j < count, is non-finite,
// with base(o) = (o / per_outer) * outer_stride + (o % per_outer) * inner_stride.
__global__ void flag_channels_kernel(DType dtype, const void* data, int64_t O, int64_t per_outer, int64_t outer_stride,
                                     int64_t inner_stride, int64_t count, int64_t step, int64_t repeats,
                                     int64_t repeat_stride, uint8_t* flags) {
  for (int64_t o = global_thread_index(); o < O; o += grid_thread_count()) {
    const int64_t base = (o / per_outer) * outer_stride + (o % per_outer) * inner_stride;
    bool bad = false;
    for (int64_t r = 0; r < repeats && !bad; ++r) {
      for (int64_t j = 0; j < count && !bad; ++j) bad = !finite(load_as_float(dtype, data, base + r * repeat_stride + j * step));
    }
    flags[o] = bad;
  }
}

// weight.ldp: a kPacked weight's row length (conv2d_packed_channels, a host function, so computed by the caller).
__global__ void dense_conv_kernel(ConvGeometry g, int64_t N, const uint8_t* spikes, ConvWeight weight, DType b_dtype,
                                  const void* bias, DType out_dtype, void* out, const uint8_t* flags) {
  const int64_t total = N * g.O * g.OH * g.OW;
  for (int64_t e = global_thread_index(); e < total; e += grid_thread_count()) {
    const int64_t ow = e % g.OW, oh = e / g.OW % g.OH, o = e / (g.OW * g.OH) % g.O, n = e / (g.OW * g.OH * g.O);
    if (!flags[o]) continue;
    float sum = dense_conv_value(g, spikes, weight, n, o, oh, ow);
    if (bias != nullptr) sum += load_value(b_dtype, bias, o);
    store_from_float(out_dtype, out, at4(g.channels_last, g.O, g.OH, g.OW, n, o, oh, ow), sum);
  }
}

__global__ void dense_conv_weight_grad_kernel(ConvGeometry g, int64_t N, const uint8_t* spikes, DType dy_dtype,
                                              const void* dy, DType gw_dtype, void* grad_weight, const uint8_t* flags) {
  const int64_t Cg = g.C / g.groups, taps = g.kh * g.kw;
  for (int64_t e = global_thread_index(); e < g.O * Cg * taps; e += grid_thread_count()) {
    const int64_t o = e / (Cg * taps), ci = e / taps % Cg, i = e / g.kw % g.kh, j = e % g.kw;
    if (!flags[o]) continue;
    store_from_float(gw_dtype, grad_weight, e, dense_conv_weight_grad_value(g, spikes, N, dy_dtype, dy, o, ci, i, j));
  }
}

}  // namespace

void dense_nonfinite_columns(const SpikeAccumulateArgs& a) {
  DeviceGuard guard(a.spikes.device_index);
  const cudaStream_t s = as_stream(a.stream);
  const int64_t M = a.spikes.shape[0], K = a.spikes.shape[1], N = a.out.shape[a.out_transposed ? 0 : 1];
  Flags flags(N, s);
  const float* rows = static_cast<const float*>(a.rows.data);
  flag_rows_kernel<<<grid_blocks(N), kThreadsPerBlock, 0, s>>>(rows, a.rows_layout, K, N, flags.get());
  check_launch("flag_rows_kernel");
  dense_columns_kernel<<<grid_blocks(M * N), kThreadsPerBlock, 0, s>>>(
      static_cast<const uint8_t*>(a.spikes.data), M, K, rows, a.rows_layout,
      a.bias.defined() ? static_cast<const float*>(a.bias.data) : nullptr, a.out.dtype, a.out.data, a.out_transposed,
      N, flags.get());
  check_launch("dense_columns_kernel");
}

void dense_nonfinite_channels(const ConvGeometry& g, const SpikeConv2dArgs& a) {
  DeviceGuard guard(a.spikes.device_index);
  const cudaStream_t s = as_stream(a.stream);
  const int64_t Cg = g.C / g.groups, Og = g.O / g.groups, taps = g.kh * g.kw;
  const bool packed = a.weight_layout == ConvWeightLayout::kPacked;
  Flags flags(g.O, s);
  if (packed) {  // channel o: the column o % Og of its group's [kh * kw * Cg, ldp] rows
    const int64_t ldp = conv2d_packed_channels(Og);
    flag_channels_kernel<<<grid_blocks(g.O), kThreadsPerBlock, 0, s>>>(
        DType::kFloat32, a.weight.data, g.O, Og, taps * Cg * ldp, 1, taps * Cg, ldp, 1, 0, flags.get());
  } else {  // channel o: Cg * kh * kw contiguous values
    flag_channels_kernel<<<grid_blocks(g.O), kThreadsPerBlock, 0, s>>>(
        a.weight.dtype, a.weight.data, g.O, 1, Cg * taps, 0, Cg * taps, 1, 1, 0, flags.get());
  }
  check_launch("flag_channels_kernel");
  const int64_t N = a.spikes.shape[0];
  dense_conv_kernel<<<grid_blocks(N * g.O * g.OH * g.OW), kThreadsPerBlock, 0, s>>>(
      g, N, static_cast<const uint8_t*>(a.spikes.data),
      ConvWeight{a.weight.dtype, a.weight.data, packed, conv2d_packed_channels(Og)}, a.bias.dtype,
      a.bias.defined() ? a.bias.data : nullptr, a.out.dtype, a.out.data, flags.get());
  check_launch("dense_conv_kernel");
}

void dense_nonfinite_channels(const ConvGeometry& g, const SpikeConv2dWeightGradArgs& a) {
  DeviceGuard guard(a.spikes.device_index);
  const cudaStream_t s = as_stream(a.stream);
  const int64_t N = a.spikes.shape[0], Cg = g.C / g.groups, P = g.OH * g.OW;
  Flags flags(g.O, s);
  if (g.channels_last) {  // channel o of image n: P values O apart, from n * P * O + o
    flag_channels_kernel<<<grid_blocks(g.O), kThreadsPerBlock, 0, s>>>(
        a.grad_out.dtype, a.grad_out.data, g.O, g.O, 0, 1, P, g.O, N, P * g.O, flags.get());
  } else {  // channel o of image n: P contiguous values from (n * O + o) * P
    flag_channels_kernel<<<grid_blocks(g.O), kThreadsPerBlock, 0, s>>>(
        a.grad_out.dtype, a.grad_out.data, g.O, g.O, 0, P, P, 1, N, g.O * P, flags.get());
  }
  check_launch("flag_channels_kernel");
  dense_conv_weight_grad_kernel<<<grid_blocks(g.O * Cg * g.kh * g.kw), kThreadsPerBlock, 0, s>>>(
      g, N, static_cast<const uint8_t*>(a.spikes.data), a.grad_out.dtype, a.grad_out.data, a.grad_weight.dtype,
      a.grad_weight.data, flags.get());
  check_launch("dense_conv_weight_grad_kernel");
}

}  // namespace cuda
}  // namespace spikeops
