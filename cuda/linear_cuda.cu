// The CUDA back end of linear: one thread per output, k ascending with zero inputs skipped (the CPU's order,
// so both devices agree bit for bit). Not tuned: it serves a model's first layer, small next to the rest.
#include "backend.hpp"
#include "cuda_utils.cuh"

namespace spikeops {
namespace cuda {

namespace {

__global__ void linear_kernel(const float* x, int64_t rows, int64_t K, int64_t O, const float* wt, const float* bias,
                              float* y) {
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

}  // namespace

void linear(const LinearArgs& a) {
  DeviceGuard guard(a.x.device_index);
  const int64_t rows = a.x.shape[0], K = a.x.shape[1], O = a.out.shape[1];
  linear_kernel<<<grid_blocks(rows * O), kThreadsPerBlock, 0, as_stream(a.stream)>>>(
      static_cast<const float*>(a.x.data), rows, K, O, static_cast<const float*>(a.weight_t.data),
      a.bias.defined() ? static_cast<const float*>(a.bias.data) : nullptr, static_cast<float*>(a.out.data));
  check_launch("linear_kernel");
}

}  // namespace cuda
}  // namespace spikeops
