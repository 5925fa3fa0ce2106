// The CUDA back end of pool2d: one thread per output, its window's reduction in the CPU back end's order
// (rows, then columns) with the same per-element formulas, so both devices give the same results.
#include <cmath>

#include "backend.hpp"
#include "cuda_utils.cuh"
#include "kernel_math.hpp"

namespace spikeops {
namespace cuda {

namespace {

// The input window of pooling output i (over planes * OH * OW): its plane's offset and [y0, y1) x [x0, x1).
struct Window {
  int64_t plane_offset, y0, y1, x0, x1;
};
__device__ __forceinline__ Window window_of(const PoolGeometry& g, int64_t i) {
  const int64_t ox = i % g.OW, oy = (i / g.OW) % g.OH, plane = i / (g.OH * g.OW);
  Window w;
  w.plane_offset = plane * g.H * g.W;
  kernel_math::pool_window(oy, g.H, g.kh, g.sh, g.ph, w.y0, w.y1);
  kernel_math::pool_window(ox, g.W, g.kw, g.sw, g.pw, w.x0, w.x1);
  return w;
}

// Max pooling of spikes: the OR of the window.
__global__ void max_pool_spikes_kernel(const PoolGeometry g, const uint8_t* in, uint8_t* out) {
  const int64_t n = g.planes * g.OH * g.OW;
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

// Max or average pooling of real values, or the average of spikes (any nonzero byte as 1).
template <bool kMax, typename In>
__global__ void pool_values_kernel(const PoolGeometry g, const In* in, bool count_include_pad, float* out) {
  const int64_t n = g.planes * g.OH * g.OW;
  for (int64_t i = global_thread_index(); i < n; i += grid_thread_count()) {
    const Window w = window_of(g, i);
    const In* p = in + w.plane_offset;
    if (kMax) {
      float m = -INFINITY;
      bool nan = false;
      for (int64_t iy = w.y0; iy < w.y1; ++iy) {
        for (int64_t ix = w.x0; ix < w.x1; ++ix) {
          const float v = static_cast<float>(p[iy * g.W + ix]);
          m = v > m ? v : m;
          nan |= v != v;
        }
      }
      out[i] = nan ? NAN : m;  // torch propagates NaN
    } else {
      float sum = 0.0f;
      for (int64_t iy = w.y0; iy < w.y1; ++iy) {
        for (int64_t ix = w.x0; ix < w.x1; ++ix) {
          const In v = p[iy * g.W + ix];
          sum += sizeof(In) == 1 ? (v != In(0) ? 1.0f : 0.0f) : static_cast<float>(v);
        }
      }
      out[i] = sum / (count_include_pad ? float(g.kh * g.kw) : float((w.y1 - w.y0) * (w.x1 - w.x0)));
    }
  }
}

}  // namespace

void pool2d(const PoolGeometry& g, const Pool2dArgs& a) {
  DeviceGuard guard(a.input.device_index);
  const cudaStream_t stream = as_stream(a.stream);
  const unsigned int blocks = grid_blocks(a.out.numel());
  float* out = static_cast<float*>(a.out.data);
  if (a.input.dtype == DType::kUInt8) {
    const uint8_t* in = static_cast<const uint8_t*>(a.input.data);
    if (a.kind == PoolKind::kMax) {
      max_pool_spikes_kernel<<<blocks, kThreadsPerBlock, 0, stream>>>(g, in, static_cast<uint8_t*>(a.out.data));
    } else {
      pool_values_kernel<false, uint8_t><<<blocks, kThreadsPerBlock, 0, stream>>>(g, in, a.count_include_pad, out);
    }
  } else {
    const float* in = static_cast<const float*>(a.input.data);
    if (a.kind == PoolKind::kMax) {
      pool_values_kernel<true, float><<<blocks, kThreadsPerBlock, 0, stream>>>(g, in, a.count_include_pad, out);
    } else {
      pool_values_kernel<false, float><<<blocks, kThreadsPerBlock, 0, stream>>>(g, in, a.count_include_pad, out);
    }
  }
  check_launch("pool2d");
}

}  // namespace cuda
}  // namespace spikeops
