// The accumulate-only ops compute what the dense product on the spikes as floats computes, inf and NaN
// included, on every CPU path (each rows layout, transposed output, column-major spikes, firing rates from 0 to
// 1), and refuse bytes that are not spikes.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "dense_semantics_cases.hpp"
#include "spikeops/detail/numeric.hpp"
#include "spikeops/spike_count.hpp"
#include "spikeops/spikeops.hpp"
#include "test_util.hpp"

using namespace spikeops;
using namespace dense_semantics;

namespace {

std::vector<float> run_gemm(GemmCase& c, RowsLayout layout, bool out_transposed, bool column_major_spikes) {
  std::vector<float> rows = c.rows, out(static_cast<size_t>(c.M * c.N), -1.0f);
  std::vector<uint8_t> spikes = c.spikes;
  SpikeAccumulateArgs a;
  a.spikes = make_tensor_view(spikes.data(), DType::kUInt8, {c.M, c.K});
  if (column_major_spikes) {  // memory holds the [K, M] transpose
    for (int64_t m = 0; m < c.M; ++m) {
      for (int64_t k = 0; k < c.K; ++k) spikes[static_cast<size_t>(k * c.M + m)] = c.spikes[static_cast<size_t>(m * c.K + k)];
    }
    a.spikes.strides[0] = 1;
    a.spikes.strides[1] = c.M;
  }
  const int64_t tiles = (c.N + kPackedTileN - 1) / kPackedTileN;
  if (layout == RowsLayout::kPacked) {
    rows.assign(static_cast<size_t>(tiles * c.K * kPackedTileN), 0.0f);
    pack_rows(make_tensor_view(c.rows.data(), DType::kFloat32, {c.K, c.N}),
              make_tensor_view(rows.data(), DType::kFloat32, {tiles, c.K, kPackedTileN}));
    a.rows = make_tensor_view(rows.data(), DType::kFloat32, {tiles, c.K, kPackedTileN});
  } else if (layout == RowsLayout::kTransposed) {
    rows = transpose(c.rows, c.K, c.N);
    a.rows = make_tensor_view(rows.data(), DType::kFloat32, {c.N, c.K});
  } else {
    a.rows = make_tensor_view(rows.data(), DType::kFloat32, {c.K, c.N});
  }
  a.rows_layout = layout;
  a.bias = make_tensor_view(c.bias.data(), DType::kFloat32, {c.N});
  a.out_transposed = out_transposed;
  a.out = out_transposed ? make_tensor_view(out.data(), DType::kFloat32, {c.N, c.M})
                         : make_tensor_view(out.data(), DType::kFloat32, {c.M, c.N});
  spike_accumulate(a);
  return out_transposed ? transpose(out, c.N, c.M) : out;
}

TEST(DenseSemantics, SpikeAccumulateNonFiniteRowsAsTheDenseProduct) {
  for (GemmCase& c : gemm_cases()) {
    SCOPED_TRACE(c.name());
    const std::vector<float> want = gemm_reference(c);
    for (RowsLayout layout : {RowsLayout::kRowMajor, RowsLayout::kPacked, RowsLayout::kTransposed}) {
      for (bool out_transposed : {false, true}) {
        for (bool column_major : {false, true}) {
          SCOPED_TRACE("layout " + std::to_string(static_cast<int>(layout)) + " out_transposed " +
                       std::to_string(out_transposed) + " column-major spikes " + std::to_string(column_major));
          EXPECT_TRUE(same_values(run_gemm(c, layout, out_transposed, column_major), want));
        }
      }
    }
  }
}

TEST(DenseSemantics, SpikeAccumulateFiniteRowsUnchanged) {
  for (GemmCase& c : gemm_cases()) {
    SCOPED_TRACE(c.name());
    for (float& r : c.rows) r = std::isfinite(r) ? r : 0.5f;
    EXPECT_TRUE(same_values(run_gemm(c, RowsLayout::kTransposed, false, false), gemm_reference(c)));
  }
}

TEST(DenseSemantics, SpikeAccumulateRejectsBytesAboveOne) {
  uint8_t s[6] = {0, 1, 0, 1, 2, 0};
  float r[12] = {}, o[8] = {};
  SpikeAccumulateArgs a;
  a.spikes = make_tensor_view(s, DType::kUInt8, {2, 3});
  a.rows = make_tensor_view(r, DType::kFloat32, {3, 4});
  a.out = make_tensor_view(o, DType::kFloat32, {2, 4});
  EXPECT_ERROR(spike_accumulate(a), "spike_accumulate: spikes must hold spikes, bytes of 0 or 1, found a byte of 2");
  s[4] = 255;
  EXPECT_ERROR(spike_accumulate(a), "found a byte of 255");
  s[4] = 1;
  EXPECT_NO_THROW(spike_accumulate(a));
}

SpikeConv2dArgs conv_args(ConvCase& c, float* out) {
  SpikeConv2dArgs a;
  a.spikes = make_tensor_view(c.spikes.data(), DType::kUInt8, {c.N, c.C, c.H, c.W});
  a.weight = make_tensor_view(c.weight.data(), DType::kFloat32, {c.O, c.Cg(), c.kh, c.kw});
  a.bias = make_tensor_view(c.bias.data(), DType::kFloat32, {c.O});
  a.out = make_tensor_view(out, DType::kFloat32, {c.N, c.O, c.OH(), c.OW()});
  a.conv = c.conv;
  return a;
}

SpikeConv2dWeightGradArgs weight_grad_args(ConvCase& c, float* grad_weight) {
  SpikeConv2dWeightGradArgs a;
  a.spikes = make_tensor_view(c.spikes.data(), DType::kUInt8, {c.N, c.C, c.H, c.W});
  a.grad_out = make_tensor_view(c.grad_out.data(), DType::kFloat32, {c.N, c.O, c.OH(), c.OW()});
  a.grad_weight = make_tensor_view(grad_weight, DType::kFloat32, {c.O, c.Cg(), c.kh, c.kw});
  a.conv = c.conv;
  return a;
}

TEST(DenseSemantics, SpikeConv2dNonFiniteWeightAsTheDenseConvolution) {
  for (ConvCase& c : conv_cases()) {
    SCOPED_TRACE(c.name());
    std::vector<float> out(static_cast<size_t>(c.N * c.O * c.OH() * c.OW()));
    spike_conv2d(conv_args(c, out.data()));
    EXPECT_TRUE(same_values(out, conv_reference(c)));
    // the packed weight layout (a model's layer)
    std::vector<float> packed(static_cast<size_t>(c.conv.groups * c.kh * c.kw * c.Cg() *
                                                  conv2d_packed_channels(c.O / c.conv.groups)));
    pack_conv2d_weight(make_tensor_view(c.weight.data(), DType::kFloat32, {c.O, c.Cg(), c.kh, c.kw}),
                       make_tensor_view(packed.data(), DType::kFloat32,
                                        {c.conv.groups, c.kh, c.kw, c.Cg(), conv2d_packed_channels(c.O / c.conv.groups)}),
                       c.conv.groups);
    SpikeConv2dArgs a = conv_args(c, out.data());
    a.weight = make_tensor_view(packed.data(), DType::kFloat32,
                                {c.conv.groups, c.kh, c.kw, c.Cg(), conv2d_packed_channels(c.O / c.conv.groups)});
    a.weight_layout = ConvWeightLayout::kPacked;
    std::fill(out.begin(), out.end(), -1.0f);
    spike_conv2d(a);
    EXPECT_TRUE(same_values(out, conv_reference(c)));
  }
}

TEST(DenseSemantics, SpikeConv2dWeightGradNonFiniteGradOutAsTheDenseGradient) {
  for (ConvCase& c : conv_cases()) {
    SCOPED_TRACE(c.name());
    std::vector<float> grad_weight(c.weight.size());
    spike_conv2d_weight_grad(weight_grad_args(c, grad_weight.data()));
    EXPECT_TRUE(same_values(grad_weight, conv_weight_grad_reference(c)));
  }
}

TEST(DenseSemantics, SpikeConv2dRejectsBytesAboveOne) {
  ConvCase c = conv_cases()[2];
  c.spikes[7] = 3;
  std::vector<float> out(static_cast<size_t>(c.N * c.O * c.OH() * c.OW())), grad_weight(c.weight.size());
  EXPECT_ERROR(spike_conv2d(conv_args(c, out.data())), "spike_conv2d: spikes must hold spikes, bytes of 0 or 1, found a byte of 3");
  EXPECT_ERROR(spike_conv2d_weight_grad(weight_grad_args(c, grad_weight.data())),
               "spike_conv2d_weight_grad: spikes must hold spikes, bytes of 0 or 1, found a byte of 3");
}

TEST(SpikeBytes, ConvertsAndCountsSignedAndInvalidValues) {
  std::vector<float> values = {0.0f, 1.0f, -1.0f, 0.5f, 2.0f, kNaN, kInf, 1.0f, 0.0f, -0.0f};
  std::vector<uint8_t> bytes(values.size(), 7);
  const SpikeValueCounts c = spike_bytes(make_tensor_view(values.data(), DType::kFloat32, {2, 5}),
                                         make_tensor_view(bytes.data(), DType::kUInt8, {2, 5}));
  EXPECT_EQ(bytes, (std::vector<uint8_t>{0, 1, 1, 1, 1, 1, 1, 1, 0, 0}));
  EXPECT_EQ(c.nonzero, 7);
  EXPECT_EQ(c.negative, 1);
  EXPECT_EQ(c.invalid, 4);
  std::vector<uint16_t> bf16;
  for (float v : values) bf16.push_back(detail::float_to_bfloat16(v));
  const SpikeValueCounts b = spike_bytes(make_tensor_view(bf16.data(), DType::kBFloat16, {10}),
                                         make_tensor_view(bytes.data(), DType::kUInt8, {10}));
  EXPECT_EQ(b.nonzero, 7);
  EXPECT_EQ(b.negative, 1);
  EXPECT_EQ(b.invalid, 4);
  EXPECT_ERROR(spike_bytes(make_tensor_view(bytes.data(), DType::kUInt8, {10}),
                           make_tensor_view(bytes.data(), DType::kUInt8, {10})),
               "spike_bytes: values must have dtype");
}

}  // namespace
