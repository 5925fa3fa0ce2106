// Every neuron model (every NeuronKind) through the public API on the CPU: the backward against central finite
// differences of the forward, an explicit surrogate_grad_seq against the one the backward computes, the state
// and saved shapes with their errors, and x_seq repeating one row. Each test runs once per kind
// (neuron_model_cases.hpp), so a new model is covered by adding its row of parameters there.
//
// Finite differences see the Heaviside, whose derivative is 0 away from the threshold, while the backward uses
// the surrogate σ'(u). The gradient tests therefore use the Rect surrogate (σ' = α for |u| < 1/(2α), else
// exactly 0) and compare only neurons whose fire input u stays at least kMargin from the threshold at every
// step: there no spike flips under the perturbation and σ'(u) is 0, so both sides are the derivative of the
// same piecewise-smooth function. That covers the state recurrence (charge, leak, adaptation) and, where
// spikes occur, the reset at fixed S. The surrogate's own path is checked the same way with σ' given as
// surrogate_grad_seq (1 at one step, 0 elsewhere: the backward is then the derivative of that step's u), and
// by the tests of detach_reset and surrogate_grad_seq.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "neuron_model_cases.hpp"
#include "spikeops/detail/neuron_models.hpp"
#include "spikeops/detail/surrogate_math.hpp"
#include "spikeops/spikeops.hpp"
#include "test_util.hpp"

using namespace spikeops;
using spikeops_test::model_case;
using spikeops_test::model_label;
using spikeops_test::model_params;
using spikeops_test::ModelCase;

namespace {

constexpr float kRectAlpha = 10.0f;  // σ'(u) = 0 for |u| >= 0.05
constexpr float kMargin = 0.1f;      // |u| of a compared neuron: twice the Rect window

struct Dims {
  int64_t T, N, S, K, P;
  bool saved_grad;  // the saved values are an output too (their gradient is part of the loss)
};

Dims dims_of(NeuronKind kind, int64_t T, int64_t N) {
  const NeuronInfo info = neuron_info(kind);
  return {T, N, info.states, info.saved, info.learnable, info.saved_grad};
}

TensorView view(std::vector<float>& v, std::initializer_list<int64_t> shape) {
  return make_tensor_view(v.data(), DType::kFloat32, shape);
}
// [lead, a] or [lead, a, b] (b < 0: none), e.g. [S, N] or [K, T, N]; with `drop`, the leading dimension left
// out when it is 1, as the API allows.
TensorView per_model(std::vector<float>& v, int64_t lead, int64_t a, int64_t b, bool drop) {
  if (drop && lead == 1) return b < 0 ? view(v, {a}) : view(v, {a, b});
  return b < 0 ? view(v, {lead, a}) : view(v, {lead, a, b});
}

struct Forward {
  std::vector<float> spikes, state_final, saved, v_seq;
};

Forward run_forward(const NeuronParams& p, const Dims& d, std::vector<float> x, std::vector<float> state_init,
                    std::vector<float> learnable, bool drop = false) {
  Forward f;
  f.spikes.assign(d.T * d.N, -1.0f);
  f.state_final.assign(d.S * d.N, NAN);
  f.saved.assign(d.K * d.T * d.N, NAN);
  f.v_seq.assign(d.T * d.N, NAN);
  NeuronForwardArgs a;
  a.x_seq = view(x, {d.T, d.N});
  a.state_init = per_model(state_init, d.S, d.N, -1, drop);
  if (d.P > 0) a.learnable = view(learnable, {d.P});
  a.spike_seq = view(f.spikes, {d.T, d.N});
  a.state_final = per_model(f.state_final, d.S, d.N, -1, drop);
  a.saved = per_model(f.saved, d.K, d.T, d.N, drop);
  a.v_seq = view(f.v_seq, {d.T, d.N});
  neuron_multistep_forward(p, a);
  return f;
}

// The gradients reaching the outputs (saved: empty unless the model's saved values are an output), and the
// backward's results.
struct Grads {
  std::vector<float> spikes, v_seq, state_final, saved;
};
struct Backward {
  std::vector<float> x, state_init, learnable;
};

// Two backwards that must agree bit for bit: every result.
void expect_same_backward(const Backward& a, const Backward& b) {
  EXPECT_EQ(a.x, b.x);
  EXPECT_EQ(a.state_init, b.state_init);
  EXPECT_EQ(a.learnable, b.learnable);
}

Backward run_backward(const NeuronParams& p, const Dims& d, std::vector<float> saved, std::vector<float> state_init,
                      std::vector<float> learnable, Grads g, const std::vector<float>* surrogate_grad = nullptr,
                      bool drop = false) {
  Backward r;
  r.x.assign(d.T * d.N, NAN);
  r.state_init.assign(d.S * d.N, NAN);
  r.learnable.assign(d.P * d.N, NAN);
  std::vector<float> sg = surrogate_grad ? *surrogate_grad : std::vector<float>();
  NeuronBackwardArgs b;
  if (!g.spikes.empty()) b.grad_spike_seq = view(g.spikes, {d.T, d.N});  // empty: absent
  b.grad_v_seq = view(g.v_seq, {d.T, d.N});
  b.grad_state_final = per_model(g.state_final, d.S, d.N, -1, drop);
  if (!g.saved.empty()) b.grad_saved = per_model(g.saved, d.K, d.T, d.N, drop);
  b.saved = per_model(saved, d.K, d.T, d.N, drop);
  b.state_init = per_model(state_init, d.S, d.N, -1, drop);
  if (d.P > 0) {
    b.learnable = view(learnable, {d.P});
    b.grad_learnable = per_model(r.learnable, d.P, d.N, -1, drop);
  }
  if (surrogate_grad) b.surrogate_grad_seq = view(sg, {d.T, d.N});
  b.grad_x_seq = view(r.x, {d.T, d.N});
  b.grad_state_init = per_model(r.state_init, d.S, d.N, -1, drop);
  neuron_multistep_backward(p, b);
  return r;
}

// u[t, n], the surrogate's argument at every step, from the saved values with the model's own fire_input.
std::vector<float> fire_inputs(const NeuronParams& p, const Dims& d, const std::vector<float>& saved,
                               const std::vector<float>& learnable) {
  std::vector<float> u(d.T * d.N);
  with_neuron_model(p, [&](auto model) {
    using M = decltype(model);
    typename M::Consts c = M::consts(p);
    M::bind(c, learnable.data());
    for (int64_t i = 0; i < d.T * d.N; ++i) {
      float s[M::kSaved];
      for (int k = 0; k < M::kSaved; ++k) s[k] = saved[k * d.T * d.N + i];
      u[i] = M::fire_input(c, s);
    }
  });
  return u;
}

// The loss of each neuron: its share of <g, outputs>, in double.
std::vector<double> losses(const Dims& d, const Forward& f, const Grads& g) {
  std::vector<double> l(d.N, 0.0);
  for (int64_t n = 0; n < d.N; ++n) {
    for (int64_t t = 0; t < d.T; ++t) {
      const int64_t i = t * d.N + n;
      l[n] += double(g.spikes[i]) * f.spikes[i] + double(g.v_seq[i]) * f.v_seq[i];
    }
    for (int64_t j = 0; j < d.S; ++j) l[n] += double(g.state_final[j * d.N + n]) * f.state_final[j * d.N + n];
    for (int64_t k = 0; k < static_cast<int64_t>(g.saved.size()) / (d.T * d.N); ++k) {
      for (int64_t t = 0; t < d.T; ++t) {
        const int64_t i = (k * d.T + t) * d.N + n;
        l[n] += double(g.saved[i]) * f.saved[i];
      }
    }
  }
  return l;
}

std::vector<float> uniform(std::mt19937& rng, int64_t n, float lo, float hi) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& e : v) e = dist(rng);
  return v;
}

std::vector<float> normal(std::mt19937& rng, int64_t n) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& e : v) e = dist(rng);
  return v;
}

// Random operands of one model: inputs in its sub-threshold range (plus, with `pulses`, a pulse of 3 at about
// a third of the neuron-steps, which makes most neurons spike), initial states in its ranges, gradients.
struct Operands {
  std::vector<float> x, state_init, learnable;
  Grads g;
};

Operands operands(const ModelCase& m, const Dims& d, bool pulses, std::mt19937& rng) {
  Operands o;
  EXPECT_EQ(static_cast<int64_t>(m.state_range.size()), d.S) << "model_case needs a range for every state";
  o.x = uniform(rng, d.T * d.N, m.x_lo, m.x_hi);
  if (pulses) {
    std::bernoulli_distribution pulse(0.35);
    for (auto& e : o.x) e += pulse(rng) ? 3.0f : 0.0f;
  }
  for (int64_t j = 0; j < d.S; ++j) {
    const auto r = uniform(rng, d.N, m.state_range[j].first, m.state_range[j].second);
    o.state_init.insert(o.state_init.end(), r.begin(), r.end());
  }
  o.learnable = m.learnable;
  o.g = {normal(rng, d.T * d.N), normal(rng, d.T * d.N), normal(rng, d.S * d.N),
         d.saved_grad ? normal(rng, d.K * d.T * d.N) : std::vector<float>()};
  return o;
}

::testing::AssertionResult near(const char* what, int64_t index, double fd, float got) {
  const double tol = 2e-3 + 1e-2 * std::fabs(fd);
  if (std::fabs(fd - got) <= tol) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << what << " of neuron-index " << index << ": backward " << got
                                       << ", finite difference " << fd;
}

// Compares a backward's results with central differences of `loss` (each neuron's loss from the operands),
// for the neurons marked in `compared`. One tensor entry per neuron is perturbed at once: the neurons are
// independent.
template <typename Loss>
void expect_matches_differences(const Dims& d, const Operands& o,
                                const std::vector<bool>& compared, const Backward& b, Loss&& loss) {
    const int64_t T = d.T, N = d.N;
  const float eps = 4e-3f;
  auto difference = [&](auto perturb) {
    Operands plus = o, minus = o;
    perturb(plus, eps);
    perturb(minus, -eps);
    const std::vector<double> lp = loss(plus), lm = loss(minus);
    std::vector<double> fd(N);
    for (int64_t n = 0; n < N; ++n) fd[n] = (lp[n] - lm[n]) / (2.0 * eps);
    return fd;
  };
  for (int64_t t = 0; t < T; ++t) {
    const auto fd = difference([&](Operands& q, float e) {
      for (int64_t n = 0; n < N; ++n) q.x[t * N + n] += e;
    });
    for (int64_t n = 0; n < N; ++n) {
      if (compared[n]) {
        EXPECT_TRUE(near("grad_x_seq", t * N + n, fd[n], b.x[t * N + n]));
      }
    }
  }
  for (int64_t j = 0; j < d.S; ++j) {
    const auto fd = difference([&](Operands& q, float e) {
      for (int64_t n = 0; n < N; ++n) q.state_init[j * N + n] += e;
    });
    for (int64_t n = 0; n < N; ++n) {
      if (compared[n]) {
        EXPECT_TRUE(near("grad_state_init", j * N + n, fd[n], b.state_init[j * N + n]));
      }
    }
  }
  for (int64_t k = 0; k < d.P; ++k) {
    const auto fd = difference([&](Operands& q, float e) { q.learnable[k] += e; });
    for (int64_t n = 0; n < N; ++n) {
      if (compared[n]) {
        EXPECT_TRUE(near("grad_learnable", k * N + n, fd[n], b.learnable[k * N + n]));
      }
    }
  }
}

// Repeated pulses drive QIF and EIF with a soft reset into their blow-up (V grows without bound after
// subtracting the threshold): such neurons have huge or infinite derivatives, which differences cannot check.
bool bounded(float value) { return std::fabs(value) <= 20.0f; }

// The backward of one configuration against central differences: dL/dx[t, n], dL/dstate_init[j, n] and the
// per-neuron dL/dlearnable[p, n], for the neurons whose |u| stays >= kMargin and whose V and saved values stay
// bounded. Below threshold (no pulses) every
// neuron must qualify and none spike, or the case would prove less than it claims; with pulses, at least a
// few spiking neurons must qualify. Returns how many neurons were compared.
int64_t expect_backward_matches_differences(const NeuronParams& p, int variant, int64_t T, int64_t N, bool pulses,
                                            unsigned seed) {
  SCOPED_TRACE(model_label(p, variant) + ", T " + std::to_string(T) + ", N " + std::to_string(N) +
               (pulses ? ", spiking" : ", below threshold"));
  const ModelCase m = model_case(p.kind);
  const Dims d = dims_of(p.kind, T, N);
  std::mt19937 rng(seed);
  const Operands o = operands(m, d, pulses, rng);
  const Forward f = run_forward(p, d, o.x, o.state_init, o.learnable);
  const std::vector<float> u = fire_inputs(p, d, f.saved, o.learnable);
  std::vector<bool> compared(N, true);
  int64_t compared_count = 0, spiking = 0;
  for (int64_t n = 0; n < N; ++n) {
    bool spiked = false;
    for (int64_t t = 0; t < T; ++t) {
      compared[n] = compared[n] && std::fabs(u[t * N + n]) >= kMargin && bounded(f.v_seq[t * N + n]);
      for (int64_t k = 0; k < d.K; ++k) compared[n] = compared[n] && bounded(f.saved[(k * T + t) * N + n]);
      spiked = spiked || f.spikes[t * N + n] != 0.0f;
    }
    compared_count += compared[n];
    spiking += compared[n] && spiked;
  }
  if (pulses && m.fires) {
    EXPECT_GE(spiking, std::min<int64_t>(N, 2)) << "too few spiking neurons away from the threshold";
  } else if (pulses) {
    EXPECT_EQ(compared_count, N) << "a non-spiking model has no threshold to come near";
    EXPECT_EQ(spiking, 0) << "a non-spiking model fired";
  } else {
    EXPECT_EQ(compared_count, N) << "inputs meant to stay below threshold came within " << kMargin << " of it";
    EXPECT_EQ(spiking, 0) << "inputs meant to stay below threshold made a neuron spike";
  }
  const Backward b = run_backward(p, d, f.saved, o.state_init, o.learnable, o.g);

  expect_matches_differences(d, o, compared, b, [&](const Operands& q) {
    return losses(d, run_forward(p, d, q.x, q.state_init, q.learnable), o.g);
  });
  return compared_count;
}

// Each configuration of a model: reset modes it has, decay_input both ways where it reads it, detach_reset
// both ways, its variants.
template <typename Fn>
void for_each_config(NeuronKind kind, Surrogate surrogate, Fn&& fn) {
  const ModelCase m = model_case(kind);
  for (int hard = m.has_hard_reset ? 1 : 0; hard >= 0; --hard) {
    for (int decay_input = m.reads_decay_input ? 0 : 1; decay_input < 2; ++decay_input) {
      for (int detach = 0; detach < 2; ++detach) {
        for (int variant = 0; variant < m.variants; ++variant) {
          fn(model_params(kind, hard, decay_input, detach, variant, surrogate), variant);
        }
      }
    }
  }
}

// N of 1, 13 (not a multiple of 8) and 16; T of 1, 5 and 8.
const int64_t kShapes[][2] = {{1, 1}, {5, 13}, {8, 16}};

class NeuronModel : public ::testing::TestWithParam<NeuronKind> {};

// Below threshold no spike occurs: this proves the charge (and leak, adaptation, learnable scalars) and its
// derivative in x, every state and every learnable scalar, over T steps.
TEST_P(NeuronModel, BackwardMatchesFiniteDifferencesBelowThreshold) {
  unsigned seed = 1;
  for_each_config(GetParam(), Surrogate{SurrogateKind::kRect, kRectAlpha, 0.0f}, [&](const NeuronParams& p, int variant) {
    for (const auto& s : kShapes) expect_backward_matches_differences(p, variant, s[0], s[1], false, seed++);
  });
}

// With pulses most neurons spike; those that stay kMargin from the threshold prove the reset at fixed S
// (hard: no gradient through V past a spike; soft: subtracting the threshold) and what a spike does to the
// other states (ALIF's A, Izhikevich's W, ComplementaryLIF's M, KLIF's scale_reset).
TEST_P(NeuronModel, BackwardMatchesFiniteDifferencesWhileSpiking) {
  unsigned seed = 1000;
  for_each_config(GetParam(), Surrogate{SurrogateKind::kRect, kRectAlpha, 0.0f}, [&](const NeuronParams& p, int variant) {
    for (const auto& s : kShapes) {
      if (s[1] > 1) expect_backward_matches_differences(p, variant, s[0], s[1], true, seed++);
    }
  });
}

// The surrogate's path: with a smooth surrogate the gradient through S in the reset is nonzero, so
// detach_reset must change the gradient of a model that reads it, and must not change one that does not.
TEST_P(NeuronModel, DetachResetChangesTheSurrogatePath) {
  const NeuronKind kind = GetParam();
  const ModelCase m = model_case(kind);
  const Dims d = dims_of(kind, 6, 13);
  std::mt19937 rng(77);
  const Operands o = operands(m, d, true, rng);
  const Surrogate sigmoid{SurrogateKind::kSigmoid, 4.0f, 0.0f};
  for (int hard = m.has_hard_reset ? 1 : 0; hard >= 0; --hard) {
    Backward r[2];
    for (int detach = 0; detach < 2; ++detach) {
      const NeuronParams p = model_params(kind, hard, true, detach, 0, sigmoid);
      const Forward f = run_forward(p, d, o.x, o.state_init, o.learnable);
      r[detach] = run_backward(p, d, f.saved, o.state_init, o.learnable, o.g);
    }
    SCOPED_TRACE(std::string(neuron_name(kind)) + (hard ? " hard" : " soft") + " reset");
    if (m.reads_detach_reset) {
      EXPECT_NE(r[0].x, r[1].x);
    } else {
      EXPECT_EQ(r[0].x, r[1].x);
      EXPECT_EQ(r[0].state_init, r[1].state_init);
    }
  }
}

// The spike's own gradient path: with σ' = 1 at step t0 only (given as surrogate_grad_seq) and dL/dS = c at
// t0 only, the backward must give c du[t0]/d(x, state_init, learnable): the derivative of the fire input, through
// every state and the earlier steps' resets at fixed S, compared with central differences of u[t0] itself
// (neurons whose u stays kMargin from the threshold up to t0, so no spike flips). This checks what the
// surrogate multiplies in each model (H - B for ALIF, relu(k H) for KLIF, ...), which the tests above leave out.
TEST_P(NeuronModel, SpikeGradientIsTheFireInputsDerivative) {
  const NeuronKind kind = GetParam();
  const Dims d = dims_of(kind, 5, 13);
  unsigned seed = 300;
  for_each_config(kind, Surrogate{SurrogateKind::kRect, kRectAlpha, 0.0f}, [&](const NeuronParams& p, int variant) {
    std::mt19937 rng(seed++);
    const Operands o = operands(model_case(kind), d, true, rng);
    const Forward f = run_forward(p, d, o.x, o.state_init, o.learnable);
    const std::vector<float> u = fire_inputs(p, d, f.saved, o.learnable);
    for (int64_t t0 = 0; t0 < d.T; ++t0) {
      SCOPED_TRACE(model_label(p, variant) + ", t0 " + std::to_string(t0));
      std::vector<bool> compared(d.N, true);
      int64_t count = 0;
      for (int64_t n = 0; n < d.N; ++n) {
        for (int64_t t = 0; t <= t0; ++t) {
          compared[n] = compared[n] && std::fabs(u[t * d.N + n]) >= kMargin && bounded(f.v_seq[t * d.N + n]);
        }
        count += compared[n];
      }
      EXPECT_GE(count, d.N / 4) << "too few neurons away from the threshold";
      Grads g{std::vector<float>(d.T * d.N, 0.0f), std::vector<float>(d.T * d.N, 0.0f),
              std::vector<float>(d.S * d.N, 0.0f)};
      std::vector<float> sg(d.T * d.N, 0.0f), c = normal(rng, d.N);
      for (int64_t n = 0; n < d.N; ++n) {
        g.spikes[t0 * d.N + n] = c[n];
        sg[t0 * d.N + n] = 1.0f;
      }
      const Backward b = run_backward(p, d, f.saved, o.state_init, o.learnable, g, &sg);
      expect_matches_differences(d, o, compared, b, [&](const Operands& q) {
        const Forward fq = run_forward(p, d, q.x, q.state_init, q.learnable);
        const std::vector<float> uq = fire_inputs(p, d, fq.saved, q.learnable);
        std::vector<double> l(d.N);
        for (int64_t n = 0; n < d.N; ++n) l[n] = double(c[n]) * uq[t0 * d.N + n];
        return l;
      });
    }
  });
}

// σ'(u) passed as surrogate_grad_seq, computed here from the saved values with the same formula
// (spikeops::surrogate_grad), gives exactly the backward that computes it itself: every surrogate, spiking
// inputs, every configuration.
TEST_P(NeuronModel, SurrogateGradSeqGivesTheSameBackward) {
  const NeuronKind kind = GetParam();
  const ModelCase m = model_case(kind);
  const Dims d = dims_of(kind, 5, 13);
  std::mt19937 rng(5);
  const Operands o = operands(m, d, true, rng);
  for (int s = 0; s < kNumSurrogateKinds; ++s) {
    const Surrogate surrogate = default_surrogate(static_cast<SurrogateKind>(s));
    for_each_config(kind, surrogate, [&](const NeuronParams& p, int variant) {
      SCOPED_TRACE(model_label(p, variant));
      const Forward f = run_forward(p, d, o.x, o.state_init, o.learnable);
      const std::vector<float> u = fire_inputs(p, d, f.saved, o.learnable);
      std::vector<float> sg(u.size());
      for (std::size_t i = 0; i < u.size(); ++i) sg[i] = surrogate_grad(p.surrogate, u[i]);
      const Backward own = run_backward(p, d, f.saved, o.state_init, o.learnable, o.g);
      const Backward given = run_backward(p, d, f.saved, o.state_init, o.learnable, o.g, &sg);
      expect_same_backward(own, given);
    });
  }
}

// grad_spike_seq left out is a zero spike gradient, exactly.
TEST_P(NeuronModel, AbsentSpikeGradientIsZero) {
  const NeuronKind kind = GetParam();
  const Dims d = dims_of(kind, 5, 13);
  std::mt19937 rng(21);
  Operands o = operands(model_case(kind), d, true, rng);
  const NeuronParams p = model_params(kind, false, true, false, 0, default_surrogate(SurrogateKind::kSigmoid));
  const Forward f = run_forward(p, d, o.x, o.state_init, o.learnable);
  std::fill(o.g.spikes.begin(), o.g.spikes.end(), 0.0f);
  const Backward zero = run_backward(p, d, f.saved, o.state_init, o.learnable, o.g);
  o.g.spikes.clear();
  const Backward absent = run_backward(p, d, f.saved, o.state_init, o.learnable, o.g);
  expect_same_backward(zero, absent);
}

// [S, N] and, for S == 1, [N]; [K, T, N] and, for K == 1, [T, N]; [P, N] and, for P == 1, [N]: the same
// results either way.
TEST_P(NeuronModel, OneStateOrSavedValueMayDropItsDimension) {
  const NeuronKind kind = GetParam();
  const Dims d = dims_of(kind, 4, 11);
  if (d.S != 1 && d.K != 1 && d.P != 1) GTEST_SKIP() << neuron_name(kind) << " has no dimension of size 1 to drop";
  std::mt19937 rng(3);
  const Operands o = operands(model_case(kind), d, true, rng);
  const NeuronParams p = model_params(kind, false, true, false, 0, default_surrogate(SurrogateKind::kSigmoid));
  const Forward full = run_forward(p, d, o.x, o.state_init, o.learnable, false);
  const Forward dropped = run_forward(p, d, o.x, o.state_init, o.learnable, true);
  EXPECT_EQ(full.spikes, dropped.spikes);
  EXPECT_EQ(full.state_final, dropped.state_final);
  EXPECT_EQ(full.saved, dropped.saved);
  const Backward bf = run_backward(p, d, full.saved, o.state_init, o.learnable, o.g, nullptr, false);
  const Backward bd = run_backward(p, d, full.saved, o.state_init, o.learnable, o.g, nullptr, true);
  expect_same_backward(bf, bd);
}

std::string shape_text(std::initializer_list<int64_t> shape) {
  std::string s = "[";
  for (int64_t e : shape) s += (s.size() > 1 ? ", " : "") + std::to_string(e);
  return s + "]";
}

// A per-model argument with one state, saved value or learnable scalar too many is rejected, and the error
// names the argument and its expected shape.
TEST_P(NeuronModel, WrongModelShapesNameTheArgument) {
  const NeuronKind kind = GetParam();
  const Dims d = dims_of(kind, 3, 5);
  const int64_t T = d.T, N = d.N, S = d.S, K = d.K, P = d.P;
  const NeuronParams p = model_params(kind, false, true, false, 0, default_surrogate(SurrogateKind::kSigmoid));
  std::vector<float> x(T * N, 0.1f), state((S + 1) * N, 0.1f), state_final((S + 1) * N), saved((K + 1) * T * N),
      spikes(T * N), learnable(P + 1, 0.5f), grads((S + 1) * N, 0.0f), gl((P + 1) * N), gt(T * N, 0.0f), gx(T * N);
  NeuronForwardArgs a;
  a.x_seq = view(x, {T, N});
  a.state_init = view(state, {S, N});
  if (P > 0) a.learnable = view(learnable, {P});
  a.spike_seq = view(spikes, {T, N});
  a.state_final = view(state_final, {S, N});
  a.saved = view(saved, {K, T, N});
  neuron_multistep_forward(p, a);  // the valid call
  const std::string sn = shape_text({S, N}), ktn = shape_text({K, T, N});
  NeuronForwardArgs bad = a;
  bad.state_init = view(state, {S + 1, N});
  EXPECT_ERROR(neuron_multistep_forward(p, bad), "neuron_multistep_forward: state_init must have shape " + sn);
  bad = a;
  bad.state_final = view(state_final, {S + 1, N});
  EXPECT_ERROR(neuron_multistep_forward(p, bad), "state_final must have shape " + sn);
  bad = a;
  bad.saved = view(saved, {K + 1, T, N});
  EXPECT_ERROR(neuron_multistep_forward(p, bad), "saved must have shape " + ktn);
  if (P > 0) {
    bad = a;
    bad.learnable = view(learnable, {P + 1});
    EXPECT_ERROR(neuron_multistep_forward(p, bad), "learnable must have shape " + shape_text({P}));
    bad.learnable = TensorView();
    EXPECT_ERROR(neuron_multistep_forward(p, bad), "learnable is required");
  }

  NeuronBackwardArgs b;
  b.grad_spike_seq = view(gt, {T, N});
  b.grad_state_final = view(grads, {S, N});
  b.saved = view(saved, {K, T, N});
  b.state_init = view(state, {S, N});
  if (P > 0) {
    b.learnable = view(learnable, {P});
    b.grad_learnable = view(gl, {P, N});
  }
  b.grad_x_seq = view(gx, {T, N});
  b.grad_state_init = view(state_final, {S, N});
  neuron_multistep_backward(p, b);  // the valid call
  NeuronBackwardArgs bb = b;
  bb.saved = view(saved, {K + 1, T, N});
  EXPECT_ERROR(neuron_multistep_backward(p, bb), "neuron_multistep_backward: saved must have shape " + ktn);
  bb = b;
  bb.state_init = view(state, {S + 1, N});
  EXPECT_ERROR(neuron_multistep_backward(p, bb), "state_init must have shape " + sn);
  bb = b;
  bb.grad_state_final = view(grads, {S + 1, N});
  EXPECT_ERROR(neuron_multistep_backward(p, bb), "grad_state_final must have shape " + sn);
  bb = b;
  bb.grad_state_init = view(state_final, {S + 1, N});
  EXPECT_ERROR(neuron_multistep_backward(p, bb), "grad_state_init must have shape " + sn);
  if (P > 0) {
    bb = b;
    bb.learnable = view(learnable, {P + 1});
    EXPECT_ERROR(neuron_multistep_backward(p, bb), "learnable must have shape " + shape_text({P}));
    bb = b;
    bb.grad_learnable = view(gl, {P + 1, N});
    EXPECT_ERROR(neuron_multistep_backward(p, bb), "grad_learnable must have shape " + shape_text({P, N}));
  }
  // A gradient for the saved values: only where they are an output, and of their shape.
  std::vector<float> gsaved((K + 1) * T * N, 0.0f);
  bb = b;
  bb.grad_saved = view(gsaved, {K, T, N});
  if (d.saved_grad) {
    neuron_multistep_backward(p, bb);
    bb.grad_saved = view(gsaved, {K + 1, T, N});
    EXPECT_ERROR(neuron_multistep_backward(p, bb), "grad_saved must have shape " + ktn);
  } else {
    EXPECT_ERROR(neuron_multistep_backward(p, bb),
                 std::string("grad_saved must be empty: ") + neuron_name(kind) + "'s saved values are not an output");
  }
}

// x_seq with strides [0, 1] (one row read at every step) gives, bit for bit, what the row copied T times gives.
TEST_P(NeuronModel, RepeatedRowEqualsCopies) {
  const NeuronKind kind = GetParam();
  for (int64_t N : {int64_t(1), int64_t(7), int64_t(20)}) {
    const Dims d = dims_of(kind, 5, N);
    std::mt19937 rng(11 + static_cast<unsigned>(N));
    Operands o = operands(model_case(kind), dims_of(kind, 1, N), true, rng);
    std::vector<float> row = o.x, copies;
    for (int64_t t = 0; t < d.T; ++t) copies.insert(copies.end(), row.begin(), row.end());
    for_each_config(kind, default_surrogate(SurrogateKind::kSigmoid), [&](const NeuronParams& p, int variant) {
      SCOPED_TRACE(model_label(p, variant) + ", N " + std::to_string(N));
      const Forward want = run_forward(p, d, copies, o.state_init, o.learnable);
      Forward got;
      got.spikes.assign(d.T * N, -1.0f);
      got.state_final.assign(d.S * N, NAN);
      got.saved.assign(d.K * d.T * N, NAN);
      got.v_seq.assign(d.T * N, NAN);
      NeuronForwardArgs a;
      a.x_seq = view(row, {d.T, N});
      a.x_seq.strides[0] = 0;
      a.state_init = view(o.state_init, {d.S, N});
      if (d.P > 0) a.learnable = view(o.learnable, {d.P});
      a.spike_seq = view(got.spikes, {d.T, N});
      a.state_final = view(got.state_final, {d.S, N});
      a.saved = view(got.saved, {d.K, d.T, N});
      a.v_seq = view(got.v_seq, {d.T, N});
      neuron_multistep_forward(p, a);
      EXPECT_EQ(want.spikes, got.spikes);
      EXPECT_EQ(want.state_final, got.state_final);
      EXPECT_EQ(want.saved, got.saved);
      EXPECT_EQ(want.v_seq, got.v_seq);
    });
  }
}

// Every kind has test parameters that validate_neuron_params accepts, in every configuration the tests run.
TEST_P(NeuronModel, TestParametersAreValid) {
  for_each_config(GetParam(), default_surrogate(SurrogateKind::kSigmoid), [&](const NeuronParams& p, int variant) {
    SCOPED_TRACE(model_label(p, variant));
    EXPECT_NO_THROW(validate_neuron_params(p));
  });
}

// GatedLIF keeps the spike as its state S for the next step, not detached (as SpikingJelly): a gradient reaching
// the final S state must go through the surrogate exactly as the same gradient on the last step's spike does.
// (The finite-difference tests cannot see this path: σ' is 0 wherever they compare.)
TEST(GatedLIF, SpikeStateGradientIsTheLastSpikesGradient) {
  const NeuronKind kind = NeuronKind::kGatedLIF;
  const Dims d = dims_of(kind, 4, 13);
  std::mt19937 rng(21);
  const Operands o = operands(model_case(kind), d, true, rng);
  const NeuronParams p = model_params(kind, false, true, false, 0, default_surrogate(SurrogateKind::kSigmoid));
  const Forward f = run_forward(p, d, o.x, o.state_init, o.learnable);
  const std::vector<float> c = normal(rng, d.N);
  Grads on_spike{std::vector<float>(d.T * d.N, 0.0f), std::vector<float>(d.T * d.N, 0.0f),
                 std::vector<float>(d.S * d.N, 0.0f)};
  Grads on_state = on_spike;
  for (int64_t n = 0; n < d.N; ++n) {
    on_spike.spikes[(d.T - 1) * d.N + n] = c[n];
    on_state.state_final[1 * d.N + n] = c[n];  // state 1: S
  }
  const Backward a = run_backward(p, d, f.saved, o.state_init, o.learnable, on_spike);
  const Backward b = run_backward(p, d, f.saved, o.state_init, o.learnable, on_state);
  EXPECT_EQ(a.x, b.x);
  EXPECT_EQ(a.state_init, b.state_init);
  EXPECT_NE(a.x, std::vector<float>(d.T * d.N, 0.0f));
}

INSTANTIATE_TEST_SUITE_P(EveryKind, NeuronModel, ::testing::ValuesIn(spikeops_test::all_neuron_kinds()),
                         [](const ::testing::TestParamInfo<NeuronKind>& info) {
                           return std::string(neuron_name(info.param));
                         });

}  // namespace
