// Build-wide macros shared by host and device code.
#pragma once

#define SPIKEOPS_VERSION_MAJOR 0
#define SPIKEOPS_VERSION_MINOR 1
#define SPIKEOPS_VERSION_PATCH 0
#define SPIKEOPS_VERSION_STRING "0.1.0"

// SPIKEOPS_HD marks the small math functions that the CPU kernels and the CUDA kernels share, so the CPU
// tests exercise exactly the formulas the GPU runs. On the host they are forced inline: the CPU kernels are
// compiled once per SIMD level (target clones), and an out-of-line copy built for AVX-512 must never be
// picked by the linker for the baseline path.
#if defined(__CUDACC__)
#define SPIKEOPS_HD __host__ __device__ __forceinline__
#elif defined(__GNUC__) || defined(__clang__)
#define SPIKEOPS_HD inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#define SPIKEOPS_HD __forceinline
#else
#define SPIKEOPS_HD inline
#endif
