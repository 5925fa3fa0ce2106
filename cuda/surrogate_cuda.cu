// CUDA kernels of the standalone spike function: Heaviside forward and surrogate backward, elementwise over
// contiguous tensors. Each thread handles V adjacent elements with vector accesses; the last group, when
// numel is not a multiple of V, goes element by element.
#include <cstdint>

#include "backend.hpp"
#include "cuda_utils.cuh"
#include "spikeops/detail/surrogate_math.hpp"
#include "spikeops/surrogate.hpp"

namespace spikeops {
namespace cuda {
namespace {

struct HeavisideKernelArgs {
  const void* x;
  DType x_dtype;
  void* spike;
  DType spike_dtype;
  int64_t numel;
};

template <int V>
__device__ __forceinline__ void heaviside_group(const HeavisideKernelArgs& a, int64_t i) {
  float x[V], s[V];
  load_vec<V>(a.x_dtype, a.x, i, x);
#pragma unroll
  for (int j = 0; j < V; ++j) s[j] = x[j] >= 0.0f ? 1.0f : 0.0f;
  store_vec<V>(a.spike_dtype, a.spike, i, s);
}

template <int V>
__global__ void __launch_bounds__(kThreadsPerBlock) heaviside_forward_kernel(const HeavisideKernelArgs a) {
  for (int64_t i = global_thread_index() * V; i < a.numel; i += grid_thread_count() * V) {
    if (i + V <= a.numel) {
      heaviside_group<V>(a, i);
    } else {
      for (int64_t e = i; e < a.numel; ++e) heaviside_group<1>(a, e);
    }
  }
}

struct SurrogateKernelArgs {
  SurrogateKind kind;
  float alpha, beta;
  const void* grad_spike;
  DType grad_spike_dtype;
  const void* x;
  DType x_dtype;
  void* grad_x;
  DType grad_x_dtype;
  int64_t numel;
};

template <int V>
__device__ __forceinline__ void surrogate_group(const SurrogateKernelArgs& a, int64_t i) {
  float x[V], g[V], sg[V];
  load_vec<V>(a.x_dtype, a.x, i, x);
  load_vec<V>(a.grad_spike_dtype, a.grad_spike, i, g);
  surrogate_grad_vec<V>(a.kind, a.alpha, a.beta, x, 0.0f, sg);
  // The product is rounded to float32 first and then to grad_x's dtype, as on the CPU.
#pragma unroll
  for (int j = 0; j < V; ++j) g[j] *= sg[j];
  store_vec<V>(a.grad_x_dtype, a.grad_x, i, g);
}

template <int V>
__global__ void __launch_bounds__(kThreadsPerBlock) surrogate_backward_kernel(const SurrogateKernelArgs a) {
  for (int64_t i = global_thread_index() * V; i < a.numel; i += grid_thread_count() * V) {
    if (i + V <= a.numel) {
      surrogate_group<V>(a, i);
    } else {
      for (int64_t e = i; e < a.numel; ++e) surrogate_group<1>(a, e);
    }
  }
}

// Elements per thread: the preferred width when every base pointer is aligned for it, else 4, else 1. Groups
// start at multiples of V elements, so aligned bases keep every group aligned whatever numel is.
int elementwise_vector_width(std::initializer_list<const TensorView*> tensors) {
  const int preferred = preferred_vector_width(tensors);
  for (const int v : {preferred, 4}) {
    if (aligned_for_vectors(v, tensors)) return v;
  }
  return 1;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

void heaviside_forward(const TensorView& x, const TensorView& spike, void* stream) {
  const HeavisideKernelArgs k{x.data, x.dtype, spike.data, spike.dtype, x.numel()};
  const int v = elementwise_vector_width({&x, &spike});
  DeviceGuard guard(x.device_index);
  const unsigned int blocks = grid_blocks(ceil_div(k.numel, v));
  switch (v) {
    case 8:
      heaviside_forward_kernel<8><<<blocks, kThreadsPerBlock, 0, as_stream(stream)>>>(k);
      break;
    case 4:
      heaviside_forward_kernel<4><<<blocks, kThreadsPerBlock, 0, as_stream(stream)>>>(k);
      break;
    default:
      heaviside_forward_kernel<1><<<blocks, kThreadsPerBlock, 0, as_stream(stream)>>>(k);
      break;
  }
  check_launch("heaviside_forward_kernel");
}

void surrogate_backward(const Surrogate& s, const TensorView& grad_spike, const TensorView& x,
                        const TensorView& grad_x, void* stream) {
  const SurrogateKernelArgs k{s.kind, s.alpha, s.beta, grad_spike.data, grad_spike.dtype,
                              x.data, x.dtype, grad_x.data, grad_x.dtype, x.numel()};
  const int v = elementwise_vector_width({&grad_spike, &x, &grad_x});
  DeviceGuard guard(x.device_index);
  const unsigned int blocks = grid_blocks(ceil_div(k.numel, v));
  switch (v) {
    case 8:
      surrogate_backward_kernel<8><<<blocks, kThreadsPerBlock, 0, as_stream(stream)>>>(k);
      break;
    case 4:
      surrogate_backward_kernel<4><<<blocks, kThreadsPerBlock, 0, as_stream(stream)>>>(k);
      break;
    default:
      surrogate_backward_kernel<1><<<blocks, kThreadsPerBlock, 0, as_stream(stream)>>>(k);
      break;
  }
  check_launch("surrogate_backward_kernel");
}

}  // namespace cuda
}  // namespace spikeops
