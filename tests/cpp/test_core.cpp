// Tests of the core library through its public headers only: the numbers of the neuron kernels against a
// scalar re-statement of the contract, the surrogate formulas, the 16-bit conversions, the spike GEMM against
// a plain loop, and the error paths.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "check.hpp"
#include "spikeops/spikeops.hpp"

using namespace spikeops;

namespace {

// The contract, one neuron at a time, written as plainly as possible.
struct ScalarNeuron {
  NeuronParams p;
  float k;
  float step(float& v, float x) const {
    const float vr = p.hard_reset ? p.v_reset : 0.0f;
    float h;
    if (p.kind == NeuronKind::kIF) {
      h = v + x;
    } else if (p.decay_input) {
      h = v + (x - (v - vr)) * k;
    } else {
      h = v - (v - vr) * k + x;
    }
    const float s = (h - p.v_threshold >= 0.0f) ? 1.0f : 0.0f;
    v = p.hard_reset ? (s != 0.0f ? p.v_reset : h) : h - s * p.v_threshold;
    return s;
  }
};

void test_forward_matches_contract() {
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.5f, 1.0f);
  const int64_t T = 9, N = 1031;  // N is not a multiple of the block or of any vector width
  for (int kind = 0; kind < 3; ++kind) {
    for (int hard = 0; hard < 2; ++hard) {
      for (int decay_input = 0; decay_input < 2; ++decay_input) {
        NeuronParams p;
        p.kind = static_cast<NeuronKind>(kind);
        p.hard_reset = hard;
        p.v_reset = -0.2f;
        p.decay_input = decay_input;
        p.tau = 3.0;
        float k_param = 0.3f;
        std::vector<float> x(T * N), v0(N), h(T * N), vs(T * N), vfin(N);
        std::vector<uint8_t> spikes(T * N);
        for (auto& e : x) e = normal(rng);
        for (auto& e : v0) e = normal(rng) * 0.3f;
        NeuronForwardArgs a;
        a.x_seq = make_tensor_view(x.data(), DType::kFloat32, {T, N});
        a.v_init = make_tensor_view(v0.data(), DType::kFloat32, {N});
        a.decay = make_tensor_view(&k_param, DType::kFloat32, {1});
        a.spike_seq = make_tensor_view(spikes.data(), DType::kUInt8, {T, N});
        a.v_final = make_tensor_view(vfin.data(), DType::kFloat32, {N});
        a.h_seq = make_tensor_view(h.data(), DType::kFloat32, {T, N});
        a.v_seq = make_tensor_view(vs.data(), DType::kFloat32, {T, N});
        neuron_multistep_forward(p, a);

        ScalarNeuron ref{p, p.kind == NeuronKind::kLIF ? lif_decay(p.tau) : k_param};
        bool spikes_ok = true, v_ok = true;
        for (int64_t n = 0; n < N; ++n) {
          float v = v0[n];
          for (int64_t t = 0; t < T; ++t) {
            const float s = ref.step(v, x[t * N + n]);
            spikes_ok = spikes_ok && spikes[t * N + n] == static_cast<uint8_t>(s);
            v_ok = v_ok && vs[t * N + n] == v;
          }
          v_ok = v_ok && vfin[n] == v;
        }
        CHECK(spikes_ok);
        CHECK(v_ok);
      }
    }
  }
}

// The backward of one neuron over T steps against central differences of the forward, using the Rect
// surrogate (derivative exactly 0 away from the threshold) on inputs that keep H far from it.
void test_backward_matches_finite_differences() {
  const int64_t T = 6, N = 1;
  NeuronParams p;
  p.kind = NeuronKind::kLIF;
  p.surrogate = {SurrogateKind::kRect, 1.0f, 0.0f};
  p.v_reset = 0.0f;
  float x[T] = {0.3f, 2.5f, 0.1f, 0.2f, 3.0f, 0.05f};
  float v0 = 0.1f, gspike[T] = {0, 0, 0, 0, 0, 0}, gvfin = 1.0f;
  float h[T], vfin, gx[T], gv0;
  uint8_t s[T];
  auto forward = [&](float* xs, float v_init) {
    NeuronForwardArgs a;
    a.x_seq = make_tensor_view(xs, DType::kFloat32, {T, N});
    a.v_init = make_tensor_view(&v_init, DType::kFloat32, {N});
    a.spike_seq = make_tensor_view(s, DType::kUInt8, {T, N});
    a.v_final = make_tensor_view(&vfin, DType::kFloat32, {N});
    a.h_seq = make_tensor_view(h, DType::kFloat32, {T, N});
    neuron_multistep_forward(p, a);
    return vfin;
  };
  forward(x, v0);
  NeuronBackwardArgs b;
  b.grad_spike_seq = make_tensor_view(gspike, DType::kFloat32, {T, N});
  b.grad_v_final = make_tensor_view(&gvfin, DType::kFloat32, {N});
  b.h_seq = make_tensor_view(h, DType::kFloat32, {T, N});
  b.grad_x_seq = make_tensor_view(gx, DType::kFloat32, {T, N});
  b.grad_v_init = make_tensor_view(&gv0, DType::kFloat32, {N});
  neuron_multistep_backward(p, b);
  const float eps = 1e-2f;
  for (int t = 0; t < T; ++t) {
    float xp[T], xm[T];
    for (int i = 0; i < T; ++i) xp[i] = xm[i] = x[i];
    xp[t] += eps;
    xm[t] -= eps;
    const float fd = (forward(xp, v0) - forward(xm, v0)) / (2 * eps);
    CHECK(std::fabs(fd - gx[t]) < 1e-3f);
  }
  const float fd_v0 = (forward(x, v0 + eps) - forward(x, v0 - eps)) / (2 * eps);
  CHECK(std::fabs(fd_v0 - gv0) < 1e-3f);
}

void test_surrogates() {
  // Spot values of the formulas at x = 0 and x = 0.3 with SpikingJelly's default parameters.
  const double pi = 3.14159265358979323846, x = 0.3;
  struct Case {
    SurrogateKind kind;
    double at0, at_x;
  } cases[] = {
      {SurrogateKind::kSigmoid, 1.0, 4.0 / (1 + std::exp(-1.2)) * (1 - 1 / (1 + std::exp(-1.2)))},
      {SurrogateKind::kATan, 1.0, 1.0 / (1 + std::pow(pi / 2 * 2 * x, 2))},
      {SurrogateKind::kPiecewiseQuadratic, 1.0, 1 - x},
      {SurrogateKind::kPiecewiseExp, 0.5, 0.5 * std::exp(-x)},
      {SurrogateKind::kSoftSign, 1.0, 1 / (4 * std::pow(0.5 + x, 2))},
      {SurrogateKind::kSuperSpike, 1.0, 1 / std::pow(1 + x, 2)},
      {SurrogateKind::kErf, 2 / std::sqrt(pi), 2 / std::sqrt(pi) * std::exp(-std::pow(2 * x, 2))},
      {SurrogateKind::kRect, 1.0, 1.0},
      {SurrogateKind::kPiecewiseLeakyReLU, 0.5, 0.5},
      {SurrogateKind::kFastSigmoid, 1.0, 1 / std::pow(25 * x + 1, 2)},
  };
  for (const Case& c : cases) {
    const Surrogate s = default_surrogate(c.kind);
    CHECK(std::fabs(surrogate_grad(s, 0.0f) - c.at0) < 1e-6 * std::fabs(c.at0));
    CHECK(std::fabs(surrogate_grad(s, static_cast<float>(x)) - c.at_x) < 1e-6 * std::fabs(c.at_x) + 1e-12);
    CHECK(std::fabs(surrogate_grad(s, static_cast<float>(-x)) - c.at_x) < 1e-6 * std::fabs(c.at_x) + 1e-12);
  }
  // The elementwise entry points.
  float xs[4] = {-1.0f, 0.0f, 0.25f, 2.0f}, g[4] = {1, 2, 3, 4}, gx[4];
  uint8_t spk[4];
  heaviside_forward(make_tensor_view(xs, DType::kFloat32, {4}), make_tensor_view(spk, DType::kUInt8, {4}));
  CHECK(spk[0] == 0 && spk[1] == 1 && spk[2] == 1 && spk[3] == 1);
  const Surrogate atan = default_surrogate(SurrogateKind::kATan);
  surrogate_backward(atan, make_tensor_view(g, DType::kFloat32, {4}), make_tensor_view(xs, DType::kFloat32, {4}),
                     make_tensor_view(gx, DType::kFloat32, {4}));
  for (int i = 0; i < 4; ++i) CHECK(std::fabs(gx[i] - g[i] * surrogate_grad(atan, xs[i])) < 1e-7f);
}

void test_conversions() {
  // Every half value survives half -> float -> half; bfloat16 rounds to nearest even.
  bool half_ok = true;
  for (uint32_t h = 0; h < 0x10000u; ++h) {
    const float f = detail::half_to_float(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    half_ok = half_ok && detail::float_to_half(f) == h;
  }
  CHECK(half_ok);
  CHECK(detail::half_to_float(0x3c00) == 1.0f);
  CHECK(detail::float_to_half(65520.0f) == 0x7c00);  // rounds up to infinity
  CHECK(detail::float_to_bfloat16(1.0f) == 0x3f80);
  CHECK(detail::float_to_bfloat16(detail::bits_float(0x3f808000u)) == 0x3f80);  // tie to even
  CHECK(detail::float_to_bfloat16(detail::bits_float(0x3f818000u)) == 0x3f82);
  bool exp_ok = true;
  for (float x = -80.0f; x <= 0.0f; x += 0.01f) {
    const double ref = std::exp(static_cast<double>(x));
    exp_ok = exp_ok && std::fabs(detail::exp_nonpositive(x) - ref) <= 4e-7 * ref;
  }
  CHECK(exp_ok);
}

void test_errors() {
  float x[6] = {}, v[3] = {}, vf[3] = {}, h[6] = {};
  uint8_t s[6];
  NeuronParams p;
  NeuronForwardArgs a;
  a.x_seq = make_tensor_view(x, DType::kFloat32, {2, 3});
  a.v_init = make_tensor_view(v, DType::kFloat32, {3});
  a.spike_seq = make_tensor_view(s, DType::kUInt8, {2, 3});
  a.v_final = make_tensor_view(vf, DType::kFloat32, {3});
  a.h_seq = make_tensor_view(h, DType::kFloat32, {2, 3});
  neuron_multistep_forward(p, a);  // the valid call

  NeuronForwardArgs bad = a;
  bad.v_init = make_tensor_view(v, DType::kFloat32, {2});
  EXPECT_ERROR(neuron_multistep_forward(p, bad), "v_init must have shape [3]");
  bad = a;
  bad.x_seq.dtype = DType::kUInt8;
  EXPECT_ERROR(neuron_multistep_forward(p, bad), "x_seq must have dtype float32/float16/bfloat16");
  bad = a;
  bad.x_seq.data = nullptr;
  EXPECT_ERROR(neuron_multistep_forward(p, bad), "x_seq has a null data pointer");
  bad = a;
  bad.x_seq.strides[0] = 1;
  bad.x_seq.strides[1] = 2;
  EXPECT_ERROR(neuron_multistep_forward(p, bad), "x_seq must be contiguous");
  bad = a;
  bad.x_seq.shape[0] = -1;
  EXPECT_ERROR(neuron_multistep_forward(p, bad), "x_seq has a negative size");
  bad = a;
  bad.v_final = TensorView();
  EXPECT_ERROR(neuron_multistep_forward(p, bad), "v_final is required");
  bad = a;
  bad.spike_seq.device = Device::kCUDA;
  EXPECT_ERROR(neuron_multistep_forward(p, bad), "spike_seq must be on the same device as x_seq");

  NeuronParams bp = p;
  bp.tau = 1.0;
  EXPECT_ERROR(neuron_multistep_forward(bp, a), "tau must be a finite number > 1");
  bp = p;
  bp.v_threshold = NAN;
  EXPECT_ERROR(neuron_multistep_forward(bp, a), "v_threshold must be finite");
  bp = p;
  bp.surrogate.alpha = 0.0f;
  EXPECT_ERROR(neuron_multistep_forward(bp, a), "alpha");
  bp = p;
  bp.surrogate.kind = static_cast<SurrogateKind>(42);
  EXPECT_ERROR(neuron_multistep_forward(bp, a), "kind must be a SurrogateKind");
  bp = p;
  bp.kind = NeuronKind::kParametricLIF;
  EXPECT_ERROR(neuron_multistep_forward(bp, a), "decay is required");

  float gs[6] = {}, gx[6], gv[3];
  NeuronBackwardArgs b;
  b.grad_spike_seq = make_tensor_view(gs, DType::kFloat32, {2, 3});
  b.h_seq = make_tensor_view(h, DType::kFloat32, {2, 3});
  b.grad_x_seq = make_tensor_view(gx, DType::kFloat32, {2, 3});
  b.grad_v_init = make_tensor_view(gv, DType::kFloat32, {3});
  neuron_multistep_backward(p, b);
  NeuronBackwardArgs bb = b;
  bb.grad_x_seq = make_tensor_view(gx, DType::kFloat32, {3, 2});
  EXPECT_ERROR(neuron_multistep_backward(p, bb), "grad_x_seq must have shape [2, 3]");

  EXPECT_ERROR(heaviside_forward(make_tensor_view(x, DType::kFloat32, {6}), make_tensor_view(s, DType::kUInt8, {5})),
               "spike must have the shape of x");
  int64_t neg = -3;
  EXPECT_ERROR(make_tensor_view(x, DType::kFloat32, &neg, 1), "shape[0] must be >= 0");

  if (!build_info().cuda) {
    NeuronForwardArgs gpu = a;
    for (TensorView* t : {&gpu.x_seq, &gpu.v_init, &gpu.spike_seq, &gpu.v_final, &gpu.h_seq}) t->device = Device::kCUDA;
    EXPECT_ERROR(neuron_multistep_forward(p, gpu), "built without CUDA");
  }
}

// x_seq with strides [0, 1] (one row read at every step) gives what the row copied T times gives; other
// strides are rejected.
void test_repeated_input() {
  std::mt19937 rng(4);
  std::normal_distribution<float> normal(0.6f, 1.0f);
  const int64_t T = 5;
  for (int64_t N : {int64_t(1), int64_t(7), int64_t(1030)}) {
    for (int kind = 0; kind < 3; ++kind) {
      for (DType dtype : {DType::kFloat32, DType::kBFloat16}) {
        NeuronParams p;
        p.kind = static_cast<NeuronKind>(kind);
        float k = 0.4f;
        std::vector<float> row(N), copies;
        for (auto& e : row) e = normal(rng);
        std::vector<uint16_t> row16(N), copies16;
        for (int64_t i = 0; i < N; ++i) row16[i] = detail::float_to_bfloat16(row[i]);
        for (int64_t t = 0; t < T; ++t) {
          copies.insert(copies.end(), row.begin(), row.end());
          copies16.insert(copies16.end(), row16.begin(), row16.end());
        }
        std::vector<float> v0(N, 0.1f), h[2], vf[2];
        std::vector<uint8_t> s[2];
        for (int repeated = 0; repeated < 2; ++repeated) {
          h[repeated].assign(T * N, 0.0f);
          vf[repeated].assign(N, 0.0f);
          s[repeated].assign(T * N, 9);
          void* x = dtype == DType::kFloat32 ? static_cast<void*>(repeated ? row.data() : copies.data())
                                             : static_cast<void*>(repeated ? row16.data() : copies16.data());
          NeuronForwardArgs a;
          a.x_seq = make_tensor_view(x, dtype, {T, N});
          if (repeated) a.x_seq.strides[0] = 0;
          a.v_init = make_tensor_view(v0.data(), DType::kFloat32, {N});
          a.decay = make_tensor_view(&k, DType::kFloat32, {1});
          a.spike_seq = make_tensor_view(s[repeated].data(), DType::kUInt8, {T, N});
          a.v_final = make_tensor_view(vf[repeated].data(), DType::kFloat32, {N});
          a.h_seq = make_tensor_view(h[repeated].data(), DType::kFloat32, {T, N});
          neuron_multistep_forward(p, a);
        }
        CHECK(s[0] == s[1] && h[0] == h[1] && vf[0] == vf[1]);
      }
    }
  }
  float x[6] = {}, v[3] = {}, vf[3] = {};
  uint8_t s[6];
  NeuronForwardArgs a;
  a.x_seq = make_tensor_view(x, DType::kFloat32, {2, 3});
  a.v_init = make_tensor_view(v, DType::kFloat32, {3});
  a.spike_seq = make_tensor_view(s, DType::kUInt8, {2, 3});
  a.v_final = make_tensor_view(vf, DType::kFloat32, {3});
  a.x_seq.strides[0] = 1;
  EXPECT_ERROR(neuron_multistep_forward(NeuronParams{}, a), "x_seq must be contiguous");
  a.x_seq.strides[0] = 0;
  a.x_seq.strides[1] = 2;
  EXPECT_ERROR(neuron_multistep_forward(NeuronParams{}, a), "x_seq must be contiguous");
  a.x_seq.strides[1] = 1;
  a.spike_seq.strides[0] = 0;  // only x_seq may repeat
  EXPECT_ERROR(neuron_multistep_forward(NeuronParams{}, a), "spike_seq must be contiguous");
}

void test_empty() {
  // N = 0 and T = 0 are valid and touch nothing.
  NeuronParams p;
  NeuronForwardArgs a;
  float v = 0.25f, vf = 0.0f;
  a.x_seq = make_tensor_view(nullptr, DType::kFloat32, {4, 0});
  a.v_init = make_tensor_view(nullptr, DType::kFloat32, {0});
  a.spike_seq = make_tensor_view(nullptr, DType::kFloat32, {4, 0});
  a.v_final = make_tensor_view(nullptr, DType::kFloat32, {0});
  neuron_multistep_forward(p, a);
  a.x_seq = make_tensor_view(nullptr, DType::kFloat32, {0, 1});
  a.v_init = make_tensor_view(&v, DType::kFloat32, {1});
  a.spike_seq = make_tensor_view(nullptr, DType::kFloat32, {0, 1});
  a.v_final = make_tensor_view(&vf, DType::kFloat32, {1});
  neuron_multistep_forward(p, a);
  CHECK(vf == v);
  // Empty tensors may come with any strides (torch describes an empty [2, 0] with strides [1, 1]).
  a.x_seq = make_tensor_view(nullptr, DType::kFloat32, {2, 0});
  a.x_seq.strides[0] = 1;
  a.x_seq.strides[1] = 1;
  a.v_init = make_tensor_view(nullptr, DType::kFloat32, {0});
  a.spike_seq = make_tensor_view(nullptr, DType::kFloat32, {2, 0});
  a.v_final = make_tensor_view(nullptr, DType::kFloat32, {0});
  neuron_multistep_forward(p, a);
  CHECK(a.x_seq.is_contiguous());
}

// A [rows, cols] uint8 view of `data` with the given element strides.
TensorView strided_bytes(void* data, int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride) {
  TensorView v = make_tensor_view(data, DType::kUInt8, {rows, cols});
  v.strides[0] = row_stride;
  v.strides[1] = col_stride;
  return v;
}

void test_spike_accumulate() {
  // Against a plain triple loop, for both layouts of spikes and of rows, plain and transposed outputs, odd sizes.
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  // One-tile outputs (N <= 64) take the one-pass paths; 130 and 300 spike bytes per row: 64-byte masks and tails.
  for (const auto& mkn : std::vector<std::vector<int64_t>>{
           {1, 1, 1}, {5, 7, 3}, {17, 130, 65}, {40, 300, 128}, {300, 200, 40}, {129, 70, 64}, {700, 130, 17}}) {
    const int64_t M = mkn[0], K = mkn[1], N = mkn[2], tiles = (N + kPackedTileN - 1) / kPackedTileN;
    std::vector<uint8_t> spikes(M * K);
    for (auto& s : spikes) s = (rng() % 4 == 0) ? static_cast<uint8_t>(1 + rng() % 3) : 0;  // nonzero = spike
    std::vector<float> rows(K * N), bias(N), packed(tiles * K * kPackedTileN, -7.0f), expected(M * N);
    for (auto& r : rows) r = static_cast<float>(static_cast<int>(uniform(rng) * 100));  // integers: exact sums
    for (auto& b : bias) b = static_cast<float>(static_cast<int>(uniform(rng) * 100));
    for (int64_t m = 0; m < M; ++m) {
      for (int64_t n = 0; n < N; ++n) {
        float sum = bias[n];
        for (int64_t k = 0; k < K; ++k) sum += spikes[m * K + k] != 0 ? rows[k * N + n] : 0.0f;
        expected[m * N + n] = sum;
      }
    }
    pack_rows(make_tensor_view(rows.data(), DType::kFloat32, {K, N}),
              make_tensor_view(packed.data(), DType::kFloat32, {tiles, K, kPackedTileN}));
    // Spikes also column-major: a transposed view of their [K, M] transpose in memory.
    std::vector<uint8_t> spikes_t(K * M);
    for (int64_t m = 0; m < M; ++m) {
      for (int64_t k = 0; k < K; ++k) spikes_t[k * M + m] = spikes[m * K + k];
    }
    for (int column_major = 0; column_major < 2; ++column_major) {
      for (int layout = 0; layout < 2; ++layout) {
        for (int transposed = 0; transposed < 2; ++transposed) {
          std::vector<float> out(M * N, NAN);
          SpikeAccumulateArgs a;
          a.spikes = column_major ? strided_bytes(spikes_t.data(), M, K, 1, M)
                                  : make_tensor_view(spikes.data(), DType::kUInt8, {M, K});
          a.rows_layout = layout ? RowsLayout::kPacked : RowsLayout::kRowMajor;
          a.rows = layout ? make_tensor_view(packed.data(), DType::kFloat32, {tiles, K, kPackedTileN})
                          : make_tensor_view(rows.data(), DType::kFloat32, {K, N});
          a.bias = make_tensor_view(bias.data(), DType::kFloat32, {N});
          a.out_transposed = transposed != 0;
          a.out = transposed ? make_tensor_view(out.data(), DType::kFloat32, {N, M})
                             : make_tensor_view(out.data(), DType::kFloat32, {M, N});
          spike_accumulate(a);
          bool same = true;
          for (int64_t m = 0; m < M; ++m) {
            for (int64_t n = 0; n < N; ++n) {
              same = same && out[transposed ? n * M + m : m * N + n] == expected[m * N + n];
            }
          }
          CHECK(same);
        }
      }
    }
    // 16-bit output: the float32 sums rounded once.
    std::vector<uint16_t> out16(M * N);
    SpikeAccumulateArgs a;
    a.spikes = make_tensor_view(spikes.data(), DType::kUInt8, {M, K});
    a.rows = make_tensor_view(rows.data(), DType::kFloat32, {K, N});
    a.out = make_tensor_view(out16.data(), DType::kBFloat16, {M, N});
    spike_accumulate(a);
    bool same = true;
    for (int64_t i = 0; i < M * N; ++i) same = same && out16[i] == detail::float_to_bfloat16(expected[i] - bias[i % N]);
    CHECK(same);
  }

  // Errors name the argument.
  uint8_t s[6] = {};
  float r[12] = {}, o[8] = {};
  SpikeAccumulateArgs a;
  a.spikes = make_tensor_view(s, DType::kUInt8, {2, 3});
  a.rows = make_tensor_view(r, DType::kFloat32, {3, 4});
  a.out = make_tensor_view(o, DType::kFloat32, {2, 4});
  spike_accumulate(a);  // the valid call
  SpikeAccumulateArgs bad = a;
  bad.rows = make_tensor_view(r, DType::kFloat32, {4, 3});
  EXPECT_ERROR(spike_accumulate(bad), "rows must have shape [K, N] = [3, 4]");
  bad = a;
  bad.spikes.dtype = DType::kFloat32;
  EXPECT_ERROR(spike_accumulate(bad), "spikes must have dtype uint8");
  bad = a;
  bad.out = make_tensor_view(o, DType::kFloat32, {3, 4});
  EXPECT_ERROR(spike_accumulate(bad), "out must have shape [2, 4]");
  bad = a;
  bad.rows_layout = RowsLayout::kPacked;
  EXPECT_ERROR(spike_accumulate(bad), "rows must be a 3-D tensor");
  bad = a;
  bad.bias = make_tensor_view(r, DType::kFloat32, {3});
  EXPECT_ERROR(spike_accumulate(bad), "bias must have shape [4]");
  bad = a;
  bad.rows.data = nullptr;
  EXPECT_ERROR(spike_accumulate(bad), "rows has a null data pointer");
  bad = a;
  bad.out.device = Device::kCUDA;
  EXPECT_ERROR(spike_accumulate(bad), "out must be on the same device as spikes");
  bad = a;
  bad.spikes = strided_bytes(s, 2, 3, 1, 2);
  spike_accumulate(bad);  // column-major spikes are fine on the CPU
  bad.spikes.device = Device::kCUDA;
  EXPECT_ERROR(spike_accumulate(bad), "spikes must be contiguous on CUDA (column-major spikes are read on the CPU only)");
  bad.spikes = strided_bytes(s, 2, 3, 1, 4);
  EXPECT_ERROR(spike_accumulate(bad), "spikes must be contiguous");
  EXPECT_ERROR(pack_rows(a.rows, make_tensor_view(r, DType::kFloat32, {1, 3, 3})), "packed must have shape [1, 3, 64]");
  bad = a;
  bad.kernel = SpikeGemmKernel::kEvents;
  spike_accumulate(bad);  // the CPU's kernel, named
  bad.kernel = SpikeGemmKernel::kTensorCore;
  EXPECT_ERROR(spike_accumulate(bad), "kernel kTiledEvents and kTensorCore run on CUDA tensors only");
  bad.kernel = static_cast<SpikeGemmKernel>(7);
  EXPECT_ERROR(spike_accumulate(bad), "kernel must be a SpikeGemmKernel");
  bad = a;
  bad.firing_rate = 1.5;
  EXPECT_ERROR(spike_accumulate(bad), "firing_rate must be at most 1 (negative: unknown), got 1.5");
  bad.firing_rate = 0.3;
  spike_accumulate(bad);  // a hint only: the CPU's result does not depend on it
}

void test_spike_conv2d() {
  // Forward and weight gradient against plain loops over the definition, integer values: exact sums.
  struct Case {
    int64_t N, C, H, W, O, kh, kw, groups;
    Conv2dParams p;
  };
  std::vector<Case> cases(4);
  cases[0] = {2, 3, 7, 9, 5, 3, 3, 1, {}};
  cases[0].p.padding[0] = cases[0].p.padding[1] = 1;
  cases[1] = {1, 8, 11, 6, 12, 3, 2, 4, {}};
  cases[1].p.stride[0] = 2;
  cases[1].p.dilation[1] = 2;
  cases[1].p.padding[0] = 1;
  cases[2] = {3, 130, 5, 5, 140, 1, 1, 1, {}};  // several mask words and register chunks
  cases[3] = {2, 6, 10, 10, 4, 5, 5, 2, {}};
  cases[3].p.stride[1] = 3;
  cases[3].p.padding[1] = 2;
  std::mt19937 rng(11);
  for (Case& c : cases) {
    c.p.groups = c.groups;
    const int64_t Cg = c.C / c.groups, Og = c.O / c.groups;
    const int64_t OH = conv2d_output_size(c.H, c.kh, c.p.stride[0], c.p.padding[0], c.p.dilation[0]);
    const int64_t OW = conv2d_output_size(c.W, c.kw, c.p.stride[1], c.p.padding[1], c.p.dilation[1]);
    std::vector<uint8_t> s(c.N * c.C * c.H * c.W);
    for (auto& v : s) v = (rng() % 3 == 0) ? static_cast<uint8_t>(1 + rng() % 2) : 0;  // nonzero = spike
    std::vector<float> w(c.O * Cg * c.kh * c.kw), b(c.O), dy(c.N * c.O * OH * OW);
    for (auto& v : w) v = static_cast<float>(static_cast<int>(rng() % 17) - 8);
    for (auto& v : b) v = static_cast<float>(static_cast<int>(rng() % 17) - 8);
    for (auto& v : dy) v = static_cast<float>(static_cast<int>(rng() % 9) - 4);
    std::vector<float> y_ref(dy.size()), gw_ref(w.size(), 0.0f);
    for (int64_t n = 0; n < c.N; ++n) {
      for (int64_t o = 0; o < c.O; ++o) {
        for (int64_t oy = 0; oy < OH; ++oy) {
          for (int64_t ox = 0; ox < OW; ++ox) {
            const int64_t out_i = ((n * c.O + o) * OH + oy) * OW + ox;
            float sum = b[o];
            for (int64_t cl = 0; cl < Cg; ++cl) {
              for (int64_t ky = 0; ky < c.kh; ++ky) {
                for (int64_t kx = 0; kx < c.kw; ++kx) {
                  const int64_t iy = oy * c.p.stride[0] - c.p.padding[0] + ky * c.p.dilation[0];
                  const int64_t ix = ox * c.p.stride[1] - c.p.padding[1] + kx * c.p.dilation[1];
                  if (iy < 0 || iy >= c.H || ix < 0 || ix >= c.W) continue;
                  const int64_t ci = (o / Og) * Cg + cl;
                  if (s[((n * c.C + ci) * c.H + iy) * c.W + ix] == 0) continue;
                  const int64_t wi = ((o * Cg + cl) * c.kh + ky) * c.kw + kx;
                  sum += w[wi];
                  gw_ref[wi] += dy[out_i];
                }
              }
            }
            y_ref[out_i] = sum;
          }
        }
      }
    }
    std::vector<float> y(dy.size(), NAN), gw(w.size(), NAN);
    SpikeConv2dArgs a;
    a.spikes = make_tensor_view(s.data(), DType::kUInt8, {c.N, c.C, c.H, c.W});
    a.weight = make_tensor_view(w.data(), DType::kFloat32, {c.O, Cg, c.kh, c.kw});
    a.bias = make_tensor_view(b.data(), DType::kFloat32, {c.O});
    a.out = make_tensor_view(y.data(), DType::kFloat32, {c.N, c.O, OH, OW});
    a.conv = c.p;
    spike_conv2d(a);
    CHECK(y == y_ref);
    SpikeConv2dWeightGradArgs g;
    g.spikes = a.spikes;
    g.grad_out = make_tensor_view(dy.data(), DType::kFloat32, {c.N, c.O, OH, OW});
    g.grad_weight = make_tensor_view(gw.data(), DType::kFloat32, {c.O, Cg, c.kh, c.kw});
    g.conv = c.p;
    spike_conv2d_weight_grad(g);
    CHECK(gw == gw_ref);
    // Channels-last spikes, output and output gradient: [N, H, W, C] memory, the same sums.
    auto nhwc_view = [](void* data, DType dtype, int64_t n, int64_t c, int64_t h, int64_t w) {
      TensorView v = make_tensor_view(data, dtype, {n, c, h, w});
      v.strides[0] = h * w * c;
      v.strides[1] = 1;
      v.strides[2] = w * c;
      v.strides[3] = c;
      return v;
    };
    auto to_nhwc = [](const auto& src, int64_t n, int64_t c, int64_t h, int64_t w) {
      std::decay_t<decltype(src)> dst(src.size());
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t j = 0; j < c; ++j) {
          for (int64_t p = 0; p < h * w; ++p) dst[(i * h * w + p) * c + j] = src[(i * c + j) * h * w + p];
        }
      }
      return dst;
    };
    std::vector<uint8_t> s_cl = to_nhwc(s, c.N, c.C, c.H, c.W);
    std::vector<float> dy_cl = to_nhwc(dy, c.N, c.O, OH, OW), y_cl(dy.size(), NAN), gw_cl(w.size(), NAN);
    SpikeConv2dArgs cl = a;
    cl.spikes = nhwc_view(s_cl.data(), DType::kUInt8, c.N, c.C, c.H, c.W);
    cl.out = nhwc_view(y_cl.data(), DType::kFloat32, c.N, c.O, OH, OW);
    spike_conv2d(cl);
    CHECK(y_cl == to_nhwc(y_ref, c.N, c.O, OH, OW));
    SpikeConv2dWeightGradArgs gcl = g;
    gcl.spikes = cl.spikes;
    gcl.grad_out = nhwc_view(dy_cl.data(), DType::kFloat32, c.N, c.O, OH, OW);
    gcl.grad_weight = make_tensor_view(gw_cl.data(), DType::kFloat32, {c.O, Cg, c.kh, c.kw});
    spike_conv2d_weight_grad(gcl);
    CHECK(gw_cl == gw_ref);
    if (c.C > 1 && c.H * c.W > 1) {  // (otherwise both layouts are the same memory)
      cl.out = a.out;  // NCHW out for channels-last spikes: refused
      EXPECT_ERROR(spike_conv2d(cl), "out must be stored channels-last (torch.channels_last) like spikes");
    }
    // bfloat16 output: the float32 sums rounded once.
    std::vector<uint16_t> y16(dy.size());
    a.out = make_tensor_view(y16.data(), DType::kBFloat16, {c.N, c.O, OH, OW});
    spike_conv2d(a);
    bool same = true;
    for (size_t i = 0; i < y16.size(); ++i) same = same && y16[i] == detail::float_to_bfloat16(y_ref[i]);
    CHECK(same);
  }

  // Errors name the argument.
  uint8_t s[2 * 3 * 5 * 5] = {};
  float w[4 * 3 * 3 * 3] = {}, o[2 * 4 * 3 * 3] = {};
  SpikeConv2dArgs a;
  a.spikes = make_tensor_view(s, DType::kUInt8, {2, 3, 5, 5});
  a.weight = make_tensor_view(w, DType::kFloat32, {4, 3, 3, 3});
  a.out = make_tensor_view(o, DType::kFloat32, {2, 4, 3, 3});
  spike_conv2d(a);  // the valid call
  SpikeConv2dArgs bad = a;
  bad.out = make_tensor_view(o, DType::kFloat32, {2, 4, 3, 2});
  EXPECT_ERROR(spike_conv2d(bad), "out must have shape [2, 4, 3, 3]");
  bad = a;
  bad.conv.groups = 2;
  EXPECT_ERROR(spike_conv2d(bad), "conv.groups must be a positive divisor of the input channels (3)");
  bad = a;
  bad.conv.dilation[1] = 0;
  EXPECT_ERROR(spike_conv2d(bad), "conv.dilation must be >= 1 and below 2^31, got (1, 0)");
  bad.conv.dilation[1] = int64_t(1) << 62;  // dilation * (kernel - 1) would overflow
  EXPECT_ERROR(spike_conv2d(bad), "conv.dilation must be >= 1 and below 2^31");
  bad = a;
  bad.conv.padding[0] = bad.conv.padding[1] = int64_t(1) << 29;  // a padded plane of 2^60 pixels
  bad.conv.stride[0] = bad.conv.stride[1] = int64_t(1) << 30;
  EXPECT_ERROR(spike_conv2d(bad), "spikes is too large for the event-driven convolution (the zero-padded plane");
  EXPECT_ERROR(conv2d_output_size(4, 3, 1, 0, int64_t(1) << 62), "conv2d_output_size: arguments need");
  bad = a;
  bad.weight = make_tensor_view(w, DType::kFloat32, {4, 2, 3, 3});
  EXPECT_ERROR(spike_conv2d(bad), "weight must have C / groups = 3 input channels");
  bad = a;
  bad.weight = make_tensor_view(w, DType::kFloat32, {4, 3, 7, 1});
  EXPECT_ERROR(spike_conv2d(bad), "spike_conv2d: kernel of 7 with dilation 1 does not fit the padded input of 5");
  bad = a;
  bad.spikes.device = bad.weight.device = bad.out.device = Device::kCUDA;
  bad.spikes.strides[1] = 1;  // channels-last: CPU only
  bad.spikes.strides[2] = 15;
  bad.spikes.strides[3] = 3;
  EXPECT_ERROR(spike_conv2d(bad), "spikes must be contiguous (NCHW) on CUDA");
  bad = a;
  bad.bias = make_tensor_view(w, DType::kFloat32, {3});
  EXPECT_ERROR(spike_conv2d(bad), "bias must have shape [4]");
  SpikeConv2dWeightGradArgs g;
  g.spikes = a.spikes;
  g.grad_out = a.out;
  g.grad_weight = make_tensor_view(w, DType::kUInt8, {4, 3, 3, 3});
  EXPECT_ERROR(spike_conv2d_weight_grad(g), "grad_weight must have dtype float32/float16/bfloat16, got uint8");
  // Empty batch: nothing to do, no error.
  a.spikes = make_tensor_view(s, DType::kUInt8, {0, 3, 5, 5});
  a.out = make_tensor_view(o, DType::kFloat32, {0, 4, 3, 3});
  spike_conv2d(a);
}

}  // namespace

int main() {
  test_forward_matches_contract();
  test_repeated_input();
  test_backward_matches_finite_differences();
  test_surrogates();
  test_conversions();
  test_errors();
  test_empty();
  test_spike_accumulate();
  test_spike_conv2d();
  EXPECT_ERROR(set_cpu_threads(0), "n must be >= 1");
  set_cpu_threads(1);
  CHECK(cpu_threads() == 1);
  const BuildInfo info = build_info();
  std::printf("spikeops %s, cpu simd %s, cuda %d: %d checks, %d failed\n", info.version.c_str(),
              info.cpu_simd.c_str(), info.cuda ? 1 : 0, spikeops_test::g_checks, spikeops_test::g_failures);
  return spikeops_test::g_failures == 0 ? 0 : 1;
}
