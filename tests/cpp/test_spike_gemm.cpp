// The spike GEMM on the CPU (spike_gemm.hpp): spike_accumulate against a plain triple loop for every layout
// of spikes, rows and output, and the errors.
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "spikeops/detail/numeric.hpp"
#include "spikeops/spikeops.hpp"
#include "test_util.hpp"

using namespace spikeops;

namespace {

// One product: spikes [M, K] of 0/1 bytes, integer rows [K, N] and bias [N] (exact sums), the
// rows packed and transposed ([N, K]), and the expected sums with the bias.
struct GemmCase {
  int64_t M, K, N, tiles;
  std::vector<uint8_t> spikes;
  std::vector<float> rows, bias, packed, rows_t, expected;
};

// One-tile outputs (N <= 64) take the one-pass paths; 130 and 300 spike bytes per row: 64-byte masks and tails;
// 200 x 130 x 130 (three tiles) is also split into parts of rows when run on more threads than tiles; 1 x 300 x
// 130 has so few spikes that transposed rows are gathered from, not packed.
std::vector<GemmCase> gemm_cases() {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<GemmCase> cases;
  for (const auto& mkn : std::vector<std::vector<int64_t>>{
           {1, 1, 1}, {5, 7, 3}, {17, 130, 65}, {40, 300, 128}, {300, 200, 40}, {129, 70, 64}, {700, 130, 17},
           {200, 130, 130}, {1, 300, 130}}) {
    GemmCase c;
    const int64_t M = c.M = mkn[0], K = c.K = mkn[1], N = c.N = mkn[2];
    const int64_t tiles = c.tiles = (N + kPackedTileN - 1) / kPackedTileN;
    c.spikes.resize(M * K);
    for (auto& s : c.spikes) s = (rng() % 4 == 0) ? 1 : 0;
    c.rows.resize(K * N);
    c.bias.resize(N);
    c.packed.assign(tiles * K * kPackedTileN, -7.0f);
    c.expected.resize(M * N);
    for (auto& r : c.rows) r = static_cast<float>(static_cast<int>(uniform(rng) * 100));
    for (auto& b : c.bias) b = static_cast<float>(static_cast<int>(uniform(rng) * 100));
    for (int64_t m = 0; m < M; ++m) {
      for (int64_t n = 0; n < N; ++n) {
        float sum = c.bias[n];
        for (int64_t k = 0; k < K; ++k) sum += c.spikes[m * K + k] != 0 ? c.rows[k * N + n] : 0.0f;
        c.expected[m * N + n] = sum;
      }
    }
    c.rows_t.resize(N * K);
    for (int64_t k = 0; k < K; ++k) {
      for (int64_t n = 0; n < N; ++n) c.rows_t[n * K + k] = c.rows[k * N + n];
    }
    pack_rows(make_tensor_view(c.rows.data(), DType::kFloat32, {K, N}),
              make_tensor_view(c.packed.data(), DType::kFloat32, {tiles, K, kPackedTileN}));
    cases.push_back(std::move(c));
  }
  return cases;
}

std::string describe(const GemmCase& c) {
  return "M " + std::to_string(c.M) + " K " + std::to_string(c.K) + " N " + std::to_string(c.N);
}

// A [rows, cols] uint8 view of `data` with the given element strides.
TensorView strided_bytes(void* data, int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride) {
  TensorView v = make_tensor_view(data, DType::kUInt8, {rows, cols});
  v.strides[0] = row_stride;
  v.strides[1] = col_stride;
  return v;
}

// Both layouts of spikes, the three of rows, plain and transposed outputs, odd sizes.
TEST(SpikeGemm, MatchesPlainLoopInEveryLayout) {
  for (GemmCase& c : gemm_cases()) {
    const int64_t M = c.M, K = c.K, N = c.N;
    // Spikes also column-major: a transposed view of their [K, M] transpose in memory.
    std::vector<uint8_t> spikes_t(K * M);
    for (int64_t m = 0; m < M; ++m) {
      for (int64_t k = 0; k < K; ++k) spikes_t[k * M + m] = c.spikes[m * K + k];
    }
    for (int column_major = 0; column_major < 2; ++column_major) {
      for (RowsLayout layout : {RowsLayout::kRowMajor, RowsLayout::kPacked, RowsLayout::kTransposed}) {
        for (int transposed = 0; transposed < 2; ++transposed) {
          SCOPED_TRACE(describe(c) + " column-major spikes " + std::to_string(column_major) + " rows layout " +
                       std::to_string(static_cast<int>(layout)) + " transposed out " + std::to_string(transposed));
          std::vector<float> out(M * N, NAN);
          SpikeAccumulateArgs a;
          a.spikes = column_major ? strided_bytes(spikes_t.data(), M, K, 1, M)
                                  : make_tensor_view(c.spikes.data(), DType::kUInt8, {M, K});
          a.rows_layout = layout;
          a.rows = layout == RowsLayout::kPacked
                       ? make_tensor_view(c.packed.data(), DType::kFloat32, {c.tiles, K, kPackedTileN})
                   : layout == RowsLayout::kTransposed ? make_tensor_view(c.rows_t.data(), DType::kFloat32, {N, K})
                                                       : make_tensor_view(c.rows.data(), DType::kFloat32, {K, N});
          a.bias = make_tensor_view(c.bias.data(), DType::kFloat32, {N});
          a.out_transposed = transposed != 0;
          a.out = transposed ? make_tensor_view(out.data(), DType::kFloat32, {N, M})
                             : make_tensor_view(out.data(), DType::kFloat32, {M, N});
          spike_accumulate(a);
          bool same = true;
          for (int64_t m = 0; m < M; ++m) {
            for (int64_t n = 0; n < N; ++n) {
              same = same && out[transposed ? n * M + m : m * N + n] == c.expected[m * N + n];
            }
          }
          EXPECT_TRUE(same);
        }
      }
    }
  }
}

// 16-bit output: the float32 sums rounded once.
TEST(SpikeGemm, BFloat16OutputIsSumRoundedOnce) {
  for (GemmCase& c : gemm_cases()) {
    SCOPED_TRACE(describe(c));
    const int64_t M = c.M, K = c.K, N = c.N;
    std::vector<uint16_t> out16(M * N);
    SpikeAccumulateArgs a;
    a.spikes = make_tensor_view(c.spikes.data(), DType::kUInt8, {M, K});
    a.rows = make_tensor_view(c.rows.data(), DType::kFloat32, {K, N});
    a.out = make_tensor_view(out16.data(), DType::kBFloat16, {M, N});
    spike_accumulate(a);
    bool same = true;
    for (int64_t i = 0; i < M * N; ++i) {
      same = same && out16[i] == detail::float_to_bfloat16(c.expected[i] - c.bias[i % N]);
    }
    EXPECT_TRUE(same);
  }
}

// A valid [2, 3] x [3, 4] call on the CPU, which each error test spoils in one argument.
struct AccumulateCall {
  uint8_t s[6] = {};
  float r[12] = {}, o[8] = {};
  SpikeAccumulateArgs a;
  AccumulateCall() {
    a.spikes = make_tensor_view(s, DType::kUInt8, {2, 3});
    a.rows = make_tensor_view(r, DType::kFloat32, {3, 4});
    a.out = make_tensor_view(o, DType::kFloat32, {2, 4});
  }
  AccumulateCall(const AccumulateCall&) = delete;
  AccumulateCall& operator=(const AccumulateCall&) = delete;
};

TEST(SpikeGemm, RejectsBadTensors) {
  AccumulateCall call;
  const SpikeAccumulateArgs& a = call.a;
  spike_accumulate(a);  // the valid call
  SpikeAccumulateArgs bad = a;
  bad.rows = make_tensor_view(call.r, DType::kFloat32, {4, 3});
  EXPECT_ERROR(spike_accumulate(bad), "rows must have shape [K, N] = [3, 4]");
  bad = a;
  bad.spikes.dtype = DType::kFloat32;
  EXPECT_ERROR(spike_accumulate(bad), "spikes must have dtype uint8");
  bad = a;
  bad.out = make_tensor_view(call.o, DType::kFloat32, {3, 4});
  EXPECT_ERROR(spike_accumulate(bad), "out must have shape [2, 4]");
  bad = a;
  bad.rows_layout = RowsLayout::kPacked;
  EXPECT_ERROR(spike_accumulate(bad), "rows must be a 3-D tensor");
  bad = a;
  bad.rows_layout = RowsLayout::kTransposed;  // rows [3, 4] is [K, N], not [N, K]
  EXPECT_ERROR(spike_accumulate(bad), "rows must have shape [4, 3]");
  bad.rows = make_tensor_view(call.r, DType::kFloat32, {4, 3});
  EXPECT_NO_THROW(spike_accumulate(bad));
  bad.spikes.device = bad.rows.device = bad.out.device = Device::kCUDA;
  EXPECT_ERROR(spike_accumulate(bad), "rows_layout RowsLayout::kTransposed is read on the CPU only");
  bad = a;
  bad.rows_layout = static_cast<RowsLayout>(7);
  EXPECT_ERROR(spike_accumulate(bad), "rows_layout must be RowsLayout::kRowMajor, RowsLayout::kPacked or");
  bad = a;
  bad.bias = make_tensor_view(call.r, DType::kFloat32, {3});
  EXPECT_ERROR(spike_accumulate(bad), "bias must have shape [4]");
  bad = a;
  bad.rows.data = nullptr;
  EXPECT_ERROR(spike_accumulate(bad), "rows has a null data pointer");
  bad = a;
  bad.out.device = Device::kCUDA;
  EXPECT_ERROR(spike_accumulate(bad), "out must be on the same device as spikes");
}

TEST(SpikeGemm, ColumnMajorSpikesOnCpuOnly) {
  AccumulateCall call;
  SpikeAccumulateArgs bad = call.a;
  bad.spikes = strided_bytes(call.s, 2, 3, 1, 2);
  EXPECT_NO_THROW(spike_accumulate(bad));  // column-major spikes are fine on the CPU
  bad.spikes.device = Device::kCUDA;
  EXPECT_ERROR(spike_accumulate(bad), "spikes must be contiguous on CUDA (column-major spikes are read on the CPU only)");
  bad.spikes = strided_bytes(call.s, 2, 3, 1, 4);
  EXPECT_ERROR(spike_accumulate(bad), "spikes must be contiguous");
}

TEST(SpikeGemm, PackRowsRejectsWrongShape) {
  AccumulateCall call;
  EXPECT_ERROR(pack_rows(call.a.rows, make_tensor_view(call.r, DType::kFloat32, {1, 3, 3})),
               "packed must have shape [1, 3, 64]");
}

TEST(SpikeGemm, CpuRunsOnlyCpuKernels) {
  AccumulateCall call;
  SpikeAccumulateArgs bad = call.a;
  bad.kernel = SpikeGemmKernel::kEvents;
  EXPECT_NO_THROW(spike_accumulate(bad));  // the CPU's kernel, named
  bad.kernel = SpikeGemmKernel::kTensorCore;
  EXPECT_ERROR(spike_accumulate(bad), "kernel kTiledEvents and kTensorCore run on CUDA tensors only");
  bad.kernel = static_cast<SpikeGemmKernel>(7);
  EXPECT_ERROR(spike_accumulate(bad), "kernel must be a SpikeGemmKernel");
}

TEST(SpikeGemm, FiringRateIsAHint) {
  AccumulateCall call;
  SpikeAccumulateArgs bad = call.a;
  bad.firing_rate = 1.5;
  EXPECT_ERROR(spike_accumulate(bad), "firing_rate must be at most 1 (negative: unknown), got 1.5");
  bad.firing_rate = 0.3;
  EXPECT_NO_THROW(spike_accumulate(bad));  // a hint only: the CPU's result does not depend on it
}

}  // namespace
