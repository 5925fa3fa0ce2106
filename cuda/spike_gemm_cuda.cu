// CUDA kernels of the accumulate-only spike GEMM: out[m, :] = bias + sum of rows[k, :] over the spikes of row m.
// Three kernels (SpikeGemmKernel), chosen by the caller or from its firing-rate estimate:
//
// kEvents: a block owns kThreads adjacent output columns (one per thread) and a range of output rows. For each row
// it compacts the row's spiking columns into shared memory, kChunk columns at a time (a block-wide prefix sum of
// per-thread counts), then every thread adds rows[k, its column] for the listed k: consecutive threads read
// consecutive floats of a row, so each warp's loads are coalesced, and zero spikes cost no load and no add. Every
// spike reads its row slice from global memory (L2): the cheapest kernel when spikes are rare.
//
// kTiledEvents: CUTLASS-style tiling of the same event-driven sum. Threadblock tile 64 x 64 outputs, K step 32;
// warp tile 8 rows x 64 columns; thread tile 8 rows x 2 columns in registers. Per K step the block stages the
// rows' 32 x 64 slice in shared memory (16-byte loads) and each warp turns its rows' 32 spike bytes into 32-bit
// masks (16-byte loads of spike bytes); the warp then walks the set bits of each mask, all lanes together (a
// warp's rows are shared by its lanes, so the loop is uniform), adding shared-memory rows. A K step where no row
// of the block spikes loads nothing. The staged slice serves every spike of 64 rows: it wins once each rows
// element is used more than about once per block (firing rate above a few percent). The sums are written out
// through shared memory, coalesced also when out is transposed (the weight gradient).
//
// kTensorCore: a dense GEMM on tensor cores (WMMA bf16 16x16x16, float32 accumulators). Threadblock tile 64 x 64,
// K step 32, four warps of 32 x 32. Spikes are staged as bf16 0/1 (exact); each rows value x as three bf16 terms
// hi + mid + lo that sum to x exactly (a float32 has 24 significant bits, a bf16 8; above 2^-110), so the
// products are exact and only the float32 accumulation rounds (tensor cores truncate: about an ulp per MMA). A
// term that is zero over the whole staged slice (bf16 weights need only hi, float16 ones hi + mid) is skipped.
// The block's sums pass through shared memory so that the stores are coalesced, transposed or not. For
// dense-ish spikes, where skipping zeros no longer pays. Not done: converting the weight into bf16 planes once
// instead of in every block row, and cp.async double buffering (in the tiled kernel too).
#include <cuda_bf16.h>
#include <mma.h>

#include <cstdint>

#include "backend.hpp"
#include "cuda_utils.cuh"
#include "spikeops/kernel_policy.hpp"
#include "spikeops/spike_gemm.hpp"

namespace spikeops {
namespace cuda {
namespace {

namespace events {
constexpr int kThreads = 128;
constexpr int kBytesPerThread = 8;
constexpr int kChunk = kThreads * kBytesPerThread;  // spike columns examined per compaction round
constexpr int kRowsPerBlock = 8;
}  // namespace events

struct SpikeAccumulateKernelArgs {
  const uint8_t* spikes;
  const float* rows;
  const float* bias;
  void* out;
  DType out_dtype;
  bool out_transposed;
  int64_t M, K, N;
  int64_t tile_stride, row_stride;  // rows[k, n] is at rows[tile_stride * (n / 64) + row_stride * k + n % 64]
  int64_t row_columns;              // columns rows holds: N, or N rounded up to 64 when packed (zero padded)
  bool spikes_vec16;                // every spike row starts 16-byte aligned (aligned base, K % 16 == 0)
  bool rows_vec16;                  // 4 adjacent columns of a tile load as one float4 (alignment permitting)
};

__device__ __forceinline__ const float* tile_row(const SpikeAccumulateKernelArgs& a, int64_t tile, int64_t k) {
  return a.rows + a.tile_stride * tile + a.row_stride * k;
}

// rows[k, n0 + j .. n0 + j + 3] for the tile starting at column n0 = 64 * tile, zero outside K and the columns.
__device__ __forceinline__ float4 load_rows4(const SpikeAccumulateKernelArgs& a, int64_t tile, int64_t k, int j) {
  float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  if (k >= a.K) return v;
  const float* p = tile_row(a, tile, k) + j;
  const int64_t n = tile * kPackedTileN + j;
  if (a.rows_vec16 && n + 3 < a.row_columns) return *reinterpret_cast<const float4*>(p);
  if (n < a.row_columns) v.x = p[0];
  if (n + 1 < a.row_columns) v.y = p[1];
  if (n + 2 < a.row_columns) v.z = p[2];
  if (n + 3 < a.row_columns) v.w = p[3];
  return v;
}

// Bit j set where byte j of the 16 is nonzero (the GPU is little-endian: byte j of word i is byte 4 i + j).
__device__ __forceinline__ uint32_t nonzero_byte_bits(const uint4 v) {
  const uint32_t w[4] = {v.x, v.y, v.z, v.w};
  uint32_t bits = 0;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
#pragma unroll
    for (int j = 0; j < 4; ++j) bits |= static_cast<uint32_t>(((w[i] >> (8 * j)) & 0xffu) != 0u) << (4 * i + j);
  }
  return bits;
}

__device__ __forceinline__ void store_output(const SpikeAccumulateKernelArgs& a, int64_t m, int64_t n, float acc) {
  const int64_t at = a.out_transposed ? n * a.M + m : m * a.N + n;
  store_from_float(a.out_dtype, a.out, at, a.bias != nullptr ? acc + a.bias[n] : acc);
}

__global__ void __launch_bounds__(events::kThreads) spike_accumulate_kernel(const SpikeAccumulateKernelArgs a) {
  using namespace events;
  __shared__ int32_t idx[kChunk];
  __shared__ int warp_totals[kThreads / 32];
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int64_t n = static_cast<int64_t>(blockIdx.x) * kThreads + tid;
  const float* column = a.rows + a.tile_stride * (n / kPackedTileN) + n % kPackedTileN;
  // Row blocks stride by gridDim.y (at most 65535) so any M fits one launch.
  for (int64_t m_begin = static_cast<int64_t>(blockIdx.y) * kRowsPerBlock; m_begin < a.M;
       m_begin += static_cast<int64_t>(gridDim.y) * kRowsPerBlock) {
    const int64_t m_end = m_begin + kRowsPerBlock < a.M ? m_begin + kRowsPerBlock : a.M;
    for (int64_t m = m_begin; m < m_end; ++m) {
      const uint8_t* row = a.spikes + m * a.K;
      float acc = 0.0f;
      for (int64_t k0 = 0; k0 < a.K; k0 += kChunk) {
        // This thread's kBytesPerThread columns and how many of them spike.
        const int64_t first = k0 + static_cast<int64_t>(tid) * kBytesPerThread;
        bool spike[kBytesPerThread];
        int count = 0;
#pragma unroll
        for (int j = 0; j < kBytesPerThread; ++j) {
          spike[j] = first + j < a.K && row[first + j] != 0;
          count += spike[j];
        }
        // Exclusive prefix sum of the counts over the block: within the warp by shuffles, then across warps.
        int inclusive = count;
#pragma unroll
        for (int d = 1; d < 32; d *= 2) {
          const int other = __shfl_up_sync(0xffffffffu, inclusive, d);
          if (lane >= d) inclusive += other;
        }
        if (lane == 31) warp_totals[warp] = inclusive;
        __syncthreads();
        int offset = inclusive - count, total = 0;
#pragma unroll
        for (int w = 0; w < kThreads / 32; ++w) {
          if (w < warp) offset += warp_totals[w];
          total += warp_totals[w];
        }
#pragma unroll
        for (int j = 0; j < kBytesPerThread; ++j) {
          if (spike[j]) idx[offset++] = static_cast<int32_t>(first + j);
        }
        __syncthreads();
        if (n < a.N) {
          for (int i = 0; i < total; ++i) acc += column[static_cast<int64_t>(idx[i]) * a.row_stride];
        }
        // No barrier needed before the next chunk: it rewrites warp_totals, which every thread read before the
        // barrier above, and idx only after its first barrier, which waits for these reads.
      }
      if (n < a.N) store_output(a, m, n, acc);
    }
  }
}


// Writes a block's outputs out[m0 + r, n0 + c] = tile[r][c] (+ bias), consecutive threads at consecutive
// addresses: along n, or along m when out is transposed (the weight gradient), so every store is coalesced.
template <int kRows, int kCols, int kPitch>
__device__ __forceinline__ void write_tile(const SpikeAccumulateKernelArgs& a, const float (*tile)[kPitch],
                                           int64_t m0, int64_t n0, int tid, int threads) {
  for (int e = tid; e < kRows * kCols; e += threads) {
    const int r = a.out_transposed ? e % kRows : e / kCols, c = a.out_transposed ? e / kRows : e % kCols;
    const int64_t m = m0 + r, n = n0 + c;
    if (m < a.M && n < a.N) store_output(a, m, n, tile[r][c]);
  }
}

// ---- kTiledEvents ----

namespace tiled {
constexpr int kTileM = 64, kTileN = 64, kTileK = 32;
constexpr int kWarps = 8, kThreads = kWarps * 32;
constexpr int kRowsPerWarp = kTileM / kWarps;  // a warp's rows: their spike masks are the same in every lane
static_assert(kTileN == kPackedTileN, "a block's columns are one packed tile");
static_assert(kTileN == 2 * 32, "a lane owns two adjacent columns");
static_assert(kTileK == 32, "a spike mask is one 32-bit word");
static_assert(kRowsPerWarp * 2 <= 32, "16 lanes load a warp's spike bytes, 16 at a time");
static_assert(kTileK * kTileN == 2 * 4 * kThreads, "each thread stages two float4 of the rows' slice");
}  // namespace tiled

// Bit j of masks[r]: spikes[m0 + r, k0 + j] != 0 (0 past M or K), the same in every lane of the warp.
__device__ __forceinline__ void warp_spike_masks(const SpikeAccumulateKernelArgs& a, int64_t m0, int64_t k0,
                                                 int lane, uint32_t (&masks)[tiled::kRowsPerWarp]) {
  if (a.spikes_vec16 && k0 + tiled::kTileK <= a.K) {
    // Lanes 0..15 load 16 bytes each: row lane / 2, half lane % 2; the halves meet by shuffles.
    uint32_t half = 0;
    const int64_t m = m0 + lane / 2;
    if (lane < 2 * tiled::kRowsPerWarp && m < a.M) {
      half = nonzero_byte_bits(*reinterpret_cast<const uint4*>(a.spikes + m * a.K + k0 + 16 * (lane % 2)));
    }
#pragma unroll
    for (int r = 0; r < tiled::kRowsPerWarp; ++r) {
      masks[r] = __shfl_sync(0xffffffffu, half, 2 * r) | (__shfl_sync(0xffffffffu, half, 2 * r + 1) << 16);
    }
  } else {
    // Unaligned rows or the last, partial K step: one byte per lane.
#pragma unroll
    for (int r = 0; r < tiled::kRowsPerWarp; ++r) {
      const int64_t m = m0 + r, k = k0 + lane;
      masks[r] = __ballot_sync(0xffffffffu, m < a.M && k < a.K && a.spikes[m * a.K + k] != 0);
    }
  }
}

__global__ void __launch_bounds__(tiled::kThreads, 2) spike_accumulate_tiled_kernel(const SpikeAccumulateKernelArgs a) {
  using namespace tiled;
  __shared__ __align__(16) float slice[kTileK][kTileN];  // rows[k0 + k, n0 + j]
  __shared__ float out_s[kTileM][kTileN + 1];             // the block's sums, written out coalesced
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int64_t tile = blockIdx.x, n0 = tile * kTileN;
  for (int64_t m_block = blockIdx.y; m_block * kTileM < a.M; m_block += gridDim.y) {
    const int64_t m0 = m_block * kTileM + warp * kRowsPerWarp;  // this warp's first row
    float acc[kRowsPerWarp][2] = {};
    for (int64_t k0 = 0; k0 < a.K; k0 += kTileK) {
      uint32_t masks[kRowsPerWarp];
      warp_spike_masks(a, m0, k0, lane, masks);
      uint32_t any = 0;
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) any |= masks[r];
      // The barrier also ends the previous step's reads of the slice. No spike in the block: nothing to stage.
      if (!__syncthreads_or(any != 0u)) continue;
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        const int v = tid + i * kThreads, k = v / (kTileN / 4), j = 4 * (v % (kTileN / 4));
        *reinterpret_cast<float4*>(&slice[k][j]) = load_rows4(a, tile, k0 + k, j);
      }
      __syncthreads();
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) {
        for (uint32_t mask = masks[r]; mask != 0u; mask &= mask - 1u) {
          const float2 w = *reinterpret_cast<const float2*>(&slice[__ffs(mask) - 1][2 * lane]);
          acc[r][0] += w.x;
          acc[r][1] += w.y;
        }
      }
    }
    __syncthreads();  // the previous block row's outputs are written out
#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      out_s[warp * kRowsPerWarp + r][2 * lane] = acc[r][0];
      out_s[warp * kRowsPerWarp + r][2 * lane + 1] = acc[r][1];
    }
    __syncthreads();
    write_tile<kTileM, kTileN, kTileN + 1>(a, out_s, m_block * kTileM, n0, tid, kThreads);
  }
}

// ---- kTensorCore ----

namespace tc {
constexpr int kTileM = 64, kTileN = 64, kTileK = 32;
constexpr int kThreads = 128;  // four warps, 2 x 2, each 32 x 32 outputs = 2 x 2 fragments of 16 x 16
constexpr int kFrag = 16;
constexpr int kTerms = 3;  // hi, mid, lo
// Row pitches of the shared tiles: multiples of 8 bf16 / 4 floats (WMMA's ldm) padded off the bank period.
constexpr int kPitchA = kTileK + 8, kPitchB = kTileN + 8, kPitchC = kTileN + 4;
static_assert(kTileN == kPackedTileN, "a block's columns are one packed tile");
static_assert(kTileM * kTileK == 16 * kThreads, "each thread stages 16 spike bytes");
static_assert(kTileK * kTileN == 16 * kThreads, "each thread stages 16 rows values");
}  // namespace tc

__global__ void __launch_bounds__(tc::kThreads) spike_accumulate_tensor_core_kernel(const SpikeAccumulateKernelArgs a) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  using namespace tc;
  using namespace nvcuda;
  __shared__ __align__(32) __nv_bfloat16 spikes_s[kTileM][kPitchA];
  __shared__ __align__(32) __nv_bfloat16 rows_s[kTerms][kTileK][kPitchB];
  __shared__ __align__(32) float out_s[kTileM][kPitchC];
  const int tid = threadIdx.x, warp = tid / 32, warp_m = warp / 2, warp_n = warp % 2;
  const int64_t tile = blockIdx.x, n0 = tile * kTileN;
  for (int64_t m_block = blockIdx.y; m_block * kTileM < a.M; m_block += gridDim.y) {
    const int64_t m0 = m_block * kTileM;
    wmma::fragment<wmma::accumulator, kFrag, kFrag, kFrag, float> acc[2][2];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
#pragma unroll
      for (int j = 0; j < 2; ++j) wmma::fill_fragment(acc[i][j], 0.0f);
    }
    for (int64_t k0 = 0; k0 < a.K; k0 += kTileK) {
      __syncthreads();  // the previous step's fragments are loaded
      {  // 16 spike bytes: row tid / 2, columns 16 (tid % 2) ..
        const int r = tid / 2, c = 16 * (tid % 2);
        const int64_t m = m0 + r, k = k0 + c;
        uint32_t bits = 0;
        if (m < a.M) {
          const uint8_t* p = a.spikes + m * a.K + k;
          if (a.spikes_vec16 && k + 16 <= a.K) {
            bits = nonzero_byte_bits(*reinterpret_cast<const uint4*>(p));
          } else {
            for (int j = 0; j < 16 && k + j < a.K; ++j) bits |= static_cast<uint32_t>(p[j] != 0) << j;
          }
        }
#pragma unroll
        for (int j = 0; j < 16; ++j) spikes_s[r][c + j] = __float2bfloat16_rn(static_cast<float>((bits >> j) & 1u));
      }
      bool need_mid = false, need_lo = false;
      {  // 16 rows values, 4 at a time: consecutive threads read consecutive float4 of a slice row
#pragma unroll
        for (int q = 0; q < 4; ++q) {
          const int i = tid + q * kThreads, k = i / (kTileN / 4), c = 4 * (i % (kTileN / 4));
          const float4 v4 = load_rows4(a, tile, k0 + k, c);
          const float v[4] = {v4.x, v4.y, v4.z, v4.w};
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const float x = v[e];
            // hi: x truncated to 8 significant bits (toward zero: rounding up would overflow the largest
            // floats to inf); rest = x - hi has at most 16 and is exact in float32, mid takes its top 8 and lo
            // the rest (exact above 2^-110, where lo would need bf16 subnormals). A non-finite x is hi alone.
            const __nv_bfloat16 hi = __float2bfloat16_rz(x);
            const float rest = isfinite(x) ? x - __bfloat162float(hi) : 0.0f;
            const __nv_bfloat16 mid = __float2bfloat16_rn(rest);
            const __nv_bfloat16 lo = __float2bfloat16_rn(rest - __bfloat162float(mid));
            rows_s[0][k][c + e] = hi;
            rows_s[1][k][c + e] = mid;
            rows_s[2][k][c + e] = lo;
            need_mid |= __bfloat162float(mid) != 0.0f;
            need_lo |= __bfloat162float(lo) != 0.0f;
          }
        }
      }
      // Barriers that also publish the staged tiles; the term count is the same in every thread.
      const int terms = __syncthreads_or(need_lo) ? 3 : (__syncthreads_or(need_mid) ? 2 : 1);
#pragma unroll
      for (int kk = 0; kk < kTileK; kk += kFrag) {
        wmma::fragment<wmma::matrix_a, kFrag, kFrag, kFrag, __nv_bfloat16, wmma::row_major> fa[2];
#pragma unroll
        for (int i = 0; i < 2; ++i) wmma::load_matrix_sync(fa[i], &spikes_s[32 * warp_m + kFrag * i][kk], kPitchA);
        for (int t = 0; t < terms; ++t) {
#pragma unroll
          for (int j = 0; j < 2; ++j) {
            wmma::fragment<wmma::matrix_b, kFrag, kFrag, kFrag, __nv_bfloat16, wmma::row_major> fb;
            wmma::load_matrix_sync(fb, &rows_s[t][kk][32 * warp_n + kFrag * j], kPitchB);
#pragma unroll
            for (int i = 0; i < 2; ++i) wmma::mma_sync(acc[i][j], fa[i], fb, acc[i][j]);
          }
        }
      }
    }
    __syncthreads();  // the previous block row's outputs are written out (also when K == 0)
#pragma unroll
    for (int i = 0; i < 2; ++i) {
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        wmma::store_matrix_sync(&out_s[32 * warp_m + kFrag * i][32 * warp_n + kFrag * j], acc[i][j], kPitchC,
                                wmma::mem_row_major);
      }
    }
    __syncthreads();
    write_tile<kTileM, kTileN, kPitchC>(a, out_s, m0, n0, tid, kThreads);
  }
#else
  __trap();  // not reached: the host launches this kernel on compute capability 8.0 and newer only
#endif
}

}  // namespace

namespace {

bool aligned16(const void* p) { return reinterpret_cast<std::uintptr_t>(p) % 16 == 0; }

// The GPU has bf16 tensor cores and the tensor-core kernel was compiled for them (a build for older
// architectures only would run its __trap()).
bool has_tensor_cores(int device) {
  int major = 0;
  check_cuda(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device), "cudaDeviceGetAttribute");
  if (major < 8) return false;
  cudaFuncAttributes attributes{};
  check_cuda(cudaFuncGetAttributes(&attributes, spike_accumulate_tensor_core_kernel), "cudaFuncGetAttributes");
  return attributes.ptxVersion >= 80;
}

// The kernel asked for (kDense is the tensor-core kernel), or for kAuto the policy's choice for this product
// and firing rate. Checks the GPU at most once per call.
SpikeGemmKernel choose_kernel(const SpikeAccumulateArgs& a, int64_t M, int64_t K, int64_t N) {
  const SpikeGemmKernel asked = a.kernel == SpikeGemmKernel::kDense ? SpikeGemmKernel::kTensorCore : a.kernel;
  if (asked == SpikeGemmKernel::kTensorCore && !has_tensor_cores(a.spikes.device_index)) {
    throw Error("spike_accumulate: kernel kTensorCore (or kDense) needs a GPU of compute capability 8.0 or newer "
                "and a build for it (CMAKE_CUDA_ARCHITECTURES 80 or newer)");
  }
  if (asked != SpikeGemmKernel::kAuto) return asked;
  SpikeGemmProblem problem;
  problem.M = M;
  problem.K = K;
  problem.N = N;
  problem.weight_gradient = a.out_transposed;  // how the layers call it: the weight gradient is written transposed
  problem.device = Device::kCUDA;
  SpikeGemmKernel kernel = choose_spike_gemm_kernel(problem, a.firing_rate);
  // The driver is asked only when the policy would pick the tensor cores.
  if (kernel == SpikeGemmKernel::kTensorCore && !has_tensor_cores(a.spikes.device_index)) {
    problem.tensor_cores = false;
    kernel = choose_spike_gemm_kernel(problem, a.firing_rate);
  }
  return kernel;
}

}  // namespace

void spike_accumulate(const SpikeAccumulateArgs& a) {
  SpikeAccumulateKernelArgs k{};
  k.spikes = static_cast<const uint8_t*>(a.spikes.data);
  k.rows = static_cast<const float*>(a.rows.data);
  k.bias = a.bias.defined() ? static_cast<const float*>(a.bias.data) : nullptr;
  k.out = a.out.data;
  k.out_dtype = a.out.dtype;
  k.out_transposed = a.out_transposed;
  k.M = a.spikes.shape[0];
  k.K = a.spikes.shape[1];
  k.N = a.out.shape[a.out_transposed ? 0 : 1];
  const bool packed = a.rows_layout == RowsLayout::kPacked;
  const int64_t tiles = (k.N + kPackedTileN - 1) / kPackedTileN;
  k.tile_stride = packed ? k.K * kPackedTileN : kPackedTileN;
  k.row_stride = packed ? kPackedTileN : k.N;
  k.row_columns = packed ? tiles * kPackedTileN : k.N;
  k.spikes_vec16 = aligned16(k.spikes) && k.K % 16 == 0;
  k.rows_vec16 = aligned16(k.rows) && k.row_stride % 4 == 0;
  DeviceGuard guard(a.spikes.device_index);
  const SpikeGemmKernel kernel = choose_kernel(a, k.M, k.K, k.N);
  const cudaStream_t stream = as_stream(a.stream);
  // Column tiles on x (up to 2^31 - 1 blocks), row tiles on y (at most 65535; the kernels stride past it).
  auto grid = [&](int64_t cols_per_block, int64_t rows_per_block) {
    const int64_t col_blocks = (k.N + cols_per_block - 1) / cols_per_block;
    const int64_t row_blocks = (k.M + rows_per_block - 1) / rows_per_block;
    if (col_blocks > kMaxBlocks) {
      throw Error("spike_accumulate: rows has too many columns for one launch (" + std::to_string(k.N) + ")");
    }
    return dim3(static_cast<unsigned int>(col_blocks),
                static_cast<unsigned int>(row_blocks < 65535 ? row_blocks : 65535));
  };
  switch (kernel) {
    case SpikeGemmKernel::kTiledEvents:
      spike_accumulate_tiled_kernel<<<grid(tiled::kTileN, tiled::kTileM), tiled::kThreads, 0, stream>>>(k);
      check_launch("spike_accumulate_tiled_kernel");
      return;
    case SpikeGemmKernel::kTensorCore:
      spike_accumulate_tensor_core_kernel<<<grid(tc::kTileN, tc::kTileM), tc::kThreads, 0, stream>>>(k);
      check_launch("spike_accumulate_tensor_core_kernel");
      return;
    default:
      spike_accumulate_kernel<<<grid(events::kThreads, events::kRowsPerBlock), events::kThreads, 0, stream>>>(k);
      check_launch("spike_accumulate_kernel");
      return;
  }
}

}  // namespace cuda
}  // namespace spikeops
