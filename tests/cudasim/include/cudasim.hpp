// cudasim: runs spikeops' CUDA sources on the CPU, for tests on machines without a GPU.
//
// The .cu files are compiled as C++ against this header (which stands in for cuda_runtime.h, cuda_bf16.h
// and mma.h), after CMake rewrites each launch `kernel<<<grid, block, smem, stream>>>(args)` into
// `::cudasim::Launch(grid, block, smem, stream).run(kernel, args)` (tests/cudasim/cudasim.cmake). A launch
// runs to completion before it returns, on the calling thread: the blocks one after another (so __shared__
// arrays become static locals of the kernel), the threads of a block as fibers, each running until it
// reaches a barrier or returns. The schedule is deterministic: thread 0 runs to its first barrier before
// thread 1 starts (with CUDASIM_ORDER=reverse, the last thread first), so a missing barrier shows as wrong
// results in the tests' comparisons when the reader runs before the writer: CI runs both orders. What it
// checks, beyond those results:
//   - barriers: __syncthreads / __syncthreads_or wait for every thread of the block that has not returned,
//     warp collectives (shuffles, ballots, WMMA loads and stores) for the lanes of the warp; a barrier that
//     some live thread never reaches stops the program with "deadlock" (on a GPU: a hang or undefined);
//   - device memory: every cudaMalloc is its own mapping ending exactly at a guard page, readable only while
//     a kernel or a cudaMemcpy/cudaMemset runs: host code that touches device memory, a kernel that reads or
//     writes past the end of an allocation, or a use after cudaFree stops the program with SIGSEGV (so an
//     allocation's start is aligned only as far as its size allows; see Memory::allocate);
//   - launch configurations (block and grid limits) and WMMA's pointer and leading-dimension rules.
// What it cannot check: speed, shared-memory capacity, a read of __shared__ memory before the block wrote it
// (the arrays keep the previous block's values), races that both schedules happen to order, and
// the GPU's own rounding (mma_sync here sums in float32 in k order; tensor cores may round differently).
// The simulated device is one GPU of compute capability 9.0.
#pragma once

#include <math.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <type_traits>
#include <vector>

#ifndef __CUDA_ARCH__
#define __CUDA_ARCH__ 900
#endif
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))

// ---- Vector types and the built-in indices ----

struct uint3 {
  unsigned int x, y, z;
};
struct dim3 {
  unsigned int x, y, z;
  constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(8) float2 {
  float x, y;
};
struct alignas(16) float4 {
  float x, y, z, w;
};
struct alignas(8) uint2 {
  unsigned int x, y;
};
struct alignas(16) uint4 {
  unsigned int x, y, z, w;
};
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline uint2 make_uint2(unsigned int x, unsigned int y) { return {x, y}; }
inline uint4 make_uint4(unsigned int x, unsigned int y, unsigned int z, unsigned int w) { return {x, y, z, w}; }

inline thread_local uint3 threadIdx{0, 0, 0};
inline thread_local uint3 blockIdx{0, 0, 0};
inline thread_local dim3 blockDim{1, 1, 1};
inline thread_local dim3 gridDim{1, 1, 1};

namespace cudasim {

[[noreturn]] inline void fail(const char* what) {
  std::fprintf(stderr, "cudasim: %s\n", what);
  std::fflush(stderr);
  std::abort();
}

// The threads of the running block, as fibers on the calling thread: each runs until it reaches a barrier
// (__syncthreads, a warp collective) or returns; the scheduler releases a barrier once every thread of its
// scope that has not returned waits at it. Threads that have returned no longer count, as on a GPU.
enum class State { kReady, kAtBlockBarrier, kAtWarpBarrier, kDone };

struct Fiber {
  ucontext_t context;
  State state = State::kReady;
  int predicate = 0;
};

struct Block {
  std::vector<Fiber> fibers;
  ucontext_t scheduler;
  int current = 0;
  int block_or = 0;  // __syncthreads_or of the last released block barrier
  uint64_t slots[1024] = {};   // warp exchanges: one per thread
  float mma[32][256] = {};     // mma_sync's result, computed once per warp
  bool reverse = false;        // run the threads from the last to the first (CUDASIM_ORDER=reverse)
  int lanes(int warp) const {
    const int n = static_cast<int>(fibers.size()) - 32 * warp;
    return n < 32 ? n : 32;
  }
  // Thread t's place in the running order, and (the same mapping) the thread at place p.
  int position(int t) const { return reverse ? static_cast<int>(fibers.size()) - 1 - t : t; }
  // The first thread after `after` (-1: from the start) in the running order that is ready to run, or -1.
  int next_ready(int after) const {
    for (int p = after < 0 ? 0 : position(after) + 1; p < static_cast<int>(fibers.size()); ++p) {
      if (fibers[static_cast<std::size_t>(position(p))].state == State::kReady) return position(p);
    }
    return -1;
  }
  // Makes thread t the running one (its state stays kDone if it returns: uc_link resumes the scheduler).
  ucontext_t* enter(int t) {
    current = t;
    threadIdx = uint3{t % blockDim.x, t / blockDim.x % blockDim.y, t / (blockDim.x * blockDim.y)};
    fibers[static_cast<std::size_t>(t)].state = State::kDone;
    return &fibers[static_cast<std::size_t>(t)].context;
  }
};

inline Block* g_block = nullptr;

inline int this_thread() { return g_block->current; }
inline int this_lane() { return g_block->current % 32; }

inline void wait_at(State barrier, int predicate = 0) {
  Fiber& f = g_block->fibers[static_cast<std::size_t>(g_block->current)];
  f.state = barrier;
  f.predicate = predicate;
  // Straight to the next thread that can run (one switch instead of two through the scheduler).
  const int next = g_block->next_ready(g_block->current);
  ucontext_t* to = next >= 0 ? g_block->enter(next) : &g_block->scheduler;
  if (swapcontext(&f.context, to) != 0) fail("swapcontext failed");
}
inline void warp_barrier() { wait_at(State::kAtWarpBarrier); }

inline void check_full_mask(unsigned int mask) {
  if (mask != 0xffffffffu) fail("warp collectives are simulated for the full mask 0xffffffff only");
}

// A warp collective: every lane publishes `value`, then read(slots, lanes) sees the warp's values (slots[lane]
// for lane < lanes) and its result is returned to the caller.
template <typename Read>
auto warp_collective(uint64_t value, Read read) {
  const int warp_base = this_thread() / 32 * 32;
  g_block->slots[this_thread()] = value;
  warp_barrier();
  const auto result = read(static_cast<const uint64_t*>(g_block->slots + warp_base), g_block->lanes(warp_base / 32));
  warp_barrier();  // the slots are not rewritten before every lane has read them
  return result;
}

// Every lane publishes `value`; returns lane `source`'s (the caller's own when source is out of range).
inline uint64_t exchange(uint64_t value, int source) {
  return warp_collective(value, [&](const uint64_t* slots, int lanes) {
    return source >= 0 && source < lanes ? slots[source] : value;
  });
}

template <typename T>
uint64_t to_bits(T v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "a value of at most 8 bytes");
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}
template <typename T>
T from_bits(uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof(T));
  return v;
}

// ---- Device memory ----

struct Allocation {
  char* map;
  std::size_t map_bytes;  // the pages before the guard page
  std::size_t bytes;      // what was asked for
};

class Memory {
 public:
  static Memory& get() {
    static Memory memory;
    return memory;
  }
  // The allocation ends exactly at the guard page, so that reading one byte past it faults. Its start is
  // therefore aligned only as far as its size allows (16 bytes when the size is a multiple of 16; cudaMalloc
  // gives 256): tests of the kernels' aligned paths use such sizes.
  void* allocate(std::size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    const std::size_t map_bytes = bytes == 0 ? page : (bytes + page - 1) / page * page;
    void* map = mmap(nullptr, map_bytes + page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) return nullptr;
    char* p = static_cast<char*>(map) + map_bytes - bytes;
    live_[p] = Allocation{static_cast<char*>(map), map_bytes, bytes};
    if (open_ > 0) protect(live_[p], PROT_READ | PROT_WRITE);
    return p;
  }
  bool release(void* p) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = live_.find(static_cast<char*>(p));
    if (it == live_.end()) return false;
    munmap(it->second.map, it->second.map_bytes + static_cast<std::size_t>(sysconf(_SC_PAGESIZE)));
    live_.erase(it);
    return true;
  }
  // Whether [p, p + bytes) lies in one live allocation.
  bool is_device(const void* p, std::size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    const char* c = static_cast<const char*>(p);
    auto it = live_.upper_bound(const_cast<char*>(c));
    if (it == live_.begin()) return false;
    --it;
    return c >= it->first && c + bytes <= it->first + it->second.bytes;
  }
  bool overlaps_device(const void* p) {
    std::lock_guard<std::mutex> lock(mutex_);
    const char* c = static_cast<const char*>(p);
    for (const auto& kv : live_) {
      if (c >= kv.second.map && c < kv.second.map + kv.second.map_bytes) return true;
    }
    return false;
  }
  // Device memory is readable from here while at least one open() is not matched by close().
  void open() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (open_++ == 0) {
      for (auto& kv : live_) protect(kv.second, PROT_READ | PROT_WRITE);
    }
  }
  void close() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (--open_ == 0) {
      for (auto& kv : live_) protect(kv.second, PROT_NONE);
    }
  }

 private:
  static void protect(const Allocation& a, int prot) {
    if (mprotect(a.map, a.map_bytes, prot) != 0) fail("mprotect failed");
  }
  std::mutex mutex_;
  std::map<char*, Allocation> live_;
  int open_ = 0;
};

struct OpenMemory {
  OpenMemory() { Memory::get().open(); }
  ~OpenMemory() { Memory::get().close(); }
};

}  // namespace cudasim

// ---- Runtime API ----

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevice = 101,
};
using cudaError = cudaError_t;

enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};

enum cudaDeviceAttr { cudaDevAttrComputeCapabilityMajor = 75, cudaDevAttrComputeCapabilityMinor = 76 };

struct cudaFuncAttributes {
  int ptxVersion;
  int binaryVersion;
  int maxThreadsPerBlock;
};

struct CUstream_st {
  int id;
};
using cudaStream_t = CUstream_st*;
constexpr unsigned int cudaStreamDefault = 0, cudaStreamNonBlocking = 1;

namespace cudasim {
inline thread_local cudaError_t t_last_error = cudaSuccess;
inline thread_local int t_device = 0;
constexpr int kDevices = 1;

inline cudaError_t record(cudaError_t e) {
  if (e != cudaSuccess) t_last_error = e;
  return e;
}
}  // namespace cudasim

inline const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error (cudasim)";
    case cudaErrorInvalidValue: return "invalid argument (cudasim)";
    case cudaErrorMemoryAllocation: return "out of memory (cudasim)";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument (cudasim)";
    case cudaErrorInvalidDevice: return "invalid device ordinal (cudasim)";
  }
  return "unknown error (cudasim)";
}

inline cudaError_t cudaGetLastError() {
  const cudaError_t e = cudasim::t_last_error;
  cudasim::t_last_error = cudaSuccess;
  return e;
}

inline cudaError_t cudaGetDeviceCount(int* count) {
  *count = cudasim::kDevices;
  return cudaSuccess;
}
inline cudaError_t cudaGetDevice(int* device) {
  *device = cudasim::t_device;
  return cudaSuccess;
}
inline cudaError_t cudaSetDevice(int device) {
  if (device < 0 || device >= cudasim::kDevices) return cudasim::record(cudaErrorInvalidDevice);
  cudasim::t_device = device;
  return cudaSuccess;
}
inline cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (device < 0 || device >= cudasim::kDevices) return cudasim::record(cudaErrorInvalidDevice);
  switch (attr) {
    case cudaDevAttrComputeCapabilityMajor: *value = 9; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMinor: *value = 0; return cudaSuccess;
  }
  return cudasim::record(cudaErrorInvalidValue);
}
template <typename F>
cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attributes, F) {
  *attributes = cudaFuncAttributes{90, 90, 1024};
  return cudaSuccess;
}

inline cudaError_t cudaMalloc(void** p, std::size_t bytes) {
  *p = cudasim::Memory::get().allocate(bytes);
  return *p != nullptr ? cudaSuccess : cudasim::record(cudaErrorMemoryAllocation);
}
inline cudaError_t cudaFree(void* p) {
  if (p == nullptr || cudasim::Memory::get().release(p)) return cudaSuccess;
  return cudasim::record(cudaErrorInvalidValue);
}

// Stream-ordered allocation: every call completes at once, so it is the plain one.
inline cudaError_t cudaMallocAsync(void** p, std::size_t bytes, cudaStream_t) { return cudaMalloc(p, bytes); }
inline cudaError_t cudaFreeAsync(void* p, cudaStream_t) { return cudaFree(p); }

inline cudaError_t cudaStreamCreate(cudaStream_t* s) {
  *s = new CUstream_st{1};
  return cudaSuccess;
}
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned int) { return cudaStreamCreate(s); }
inline cudaError_t cudaStreamDestroy(cudaStream_t s) {
  delete s;
  return cudaSuccess;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }  // every call completes at once
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }

inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind,
                                   cudaStream_t = nullptr) {
  cudasim::Memory& m = cudasim::Memory::get();
  const bool dst_device = m.is_device(dst, bytes), src_device = m.is_device(src, bytes);
  const bool ok = (kind == cudaMemcpyHostToDevice && dst_device && !m.overlaps_device(src)) ||
                  (kind == cudaMemcpyDeviceToHost && src_device && !m.overlaps_device(dst)) ||
                  (kind == cudaMemcpyDeviceToDevice && dst_device && src_device) ||
                  (kind == cudaMemcpyDefault && (dst_device || !m.overlaps_device(dst)) &&
                   (src_device || !m.overlaps_device(src)));
  if (bytes == 0) return cudaSuccess;
  if (!ok) cudasim::fail("cudaMemcpy: a pointer is not of the kind the copy names, or a range leaves its allocation");
  cudasim::OpenMemory open;
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpy(void* dst, const void* src, std::size_t bytes, cudaMemcpyKind kind) {
  return cudaMemcpyAsync(dst, src, bytes, kind);
}
inline cudaError_t cudaMemsetAsync(void* p, int value, std::size_t bytes, cudaStream_t = nullptr) {
  if (bytes == 0) return cudaSuccess;
  if (!cudasim::Memory::get().is_device(p, bytes)) cudasim::fail("cudaMemset: not a device range");
  cudasim::OpenMemory open;
  std::memset(p, value, bytes);
  return cudaSuccess;
}

// ---- Device functions ----

inline int __syncthreads_or(int predicate) {
  cudasim::wait_at(cudasim::State::kAtBlockBarrier, predicate);
  return cudasim::g_block->block_or;
}
inline void __syncthreads() { __syncthreads_or(0); }

template <typename T>
T __shfl_sync(unsigned int mask, T value, int source_lane) {
  cudasim::check_full_mask(mask);
  return cudasim::from_bits<T>(cudasim::exchange(cudasim::to_bits(value), source_lane % 32));
}
template <typename T>
T __shfl_up_sync(unsigned int mask, T value, unsigned int delta) {
  cudasim::check_full_mask(mask);
  const int lane = cudasim::this_lane();
  return cudasim::from_bits<T>(
      cudasim::exchange(cudasim::to_bits(value), lane >= static_cast<int>(delta) ? lane - static_cast<int>(delta) : -1));
}
template <typename T>
T __shfl_down_sync(unsigned int mask, T value, unsigned int delta) {
  cudasim::check_full_mask(mask);
  const int source = cudasim::this_lane() + static_cast<int>(delta);
  return cudasim::from_bits<T>(cudasim::exchange(cudasim::to_bits(value), source < 32 ? source : -1));
}
inline unsigned int __ballot_sync(unsigned int mask, int predicate) {
  cudasim::check_full_mask(mask);
  return cudasim::warp_collective(predicate != 0, [](const uint64_t* slots, int lanes) {
    unsigned int bits = 0;
    for (int lane = 0; lane < lanes; ++lane) bits |= static_cast<unsigned int>(slots[lane] != 0) << lane;
    return bits;
  });
}

inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __popc(unsigned int x) { return __builtin_popcount(x); }
inline unsigned int __float_as_uint(float f) { return cudasim::from_bits<unsigned int>(cudasim::to_bits(f)); }
inline float __uint_as_float(unsigned int u) { return cudasim::from_bits<float>(u); }
[[noreturn]] inline void __trap() { cudasim::fail("__trap() in a kernel"); }

template <typename T>
T atomicAdd(T* address, T value) {
  static_assert(std::is_integral<T>::value, "integer atomics only");
  return __atomic_fetch_add(address, value, __ATOMIC_SEQ_CST);
}

// ---- bfloat16 ----

struct __nv_bfloat16 {
  uint16_t bits;
};
inline float __bfloat162float(__nv_bfloat16 b) { return __uint_as_float(static_cast<unsigned int>(b.bits) << 16); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  const unsigned int u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return {0x7fff};
  return {static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16)};
}
inline __nv_bfloat16 __float2bfloat16_rz(float f) {
  const unsigned int u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return {0x7fff};
  return {static_cast<uint16_t>(u >> 16)};
}

// ---- WMMA: each lane holds the whole fragment; loads and stores are warp collectives ----

namespace nvcuda {
namespace wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
  static constexpr int kRows = std::is_same<Use, matrix_b>::value ? K : M;
  static constexpr int kCols = std::is_same<Use, matrix_a>::value ? K : N;
  static constexpr int num_elements = kRows * kCols;
  T x[kRows * kCols];
};

template <typename T>
float as_float(T v) {
  if constexpr (std::is_same<T, __nv_bfloat16>::value) {
    return __bfloat162float(v);
  } else {
    return static_cast<float>(v);
  }
}

// WMMA's rules: a 256-bit aligned pointer and a leading dimension of a multiple of 16 bytes.
template <typename T>
void check_matrix_pointer(const T* p, unsigned int ldm) {
  if (reinterpret_cast<uintptr_t>(p) % 32 != 0) cudasim::fail("WMMA: the pointer is not 256-bit aligned");
  if (ldm * sizeof(T) % 16 != 0) cudasim::fail("WMMA: ldm is not a multiple of 16 bytes");
}

template <typename Use, int M, int N, int K, typename T, typename Layout>
void fill_fragment(fragment<Use, M, N, K, T, Layout>& f, float value) {
  for (auto& e : f.x) {
    if constexpr (std::is_same<T, __nv_bfloat16>::value) {
      e = __float2bfloat16_rn(value);
    } else {
      e = static_cast<T>(value);
    }
  }
}

template <typename Use, int M, int N, int K, typename T, typename Layout>
void load_matrix_sync(fragment<Use, M, N, K, T, Layout>& f, const T* p, unsigned int ldm) {
  using F = fragment<Use, M, N, K, T, Layout>;
  static_assert(!std::is_same<Layout, void>::value, "matrix_a and matrix_b fragments name their layout");
  check_matrix_pointer(p, ldm);
  cudasim::warp_barrier();
  for (int i = 0; i < F::kRows; ++i) {
    for (int j = 0; j < F::kCols; ++j) {
      f.x[i * F::kCols + j] = std::is_same<Layout, row_major>::value ? p[i * ldm + j] : p[j * ldm + i];
    }
  }
  cudasim::warp_barrier();
}

template <int M, int N, int K, typename T>
void store_matrix_sync(T* p, const fragment<accumulator, M, N, K, T>& f, unsigned int ldm, layout_t layout) {
  check_matrix_pointer(p, ldm);
  cudasim::warp_barrier();
  if (cudasim::this_lane() == 0) {
    for (int i = 0; i < M; ++i) {
      for (int j = 0; j < N; ++j) p[layout == mem_row_major ? i * ldm + j : j * ldm + i] = f.x[i * N + j];
    }
  }
  cudasim::warp_barrier();
}

template <int M, int N, int K, typename T, typename LA, typename LB>
void mma_sync(fragment<accumulator, M, N, K, float>& d, const fragment<matrix_a, M, N, K, T, LA>& a,
              const fragment<matrix_b, M, N, K, T, LB>& b, const fragment<accumulator, M, N, K, float>& c) {
  // A warp collective: the lanes' fragments are the same, so lane 0 computes and every lane copies.
  static_assert(M * N <= 256, "a 16 x 16 accumulator at most");
  float* result = cudasim::g_block->mma[cudasim::this_thread() / 32];
  if (cudasim::this_lane() == 0) {
    for (int i = 0; i < M; ++i) {
      for (int j = 0; j < N; ++j) {
        float s = c.x[i * N + j];
        for (int k = 0; k < K; ++k) s += as_float(a.x[i * K + k]) * as_float(b.x[k * N + j]);
        result[i * N + j] = s;
      }
    }
  }
  cudasim::warp_barrier();
  for (int e = 0; e < M * N; ++e) d.x[e] = result[e];
  cudasim::warp_barrier();  // before lane 0 computes the next product
}
}  // namespace wmma
}  // namespace nvcuda

// ---- Launches ----

namespace cudasim {

inline std::function<void()>* g_kernel_call = nullptr;
inline void thread_entry() { (*g_kernel_call)(); }

class Launch {
 public:
  Launch(dim3 grid, dim3 block, std::size_t shared_bytes = 0, cudaStream_t = nullptr)
      : grid_(grid), block_(block), shared_bytes_(shared_bytes) {}

  template <typename Kernel, typename... Args>
  void run(Kernel kernel, Args... args) {
    const uint64_t threads = static_cast<uint64_t>(block_.x) * block_.y * block_.z;
    if (threads == 0 || threads > 1024 || block_.z > 64 || grid_.x == 0 || grid_.y == 0 || grid_.z == 0 ||
        grid_.x > 0x7fffffffu || grid_.y > 65535 || grid_.z > 65535 || shared_bytes_ > 48 * 1024) {
      record(cudaErrorInvalidConfiguration);
      return;
    }
    if (g_block != nullptr) fail("a kernel launched a kernel");
    OpenMemory open;
    static std::vector<char*> stacks;  // one per thread of a block, kept for later launches
    const int n = static_cast<int>(threads);
    while (stacks.size() < static_cast<std::size_t>(n)) stacks.push_back(new_stack());
    Block block;
    block.fibers.resize(static_cast<std::size_t>(n));
    static const bool reverse = [] {
      const char* order = std::getenv("CUDASIM_ORDER");
      return order != nullptr && std::strcmp(order, "reverse") == 0;
    }();
    block.reverse = reverse;
    g_block = &block;
    gridDim = grid_;
    blockDim = block_;
    // makecontext passes int arguments only: the threads reach the kernel call through g_kernel_call.
    std::function<void()> call = [&] { kernel(args...); };
    g_kernel_call = &call;
    const uint64_t blocks = static_cast<uint64_t>(grid_.x) * grid_.y * grid_.z;
    for (uint64_t b = 0; b < blocks; ++b) {
      blockIdx = uint3{static_cast<unsigned int>(b % grid_.x), static_cast<unsigned int>(b / grid_.x % grid_.y),
                       static_cast<unsigned int>(b / (static_cast<uint64_t>(grid_.x) * grid_.y))};
      for (int t = 0; t < n; ++t) {
        prepare(block.fibers[static_cast<std::size_t>(t)], stacks[static_cast<std::size_t>(t)], &block.scheduler);
      }
      schedule(block);
    }
    g_block = nullptr;
  }

 private:
  static constexpr std::size_t kStackBytes = 256 * 1024;

  // A thread's stack, above a guard page: a kernel whose locals overflow it faults instead of overwriting memory.
  static char* new_stack() {
    const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    void* map = mmap(nullptr, kStackBytes + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED || mprotect(map, page, PROT_NONE) != 0) fail("cannot map a thread's stack");
    return static_cast<char*>(map) + page;
  }

  // A fresh start of the kernel call on `stack`, returning to `scheduler`. (Out of line: getcontext returns
  // like setjmp, which would make the compiler warn about the caller's loop variables.)
  __attribute__((noinline)) static void prepare(Fiber& f, char* stack, ucontext_t* scheduler) {
    f.state = State::kReady;
    if (getcontext(&f.context) != 0) fail("getcontext failed");
    f.context.uc_stack.ss_sp = stack;
    f.context.uc_stack.ss_size = kStackBytes;
    f.context.uc_link = scheduler;
    makecontext(&f.context, &thread_entry, 0);
  }

  static void schedule(Block& block) {
    const int n = static_cast<int>(block.fibers.size());
    for (;;) {
      const int ready = block.next_ready(-1);
      if (ready >= 0) {
        if (swapcontext(&block.scheduler, block.enter(ready)) != 0) fail("swapcontext failed");
        continue;
      }
      // Every thread waits or is done: release the barriers that all their live threads reached.
      int live = 0, at_block = 0, any = 0;
      for (const Fiber& f : block.fibers) {
        live += f.state != State::kDone;
        at_block += f.state == State::kAtBlockBarrier;
        any |= f.state == State::kAtBlockBarrier && f.predicate != 0;
      }
      if (live == 0) return;
      bool released = false;
      if (at_block == live) {
        block.block_or = any;
        for (Fiber& f : block.fibers) {
          if (f.state == State::kAtBlockBarrier) f.state = State::kReady;
        }
        released = true;
      }
      for (int w = 0; 32 * w < n; ++w) {
        int warp_live = 0, at_warp = 0;
        for (int t = 32 * w; t < 32 * w + block.lanes(w); ++t) {
          warp_live += block.fibers[static_cast<std::size_t>(t)].state != State::kDone;
          at_warp += block.fibers[static_cast<std::size_t>(t)].state == State::kAtWarpBarrier;
        }
        if (warp_live > 0 && at_warp == warp_live) {
          for (int t = 32 * w; t < 32 * w + block.lanes(w); ++t) {
            if (block.fibers[static_cast<std::size_t>(t)].state == State::kAtWarpBarrier) {
              block.fibers[static_cast<std::size_t>(t)].state = State::kReady;
            }
          }
          released = true;
        }
      }
      if (!released) {
        fail("deadlock: threads wait at a barrier (__syncthreads, a warp collective or WMMA) that other live "
             "threads of its block or warp never reach");
      }
    }
  }

  dim3 grid_, block_;
  std::size_t shared_bytes_;
};

}  // namespace cudasim
