// The CUDA kernels through the public API: the spike GEMM's three kernels against a plain loop (exact on
// integer values, within rounding on floats), the neurons and the surrogates against the CPU kernels (the
// same float32 formulas: spikes and potentials bit for bit, gradients within rounding). Built when the
// library has CUDA; runs on a GPU, or on the CPU in a cudasim build (SPIKEOPS_CUDA_SIM, tests/cudasim);
// skipped in a CUDA build on a machine without a GPU.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "spikeops/detail/numeric.hpp"
#include "spikeops/spikeops.hpp"
#include "neuron_model_cases.hpp"
#include "test_util.hpp"

using namespace spikeops;

namespace {

// A failed allocation or copy ends the test that made it (gtest reports the exception) and no other.
void check_cuda(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

// A device copy of a host vector, starting `offset` elements into its allocation and followed by `tail` more
// (an offset of 1 leaves the data misaligned for 16-byte accesses, which the kernels must detect and serve
// with narrower loads). With no tail the data ends where the allocation does, and the simulator faults on a
// read past it.
template <typename T>
class DeviceArray {
 public:
  explicit DeviceArray(const std::vector<T>& host, std::size_t offset = 0, std::size_t tail = 0) : size_(host.size()) {
    check_cuda(cudaMalloc(&base_, (size_ + offset + tail) * sizeof(T)), "cudaMalloc");
    data_ = static_cast<T*>(base_) + offset;
    if (size_ > 0) {
      check_cuda(cudaMemcpy(data_, host.data(), size_ * sizeof(T), cudaMemcpyHostToDevice), "cudaMemcpy");
    }
  }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  ~DeviceArray() { cudaFree(base_); }
  std::vector<T> download() const {
    std::vector<T> host(size_);
    if (size_ > 0) {
      check_cuda(cudaMemcpy(host.data(), data_, size_ * sizeof(T), cudaMemcpyDeviceToHost), "cudaMemcpy");
    }
    return host;
  }
  T* data() const { return data_; }

 private:
  void* base_ = nullptr;
  T* data_ = nullptr;
  std::size_t size_;
};

TensorView on_device(void* p, DType dtype, std::initializer_list<int64_t> shape) {
  return make_tensor_view(p, dtype, shape, Device::kCUDA, 0);
}

float to_float(DType dtype, uint16_t v) {
  return dtype == DType::kFloat16 ? detail::half_to_float(v) : detail::bfloat16_to_float(v);
}
uint16_t from_float(DType dtype, float f) {
  return dtype == DType::kFloat16 ? detail::float_to_half(f) : detail::float_to_bfloat16(f);
}

// Every test here needs a device: without one (a CUDA build on a machine without a GPU) they are skipped.
class CudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) GTEST_SKIP() << "no CUDA device";
  }
};

// ---- Spike GEMM ----

struct GemmCase {
  int64_t M, K, N;
  double rate;
  bool integers;  // integer rows and bias: every sum exact in float32, in any order
};

// Tails of every tile (64 columns and rows, 32-deep K steps, 16-byte spike loads, 128-column blocks), one
// K of a multiple of 16 (aligned spike rows), K = 0, and the boundaries of the firing rates.
const GemmCase kGemmCases[] = {
    {1, 1, 1, 1.0, true},      {5, 7, 3, 0.5, true},     {17, 130, 65, 0.1, true}, {64, 32, 64, 0.3, true},
    {65, 48, 129, 0.05, true}, {130, 96, 200, 0.0, true}, {3, 0, 5, 0.5, true},     {70, 100, 70, 0.6, false},
    {33, 160, 131, 1.0, false},
};
constexpr int kNumGemmCases = sizeof(kGemmCases) / sizeof(kGemmCases[0]);

// One case's operands and the exact sums (double) with the sums of the terms' magnitudes.
struct GemmData {
  std::vector<uint8_t> spikes;
  std::vector<float> rows, bias, packed;
  std::vector<double> expected, magnitude;
};

// The operands of every case, drawn from one generator in the order of kGemmCases, so that each case sees
// the same values whichever cases run.
std::vector<GemmData> gemm_data() {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<GemmData> all;
  for (const GemmCase& c : kGemmCases) {
    const int64_t M = c.M, K = c.K, N = c.N, tiles = (N + kPackedTileN - 1) / kPackedTileN;
    GemmData d;
    d.spikes.resize(M * K);
    for (auto& s : d.spikes) s = uniform(rng) < c.rate ? 1 : 0;
    d.rows.resize(K * N);
    d.bias.resize(N);
    d.packed.assign(tiles * K * kPackedTileN, 0.0f);
    for (auto& r : d.rows) r = c.integers ? static_cast<float>(static_cast<int>(rng() % 201) - 100) : normal(rng);
    for (auto& b : d.bias) b = c.integers ? static_cast<float>(static_cast<int>(rng() % 21) - 10) : normal(rng);
    for (int64_t t = 0; t < tiles; ++t) {
      for (int64_t k = 0; k < K; ++k) {
        for (int64_t j = 0; j < kPackedTileN && t * kPackedTileN + j < N; ++j) {
          d.packed[(t * K + k) * kPackedTileN + j] = d.rows[k * N + t * kPackedTileN + j];
        }
      }
    }
    d.expected.assign(M * N, 0.0);
    d.magnitude.assign(M * N, 0.0);
    for (int64_t m = 0; m < M; ++m) {
      for (int64_t k = 0; k < K; ++k) {
        if (d.spikes[m * K + k] == 0) continue;
        for (int64_t n = 0; n < N; ++n) {
          d.expected[m * N + n] += d.rows[k * N + n];
          d.magnitude[m * N + n] += std::fabs(d.rows[k * N + n]);
        }
      }
    }
    all.push_back(std::move(d));
  }
  return all;
}

// Runs one product on the device and compares it with the expected [M, N] sums; 16-bit outputs must be the
// float32 sum rounded once.
::testing::AssertionResult check_product(const GemmCase& c, const GemmData& d, SpikeGemmKernel kernel,
                                         bool use_packed, bool transposed, bool with_bias, DType out_dtype,
                                         std::size_t offset) {
  const int64_t M = c.M, K = c.K, N = c.N, tiles = (N + kPackedTileN - 1) / kPackedTileN;
  DeviceArray<uint8_t> d_spikes(d.spikes, offset);
  DeviceArray<float> d_rows(use_packed ? d.packed : d.rows, offset);
  DeviceArray<float> d_bias(d.bias);
  const std::size_t out_bytes = out_dtype == DType::kFloat32 ? 4 : 2;
  DeviceArray<uint8_t> d_out(std::vector<uint8_t>(static_cast<std::size_t>(M * N) * out_bytes, 0xff));
  SpikeAccumulateArgs a;
  a.spikes = on_device(d_spikes.data(), DType::kUInt8, {M, K});
  a.rows_layout = use_packed ? RowsLayout::kPacked : RowsLayout::kRowMajor;
  a.rows = use_packed ? on_device(d_rows.data(), DType::kFloat32, {tiles, K, kPackedTileN})
                      : on_device(d_rows.data(), DType::kFloat32, {K, N});
  if (with_bias) a.bias = on_device(d_bias.data(), DType::kFloat32, {N});
  a.out_transposed = transposed;
  a.out = transposed ? on_device(d_out.data(), out_dtype, {N, M}) : on_device(d_out.data(), out_dtype, {M, N});
  a.kernel = kernel;
  a.firing_rate = c.rate;
  spike_accumulate(a);
  const std::vector<uint8_t> out = d_out.download();
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < N; ++n) {
      const int64_t at = transposed ? n * M + m : m * N + n;
      const double want = d.expected[m * N + n] + (with_bias ? d.bias[n] : 0.0);
      double got;
      if (out_dtype == DType::kFloat32) {
        float f;
        std::memcpy(&f, out.data() + 4 * at, 4);
        got = f;
      } else {
        uint16_t h;
        std::memcpy(&h, out.data() + 2 * at, 2);
        // The float32 sum rounded once: exact sums give exactly the rounded value.
        if (c.integers) {
          if (h != from_float(out_dtype, static_cast<float>(want))) {
            return ::testing::AssertionFailure() << "[" << m << ", " << n << "]: got " << to_float(out_dtype, h)
                                                 << ", want " << want << " rounded once";
          }
          continue;
        }
        got = to_float(out_dtype, h);
      }
      // Float weights: float32 rounding in some order (tensor cores may truncate about an ulp per MMA, some
      // 30 MMAs at K = 160), relative to the sum of the terms' magnitudes; a wrong index is off by O(1).
      const double tol = c.integers && out_dtype == DType::kFloat32
                             ? 0.0
                             : (out_dtype == DType::kFloat32 ? 1e-5 : 1e-2) * (d.magnitude[m * N + n] + std::fabs(want)) + 1e-30;
      if (!(std::fabs(got - want) <= tol)) {
        return ::testing::AssertionFailure() << "[" << m << ", " << n << "]: got " << got << ", want " << want;
      }
    }
  }
  return ::testing::AssertionSuccess();
}

// One test case per shape: every kernel, both rows layouts, plain and transposed output, aligned and
// misaligned operands, every output dtype, with and without bias.
class CudaSpikeGemm : public CudaTest, public ::testing::WithParamInterface<int> {};

TEST_P(CudaSpikeGemm, KernelsMatchPlainLoop) {
  const GemmCase& c = kGemmCases[GetParam()];
  const std::vector<GemmData> all = gemm_data();
  const GemmData& d = all[std::size_t(GetParam())];
  const SpikeGemmKernel kernels[] = {SpikeGemmKernel::kEvents, SpikeGemmKernel::kTiledEvents,
                                     SpikeGemmKernel::kTensorCore, SpikeGemmKernel::kAuto};
  for (SpikeGemmKernel kernel : kernels) {
    for (int use_packed = 0; use_packed < 2; ++use_packed) {
      for (int transposed = 0; transposed < 2; ++transposed) {
        for (std::size_t offset : {std::size_t(0), std::size_t(1)}) {
          for (DType out_dtype : {DType::kFloat32, DType::kBFloat16, DType::kFloat16}) {
            const bool with_bias = (use_packed + transposed + static_cast<int>(offset)) % 2 == 0;
            EXPECT_TRUE(check_product(c, d, kernel, use_packed, transposed, with_bias, out_dtype, offset))
                << "rate " << c.rate << ": kernel " << static_cast<int>(kernel) << " packed " << use_packed
                << " transposed " << transposed << " offset " << offset << " dtype " << dtype_name(out_dtype)
                << " bias " << with_bias;
          }
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaSpikeGemm, ::testing::Range(0, kNumGemmCases),
                         [](const ::testing::TestParamInfo<int>& info) {
                           const GemmCase& c = kGemmCases[info.param];
                           return "M" + std::to_string(c.M) + "_K" + std::to_string(c.K) + "_N" + std::to_string(c.N);
                         });

// ---- Neurons and surrogates ----

// n values as `dtype` bytes (float32 or a 16-bit type), from float32 values.
std::vector<uint8_t> encode(const std::vector<float>& v, DType dtype) {
  std::vector<uint8_t> out(v.size() * dtype_size(dtype));
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (dtype == DType::kFloat32) {
      std::memcpy(out.data() + 4 * i, &v[i], 4);
    } else if (dtype == DType::kUInt8) {
      out[i] = static_cast<uint8_t>(v[i]);
    } else {
      const uint16_t h = from_float(dtype, v[i]);
      std::memcpy(out.data() + 2 * i, &h, 2);
    }
  }
  return out;
}

std::vector<float> decode(const std::vector<uint8_t>& bytes, DType dtype) {
  const std::size_t n = bytes.size() / dtype_size(dtype);
  std::vector<float> out(n);
  for (std::size_t i = 0; i < n; ++i) {
    if (dtype == DType::kFloat32) {
      std::memcpy(&out[i], bytes.data() + 4 * i, 4);
    } else if (dtype == DType::kUInt8) {
      out[i] = bytes[i];
    } else {
      uint16_t h;
      std::memcpy(&h, bytes.data() + 2 * i, 2);
      out[i] = to_float(dtype, h);
    }
  }
  return out;
}

::testing::AssertionResult close(const char* what, const std::vector<float>& a, const std::vector<float>& b,
                                 float rtol, float atol) {
  if (a.size() != b.size()) {
    return ::testing::AssertionFailure() << what << ": " << a.size() << " values vs " << b.size();
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!(std::fabs(a[i] - b[i]) <= atol + rtol * std::fabs(b[i]))) {
      return ::testing::AssertionFailure() << what << "[" << i << "]: " << a[i] << " vs " << b[i];
    }
  }
  return ::testing::AssertionSuccess();
}

// Host and device buffers of one tensor argument, so that one call can be made on both.
struct Buffer {
  DType dtype;
  std::vector<uint8_t> host;
  DeviceArray<uint8_t> device;
  Buffer(DType d, std::vector<uint8_t> bytes, std::size_t offset, std::size_t tail = 0)
      : dtype(d), host(bytes), device(bytes, offset * dtype_size(d), tail * dtype_size(d)) {}
  TensorView view(bool on_gpu, std::initializer_list<int64_t> shape) {
    return on_gpu ? on_device(device.data(), dtype, shape) : make_tensor_view(host.data(), dtype, shape);
  }
};

// One configuration of the neuron kernels and its random operands.
struct NeuronVariant {
  NeuronParams p;
  int hard, decay_input, detach, variant;
  DType x_dtype, spike_dtype;
  int64_t T, N, S, K, P;  // steps, neurons, the model's states, saved values and learnable scalars
  std::size_t offset;
  int grads;  // the optional gradients: 0 both, 1 grad_v_seq alone, 2 neither
  bool repeated;
  std::vector<float> x, v0, gs, gv, gvf, learnable;
  std::vector<float> gsaved;  // a gradient for the saved values, where the model takes one (and grads < 2)
};

// Every branch of every model (its valid parameters from neuron_model_cases.hpp), with operands drawn from
// one generator in a fixed order, so that each variant sees the same values whichever variants run.
std::vector<NeuronVariant> neuron_variants() {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.6f, 1.0f);
  const DType dtypes[] = {DType::kFloat32, DType::kBFloat16, DType::kFloat16};
  std::vector<NeuronVariant> all;
  int variant = 0;
  for (const NeuronKind kind_enum : spikeops_test::all_neuron_kinds()) {
    const int kind = static_cast<int>(kind_enum);
    const spikeops_test::ModelCase m = spikeops_test::model_case(kind_enum);
    const NeuronInfo info = neuron_info(kind_enum);
    for (int hard = 0; hard < 2; ++hard) {
      for (int decay_input = 0; decay_input < 2; ++decay_input) {
        for (int detach = 0; detach < 2; ++detach) {
          for (int xi = 0; xi < 3; ++xi) {
            ++variant;
            // A model without a hard reset runs its soft reset twice, with the other branches' mix.
            const int model_hard = m.has_hard_reset ? hard : 0;
            NeuronVariant v;
            v.hard = model_hard;
            v.decay_input = decay_input;
            v.detach = detach;
            v.variant = (xi + hard) % m.variants;
            v.x_dtype = dtypes[xi];
            v.p = spikeops_test::model_params(kind_enum, model_hard != 0, decay_input != 0, detach != 0, v.variant,
                                              default_surrogate(static_cast<SurrogateKind>(variant % kNumSurrogateKinds)));
            // The first three models keep the parameters this test has always used.
            if (kind < 3) {
              v.p.v_reset = -0.1f;
              v.p.tau = 2.5;
            }
            // Every spike dtype, size and optional gradient meets every input dtype across the other branches.
            const int mix = kind + hard + decay_input + detach;
            v.spike_dtype = mix % 3 == 0 ? DType::kUInt8 : (mix % 3 == 1 ? DType::kFloat32 : v.x_dtype);
            // N = 1032: 4- and 8-wide vectors (16-byte aligned sizes); 1027 and 9: one element at a time.
            const int size = (hard + 2 * decay_input + detach + xi) % 3;
            v.T = 3;
            v.N = size == 0 ? 1032 : (size == 1 ? 1027 : 9);
            v.S = info.states;
            v.K = info.saved;
            v.P = info.learnable;
            v.offset = (hard + decay_input + xi + 2 * kind) % 4 == 1 ? 1 : 0;  // a misaligned base
            v.grads = (mix + 2 * xi) % 3;
            v.repeated = (kind + 2 * detach + xi) % 3 == 1;  // x_seq: one row for every step
            const int64_t T = v.T, N = v.N, S = v.S;
            v.x.resize((v.repeated ? 1 : T) * N);
            v.v0.resize(S * N);
            v.gs.resize(T * N);
            v.gv.resize(T * N);
            v.gvf.resize(S * N);
            for (auto& e : v.x) e = normal(rng);
            for (auto& e : v.v0) e = 0.3f * normal(rng);
            for (auto& e : v.gs) e = normal(rng);
            for (auto& e : v.gv) e = normal(rng);
            for (auto& e : v.gvf) e = normal(rng);
            v.learnable = kind_enum == NeuronKind::kParametricLIF ? std::vector<float>{0.35f} : m.learnable;
            if (info.saved_grad && v.grads < 2) {
              std::mt19937 own(static_cast<unsigned>(variant));  // leaves the shared sequence as it was
              v.gsaved.resize(v.K * T * N);
              for (auto& e : v.gsaved) e = normal(own);
            }
            all.push_back(std::move(v));
          }
        }
      }
    }
  }
  return all;
}

// [lead, rest...] as the tensor shape, or [rest...] when lead is 1 (one state or saved value: the shape the
// bindings pass for the LIF family).
TensorView per_model_view(Buffer& b, bool gpu, int64_t lead, int64_t a, int64_t c = -1) {
  if (lead == 1) return c < 0 ? b.view(gpu, {a}) : b.view(gpu, {a, c});
  return c < 0 ? b.view(gpu, {lead, a}) : b.view(gpu, {lead, a, c});
}

// Forward and backward of one variant on the CPU and on the device: the same spikes, states and saved values,
// bit for bit, and gradients within rounding.
void expect_neuron_matches_cpu(const NeuronVariant& v) {
  const NeuronParams& p = v.p;
  const int64_t T = v.T, N = v.N, S = v.S, K = v.K, P = v.P;
  const DType x_dtype = v.x_dtype, spike_dtype = v.spike_dtype, f32 = DType::kFloat32;
  const std::size_t offset = v.offset;
  // A model without learnable scalars still gets one-element buffers: no zero-byte allocations.
  const std::vector<float> learnable = P > 0 ? v.learnable : std::vector<float>{0.0f};
  const std::vector<uint8_t> zeros_saved(K * T * N * 4, 0), zeros_tn(T * N * 4, 0), zeros_sn(S * N * 4, 0),
      zeros_pn(std::max<int64_t>(P, 1) * N * 4, 0);
  Buffer bx(x_dtype, encode(v.x, x_dtype), offset), bv0(f32, encode(v.v0, f32), offset),
      bk(f32, encode(learnable, f32), 0), bs(spike_dtype, std::vector<uint8_t>(T * N * dtype_size(spike_dtype)), offset),
      bvf(f32, zeros_sn, offset), bh(f32, zeros_saved, offset), bvs(f32, zeros_tn, offset),
      bgs(x_dtype, encode(v.gs, x_dtype), offset), bgv(f32, encode(v.gv, f32), offset),
      bgvf(f32, encode(v.gvf, f32), offset), bgx(x_dtype, std::vector<uint8_t>(T * N * dtype_size(x_dtype)), offset),
      bgv0(f32, zeros_sn, offset), bgk(f32, zeros_pn, offset),
      bgsv(f32, v.gsaved.empty() ? zeros_saved : encode(v.gsaved, f32), offset);
  for (int gpu = 0; gpu < 2; ++gpu) {
    NeuronForwardArgs a;
    a.x_seq = bx.view(gpu, {T, N});
    if (v.repeated) a.x_seq.strides[0] = 0;
    a.state_init = per_model_view(bv0, gpu, S, N);
    if (P > 0) a.learnable = bk.view(gpu, {P});
    a.spike_seq = bs.view(gpu, {T, N});
    a.state_final = per_model_view(bvf, gpu, S, N);
    a.saved = per_model_view(bh, gpu, K, T, N);
    a.v_seq = bvs.view(gpu, {T, N});
    neuron_multistep_forward(p, a);
    NeuronBackwardArgs b;
    b.grad_spike_seq = bgs.view(gpu, {T, N});
    if (v.grads < 2) b.grad_v_seq = bgv.view(gpu, {T, N});
    if (v.grads == 0) b.grad_state_final = per_model_view(bgvf, gpu, S, N);
    if (!v.gsaved.empty()) b.grad_saved = per_model_view(bgsv, gpu, K, T, N);
    b.saved = per_model_view(bh, gpu, K, T, N);
    b.state_init = per_model_view(bv0, gpu, S, N);
    if (P > 0) {
      b.learnable = bk.view(gpu, {P});
      b.grad_learnable = per_model_view(bgk, gpu, P, N);
    }
    b.grad_x_seq = bgx.view(gpu, {T, N});
    b.grad_state_init = per_model_view(bgv0, gpu, S, N);
    neuron_multistep_backward(p, b);
  }
  SCOPED_TRACE(spikeops_test::model_label(p, v.variant) + ", x " + dtype_name(x_dtype) +
               (v.repeated ? " (one row)" : "") + ", spikes " + dtype_name(spike_dtype) + ", N " + std::to_string(N) +
               ", offset " + std::to_string(offset) + ", grads " + std::to_string(v.grads) +
               (v.gsaved.empty() ? "" : " and grad_saved"));
  const float rtol = x_dtype == f32 ? 1e-5f : 1e-2f;
  EXPECT_TRUE(bs.device.download() == bs.host) << "spike_seq";
  EXPECT_TRUE(bh.device.download() == bh.host) << "saved";
  EXPECT_TRUE(bvs.device.download() == bvs.host) << "v_seq";
  EXPECT_TRUE(bvf.device.download() == bvf.host) << "state_final";
  EXPECT_TRUE(close("grad_x_seq", decode(bgx.device.download(), x_dtype), decode(bgx.host, x_dtype), rtol, 1e-5f));
  EXPECT_TRUE(close("grad_state_init", decode(bgv0.device.download(), f32), decode(bgv0.host, f32), 1e-5f, 1e-5f));
  EXPECT_TRUE(close("grad_learnable", decode(bgk.device.download(), f32), decode(bgk.host, f32), 1e-4f, 1e-4f));
}

// One test case per model, named after it.
class CudaNeuron : public CudaTest, public ::testing::WithParamInterface<NeuronKind> {};

TEST_P(CudaNeuron, MatchesCpu) {
  int ran = 0;
  for (const NeuronVariant& v : neuron_variants()) {
    if (v.p.kind == GetParam()) {
      expect_neuron_matches_cpu(v);
      ++ran;
    }
  }
  EXPECT_EQ(ran, 24);
}

INSTANTIATE_TEST_SUITE_P(EveryKind, CudaNeuron, ::testing::ValuesIn(spikeops_test::all_neuron_kinds()),
                         [](const ::testing::TestParamInfo<NeuronKind>& info) {
                           return std::string(neuron_name(info.param));
                         });

using CudaSurrogate = CudaTest;

// heaviside_forward and surrogate_backward on the device against the CPU, every surrogate and dtype.
TEST_F(CudaSurrogate, MatchesCpu) {
  std::mt19937 rng(9);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int kind = 0; kind < kNumSurrogateKinds; ++kind) {
    for (DType dtype : {DType::kFloat32, DType::kBFloat16, DType::kFloat16}) {
      const Surrogate s = default_surrogate(static_cast<SurrogateKind>(kind));
      SCOPED_TRACE(std::string("surrogate ") + surrogate_name(s.kind) + " dtype " + dtype_name(dtype));
      // 1029 elements with 3 after them: aligned for vectors, with a scalar tail; 1024: no tail; an offset of
      // one element: not aligned.
      const int64_t n = kind % 2 == 0 ? 1029 : 1024;
      const std::size_t offset = kind % 3 == 0 ? 1 : 0, tail = n == 1029 && offset == 0 ? 3 : 0;
      std::vector<float> x(n), g(n);
      for (auto& e : x) e = normal(rng);
      x[0] = 0.0f;  // Θ(0) = 1
      for (auto& e : g) e = normal(rng);
      const DType spike_dtype = kind % 2 == 0 ? DType::kUInt8 : dtype;
      Buffer bx(dtype, encode(x, dtype), offset, tail), bg(dtype, encode(g, dtype), offset, tail),
          bs(spike_dtype, std::vector<uint8_t>(n * dtype_size(spike_dtype)), offset, tail),
          bgx(dtype, std::vector<uint8_t>(n * dtype_size(dtype)), offset, tail);
      for (int gpu = 0; gpu < 2; ++gpu) {
        heaviside_forward(bx.view(gpu, {n}), bs.view(gpu, {n}));
        surrogate_backward(s, bg.view(gpu, {n}), bx.view(gpu, {n}), bgx.view(gpu, {n}));
      }
      EXPECT_TRUE(bs.device.download() == bs.host);
      EXPECT_TRUE(close("grad_x", decode(bgx.device.download(), dtype), decode(bgx.host, dtype),
                        dtype == DType::kFloat32 ? 1e-5f : 1e-2f, 1e-6f));
    }
  }
}

}  // namespace
