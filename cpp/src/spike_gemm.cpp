// Public entry point of the accumulate-only spike GEMM: validation, then the CPU or CUDA kernel.
#include "spikeops/spike_gemm.hpp"

#include <algorithm>
#include <cstdint>
#include <string>
#include <limits>

#include "backend.hpp"
#include "dense_semantics.hpp"
#include "validate.hpp"

namespace spikeops {

namespace {

// The transpose of a contiguous [K, M] tensor (strides [1, M]) that is not also row-major.
bool column_major_2d(const TensorView& t) {
  return t.ndim == 2 && t.shape[0] > 1 && t.shape[1] > 1 && t.strides[0] == 1 && t.strides[1] == t.shape[0];
}

}  // namespace

void check_spike_bytes(const validate::Checker& check, const TensorView& spikes) {
  const uint8_t largest = cpu::max_byte(static_cast<const uint8_t*>(spikes.data), spikes.numel());
  if (largest > 1) {
    check.fail("spikes", "must hold spikes, bytes of 0 or 1, found a byte of " + std::to_string(largest) +
                             " (values that are not spikes need a dense product; encode them as spikes first)");
  }
}

void spike_accumulate(const SpikeAccumulateArgs& a) {
  validate::Checker check("spike_accumulate");
  if (column_major_2d(a.spikes)) {
    if (a.spikes.device == Device::kCUDA) {
      check.fail("spikes", "must be contiguous on CUDA (column-major spikes are read on the CPU only), got strides " +
                               std::to_string(a.spikes.strides[0]) + ", " + std::to_string(a.spikes.strides[1]));
    }
    TensorView row_major = a.spikes;  // the other checks (dtype, data) on the same tensor seen contiguous
    row_major.strides[0] = a.spikes.shape[1];
    row_major.strides[1] = 1;
    check.tensor(row_major, "spikes", 2, {DType::kUInt8});
  } else {
    check.tensor(a.spikes, "spikes", 2, {DType::kUInt8});
  }
  const int64_t M = a.spikes.shape[0], K = a.spikes.shape[1];
  // Spike indices are kept in 32 bits.
  if (K > std::numeric_limits<int32_t>::max()) check.fail("spikes", "must have fewer than 2^31 columns");
  check.tensor(a.out, "out", 2, {DType::kFloat32, DType::kFloat16, DType::kBFloat16});
  const int64_t N = a.out.shape[a.out_transposed ? 0 : 1];
  if (a.out_transposed) {
    check.shape_is(a.out, "out", {N, M});
  } else {
    check.shape_is(a.out, "out", {M, N});
  }
  check.same_device(a.out, "out", a.spikes, "spikes");
  if (a.rows_layout == RowsLayout::kRowMajor) {
    check.tensor(a.rows, "rows", 2, {DType::kFloat32});
    if (a.rows.shape[0] != K || a.rows.shape[1] != N) {
      check.fail("rows", "must have shape [K, N] = [" + std::to_string(K) + ", " + std::to_string(N) +
                             "] for spikes " + a.spikes.shape_string() + " and out " + a.out.shape_string() +
                             ", got " + a.rows.shape_string());
    }
  } else if (a.rows_layout == RowsLayout::kPacked) {
    check.tensor(a.rows, "rows", 3, {DType::kFloat32});
    check.shape_is(a.rows, "rows", {(N + kPackedTileN - 1) / kPackedTileN, K, kPackedTileN});
  } else if (a.rows_layout == RowsLayout::kTransposed) {
    check.tensor(a.rows, "rows", 2, {DType::kFloat32});
    check.shape_is(a.rows, "rows", {N, K});
    if (a.rows.device != Device::kCPU) {
      check.fail("rows_layout", "RowsLayout::kTransposed is read on the CPU only; pack CUDA rows (kPacked)");
    }
  } else {
    check.fail("rows_layout", "must be RowsLayout::kRowMajor, RowsLayout::kPacked or RowsLayout::kTransposed");
  }
  check.same_device(a.rows, "rows", a.spikes, "spikes");
  if (a.bias.defined()) {
    check.tensor(a.bias, "bias", 1, {DType::kFloat32});
    check.shape_is(a.bias, "bias", {N});
    check.same_device(a.bias, "bias", a.spikes, "spikes");
  }
  switch (a.kernel) {
    case SpikeGemmKernel::kAuto:
    case SpikeGemmKernel::kEvents:
      break;
    case SpikeGemmKernel::kTiledEvents:
    case SpikeGemmKernel::kTensorCore:
      if (a.spikes.device != Device::kCUDA) {
        check.fail("kernel", "kTiledEvents and kTensorCore run on CUDA tensors only; use kAuto or kEvents on the CPU");
      }
      break;
    case SpikeGemmKernel::kDense:
      if (a.spikes.device != Device::kCUDA) {
        check.fail("kernel", "kDense has no CPU kernel in the core (it has no BLAS): multiply the spikes as floats "
                             "with a BLAS GEMM, or use kAuto or kEvents on the CPU");
      }
      break;
    default:
      check.fail("kernel", "must be a SpikeGemmKernel (kAuto, kEvents, kTiledEvents, kTensorCore or kDense)");
  }
  if (!(a.firing_rate <= 1.0)) {  // also rejects NaN
    check.fail("firing_rate", "must be at most 1 (negative: unknown), got " + std::to_string(a.firing_rate));
  }
  if (M == 0 || N == 0) return;
  if (a.spikes.device == Device::kCUDA) {
    cuda::spike_accumulate(a);
    cuda::dense_nonfinite_columns(a);
  } else {
    check_spike_bytes(check, a.spikes);
    cpu::spike_accumulate(a);
    cpu::dense_nonfinite_columns(a);
  }
}

void pack_rows(const TensorView& rows, const TensorView& packed) {
  validate::Checker check("pack_rows");
  check.tensor(rows, "rows", 2, {DType::kFloat32});
  const int64_t K = rows.shape[0], N = rows.shape[1], tiles = (N + kPackedTileN - 1) / kPackedTileN;
  check.tensor(packed, "packed", 3, {DType::kFloat32});
  check.shape_is(packed, "packed", {tiles, K, kPackedTileN});
  if (rows.device != Device::kCPU) check.fail("rows", "must be on the CPU");
  check.same_device(packed, "packed", rows, "rows");
  const float* src = static_cast<const float*>(rows.data);
  float* dst = static_cast<float*>(packed.data);
  for (int64_t t = 0; t < tiles; ++t) {
    const int64_t n0 = t * kPackedTileN, nt = std::min<int64_t>(kPackedTileN, N - n0);
    for (int64_t k = 0; k < K; ++k) {
      float* d = dst + (t * K + k) * kPackedTileN;
      for (int64_t j = 0; j < kPackedTileN; ++j) d[j] = j < nt ? src[k * N + n0 + j] : 0.0f;
    }
  }
}

}  // namespace spikeops
