// CUDA kernel of the accumulate-only spike GEMM: out[m, :] = bias + sum of rows[k, :] over the spikes of row m.
//
// A block owns kThreads adjacent output columns (one per thread) and a range of output rows. For each row it
// compacts the row's spiking columns into shared memory, kChunk columns at a time (a block-wide prefix sum of
// per-thread counts), then every thread adds rows[k, its column] for the listed k: consecutive threads read
// consecutive floats of a row, so each warp's loads are coalesced, and zero spikes cost no load and no add.
//
// This is the straightforward event-driven kernel. Not done yet: CUTLASS-style register tiling with shared-
// memory staging of weight tiles, and a tensor-core path for dense-ish spike matrices (see the README).
#include <cstdint>

#include "backend.hpp"
#include "cuda_utils.cuh"
#include "spikeops/spike_gemm.hpp"

namespace spikeops {
namespace cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kBytesPerThread = 8;
constexpr int kChunk = kThreads * kBytesPerThread;  // spike columns examined per compaction round
constexpr int kRowsPerBlock = 8;

struct SpikeAccumulateKernelArgs {
  const uint8_t* spikes;
  const float* rows;
  const float* bias;
  void* out;
  DType out_dtype;
  bool out_transposed;
  int64_t M, K, N;
  int64_t tile_stride, row_stride;  // rows[k, n] is at rows[tile_stride * (n / 64) + row_stride * k + n % 64]
};

__global__ void __launch_bounds__(kThreads) spike_accumulate_kernel(const SpikeAccumulateKernelArgs a) {
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
        __syncthreads();  // idx and warp_totals are rewritten by the next chunk
      }
      if (n < a.N) {
        const int64_t at = a.out_transposed ? n * a.M + m : m * a.N + n;
        store_from_float(a.out_dtype, a.out, at, a.bias != nullptr ? acc + a.bias[n] : acc);
      }
    }
  }
}

}  // namespace

void spike_accumulate(const SpikeAccumulateArgs& a) {
  SpikeAccumulateKernelArgs k{static_cast<const uint8_t*>(a.spikes.data),
                                    static_cast<const float*>(a.rows.data),
                                    a.bias.defined() ? static_cast<const float*>(a.bias.data) : nullptr,
                                    a.out.data,
                                    a.out.dtype,
                                    a.out_transposed,
                                    a.spikes.shape[0],
                                    a.spikes.shape[1],
                                    a.out.shape[a.out_transposed ? 0 : 1],
                                    0,
                                    0};
  const bool packed = a.rows_layout == RowsLayout::kPacked;
  k.tile_stride = packed ? k.K * kPackedTileN : kPackedTileN;
  k.row_stride = packed ? kPackedTileN : k.N;
  const int64_t col_blocks = (k.N + kThreads - 1) / kThreads;
  const int64_t row_blocks = (k.M + kRowsPerBlock - 1) / kRowsPerBlock;
  if (col_blocks > kMaxBlocks) {
    throw Error("spike_accumulate: rows has too many columns for one launch (" + std::to_string(k.N) + ")");
  }
  DeviceGuard guard(a.spikes.device_index);
  const dim3 grid(static_cast<unsigned int>(col_blocks),
                  static_cast<unsigned int>(row_blocks < 65535 ? row_blocks : 65535));
  spike_accumulate_kernel<<<grid, kThreads, 0, as_stream(a.stream)>>>(k);
  check_launch("spike_accumulate_kernel");
}

}  // namespace cuda
}  // namespace spikeops
