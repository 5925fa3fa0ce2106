// CPU kernels of the standalone spike function: Heaviside forward and surrogate backward, elementwise.
#include <algorithm>
#include <cstdint>

#include "backend.hpp"
#include "cpu/simd.hpp"
#include "cpu/surrogate_row.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace spikeops {
namespace cpu {
namespace {

constexpr int64_t kMinParallelElements = 1 << 16;

SPIKEOPS_CPU_CLONES void heaviside_chunk(const TensorView& x, const TensorView& spike, int64_t i0, int n) {
  alignas(64) float buf[kBlock];
  load_row(x.dtype, x.data, i0, n, buf);
  for (int i = 0; i < n; ++i) buf[i] = buf[i] >= 0.0f ? 1.0f : 0.0f;
  store_row(spike.dtype, spike.data, i0, n, buf);
}

SPIKEOPS_CPU_CLONES void surrogate_chunk(const Surrogate& s, const TensorView& grad_spike, const TensorView& x,
                                         const TensorView& grad_x, int64_t i0, int n) {
  alignas(64) float xs[kBlock], g[kBlock], sg[kBlock];
  load_row(x.dtype, x.data, i0, n, xs);
  load_row(grad_spike.dtype, grad_spike.data, i0, n, g);
  surrogate_row(s, xs, 0.0f, n, sg);
  for (int i = 0; i < n; ++i) g[i] *= sg[i];
  store_row(grad_x.dtype, grad_x.data, i0, n, g);
}

template <typename Fn>
void for_each_chunk(int64_t numel, Fn fn) {
  const int64_t chunks = (numel + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (numel >= kMinParallelElements)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t i0 = c * kBlock;
    fn(i0, static_cast<int>(std::min<int64_t>(kBlock, numel - i0)));
  }
}

}  // namespace

void heaviside_forward(const TensorView& x, const TensorView& spike) {
  for_each_chunk(x.numel(), [&](int64_t i0, int n) { heaviside_chunk(x, spike, i0, n); });
}

void surrogate_backward(const Surrogate& s, const TensorView& grad_spike, const TensorView& x,
                        const TensorView& grad_x) {
  for_each_chunk(x.numel(), [&](int64_t i0, int n) { surrogate_chunk(s, grad_spike, x, grad_x, i0, n); });
}

const char* simd_level() {
#if SPIKEOPS_CPU_HAS_CLONES
  __builtin_cpu_init();
  if (__builtin_cpu_supports("x86-64-v4")) return "avx512";
  if (__builtin_cpu_supports("x86-64-v3")) return "avx2";
#endif
  return "baseline";
}

void set_max_threads(int n) {
#if defined(_OPENMP)
  omp_set_num_threads(n);
#else
  static_cast<void>(n);
#endif
}

int max_threads() {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

int thread_num() {
#if defined(_OPENMP)
  return omp_get_thread_num();
#else
  return 0;
#endif
}

}  // namespace cpu
}  // namespace spikeops
