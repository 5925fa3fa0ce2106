// Property tests of the public core ops: hundreds of random problems from fixed seeds (shapes with 0 and odd
// sizes, strides, padding, dilation, groups, dtypes, parameters at the extremes: denormals, 3.4e38, NaN, Inf,
// negative) and broken TensorViews (null data, negative strides, wrong shape, dtype, rank or device). Each call
// either equals the scalar reference or throws spikeops::Error whose message starts with the function's name
// and names an argument; never another exception, a crash or a sanitizer report (this runs in the ASan/UBSan
// and CUDA-simulator builds too). Spike ops are compared on 0/1 spikes and finite weights only.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "op_reference.hpp"
#include "spikeops/detail/neuron_math.hpp"
#include "spikeops/detail/numeric.hpp"
#include "spikeops/detail/surrogate_math.hpp"
#include "spikeops/spikeops.hpp"
#include "test_util.hpp"

using namespace spikeops;

namespace {

using Rng = std::mt19937_64;

size_t sz(int64_t n) { return static_cast<size_t>(n); }

int64_t pick(Rng& rng, std::initializer_list<int64_t> values) {
  return *(values.begin() + std::uniform_int_distribution<size_t>(0, values.size() - 1)(rng));
}
int64_t between(Rng& rng, int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); }
bool chance(Rng& rng, double p) { return std::bernoulli_distribution(p)(rng); }

// Values at and past float32's edges.
float extreme(Rng& rng) {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  static const float values[] = {0.0f,    -0.0f,  1e-45f, -1e-45f, 1e-39f, 1.0f,  -1.0f, 0.5f,
                                 2.0f,    3.4e38f, -3.4e38f, kInf,  -kInf, std::nanf(""), 1e-30f, 1.5f};
  return values[between(rng, 0, sizeof(values) / sizeof(values[0]) - 1)];
}
// Mostly ordinary values, sometimes an extreme one.
float value(Rng& rng, double p_extreme) {
  if (chance(rng, p_extreme)) return extreme(rng);
  return std::normal_distribution<float>(0.5f, 1.5f)(rng);
}

bool same_float(float a, float b) { return (std::isnan(a) && std::isnan(b)) || a == b; }
bool near_float(float a, float b) {
  if (same_float(a, b)) return true;
  return std::isfinite(a) && std::isfinite(b) && std::fabs(a - b) <= 1e-4f * std::fmax(1.0f, std::fabs(b));
}

DType random_float_dtype(Rng& rng) { return static_cast<DType>(pick(rng, {0, 0, 1, 2})); }

// float values stored in a float32, float16 or bfloat16 buffer (rounded to nearest even).
struct Typed {
  DType dtype;
  std::vector<float> f;
  std::vector<uint16_t> h;
  Typed(DType d, const std::vector<float>& values) : dtype(d), f(d == DType::kFloat32 ? values : std::vector<float>()) {
    if (d == DType::kFloat16) for (float v : values) h.push_back(detail::float_to_half(v));
    if (d == DType::kBFloat16) for (float v : values) h.push_back(detail::float_to_bfloat16(v));
  }
  void* data() { return dtype == DType::kFloat32 ? static_cast<void*>(f.data()) : static_cast<void*>(h.data()); }
  float operator[](size_t i) const {
    if (dtype == DType::kFloat32) return f[i];
    return dtype == DType::kFloat16 ? detail::half_to_float(h[i]) : detail::bfloat16_to_float(h[i]);
  }
  // What storing v in this buffer's dtype gives back.
  float rounded(float v) const { return Typed(dtype, {v})[0]; }
  TensorView view(const int64_t* shape, int ndim) { return make_tensor_view(data(), dtype, shape, ndim); }
};

// The outcome of one call: true if it returned. A throw must be spikeops::Error whose message starts with
// "<function>: " and names one of `args`; anything else is recorded as a failure (and counts as a throw).
bool returns(const std::string& function, const std::vector<std::string>& args, const std::function<void()>& fn) {
  try {
    fn();
    return true;
  } catch (const Error& e) {
    const std::string message = e.what();
    if (message.rfind(function + ": ", 0) != 0) {
      ADD_FAILURE() << "the error does not start with \"" << function << ": \": " << message;
    } else {
      bool named = false;
      for (const std::string& arg : args) named = named || message.find(arg) != std::string::npos;
      if (!named) ADD_FAILURE() << "the error names none of the arguments: " << message;
    }
  } catch (const std::exception& e) {
    ADD_FAILURE() << function << " threw something other than spikeops::Error: " << e.what();
  }
  return false;
}

// One way of breaking a TensorView, each of which a validating op must refuse.
enum class Breakage { kNone, kNullData, kNegativeStride, kWrongShape, kWrongDType, kWrongRank, kWrongDevice, kUndefined };
constexpr int kNumBreakages = 8;

// v broken in way b; false where the breakage does not apply (then v is unchanged). kWrongShape grows the
// first dimension, which every op checks against another argument's (the data is never read: the op must
// refuse first); kWrongRank appends a dimension of 1.
bool breaks(TensorView& v, Breakage b) {
  switch (b) {
    case Breakage::kNone: return false;
    case Breakage::kNullData:
      if (v.numel() == 0) return false;
      v.data = nullptr;
      return true;
    case Breakage::kNegativeStride:
      if (v.numel() == 0 || v.shape[0] < 2) return false;  // (an empty tensor may have any strides)
      v.strides[0] = -v.strides[0];
      return true;
    case Breakage::kWrongShape:
      if (v.ndim < 1) return false;
      v.shape[0] += 1;
      return true;
    case Breakage::kWrongDType: v.dtype = DType::kFloat64; return true;
    case Breakage::kWrongRank:
      if (v.ndim < 0 || v.ndim >= kMaxDims) return false;
      v.shape[v.ndim] = 1;
      v.strides[v.ndim] = 1;
      ++v.ndim;
      return true;
    case Breakage::kWrongDevice: v.device = Device::kCUDA; return true;  // the others stay on the CPU
    case Breakage::kUndefined: v = TensorView(); return true;
  }
  return false;
}

// Breaks one of `views` (name, view) in a random way; returns its name, or "" if none applied. The view
// named `shape_free` (whose first dimension no other argument pins down) keeps its shape.
std::string break_one(Rng& rng, std::vector<std::pair<std::string, TensorView*>> views,
                      const std::string& shape_free = "") {
  for (int attempt = 0; attempt < 8; ++attempt) {
    static const char* const kHow[] = {"", "null data", "negative stride", "wrong shape", "wrong dtype",
                                       "wrong rank", "wrong device", "undefined"};
    auto& [name, view] = views[sz(between(rng, 0, int64_t(views.size()) - 1))];
    const auto how = static_cast<Breakage>(between(rng, 1, kNumBreakages - 1));
    if (how == Breakage::kWrongShape && name == shape_free) continue;
    if (breaks(*view, how)) return name + " (" + kHow[int(how)] + ")";
  }
  return "";
}

// ---- neurons ------------------------------------------------------------------------------------------------

struct ScalarNeuron {  // the contract, one neuron at a time (as test_neuron.cpp)
  NeuronParams p;
  float k;
  float charge(float v, float x) const {
    const float vr = p.hard_reset ? p.v_reset : 0.0f;
    if (p.kind == NeuronKind::kIF) return v + x;
    if (p.decay_input) return v + (x - (v - vr)) * k;
    return v - (v - vr) * k + x;
  }
  float fire(float h) const { return (h - p.v_threshold >= 0.0f) ? 1.0f : 0.0f; }
  float reset(float h, float s) const { return p.hard_reset ? (s != 0.0f ? p.v_reset : h) : h - s * p.v_threshold; }
};

NeuronParams random_neuron(Rng& rng, double p_extreme) {
  NeuronParams p;
  p.kind = static_cast<NeuronKind>(between(rng, 0, 2));
  p.hard_reset = chance(rng, 0.5);
  p.decay_input = chance(rng, 0.5);
  p.detach_reset = chance(rng, 0.5);
  p.v_threshold = chance(rng, p_extreme) ? extreme(rng) : float(between(rng, 1, 8)) / 4.0f;
  p.v_reset = chance(rng, p_extreme) ? extreme(rng) : float(between(rng, -4, 0)) / 8.0f;
  p.tau = chance(rng, p_extreme) ? double(extreme(rng)) : 1.0 + double(between(rng, 1, 40)) / 8.0;
  p.surrogate = default_surrogate(static_cast<SurrogateKind>(between(rng, 0, kNumSurrogateKinds - 1)));
  if (chance(rng, p_extreme)) p.surrogate.alpha = extreme(rng);
  return p;
}

const std::vector<std::string> kNeuronArgs = {"v_threshold", "v_reset", "tau", "surrogate", "alpha", "beta", "kind",
                                              "x_seq", "state_init", "learnable", "spike_seq", "state_final", "saved", "v_seq",
                                              "grad_spike_seq", "grad_v_seq", "grad_state_final", "grad_x_seq",
                                              "grad_state_init", "grad_learnable"};

TEST(Properties, NeuronForwardEqualsContractOrRefuses) {
  Rng rng(101);
  int compared = 0;
  for (int iter = 0; iter < 400; ++iter) {
    const NeuronParams p = random_neuron(rng, 0.2);
    const int64_t T = pick(rng, {0, 1, 2, 5}), N = pick(rng, {0, 1, 3, 17, 33, 70});
    const bool u8 = chance(rng, 0.5), repeat = T > 1 && chance(rng, 0.2);
    std::vector<float> xs(sz(T * N)), v0(sz(N)), h(sz(T * N), -7.0f), vs(sz(T * N), -7.0f), vfin(sz(N), -7.0f);
    std::vector<uint8_t> su(sz(T * N), 7);
    for (float& e : xs) e = value(rng, 0.05);
    for (float& e : v0) e = value(rng, 0.05) * 0.3f;
    Typed x(random_float_dtype(rng), xs), sf(random_float_dtype(rng), std::vector<float>(sz(T * N), -7.0f));
    float k_param = chance(rng, 0.2) ? extreme(rng) : 0.3f;
    NeuronForwardArgs a;
    a.x_seq = make_tensor_view(x.data(), x.dtype, {T, N});
    if (repeat) a.x_seq.strides[0] = 0;  // one row for every step
    a.state_init = make_tensor_view(v0.data(), DType::kFloat32, {1, N});
    a.learnable = make_tensor_view(&k_param, DType::kFloat32, {1});
    a.spike_seq = u8 ? make_tensor_view(su.data(), DType::kUInt8, {T, N}) : make_tensor_view(sf.data(), sf.dtype, {T, N});
    a.state_final = make_tensor_view(vfin.data(), DType::kFloat32, {1, N});
    a.saved = make_tensor_view(h.data(), DType::kFloat32, {1, T, N});
    if (chance(rng, 0.7)) a.v_seq = make_tensor_view(vs.data(), DType::kFloat32, {T, N});
    std::string broken;
    if (chance(rng, 0.25)) {
      broken = break_one(rng, {{"x_seq", &a.x_seq}, {"state_init", &a.state_init}, {"spike_seq", &a.spike_seq},
                               {"state_final", &a.state_final}});
    }
    SCOPED_TRACE("iteration " + std::to_string(iter) + " broken " + broken);
    if (!returns("neuron_multistep_forward", kNeuronArgs, [&] { neuron_multistep_forward(p, a); })) continue;
    EXPECT_EQ(broken, "") << "a broken " << broken << " was accepted";
    if (!broken.empty()) continue;
    ++compared;
    const ScalarNeuron ref{p, p.kind == NeuronKind::kLIF ? lif_decay(p.tau) : k_param};
    bool ok = true;
    for (int64_t n = 0; n < N && ok; ++n) {
      float v = v0[sz(n)];
      for (int64_t t = 0; t < T && ok; ++t) {
        const float hh = ref.charge(v, x[sz((repeat ? 0 : t) * N + n)]), s = ref.fire(hh);
        v = ref.reset(hh, s);
        const size_t i = sz(t * N + n);
        ok = same_float(h[i], hh) && (u8 ? su[i] == uint8_t(s) : sf[i] == s) && (!a.v_seq.defined() || same_float(vs[i], v));
        if (!ok) ADD_FAILURE() << "t " << t << " n " << n << ": h " << h[i] << " vs " << hh << ", s vs " << s;
      }
      if (ok && !same_float(vfin[sz(n)], v)) {
        ok = false;
        ADD_FAILURE() << "v_final of neuron " << n << ": " << vfin[sz(n)] << " vs " << v;
      }
    }
  }
  EXPECT_GT(compared, 100);
}

TEST(Properties, NeuronBackwardEqualsContractOrRefuses) {
  Rng rng(102);
  int compared = 0;
  for (int iter = 0; iter < 300; ++iter) {
    const NeuronParams p = random_neuron(rng, 0.1);
    const int64_t T = pick(rng, {0, 1, 3, 6}), N = pick(rng, {0, 1, 5, 33});
    const bool with_v_seq = chance(rng, 0.5), with_v_final = chance(rng, 0.5);
    std::vector<float> x(sz(T * N)), v0(sz(N)), h(sz(T * N)), vfin(sz(N)), gs(sz(T * N)),
        gvs(sz(T * N)), gvf(sz(N)), gx(sz(T * N), -7.0f), gv0(sz(N), -7.0f), gk(sz(N), -7.0f);
    std::vector<uint8_t> s(sz(T * N));
    for (float& e : x) e = value(rng, 0.0);
    for (float& e : v0) e = value(rng, 0.0) * 0.3f;
    for (float& e : gs) e = value(rng, 0.05);
    for (float& e : gvs) e = value(rng, 0.0);
    for (float& e : gvf) e = value(rng, 0.0);
    float k_param = 0.3f;
    // The forward gives h_seq (a refused forward refuses the same parameters in the backward too).
    NeuronForwardArgs f;
    f.x_seq = make_tensor_view(x.data(), DType::kFloat32, {T, N});
    f.state_init = make_tensor_view(v0.data(), DType::kFloat32, {1, N});
    f.learnable = make_tensor_view(&k_param, DType::kFloat32, {1});
    f.spike_seq = make_tensor_view(s.data(), DType::kUInt8, {T, N});
    f.state_final = make_tensor_view(vfin.data(), DType::kFloat32, {1, N});
    f.saved = make_tensor_view(h.data(), DType::kFloat32, {1, T, N});
    const bool forward_ok = returns("neuron_multistep_forward", kNeuronArgs, [&] { neuron_multistep_forward(p, f); });
    NeuronBackwardArgs b;
    b.grad_spike_seq = make_tensor_view(gs.data(), DType::kFloat32, {T, N});
    if (with_v_seq) b.grad_v_seq = make_tensor_view(gvs.data(), DType::kFloat32, {T, N});
    if (with_v_final) b.grad_state_final = make_tensor_view(gvf.data(), DType::kFloat32, {1, N});
    b.saved = f.saved;
    b.state_init = f.state_init;
    b.learnable = f.learnable;
    b.grad_x_seq = make_tensor_view(gx.data(), DType::kFloat32, {T, N});
    b.grad_state_init = make_tensor_view(gv0.data(), DType::kFloat32, {1, N});
    if (p.kind == NeuronKind::kParametricLIF) b.grad_learnable = make_tensor_view(gk.data(), DType::kFloat32, {1, N});
    std::string broken;
    if (chance(rng, 0.25)) {
      broken = break_one(rng, {{"grad_spike_seq", &b.grad_spike_seq}, {"saved", &b.saved},
                               {"grad_x_seq", &b.grad_x_seq}, {"grad_state_init", &b.grad_state_init}});
      if (broken == "grad_spike_seq (undefined)") {  // not broken: an absent spike gradient is 0
        broken.clear();
        std::fill(gs.begin(), gs.end(), 0.0f);
      }
    }
    SCOPED_TRACE("iteration " + std::to_string(iter) + " broken " + broken);
    const bool backward_ok =
        returns("neuron_multistep_backward", kNeuronArgs, [&] { neuron_multistep_backward(p, b); });
    if (!backward_ok) continue;
    EXPECT_EQ(broken, "") << "a broken " << broken << " was accepted";
    if (!broken.empty() || !forward_ok) continue;
    // dL/dH[t] = dL/dS[t] sg + dL/dV[t] dV/dH, with dV/dH through the reset (and through S unless detached);
    // then dL/dX[t] = dL/dH dH/dX and dL/dV[t-1] = dL/dH dH/dV.
    ++compared;
    const float k = p.kind == NeuronKind::kLIF ? lif_decay(p.tau) : k_param;
    const float vr = p.hard_reset ? p.v_reset : 0.0f;
    const ScalarNeuron ref{p, k};
    bool ok = true;
    for (int64_t n = 0; n < N && ok; ++n) {
      std::vector<float> v_prev(sz(T));
      float v = v0[sz(n)];
      for (int64_t t = 0; t < T; ++t) {
        v_prev[sz(t)] = v;
        v = ref.reset(h[sz(t * N + n)], ref.fire(h[sz(t * N + n)]));
      }
      float gv = with_v_final ? gvf[sz(n)] : 0.0f, gdk = 0.0f;
      for (int64_t t = T - 1; t >= 0; --t) {
        const size_t i = sz(t * N + n);
        const float hh = h[i], spike = ref.fire(hh), sg = surrogate_grad(p.surrogate, hh - p.v_threshold);
        if (with_v_seq) gv += gvs[i];
        float dv_dh;
        if (p.hard_reset) {
          dv_dh = (1.0f - spike) + (p.detach_reset ? 0.0f : (p.v_reset - hh) * sg);
        } else {
          dv_dh = 1.0f - (p.detach_reset ? 0.0f : p.v_threshold * sg);
        }
        const float gh = gs[i] * sg + gv * dv_dh;
        const float dh_dx = p.kind == NeuronKind::kIF || !p.decay_input ? 1.0f : k;
        const float dh_dv = p.kind == NeuronKind::kIF ? 1.0f : 1.0f - k;
        const float vp = v_prev[sz(t)];
        gdk += gh * (p.decay_input ? x[i] - (vp - vr) : -(vp - vr));
        if (!near_float(gx[i], gh * dh_dx)) {
          ok = false;
          ADD_FAILURE() << "grad_x t " << t << " n " << n << ": " << gx[i] << " vs " << gh * dh_dx;
        }
        gv = gh * dh_dv;
      }
      if (ok && !near_float(gv0[sz(n)], gv)) {
        ok = false;
        ADD_FAILURE() << "grad_v_init n " << n << ": " << gv0[sz(n)] << " vs " << gv;
      }
      if (ok && p.kind == NeuronKind::kParametricLIF && T > 0 && !near_float(gk[sz(n)], gdk)) {
        ok = false;
        ADD_FAILURE() << "grad_decay n " << n << ": " << gk[sz(n)] << " vs " << gdk;
      }
    }
  }
  EXPECT_GT(compared, 100);
}

// ---- surrogates ---------------------------------------------------------------------------------------------

TEST(Properties, SurrogatesEqualFormulaOrRefuse) {
  Rng rng(103);
  const std::vector<std::string> args = {"surrogate", "alpha", "beta", "kind", "x", "spike", "grad_spike", "grad_x"};
  int compared = 0;
  for (int iter = 0; iter < 400; ++iter) {
    Surrogate s = default_surrogate(static_cast<SurrogateKind>(between(rng, 0, kNumSurrogateKinds - 1)));
    if (chance(rng, 0.2)) s.alpha = extreme(rng);
    if (chance(rng, 0.1)) s.beta = extreme(rng);
    // any rank up to 8, sizes with 0 and odd ones
    const int ndim = int(between(rng, 1, kMaxDims));
    std::vector<int64_t> shape(sz(ndim));
    int64_t numel = 1;
    for (int64_t& d : shape) {
      d = numel > 300 ? 1 : pick(rng, {0, 1, 2, 3, 7, 17});
      numel *= d;
    }
    std::vector<float> xs(sz(numel)), gs(sz(numel));
    for (float& e : xs) e = value(rng, 0.2);
    for (float& e : gs) e = value(rng, 0.1);
    Typed x(random_float_dtype(rng), xs), g(random_float_dtype(rng), gs),
        gx(random_float_dtype(rng), std::vector<float>(sz(numel), -7.0f)),
        spike(random_float_dtype(rng), std::vector<float>(sz(numel), -7.0f));
    TensorView xv = x.view(shape.data(), ndim), gv = g.view(shape.data(), ndim), gxv = gx.view(shape.data(), ndim),
               sv = spike.view(shape.data(), ndim);
    std::string broken;
    if (chance(rng, 0.25)) broken = break_one(rng, {{"x", &xv}, {"grad_spike", &gv}, {"grad_x", &gxv}});
    SCOPED_TRACE("iteration " + std::to_string(iter) + " broken " + broken);
    if (returns("surrogate_backward", args, [&] { surrogate_backward(s, gv, xv, gxv); })) {
      EXPECT_EQ(broken, "") << "a broken " << broken << " was accepted";
      if (broken.empty()) {
        ++compared;
        for (int64_t i = 0; i < numel; ++i) {
          const float expected = gx.rounded(g[sz(i)] * surrogate_grad(s, x[sz(i)]));
          if (!same_float(gx[sz(i)], expected)) {
            ADD_FAILURE() << "element " << i << " of x " << x[sz(i)] << ": " << gx[sz(i)] << " vs " << expected;
            break;
          }
        }
      }
    }
    if (broken.empty() && returns("heaviside_forward", args, [&] { heaviside_forward(xv, sv); })) {
      for (int64_t i = 0; i < numel; ++i) {
        if (spike[sz(i)] != (x[sz(i)] >= 0.0f ? 1.0f : 0.0f)) {
          ADD_FAILURE() << "heaviside of " << x[sz(i)] << " gave " << spike[sz(i)];
          break;
        }
      }
    }
  }
  EXPECT_GT(compared, 100);
}

// ---- spike GEMM ---------------------------------------------------------------------------------------------

TEST(Properties, SpikeAccumulateEqualsPlainLoopOrRefuses) {
  Rng rng(104);
  const std::vector<std::string> args = {"spikes", "rows", "bias", "out", "kernel", "firing_rate", "rows_layout", "packed"};
  int compared = 0;
  for (int iter = 0; iter < 300; ++iter) {
    const int64_t M = pick(rng, {0, 1, 3, 17, 64, 70}), K = pick(rng, {0, 1, 5, 64, 130}),
                  N = pick(rng, {0, 1, 7, 64, 65, 200});
    std::mt19937 values{static_cast<uint32_t>(rng())};
    std::vector<uint8_t> spikes = op_reference::spikes(sz(M * K), pick(rng, {0, 1, 5, 10}) / 10.0, values);
    for (uint8_t& e : spikes) e = e != 0;  // 0/1 spikes: what other bytes mean is another test's concern
    std::vector<float> rows = op_reference::integers(sz(K * N), 8, values),
                       bias = op_reference::integers(sz(N), 8, values);
    const RowsLayout layout = static_cast<RowsLayout>(between(rng, 0, 2));
    std::vector<float> stored;  // rows in `layout`
    int64_t tiles = (N + kPackedTileN - 1) / kPackedTileN;
    TensorView rows_view;
    if (layout == RowsLayout::kRowMajor) {
      stored = rows;
      rows_view = make_tensor_view(stored.data(), DType::kFloat32, {K, N});
    } else if (layout == RowsLayout::kTransposed) {
      stored.resize(rows.size());
      for (int64_t k = 0; k < K; ++k)
        for (int64_t n = 0; n < N; ++n) stored[sz(n * K + k)] = rows[sz(k * N + n)];
      rows_view = make_tensor_view(stored.data(), DType::kFloat32, {N, K});
    } else {
      stored.assign(sz(tiles * K * kPackedTileN), -7.0f);
      rows_view = make_tensor_view(stored.data(), DType::kFloat32, {tiles, K, kPackedTileN});
      ASSERT_TRUE(returns("pack_rows", args, [&] {
        pack_rows(make_tensor_view(rows.data(), DType::kFloat32, {K, N}), rows_view);
      }));
    }
    const bool transposed = chance(rng, 0.3), with_bias = chance(rng, 0.5);
    Typed out(random_float_dtype(rng), std::vector<float>(sz(M * N), -7.0f));
    SpikeAccumulateArgs a;
    a.spikes = make_tensor_view(spikes.data(), DType::kUInt8, {M, K});
    a.rows = rows_view;
    a.rows_layout = layout;
    if (with_bias) a.bias = make_tensor_view(bias.data(), DType::kFloat32, {N});
    a.out = transposed ? make_tensor_view(out.data(), out.dtype, {N, M}) : make_tensor_view(out.data(), out.dtype, {M, N});
    a.out_transposed = transposed;
    a.kernel = static_cast<SpikeGemmKernel>(pick(rng, {0, 0, 1, 1, 2, 3, 4}));
    a.firing_rate = chance(rng, 0.2) ? double(extreme(rng)) : std::uniform_real_distribution<double>(-1, 1)(rng);
    std::string broken;
    if (chance(rng, 0.25)) {
      // (out^T's first dimension is N, which packed rows give only to a multiple of 64)
      broken = break_one(rng, {{"spikes", &a.spikes}, {"rows", &a.rows}, {"out", &a.out}},
                         transposed && layout == RowsLayout::kPacked ? "out" : "");
    }
    SCOPED_TRACE("iteration " + std::to_string(iter) + " M " + std::to_string(M) + " K " + std::to_string(K) +
                 " N " + std::to_string(N) + " broken " + broken);
    if (!returns("spike_accumulate", args, [&] { spike_accumulate(a); })) continue;
    EXPECT_EQ(broken, "") << "a broken " << broken << " was accepted";
    if (!broken.empty()) continue;
    ++compared;
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        float expected = with_bias ? bias[sz(n)] : 0.0f;
        for (int64_t k = 0; k < K; ++k) {
          if (spikes[sz(m * K + k)]) expected += rows[sz(k * N + n)];
        }
        const float got = out[sz(transposed ? n * M + m : m * N + n)];
        expected = out.rounded(expected);
        if (got != expected) {
          ADD_FAILURE() << "out[" << m << ", " << n << "] " << got << " vs " << expected;
          m = M;
          break;
        }
      }
  }
  EXPECT_GT(compared, 100);
}

// ---- convolutions -------------------------------------------------------------------------------------------

op_reference::ConvShape random_conv(Rng& rng) {
  op_reference::ConvShape s{};
  s.conv.groups = pick(rng, {1, 1, 2, 3});
  s.N = pick(rng, {0, 1, 2, 3});
  s.C = s.conv.groups * pick(rng, {1, 2, 3, 5});
  s.O = s.conv.groups * pick(rng, {1, 2, 4, 17});
  s.H = pick(rng, {0, 1, 2, 5, 8, 13});
  s.W = pick(rng, {1, 3, 6, 11});
  s.kh = pick(rng, {1, 2, 3, 5});
  s.kw = pick(rng, {1, 2, 3});
  for (int i = 0; i < 2; ++i) {
    s.conv.stride[i] = pick(rng, {1, 1, 2, 3});
    s.conv.padding[i] = pick(rng, {0, 0, 1, 2});
    s.conv.dilation[i] = pick(rng, {1, 1, 2});
  }
  if (chance(rng, 0.05)) s.conv.stride[0] = pick(rng, {0, -1});
  if (chance(rng, 0.05)) s.conv.padding[1] = -1;
  if (chance(rng, 0.05)) s.conv.dilation[0] = 0;
  if (chance(rng, 0.05)) s.conv.groups = pick(rng, {0, -1, 4});
  return s;
}

// The output size of the shape, or false where the geometry is not a convolution (the ops must refuse it).
bool output_size(const op_reference::ConvShape& s, int64_t& OH, int64_t& OW) {
  try {
    OH = conv2d_output_size(s.H, s.kh, s.conv.stride[0], s.conv.padding[0], s.conv.dilation[0]);
    OW = conv2d_output_size(s.W, s.kw, s.conv.stride[1], s.conv.padding[1], s.conv.dilation[1]);
  } catch (const Error&) {
    return false;
  }
  return s.conv.groups >= 1 && s.C % s.conv.groups == 0 && s.O % s.conv.groups == 0;
}

const std::vector<std::string> kConvArgs = {"spikes", "input", "weight", "bias", "out", "grad_out", "grad_weight",
                                            "stride", "padding", "dilation", "groups", "kernel", "arguments"};

TEST(Properties, SpikeConv2dEqualsPlainLoopOrRefuses) {
  Rng rng(105);
  int compared = 0;
  for (int iter = 0; iter < 400; ++iter) {
    const op_reference::ConvShape s = random_conv(rng);
    int64_t OH = 1, OW = 1;
    const bool valid = output_size(s, OH, OW);
    const int64_t groups = std::max<int64_t>(1, s.conv.groups), Cg = s.C / groups;
    std::mt19937 values{static_cast<uint32_t>(rng())};
    std::vector<uint8_t> spikes = op_reference::spikes(sz(s.N * s.C * s.H * s.W), 0.3, values);
    for (uint8_t& e : spikes) e = e != 0;
    const std::vector<float> x = op_reference::as_values(spikes);
    std::vector<float> w = op_reference::integers(sz(s.O * Cg * s.kh * s.kw), 8, values),
                       bias = op_reference::integers(sz(s.O), 8, values),
                       dy = op_reference::integers(sz(s.N * s.O * OH * OW), 4, values);
    // float16 and bfloat16 hold these integer weights and gradients exactly; results are rounded once
    Typed out(random_float_dtype(rng), std::vector<float>(sz(s.N * s.O * OH * OW), -7.0f)),
        gw(random_float_dtype(rng), std::vector<float>(w.size(), -7.0f)), w_typed(random_float_dtype(rng), w),
        dy_typed(random_float_dtype(rng), dy);
    std::vector<float> vout(sz(s.N * s.O * OH * OW), -7.0f);
    const bool with_bias = chance(rng, 0.5);
    SpikeConv2dArgs a;
    a.spikes = make_tensor_view(spikes.data(), DType::kUInt8, {s.N, s.C, s.H, s.W});
    a.weight = make_tensor_view(w_typed.data(), w_typed.dtype, {s.O, Cg, s.kh, s.kw});
    if (with_bias) a.bias = make_tensor_view(bias.data(), DType::kFloat32, {s.O});
    a.out = make_tensor_view(out.data(), out.dtype, {s.N, s.O, OH, OW});
    a.conv = s.conv;
    int64_t synaptic_ops = -1;
    a.synaptic_ops = &synaptic_ops;
    SpikeConv2dWeightGradArgs g;
    g.spikes = a.spikes;
    g.grad_out = make_tensor_view(dy_typed.data(), dy_typed.dtype, {s.N, s.O, OH, OW});
    g.grad_weight = make_tensor_view(gw.data(), gw.dtype, {s.O, Cg, s.kh, s.kw});
    g.conv = s.conv;
    Conv2dArgs c;  // the same convolution of the spikes as float values
    c.input = make_tensor_view(const_cast<float*>(x.data()), DType::kFloat32, {s.N, s.C, s.H, s.W});
    c.weight = make_tensor_view(w.data(), DType::kFloat32, {s.O, Cg, s.kh, s.kw});
    c.bias = a.bias;
    c.out = make_tensor_view(vout.data(), DType::kFloat32, {s.N, s.O, OH, OW});
    c.conv = s.conv;
    // At most one argument of one of the three calls is broken; that call must refuse it.
    std::string broken;
    const int64_t victim = chance(rng, 0.25) ? between(rng, 0, 2) : -1;
    if (victim == 0) broken = break_one(rng, {{"spikes", &a.spikes}, {"weight", &a.weight}, {"out", &a.out}});
    if (victim == 1) {
      broken = break_one(rng, {{"spikes", &g.spikes}, {"grad_out", &g.grad_out}, {"grad_weight", &g.grad_weight}});
    }
    if (victim == 2) broken = break_one(rng, {{"input", &c.input}, {"weight", &c.weight}, {"out", &c.out}});
    SCOPED_TRACE("iteration " + std::to_string(iter) + " N " + std::to_string(s.N) + " C " + std::to_string(s.C) +
                 " H " + std::to_string(s.H) + " W " + std::to_string(s.W) + " O " + std::to_string(s.O) +
                 " kernel " + std::to_string(s.kh) + "x" + std::to_string(s.kw) + " groups " +
                 std::to_string(s.conv.groups) + " broken " + broken);
    const bool forward = returns("spike_conv2d", kConvArgs, [&] { spike_conv2d(a); });
    const bool backward = returns("spike_conv2d_weight_grad", kConvArgs, [&] { spike_conv2d_weight_grad(g); });
    const bool values_forward = returns("conv2d", kConvArgs, [&] { conv2d(c); });
    EXPECT_EQ(forward, valid && !(victim == 0 && !broken.empty()));
    EXPECT_EQ(backward, valid && !(victim == 1 && !broken.empty()));
    EXPECT_EQ(values_forward, valid && !(victim == 2 && !broken.empty()));
    if (!valid || !broken.empty()) continue;
    ASSERT_TRUE(forward && backward && values_forward);
    ++compared;
    const std::vector<float> bias_ref = with_bias ? bias : std::vector<float>();
    const std::vector<float> expected_out = op_reference::conv2d(s, x, w, bias_ref),
                             expected_gw = op_reference::conv2d_weight_grad(s, x, dy);
    EXPECT_EQ(vout, expected_out);
    EXPECT_EQ(synaptic_ops, op_reference::conv2d_synaptic_ops(s, x));
    for (size_t i = 0; i < expected_out.size(); ++i) {
      if (out[i] != out.rounded(expected_out[i])) {
        ADD_FAILURE() << "spike_conv2d out[" << i << "] " << out[i] << " vs " << expected_out[i];
        break;
      }
    }
    for (size_t i = 0; i < expected_gw.size(); ++i) {
      if (gw[i] != gw.rounded(expected_gw[i])) {
        ADD_FAILURE() << "grad_weight[" << i << "] " << gw[i] << " vs " << expected_gw[i];
        break;
      }
    }
  }
  EXPECT_GT(compared, 100);
}

// ---- pooling, linear, encoding, counting ---------------------------------------------------------------------

TEST(Properties, Pool2dEqualsPlainLoopOrRefuses) {
  Rng rng(106);
  const std::vector<std::string> args = {"input", "out", "kind", "kernel", "stride", "padding"};
  int compared = 0;
  for (int iter = 0; iter < 400; ++iter) {
    op_reference::PoolShape s{pick(rng, {0, 1, 2}), pick(rng, {1, 3}), pick(rng, {0, 1, 4, 7}), pick(rng, {1, 2, 5, 9}),
                              pick(rng, {1, 2, 3}), pick(rng, {1, 2, 3}), pick(rng, {1, 2, 3}), pick(rng, {1, 2}),
                              pick(rng, {0, 0, 1}), pick(rng, {0, 1})};
    if (chance(rng, 0.05)) s.sh = 0;
    if (chance(rng, 0.05)) s.kw = -1;
    const bool valid = s.kh >= 1 && s.kw >= 1 && s.sh >= 1 && s.sw >= 1 && 2 * s.ph <= s.kh && 2 * s.pw <= s.kw &&
                       s.H + 2 * s.ph >= s.kh && s.W + 2 * s.pw >= s.kw;
    const int64_t OH = valid ? s.OH() : 1, OW = valid ? s.OW() : 1;
    const bool bytes = chance(rng, 0.3), is_max = bytes || chance(rng, 0.5);
    std::vector<float> x(sz(s.N * s.C * s.H * s.W)), out(sz(s.N * s.C * OH * OW), -7.0f);
    std::vector<uint8_t> xb(x.size()), outb(out.size(), 7);
    for (size_t i = 0; i < x.size(); ++i) {
      xb[i] = chance(rng, 0.3);
      x[i] = bytes ? float(xb[i]) : value(rng, 0.1);
    }
    Pool2dArgs a;
    a.input = bytes ? make_tensor_view(xb.data(), DType::kUInt8, {s.N, s.C, s.H, s.W})
                    : make_tensor_view(x.data(), DType::kFloat32, {s.N, s.C, s.H, s.W});
    a.out = bytes ? make_tensor_view(outb.data(), DType::kUInt8, {s.N, s.C, OH, OW})
                  : make_tensor_view(out.data(), DType::kFloat32, {s.N, s.C, OH, OW});
    a.kind = is_max ? PoolKind::kMax : PoolKind::kAvg;
    a.kernel[0] = s.kh, a.kernel[1] = s.kw, a.stride[0] = s.sh, a.stride[1] = s.sw;
    a.padding[0] = s.ph, a.padding[1] = s.pw;
    a.count_include_pad = chance(rng, 0.5);
    std::string broken;
    if (chance(rng, 0.2)) broken = break_one(rng, {{"input", &a.input}, {"out", &a.out}});
    SCOPED_TRACE("iteration " + std::to_string(iter) + " broken " + broken);
    if (!returns("pool2d", args, [&] { pool2d(a); })) continue;
    EXPECT_TRUE(broken.empty() && valid) << "pool2d accepted a broken " << broken << " or an invalid geometry";
    if (!broken.empty() || !valid) continue;
    ++compared;
    const std::vector<float> expected = op_reference::pool2d(s, x, is_max, a.count_include_pad);
    for (size_t i = 0; i < expected.size(); ++i) {
      const float got = bytes ? float(outb[i]) : out[i];
      if (!same_float(got, expected[i])) {
        ADD_FAILURE() << "out[" << i << "] " << got << " vs " << expected[i];
        break;
      }
    }
  }
  EXPECT_GT(compared, 100);
}

TEST(Properties, LinearEqualsPlainLoopOrRefuses) {
  Rng rng(107);
  const std::vector<std::string> args = {"x", "weight_t", "bias", "out"};
  int compared = 0;
  for (int iter = 0; iter < 300; ++iter) {
    const int64_t M = pick(rng, {0, 1, 3, 17}), K = pick(rng, {0, 1, 5, 33}), O = pick(rng, {0, 1, 7, 16, 70});
    std::mt19937 values{static_cast<uint32_t>(rng())};
    std::vector<float> x = op_reference::integers(sz(M * K), 4, values), wt = op_reference::integers(sz(K * O), 4, values),
                       bias = op_reference::integers(sz(O), 4, values), out(sz(M * O), -7.0f);
    const bool with_bias = chance(rng, 0.5);
    LinearArgs a;
    a.x = make_tensor_view(x.data(), DType::kFloat32, {M, K});
    a.weight_t = make_tensor_view(wt.data(), DType::kFloat32, {K, O});
    if (with_bias) a.bias = make_tensor_view(bias.data(), DType::kFloat32, {O});
    a.out = make_tensor_view(out.data(), DType::kFloat32, {M, O});
    std::string broken;
    if (chance(rng, 0.25)) broken = break_one(rng, {{"x", &a.x}, {"weight_t", &a.weight_t}, {"out", &a.out}});
    SCOPED_TRACE("iteration " + std::to_string(iter) + " broken " + broken);
    if (!returns("linear", args, [&] { linear(a); })) continue;
    EXPECT_EQ(broken, "") << "a broken " << broken << " was accepted";
    if (!broken.empty()) continue;
    ++compared;
    for (int64_t m = 0; m < M; ++m)
      for (int64_t o = 0; o < O; ++o) {
        float expected = with_bias ? bias[sz(o)] : 0.0f;
        for (int64_t k = 0; k < K; ++k) expected += x[sz(m * K + k)] * wt[sz(k * O + o)];
        if (out[sz(m * O + o)] != expected) {
          ADD_FAILURE() << "out[" << m << ", " << o << "] " << out[sz(m * O + o)] << " vs " << expected;
          m = M;
          break;
        }
      }
  }
  EXPECT_GT(compared, 100);
}

TEST(Properties, PoissonEncodeAndCountEqualPlainLoopOrRefuse) {
  Rng rng(108);
  int compared = 0;
  for (int iter = 0; iter < 300; ++iter) {
    const int64_t T = pick(rng, {0, 1, 3, 8}), B = pick(rng, {0, 1, 2, 5}), F = pick(rng, {0, 1, 7, 64, 100});
    std::vector<float> x(sz(B * F));
    for (float& e : x) e = chance(rng, 0.2) ? extreme(rng) : std::uniform_real_distribution<float>(-0.2f, 1.2f)(rng);
    std::vector<uint8_t> out(sz(T * B * F), 7);
    PoissonEncodeArgs a;
    a.input = make_tensor_view(x.data(), DType::kFloat32, {B, F});
    a.out = make_tensor_view(out.data(), DType::kUInt8, {T, B, F});
    a.seed = rng();
    std::string broken;
    if (chance(rng, 0.25)) broken = break_one(rng, {{"input", &a.input}});  // (out's first dimension is T)
    SCOPED_TRACE("iteration " + std::to_string(iter) + " broken " + broken);
    if (returns("poisson_encode", {"input", "out", "seed"}, [&] { poisson_encode(a); })) {
      EXPECT_EQ(broken, "") << "a broken " << broken << " was accepted";
      if (!broken.empty()) continue;
      ++compared;
      int64_t ones = 0;
      for (int64_t i = 0; i < T * B * F; ++i) {
        const uint8_t expected = op_reference::poisson_spike(a.seed, i, x[sz(i % (B * F))]);
        ones += expected;
        if (out[sz(i)] != expected) {
          ADD_FAILURE() << "element " << i << " of input " << x[sz(i % (B * F))];
          break;
        }
      }
      // count_nonzero of the code; a broken view is refused (a wrong shape or rank it cannot tell, and a
      // CUDA view would be read as device memory in a CUDA build)
      TensorView spikes = a.out;
      const auto breakage = static_cast<Breakage>(pick(rng, {0, 0, 1, 2, 4, 7}));
      const bool spikes_broken = breaks(spikes, breakage);
      int64_t counted = -1;
      if (returns("count_nonzero", {"spikes"}, [&] { counted = count_nonzero(spikes); })) {
        EXPECT_FALSE(spikes_broken) << "count_nonzero accepted a broken view, breakage " << int(breakage);
        if (!spikes_broken) EXPECT_EQ(counted, ones);
      }
    }
  }
  EXPECT_GT(compared, 100);
}

// ---- what the properties found ------------------------------------------------------------------------------

// The neuron parameters and the surrogate were checked by the public validate_* functions, whose messages
// ("neuron params: tau must be ...", "surrogate.alpha of Sigmoid must be ...") did not say which op refused them.
TEST(Properties, ParameterErrorsNameTheOp) {
  float x[2] = {0.5f, -1.0f}, v[2] = {0.0f, 0.0f}, h[2], gx[2], s[2], vfin[1];
  NeuronParams p;
  p.tau = 0.5;
  NeuronForwardArgs f;
  f.x_seq = make_tensor_view(x, DType::kFloat32, {2, 1});
  f.state_init = make_tensor_view(v, DType::kFloat32, {1});
  f.spike_seq = make_tensor_view(s, DType::kFloat32, {2, 1});
  f.state_final = make_tensor_view(vfin, DType::kFloat32, {1});
  f.saved = make_tensor_view(h, DType::kFloat32, {2, 1});
  EXPECT_ERROR(neuron_multistep_forward(p, f), "neuron_multistep_forward: neuron params: LIF tau must be");
  NeuronBackwardArgs b;
  b.grad_spike_seq = f.x_seq;
  b.saved = f.x_seq;
  b.grad_x_seq = make_tensor_view(gx, DType::kFloat32, {2, 1});
  b.grad_state_init = make_tensor_view(v, DType::kFloat32, {1});
  p = NeuronParams();
  p.v_threshold = std::numeric_limits<float>::infinity();
  EXPECT_ERROR(neuron_multistep_backward(p, b), "neuron_multistep_backward: neuron params: v_threshold must be finite");
  Surrogate sg;
  sg.alpha = 0.0f;
  const TensorView xv = make_tensor_view(x, DType::kFloat32, {2});
  EXPECT_ERROR(surrogate_backward(sg, xv, xv, make_tensor_view(gx, DType::kFloat32, {2})),
               "surrogate_backward: surrogate.alpha of Sigmoid must be");
  EXPECT_ERROR(validate_surrogate(sg, "sg"), "sg.alpha of Sigmoid");  // (the public check keeps its words)
}

// CUDA tensors in a build without CUDA: the error named neither the op nor the argument.
TEST(Properties, CudaTensorsWithoutCudaNameTheOpAndArgument) {
  if (build_info().cuda) GTEST_SKIP() << "this build has CUDA (or the simulator)";
  uint8_t bytes[4] = {1, 0, 1, 1};
  TensorView spikes = make_tensor_view(bytes, DType::kUInt8, {4}, Device::kCUDA);
  EXPECT_ERROR(count_nonzero(spikes), "count_nonzero: spikes is on a CUDA device, but this spikeops was built without CUDA");
  float x[4] = {}, out[4];
  Pool2dArgs a;
  a.input = make_tensor_view(x, DType::kFloat32, {1, 1, 2, 2}, Device::kCUDA);
  a.out = make_tensor_view(out, DType::kFloat32, {1, 1, 1, 1}, Device::kCUDA);
  EXPECT_ERROR(pool2d(a), "pool2d: input is on a CUDA device");
}

}  // namespace
