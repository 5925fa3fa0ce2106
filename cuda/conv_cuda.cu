// The CUDA back ends of spike_conv2d, spike_conv2d_weight_grad and conv2d (values): one thread per output
// (forward) or per weight (gradient), walking its receptive field and adding only where an input is nonzero.
//
// For one output the forward visits its inputs in the CPU kernels' order (tap, then input channel), adding
// the weight (a spike) or the rounded product (a value) to an accumulator that starts at the bias, so with
// exactly representable sums (and, for values, always: the CPU rounds each product and sum the same way) the
// two devices agree bit for bit. Simple loops, not tuned: no GPU has timed them yet.
#include "backend.hpp"
#include "count.cuh"
#include "cuda_utils.cuh"

namespace spikeops {
namespace cuda {

namespace {

struct ConvKernelArgs {
  ConvGeometry g;
  int64_t rows;         // N
  const void* input;    // [N, C, H, W] uint8 spikes or float32 values
  const void* weight;   // kPacked: float32 [groups, kh, kw, C / groups, ld]; else [O, C / groups, kh, kw]
  DType weight_dtype;   // kOIHW only
  int64_t ld;           // kPacked row length
  const void* bias;     // [O] or null
  DType bias_dtype;
  void* out;            // [N, O, OH, OW]
  DType out_dtype;
  Counter* taps;        // spikes: (spike, tap) pairs of each group's first output are added here, or null
};

// One output out[r, o, oy, ox] per thread; the threads of each group's first output count their (spike, tap)
// pairs: the sum times O / groups is the CPU kernel's count of weight additions.
template <bool kSpikes, bool kPacked>
__global__ void conv2d_kernel(const ConvKernelArgs a) {
  const ConvGeometry& g = a.g;
  const int64_t Cg = g.C / g.groups, Og = g.O / g.groups, P = g.OH * g.OW, n = a.rows * g.O * P;
  Counter taps = 0;
  for (int64_t i = global_thread_index(); i < n; i += grid_thread_count()) {
    const int64_t ox = i % g.OW, oy = (i / g.OW) % g.OH, o = (i / P) % g.O, r = i / (P * g.O);
    const int64_t grp = o / Og, ol = o % Og;
    float acc = a.bias != nullptr ? load_as_float(a.bias_dtype, a.bias, o) : 0.0f;
    for (int64_t ky = 0; ky < g.kh; ++ky) {
      const int64_t iy = oy * g.sh - g.ph + ky * g.dh;
      if (iy < 0 || iy >= g.H) continue;
      for (int64_t kx = 0; kx < g.kw; ++kx) {
        const int64_t ix = ox * g.sw - g.pw + kx * g.dw;
        if (ix < 0 || ix >= g.W) continue;
        const int64_t pixel = ((r * g.C + grp * Cg) * g.H + iy) * g.W + ix;  // + cl * H * W
        for (int64_t cl = 0; cl < Cg; ++cl) {
          const int64_t at = pixel + cl * g.H * g.W;
          float v = 1.0f;
          if (kSpikes) {
            if (static_cast<const uint8_t*>(a.input)[at] == 0) continue;
            taps += ol == 0;
          } else {
            v = static_cast<const float*>(a.input)[at];
            if (v == 0.0f) continue;
          }
          const float w = kPacked ? static_cast<const float*>(a.weight)[((grp * g.kh + ky) * g.kw + kx) * Cg * a.ld +
                                                                         cl * a.ld + ol]
                                  : load_as_float(a.weight_dtype, a.weight, ((o * Cg + cl) * g.kh + ky) * g.kw + kx);
          if (kSpikes) {
            acc += w;
          } else {
            acc += v * w;
          }
        }
      }
    }
    store_from_float(a.out_dtype, a.out, i, acc);
  }
  if (kSpikes && a.taps != nullptr) warp_count(taps, a.taps);  // a.taps is the same for every thread
}

// One weight grad_weight[o, cl, ky, kx] per thread: the sum, over the samples and output pixels (ascending),
// of grad_out[r, o, oy, ox] where that tap of that pixel reads a spike of input channel grp * Cg + cl.
__global__ void conv2d_weight_grad_kernel(const ConvGeometry g, int64_t rows, const uint8_t* spikes,
                                          const void* grad_out, DType grad_dtype, void* grad_weight, DType out_dtype) {
  const int64_t Cg = g.C / g.groups, Og = g.O / g.groups, n = g.O * Cg * g.kh * g.kw;
  for (int64_t i = global_thread_index(); i < n; i += grid_thread_count()) {
    const int64_t kx = i % g.kw, ky = (i / g.kw) % g.kh, cl = (i / (g.kw * g.kh)) % Cg, o = i / (g.kw * g.kh * Cg);
    const int64_t c = (o / Og) * Cg + cl;
    float acc = 0.0f;
    for (int64_t r = 0; r < rows; ++r) {
      const uint8_t* plane = spikes + (r * g.C + c) * g.H * g.W;
      const int64_t dy0 = (r * g.O + o) * g.OH * g.OW;
      for (int64_t oy = 0; oy < g.OH; ++oy) {
        const int64_t iy = oy * g.sh - g.ph + ky * g.dh;
        if (iy < 0 || iy >= g.H) continue;
        for (int64_t ox = 0; ox < g.OW; ++ox) {
          const int64_t ix = ox * g.sw - g.pw + kx * g.dw;
          if (ix < 0 || ix >= g.W || plane[iy * g.W + ix] == 0) continue;
          acc += load_as_float(grad_dtype, grad_out, dy0 + oy * g.OW + ox);
        }
      }
    }
    store_from_float(out_dtype, grad_weight, i, acc);
  }
}

template <bool kSpikes>
void launch_conv(const ConvGeometry& g, const TensorView& input, const TensorView& weight, ConvWeightLayout layout,
                 const TensorView& bias, const TensorView& out, Counter* taps, cudaStream_t stream) {
  ConvKernelArgs k;
  k.g = g;
  k.rows = input.shape[0];
  k.input = input.data;
  k.weight = weight.data;
  k.weight_dtype = weight.dtype;
  k.ld = layout == ConvWeightLayout::kPacked ? weight.shape[4] : 0;
  k.bias = bias.defined() ? bias.data : nullptr;
  k.bias_dtype = bias.dtype;
  k.out = out.data;
  k.out_dtype = out.dtype;
  k.taps = taps;
  const int64_t n = out.numel();
  const unsigned int blocks = taps != nullptr ? counting_blocks(n) : grid_blocks(n);
  if (layout == ConvWeightLayout::kPacked) {
    conv2d_kernel<kSpikes, true><<<blocks, kThreadsPerBlock, 0, stream>>>(k);
  } else {
    conv2d_kernel<kSpikes, false><<<blocks, kThreadsPerBlock, 0, stream>>>(k);
  }
  check_launch("conv2d_kernel");
}

}  // namespace

int64_t spike_conv2d(const ConvGeometry& g, const SpikeConv2dArgs& a) {
  DeviceGuard guard(a.spikes.device_index);
  const cudaStream_t stream = as_stream(a.stream);
  if (a.synaptic_ops == nullptr) {
    launch_conv<true>(g, a.spikes, a.weight, a.weight_layout, a.bias, a.out, nullptr, stream);
    return 0;
  }
  DeviceCounter taps(stream);
  launch_conv<true>(g, a.spikes, a.weight, a.weight_layout, a.bias, a.out, taps.get(), stream);
  return taps.value() * (g.O / g.groups);
}

void spike_conv2d_weight_grad(const ConvGeometry& g, const SpikeConv2dWeightGradArgs& a) {
  DeviceGuard guard(a.spikes.device_index);
  const int64_t n = a.grad_weight.numel();
  conv2d_weight_grad_kernel<<<grid_blocks(n), kThreadsPerBlock, 0, as_stream(a.stream)>>>(
      g, a.spikes.shape[0], static_cast<const uint8_t*>(a.spikes.data), a.grad_out.data, a.grad_out.dtype,
      a.grad_weight.data, a.grad_weight.dtype);
  check_launch("conv2d_weight_grad_kernel");
}

void conv2d(const ConvGeometry& g, const Conv2dArgs& a) {
  DeviceGuard guard(a.input.device_index);
  launch_conv<false>(g, a.input, a.weight, a.weight_layout, a.bias, a.out, nullptr, as_stream(a.stream));
}

}  // namespace cuda
}  // namespace spikeops
