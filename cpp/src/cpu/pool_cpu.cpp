// The CPU back end of pool2d: one output per window, planes in parallel; 2x2 max pooling that tiles the input
// (the common case after a convolution) without per-output window bounds.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "backend.hpp"
#include "kernel_math.hpp"

namespace spikeops {
namespace cpu {

namespace {

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

// Pools every [H, W] plane of `in` into [OH, OW]: `reduce(plane, W, y0, y1, x0, x1)` gives one output.
template <typename In, typename Out, typename Reduce>
void pool_planes(const PoolGeometry& g, const In* in, Out* out, Reduce reduce) {
  const int64_t H = g.H, W = g.W, OH = g.OH, OW = g.OW;
  const Windows wy = pool_windows(H, OH, g.kh, g.sh, g.ph);
  const Windows wx = pool_windows(W, OW, g.kw, g.sw, g.pw);
#pragma omp parallel for schedule(static) if (g.planes * OH * OW >= 16384)
  for (int64_t pl = 0; pl < g.planes; ++pl) {
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

template <typename In>
float as_value(In v) {
  if (sizeof(In) == 1) return v != In(0) ? 1.0f : 0.0f;  // a spike: any nonzero byte is one
  return static_cast<float>(v);
}

// Average pooling: padding is at most half the kernel, so (floor mode) a window lies within the padded input
// and counting the padding means dividing by the whole kernel; torch sums in this order, then divides.
template <typename In>
void avg_pool(const PoolGeometry& g, const In* in, bool include_pad, float* out) {
  const float whole = float(g.kh * g.kw);
  pool_planes(g, in, out, [whole, include_pad](const In* p, int64_t W, int64_t y0, int64_t y1, int64_t x0, int64_t x1) {
    float sum = 0.0f;
    for (int64_t iy = y0; iy < y1; ++iy) {
      for (int64_t ix = x0; ix < x1; ++ix) sum += as_value(p[iy * W + ix]);
    }
    return sum / (include_pad ? whole : float((y1 - y0) * (x1 - x0)));
  });
}

}  // namespace

void pool2d(const PoolGeometry& g, const Pool2dArgs& a) {
  if (a.input.dtype == DType::kUInt8) {
    const uint8_t* in = static_cast<const uint8_t*>(a.input.data);
    if (a.kind == PoolKind::kMax) {  // the max of 0/1 spikes is their OR
      pool_planes(g, in, static_cast<uint8_t*>(a.out.data),
                  [](const uint8_t* p, int64_t W, int64_t y0, int64_t y1, int64_t x0, int64_t x1) {
                    uint8_t any = 0;
                    for (int64_t iy = y0; iy < y1; ++iy) {
                      for (int64_t ix = x0; ix < x1; ++ix) any |= p[iy * W + ix];
                    }
                    return uint8_t(any != 0);
                  });
    } else {
      avg_pool(g, in, a.count_include_pad, static_cast<float*>(a.out.data));
    }
    return;
  }
  const float* in = static_cast<const float*>(a.input.data);
  float* out = static_cast<float*>(a.out.data);
  if (a.kind == PoolKind::kAvg) {
    avg_pool(g, in, a.count_include_pad, out);
  } else if (g.kh == 2 && g.kw == 2 && g.sh == 2 && g.sw == 2 && g.ph == 0 && g.pw == 0) {
    constexpr int64_t kPlanes = 64;  // per iteration
#pragma omp parallel for schedule(static) if (g.planes * g.H * g.W >= 65536)
    for (int64_t p0 = 0; p0 < g.planes; p0 += kPlanes) {
      max_pool_2x2(in, p0, std::min(g.planes, p0 + kPlanes), g.H, g.W, out);
    }
  } else {
    pool_planes(g, in, out, [](const float* p, int64_t W, int64_t y0, int64_t y1, int64_t x0, int64_t x1) {
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
  }
}

}  // namespace cpu
}  // namespace spikeops
