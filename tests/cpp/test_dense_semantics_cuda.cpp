// The accumulate-only ops on CUDA tensors compute what the dense product on the spikes as floats computes, inf
// and NaN included, on every kernel (events, tiled events, tensor cores, auto) and rows layout. On a GPU in a
// CUDA build (skipped without one), on the CPU in a cudasim build.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "dense_semantics_cases.hpp"
#include "spikeops/spike_count.hpp"
#include "spikeops/spikeops.hpp"
#include "cuda_test_util.hpp"
#include "test_util.hpp"

using namespace spikeops;
using namespace dense_semantics;
using cuda_test::DeviceArray;
using cuda_test::on_device;

namespace {

class DenseSemanticsCuda : public ::testing::Test {
 protected:
  void SetUp() override {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) GTEST_SKIP() << "no CUDA device";
  }
};

TEST_F(DenseSemanticsCuda, SpikeAccumulateNonFiniteRowsAsTheDenseProduct) {
  for (GemmCase& c : gemm_cases()) {
    if (c.M * c.K * c.N > 2000000) continue;  // the simulator runs every thread on the CPU
    SCOPED_TRACE(c.name());
    const std::vector<float> want = gemm_reference(c);
    const int64_t tiles = (c.N + kPackedTileN - 1) / kPackedTileN;
    std::vector<float> packed(static_cast<size_t>(tiles * c.K * kPackedTileN));
    pack_rows(make_tensor_view(c.rows.data(), DType::kFloat32, {c.K, c.N}),
              make_tensor_view(packed.data(), DType::kFloat32, {tiles, c.K, kPackedTileN}));
    DeviceArray<uint8_t> spikes(c.spikes);
    DeviceArray<float> rows(c.rows), rows_packed(packed), bias(c.bias);
    for (SpikeGemmKernel kernel : {SpikeGemmKernel::kEvents, SpikeGemmKernel::kTiledEvents,
                                   SpikeGemmKernel::kTensorCore, SpikeGemmKernel::kAuto}) {
      for (bool use_packed : {false, true}) {
        for (bool out_transposed : {false, true}) {
          SCOPED_TRACE("kernel " + std::to_string(static_cast<int>(kernel)) + " packed " + std::to_string(use_packed) +
                       " out_transposed " + std::to_string(out_transposed));
          DeviceArray<float> out(std::vector<float>(static_cast<size_t>(c.M * c.N), -1.0f));
          SpikeAccumulateArgs a;
          a.spikes = on_device(make_tensor_view(nullptr, DType::kUInt8, {c.M, c.K}), spikes.data());
          a.rows = use_packed ? on_device(make_tensor_view(nullptr, DType::kFloat32, {tiles, c.K, kPackedTileN}),
                                          rows_packed.data())
                              : on_device(make_tensor_view(nullptr, DType::kFloat32, {c.K, c.N}), rows.data());
          a.rows_layout = use_packed ? RowsLayout::kPacked : RowsLayout::kRowMajor;
          a.bias = on_device(make_tensor_view(nullptr, DType::kFloat32, {c.N}), bias.data());
          a.out_transposed = out_transposed;
          a.out = on_device(out_transposed ? make_tensor_view(nullptr, DType::kFloat32, {c.N, c.M})
                                           : make_tensor_view(nullptr, DType::kFloat32, {c.M, c.N}),
                            out.data());
          a.kernel = kernel;
          a.firing_rate = c.rate;
          spike_accumulate(a);
          ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
          const std::vector<float> got = out.download();
          EXPECT_TRUE(same_values(out_transposed ? transpose(got, c.N, c.M) : got, want));
        }
      }
    }
  }
}

TEST_F(DenseSemanticsCuda, SpikeConv2dAndWeightGradNonFiniteAsTheDenseOnes) {
  for (ConvCase& c : conv_cases()) {
    SCOPED_TRACE(c.name());
    DeviceArray<uint8_t> spikes(c.spikes);
    DeviceArray<float> weight(c.weight), bias(c.bias), grad_out(c.grad_out);
    DeviceArray<float> out(std::vector<float>(static_cast<size_t>(c.N * c.O * c.OH() * c.OW()), -1.0f));
    DeviceArray<float> grad_weight(std::vector<float>(c.weight.size(), -1.0f));
    const TensorView s = on_device(make_tensor_view(nullptr, DType::kUInt8, {c.N, c.C, c.H, c.W}), spikes.data());
    SpikeConv2dArgs a;
    a.spikes = s;
    a.weight = on_device(make_tensor_view(nullptr, DType::kFloat32, {c.O, c.Cg(), c.kh, c.kw}), weight.data());
    a.bias = on_device(make_tensor_view(nullptr, DType::kFloat32, {c.O}), bias.data());
    a.out = on_device(make_tensor_view(nullptr, DType::kFloat32, {c.N, c.O, c.OH(), c.OW()}), out.data());
    a.conv = c.conv;
    spike_conv2d(a);
    SpikeConv2dWeightGradArgs g;
    g.spikes = s;
    g.grad_out = on_device(make_tensor_view(nullptr, DType::kFloat32, {c.N, c.O, c.OH(), c.OW()}), grad_out.data());
    g.grad_weight = on_device(make_tensor_view(nullptr, DType::kFloat32, {c.O, c.Cg(), c.kh, c.kw}), grad_weight.data());
    g.conv = c.conv;
    spike_conv2d_weight_grad(g);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    EXPECT_TRUE(same_values(out.download(), conv_reference(c)));
    EXPECT_TRUE(same_values(grad_weight.download(), conv_weight_grad_reference(c)));
  }
}

TEST_F(DenseSemanticsCuda, SpikeBytesConvertsAndCounts) {
  std::vector<float> host(1000, 0.0f);
  for (size_t i = 0; i < host.size(); i += 3) host[i] = 1.0f;
  host[10] = -1.0f;
  host[11] = 0.25f;
  host[500] = kNaN;
  DeviceArray<float> values(host);
  DeviceArray<uint8_t> bytes(std::vector<uint8_t>(host.size(), 7));
  const SpikeValueCounts c =
      spike_bytes(on_device(make_tensor_view(nullptr, DType::kFloat32, {1000}), values.data()),
                  on_device(make_tensor_view(nullptr, DType::kUInt8, {1000}), bytes.data()));
  const std::vector<uint8_t> got = bytes.download();
  int64_t nonzero = 0;
  for (size_t i = 0; i < host.size(); ++i) {
    EXPECT_EQ(got[i], host[i] != 0.0f ? 1 : 0);
    nonzero += host[i] != 0.0f;
  }
  EXPECT_EQ(c.nonzero, nonzero);
  EXPECT_EQ(c.negative, 1);
  EXPECT_EQ(c.invalid, 2);
}

}  // namespace
