// The CPU back ends of spike_conv2d, spike_conv2d_weight_grad and conv2d: weight rows, dtype conversions, and
// the event-driven (or, for narrow layers fed values, direct) kernels.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "backend.hpp"
#include "cpu/conv_direct_cpu.hpp"
#include "cpu/conv_events_cpu.hpp"
#include "cpu/simd.hpp"
#include "spikeops/conv2d.hpp"

namespace spikeops {
namespace cpu {

namespace {

// Element conversions go through load_row / store_row (int counts) in pieces of this many.
constexpr int64_t kConvertChunk = int64_t(1) << 20;

// t's elements (float16 or bfloat16, in memory order) = values, rounded once.
void store_from_float32(const float* values, const TensorView& t) {
  const int64_t n = t.numel();
  for (int64_t i = 0; i < n; i += kConvertChunk) {
    store_row(t.dtype, t.data, i, static_cast<int>(std::min(kConvertChunk, n - i)), values + i);
  }
}

// The kernels' weight rows: a kPacked weight as it is, else packed into `buffer` from the weight as float32.
const float* weight_rows(const ConvGeometry& g, const TensorView& weight, ConvWeightLayout layout,
                         std::vector<float>& buffer) {
  if (layout == ConvWeightLayout::kPacked) return static_cast<const float*>(weight.data);
  std::vector<float> w_float;
  buffer.resize(static_cast<size_t>(g.C * g.kh * g.kw * conv_padded_channels(g.O / g.groups)));
  pack_conv_weight(g, as_float32(weight, w_float), buffer.data());
  return buffer.data();
}

}  // namespace

const float* as_float32(const TensorView& t, std::vector<float>& buffer) {
  if (t.dtype == DType::kFloat32) return static_cast<const float*>(t.data);
  const int64_t n = t.numel();
  buffer.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; i += kConvertChunk) {
    load_row(t.dtype, t.data, i, static_cast<int>(std::min(kConvertChunk, n - i)), buffer.data() + i);
  }
  return buffer.data();
}

int64_t spike_conv2d(const ConvGeometry& g, const SpikeConv2dArgs& a) {
  std::vector<float> wt_buffer, bias_buffer, out_buffer;
  const float* wt = weight_rows(g, a.weight, a.weight_layout, wt_buffer);
  const float* bias = a.bias.defined() ? as_float32(a.bias, bias_buffer) : nullptr;
  float* out = static_cast<float*>(a.out.data);
  if (a.out.dtype != DType::kFloat32) {  // float32 results, rounded once into out
    out_buffer.resize(static_cast<size_t>(a.out.numel()));
    out = out_buffer.data();
  }
  const int64_t count =
      conv2d_events_spikes(g, static_cast<const uint8_t*>(a.spikes.data), a.spikes.shape[0], wt, bias, out);
  if (a.out.dtype != DType::kFloat32) store_from_float32(out, a.out);
  return count;
}

void spike_conv2d_weight_grad(const ConvGeometry& g, const SpikeConv2dWeightGradArgs& a) {
  const int64_t Cg = g.C / g.groups, Og = g.O / g.groups, ldg = conv_padded_channels(Og);
  const int64_t taps = g.kh * g.kw;
  std::vector<float> grad_wt(static_cast<size_t>(g.C * taps * ldg), 0.0f);
  if (a.grad_out.numel() > 0) {
    conv2d_events_weight_grad(g, static_cast<const uint8_t*>(a.spikes.data), a.spikes.shape[0], a.grad_out.data,
                              a.grad_out.dtype, grad_wt.data());
  }
  // [C * kh * kw, ldg] -> [O, Cg, kh, kw]
  std::vector<float> line(static_cast<size_t>(Cg * taps));
  for (int64_t o = 0; o < g.O; ++o) {
    const int64_t grp = o / Og;
    for (int64_t i = 0; i < Cg * taps; ++i) {
      line[static_cast<size_t>(i)] = grad_wt[static_cast<size_t>((grp * Cg * taps + i) * ldg + o % Og)];
    }
    store_row(a.grad_weight.dtype, a.grad_weight.data, o * Cg * taps, static_cast<int>(Cg * taps), line.data());
  }
}

void conv2d(const ConvGeometry& g, const Conv2dArgs& a) {
  std::vector<float> wt_buffer;
  const float* wt = weight_rows(g, a.weight, a.weight_layout, wt_buffer);
  const float* in = static_cast<const float*>(a.input.data);
  const float* bias = a.bias.defined() ? static_cast<const float*>(a.bias.data) : nullptr;
  float* out = static_cast<float*>(a.out.data);
  // Both kernels give each output the same sums in the same order; the direct one is faster for a narrow
  // layer (an image into a few channels), where the event-driven one's vectors are mostly padding.
  if (conv2d_direct_applies(g, wt)) {
    conv2d_direct_values(g, in, a.input.shape[0], wt, bias, out);
  } else {
    conv2d_events_values(g, in, a.input.shape[0], wt, bias, out);
  }
}

}  // namespace cpu
}  // namespace spikeops
