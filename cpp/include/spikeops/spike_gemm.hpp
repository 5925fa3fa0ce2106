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
  // [N, K] row-major: the transpose of `rows`, which is how a linear layer stores its weight. CPU only. The
  // kernel packs each column tile into a scratch buffer of K * 256 bytes as it starts on it (or, for fewer
  // than K/2 spikes in all, sums straight from the [N, K] rows), so the weight is read where it lies, at every
  // call: no packed copy outlives the call, and none can go stale when the caller writes the weight.
  kTransposed = 2,
};
constexpr int kPackedTileN = 64;

// Which kernel computes the product. All give the same sums up to float32 rounding order. kAuto asks the
// policy (kernel_policy.hpp: choose_spike_gemm_kernel) and runs one of the core's kernels.
enum class SpikeGemmKernel : int {
  kAuto = 0,    // chosen from firing_rate, the shape and the device (kernel_policy.hpp)
  kEvents = 1,  // event-driven: each output row walks its spikes and adds the selected rows (CPU and CUDA)
  // CUDA: event-driven on 64 x 64 output tiles; each 32-row slice of the rows' tile is staged once in shared
  // memory and read by all 64 output rows, a warp walking the set bits of its rows' spike masks.
  kTiledEvents = 2,
  // CUDA, compute capability 8.0+: dense tensor-core GEMM (WMMA, bf16 x bf16 -> float32). Spikes enter as
  // bf16 0/1 and each float32 row value as the sum of up to three bf16 terms (hi + mid + lo, 24 bits: the
  // float exactly; terms that are all zero in a tile are skipped, so bf16 weights cost one). Zero spikes are
  // multiplied like the rest: this is the path for dense-ish spike matrices. Values below 2^-110 in magnitude
  // lose bits beyond bf16's subnormal range (an error under 2^-133 each).
  kTensorCore = 3,
  // A dense GEMM on the spikes as floats. On CUDA that is kTensorCore. On the CPU the core has no BLAS, so
  // spike_accumulate refuses it; the policy's kDense for the CPU tells callers that have a BLAS GEMM to use it.
  kDense = 4,
};

// out[m, n] = bias[n] + sum over k of spikes[m, k] * rows[k, n] for spikes of 0 or 1, computed by adding the
// rows that spikes select, in float32 (in an unspecified order: results agree with a dense float32 GEMM up to
// rounding, exactly when the sums are exact, e.g. integer weights). Every kernel computes what that dense
// product computes for inf and NaN too (IEEE: 0 x inf = 0 x NaN = NaN): an inf or NaN anywhere in rows[:, n]
// makes out[m, n] NaN for every m whose spikes do not select exactly the infinities (a selected inf of one
// sign gives that inf), whatever the firing rate or kernel. A byte above 1 is not a spike: on the CPU the call
// throws spikeops::Error naming it; on CUDA the bytes are not read back (that would wait for the stream), so
// the caller must pass 0/1 (the Python ops check them).
struct SpikeAccumulateArgs {
  // [M, K] uint8, contiguous; on the CPU also column-major (strides [1, M]: the transpose of a contiguous
  // [K, M] tensor), so the weight gradient reads S^T from the forward's S without a transposed copy.
  TensorView spikes;
  // float32, contiguous: [K, N] (kRowMajor), [ceil(N / 64), K, 64] (kPacked) or [N, K] (kTransposed)
  TensorView rows;
  RowsLayout rows_layout = RowsLayout::kRowMajor;
  TensorView bias;    // optional [N] float32
  TensorView out;     // [M, N] float32, float16 or bfloat16, contiguous; N is read from here
  // Write out^T instead: out is [N, M]. The weight gradient of a linear layer, S^T . dY, is wanted as
  // [N, K]; it is written transposed directly (the CPU kernel gathers 64 rows at a time and streams large
  // float32 outputs past the caches; the CUDA kernels stage their tiles in shared memory), not copied after.
  bool out_transposed = false;
  SpikeGemmKernel kernel = SpikeGemmKernel::kAuto;  // kTiledEvents, kTensorCore and kDense: CUDA only
  // The caller's estimate of the fraction of nonzero spikes, in [0, 1]; negative: unknown. Only kAuto reads it.
  double firing_rate = -1.0;
  void* stream = nullptr;  // cudaStream_t for CUDA tensors
};

// Validates (shapes agree, dtypes, one device, K < 2^31; on the CPU, bytes of 0/1) and runs the CPU or CUDA
// kernel. Throws spikeops::Error naming the bad argument.
void spike_accumulate(const SpikeAccumulateArgs& a);

// packed = rows [K, N] in the kPacked layout ([ceil(N / 64), K, 64], zero padded). CPU tensors only.
void pack_rows(const TensorView& rows, const TensorView& packed);

}  // namespace spikeops
