// Device-only helpers shared by the CUDA kernels: error checks, the device guard, launch sizes, and loads and
// stores that widen any supported dtype to float32 (and narrow it back) with the same converters as the CPU.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <initializer_list>
#include <string>

#include "spikeops/error.hpp"
#include "spikeops/detail/numeric.hpp"
#include "spikeops/detail/surrogate_math.hpp"
#include "spikeops/surrogate.hpp"
#include "spikeops/tensor.hpp"

namespace spikeops {
namespace cuda {

// ---- Errors, devices and streams (host) ----

inline void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw DeviceError(std::string(what) + ": " + cudaGetErrorString(status));
}

// A launch reports a bad configuration only through cudaGetLastError.
inline void check_launch(const char* kernel_name) { check_cuda(cudaGetLastError(), kernel_name); }

// Makes the tensors' device current for the scope, because the caller's stream belongs to that device and the
// calling thread may have another one current; the previous device is restored on exit.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device_index) {
    check_cuda(cudaGetDevice(&previous_), "cudaGetDevice");
    if (previous_ != device_index) {
      check_cuda(cudaSetDevice(device_index), "cudaSetDevice");
      switched_ = true;
    }
  }
  ~DeviceGuard() {
    // A destructor must not throw; failing to switch back leaves nothing of ours in a bad state.
    if (switched_) static_cast<void>(cudaSetDevice(previous_));
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
  bool switched_ = false;
};

// Public headers carry the stream as void* so that CPU-only users need no CUDA headers.
inline cudaStream_t as_stream(void* stream) { return static_cast<cudaStream_t>(stream); }

// ---- Launch sizes (64-bit indexing) ----

constexpr int kThreadsPerBlock = 256;
constexpr int64_t kMaxBlocks = 0x7fffffff;  // gridDim.x limit; kernels grid-stride past it

// Blocks for `work_items` threads' worth of work, one work item per thread.
inline unsigned int grid_blocks(int64_t work_items) {
  const int64_t blocks = (work_items + kThreadsPerBlock - 1) / kThreadsPerBlock;
  return static_cast<unsigned int>(blocks < 1 ? 1 : (blocks > kMaxBlocks ? kMaxBlocks : blocks));
}

__device__ __forceinline__ int64_t global_thread_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}

__device__ __forceinline__ int64_t grid_thread_count() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

// ---- Vector width (host) ----

// How many bytes one access of V adjacent elements moves at once: V * element size, at most 16 (one LDG.128).
inline int64_t vector_access_bytes(int v, DType dtype) {
  const int64_t bytes = v * static_cast<int64_t>(dtype_size(dtype));
  return bytes < 16 ? bytes : 16;
}

// Whether every present tensor's base address is aligned for V-element accesses. Offsets that are multiples
// of V elements then stay aligned, because V * element size is a multiple of the access width.
inline bool aligned_for_vectors(int v, std::initializer_list<const TensorView*> tensors) {
  for (const TensorView* t : tensors) {
    if (!t->defined()) continue;
    if (reinterpret_cast<uintptr_t>(t->data) % static_cast<uintptr_t>(vector_access_bytes(v, t->dtype)) != 0) {
      return false;
    }
  }
  return true;
}

// 8 elements per thread when some tensor holds elements narrower than 4 bytes (8 of its 16-bit elements fill
// a 16-byte access), else 4 (a float4).
inline int preferred_vector_width(std::initializer_list<const TensorView*> tensors) {
  for (const TensorView* t : tensors) {
    if (t->defined() && dtype_size(t->dtype) < 4) return 8;
  }
  return 4;
}

// ---- One element as float32 (device) ----

__device__ __forceinline__ float load_as_float(DType dtype, const void* base, int64_t i) {
  switch (dtype) {
    case DType::kFloat16:
      return detail::half_to_float(static_cast<const uint16_t*>(base)[i]);
    case DType::kBFloat16:
      return detail::bfloat16_to_float(static_cast<const uint16_t*>(base)[i]);
    case DType::kUInt8:
      return static_cast<float>(static_cast<const uint8_t*>(base)[i]);
    default:  // float32; validation excludes the rest
      return static_cast<const float*>(base)[i];
  }
}

// uint8 only ever receives spikes, which are exactly 0 or 1.
__device__ __forceinline__ void store_from_float(DType dtype, void* base, int64_t i, float value) {
  switch (dtype) {
    case DType::kFloat16:
      static_cast<uint16_t*>(base)[i] = detail::float_to_half(value);
      return;
    case DType::kBFloat16:
      static_cast<uint16_t*>(base)[i] = detail::float_to_bfloat16(value);
      return;
    case DType::kUInt8:
      static_cast<uint8_t*>(base)[i] = static_cast<uint8_t>(value);
      return;
    default:
      static_cast<float*>(base)[i] = value;
      return;
  }
}

// ---- V adjacent elements as float32 (device) ----
//
// The elements travel as 32-bit words in as few memory instructions as the width allows (16 bytes at most
// each); element j of a word sits in its low bits first (the GPU is little-endian). The address must be
// aligned to vector_access_bytes(V, dtype), which aligned_for_vectors() checks for the base pointers.

template <int kWords>
__device__ __forceinline__ void load_words(const void* p, uint32_t (&w)[kWords]) {
  static_assert(kWords == 1 || kWords == 2 || kWords % 4 == 0, "1, 2 or a multiple of 4 words");
  if constexpr (kWords == 1) {
    w[0] = *static_cast<const uint32_t*>(p);
  } else if constexpr (kWords == 2) {
    const uint2 q = *static_cast<const uint2*>(p);
    w[0] = q.x;
    w[1] = q.y;
  } else {
#pragma unroll
    for (int c = 0; c < kWords / 4; ++c) {
      const uint4 q = static_cast<const uint4*>(p)[c];
      w[4 * c + 0] = q.x;
      w[4 * c + 1] = q.y;
      w[4 * c + 2] = q.z;
      w[4 * c + 3] = q.w;
    }
  }
}

template <int kWords>
__device__ __forceinline__ void store_words(void* p, const uint32_t (&w)[kWords]) {
  static_assert(kWords == 1 || kWords == 2 || kWords % 4 == 0, "1, 2 or a multiple of 4 words");
  if constexpr (kWords == 1) {
    *static_cast<uint32_t*>(p) = w[0];
  } else if constexpr (kWords == 2) {
    *static_cast<uint2*>(p) = make_uint2(w[0], w[1]);
  } else {
#pragma unroll
    for (int c = 0; c < kWords / 4; ++c) {
      static_cast<uint4*>(p)[c] = make_uint4(w[4 * c + 0], w[4 * c + 1], w[4 * c + 2], w[4 * c + 3]);
    }
  }
}

// out[j] = float(base[i + j]) for j < V; V is 1, 4 or 8.
template <int V>
__device__ __forceinline__ void load_vec(DType dtype, const void* base, int64_t i, float (&out)[V]) {
  static_assert(V == 1 || V == 4 || V == 8, "V is 1, 4 or 8");
  if constexpr (V == 1) {
    out[0] = load_as_float(dtype, base, i);
  } else {
    switch (dtype) {
      case DType::kFloat16: {
        uint32_t w[V / 2];
        load_words(static_cast<const uint16_t*>(base) + i, w);
#pragma unroll
        for (int j = 0; j < V; ++j) {
          out[j] = detail::half_to_float(static_cast<uint16_t>(w[j / 2] >> (16 * (j % 2))));
        }
        return;
      }
      case DType::kBFloat16: {
        uint32_t w[V / 2];
        load_words(static_cast<const uint16_t*>(base) + i, w);
#pragma unroll
        for (int j = 0; j < V; ++j) {
          out[j] = detail::bfloat16_to_float(static_cast<uint16_t>(w[j / 2] >> (16 * (j % 2))));
        }
        return;
      }
      case DType::kUInt8: {
        uint32_t w[V / 4];
        load_words(static_cast<const uint8_t*>(base) + i, w);
#pragma unroll
        for (int j = 0; j < V; ++j) out[j] = static_cast<float>((w[j / 4] >> (8 * (j % 4))) & 0xffu);
        return;
      }
      default: {
        uint32_t w[V];
        load_words(static_cast<const float*>(base) + i, w);
#pragma unroll
        for (int j = 0; j < V; ++j) out[j] = detail::bits_float(w[j]);
        return;
      }
    }
  }
}

// base[i + j] = in[j] converted to dtype, for j < V; V is 1, 4 or 8.
template <int V>
__device__ __forceinline__ void store_vec(DType dtype, void* base, int64_t i, const float (&in)[V]) {
  static_assert(V == 1 || V == 4 || V == 8, "V is 1, 4 or 8");
  if constexpr (V == 1) {
    store_from_float(dtype, base, i, in[0]);
  } else {
    switch (dtype) {
      case DType::kFloat16: {
        uint32_t w[V / 2];
#pragma unroll
        for (int j = 0; j < V / 2; ++j) {
          w[j] = static_cast<uint32_t>(detail::float_to_half(in[2 * j])) |
                 (static_cast<uint32_t>(detail::float_to_half(in[2 * j + 1])) << 16);
        }
        store_words(static_cast<uint16_t*>(base) + i, w);
        return;
      }
      case DType::kBFloat16: {
        uint32_t w[V / 2];
#pragma unroll
        for (int j = 0; j < V / 2; ++j) {
          w[j] = static_cast<uint32_t>(detail::float_to_bfloat16(in[2 * j])) |
                 (static_cast<uint32_t>(detail::float_to_bfloat16(in[2 * j + 1])) << 16);
        }
        store_words(static_cast<uint16_t*>(base) + i, w);
        return;
      }
      case DType::kUInt8: {
        uint32_t w[V / 4];
#pragma unroll
        for (int j = 0; j < V / 4; ++j) {
          w[j] = 0;
#pragma unroll
          for (int b = 0; b < 4; ++b) {
            w[j] |= static_cast<uint32_t>(static_cast<uint8_t>(in[4 * j + b])) << (8 * b);
          }
        }
        store_words(static_cast<uint8_t*>(base) + i, w);
        return;
      }
      default: {
        uint32_t w[V];
#pragma unroll
        for (int j = 0; j < V; ++j) w[j] = detail::float_bits(in[j]);
        store_words(static_cast<float*>(base) + i, w);
        return;
      }
    }
  }
}

// ---- Surrogate derivative of V values (device) ----

// out[j] = σ'(x[j] - shift), exactly as the CPU's surrogate_row: the switch is taken once per call, so each
// unrolled loop body inlines one surrogate with a constant kind.
template <int V>
__device__ __forceinline__ void surrogate_grad_vec(SurrogateKind kind, float alpha, float beta, const float (&x)[V],
                                                   float shift, float (&out)[V]) {
  switch (kind) {
#define SPIKEOPS_SURROGATE_CASE(KIND)                                                  \
  case SurrogateKind::KIND:                                                            \
    _Pragma("unroll") for (int j = 0; j < V; ++j) {                                    \
      out[j] = surrogate_grad(SurrogateKind::KIND, alpha, beta, x[j] - shift);         \
    }                                                                                  \
    return;
    SPIKEOPS_FOR_EACH_SURROGATE_KIND(SPIKEOPS_SURROGATE_CASE)
#undef SPIKEOPS_SURROGATE_CASE
  }
#pragma unroll
  for (int j = 0; j < V; ++j) out[j] = 0.0f;  // unreachable: validation rejects unknown kinds
}

}  // namespace cuda
}  // namespace spikeops
