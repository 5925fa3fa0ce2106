// Accumulate-only GEMM with a 1-byte spike operand.
//
// A spike is 0 or 1, so the product of a spike matrix with a weight matrix needs no multiply: each spike
// selects a row of the weight matrix, which is added, and a zero skips it. With the weight stored transposed
// (rows = W^T, [K, N]) one entry point serves both directions of a linear layer:
//   forward          y[M, N]     = bias + S[M, K] . W^T      spikes = S,   rows = W^T [K, N]
//   weight gradient  dW^T[K, N]  = S^T[K, M] . dY[M, N]      spikes = S^T, rows = dY    [M, N]
// (S^T may be passed as a column-major view of S on the CPU.)
#pragma once

#include "spikeops/config.hpp"
#include "spikeops/tensor.hpp"

namespace spikeops {

// How `rows` is laid out in memory.
enum class RowsLayout : int {
  kRowMajor = 0,  // [K, N]
  // [ceil(N / kPackedTileN), K, kPackedTileN], zero padded: column tile t of every row is contiguous, so a
  // tile's slice of all K rows is one block of memory (few pages) instead of K scattered pieces. Weights are
  // packed once (pack_rows) and reused by every call; this is the layout the forward of a layer should use.
  kPacked = 1,
};
constexpr int kPackedTileN = 64;

// out[m, n] = bias[n] + sum over k with spikes[m, k] != 0 of rows[k, n], accumulated in float32 (in an
// unspecified order: results agree with a dense float32 GEMM up to rounding, exactly when the sums are exact,
// e.g. integer weights). Any nonzero byte counts as one spike (the byte's value is not a multiplier).
struct SpikeAccumulateArgs {
  // [M, K] uint8, contiguous; on the CPU also column-major (strides [1, M]: the transpose of a contiguous
  // [K, M] tensor), so the weight gradient reads S^T from the forward's S without a transposed copy.
  TensorView spikes;
  TensorView rows;    // float32, contiguous: [K, N] (kRowMajor) or [ceil(N / 64), K, 64] (kPacked)
  RowsLayout rows_layout = RowsLayout::kRowMajor;
  TensorView bias;    // optional [N] float32
  TensorView out;     // [M, N] float32, float16 or bfloat16, contiguous; N is read from here
  // Write out^T instead: out is [N, M]. The weight gradient of a linear layer, S^T . dY, is wanted as
  // [N, K]; writing it transposed costs nothing extra (each tile's stores stay within a few cache lines).
  bool out_transposed = false;
  void* stream = nullptr;  // cudaStream_t for CUDA tensors
};

// Validates (shapes agree, dtypes, one device, K < 2^31) and runs the CPU or CUDA kernel.
// Throws spikeops::Error naming the bad argument.
void spike_accumulate(const SpikeAccumulateArgs& a);

// packed = rows [K, N] in the kPacked layout ([ceil(N / 64), K, 64], zero padded). CPU tensors only.
void pack_rows(const TensorView& rows, const TensorView& packed);

}  // namespace spikeops
