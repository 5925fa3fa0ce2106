// CPU kernels of the multi-step neurons. The whole time loop is fused: each block of kBlock neurons keeps its
// state in L1 and walks t = 0..T-1 (forward) or T-1..0 (backward), so every tensor is streamed once per
// direction. Blocks run in parallel with OpenMP; the inner loops over a block vectorize.
#include <algorithm>
#include <cstdint>

#include "backend.hpp"
#include "cpu/simd.hpp"
#include "cpu/surrogate_row.hpp"
#include "spikeops/neuron.hpp"

namespace spikeops {
namespace cpu {
namespace {

// Below this many neuron-steps, threads cost more than they save.
constexpr int64_t kMinParallelWork = 1 << 15;

struct ForwardBlockArgs {
  const NeuronParams* p;
  const NeuronForwardArgs* a;
  int64_t T, N;
  float k, vr;
};

template <ChargeKind C, bool kHardReset>
SPIKEOPS_CPU_CLONES void forward_block(const ForwardBlockArgs& b, int64_t n0, int n) {
  alignas(64) float v[kBlock], x[kBlock], h[kBlock], s[kBlock];
  const NeuronParams& p = *b.p;
  const NeuronForwardArgs& a = *b.a;
  const float vth = p.v_threshold, v_reset = p.v_reset, k = b.k, vr = b.vr;
  load_row(DType::kFloat32, a.v_init.data, n0, n, v);
  for (int64_t t = 0; t < b.T; ++t) {
    const int64_t row = t * b.N + n0;
    load_row(a.x_seq.dtype, a.x_seq.data, row, n, x);
    for (int i = 0; i < n; ++i) {
      const float hi = neuron_charge<C>(v[i], x[i], k, vr);
      const float si = neuron_fire(hi, vth);
      h[i] = hi;
      s[i] = si;
      v[i] = neuron_reset<kHardReset>(hi, si, vth, v_reset);
    }
    store_row(a.spike_seq.dtype, a.spike_seq.data, row, n, s);
    if (a.h_seq.defined()) store_row(DType::kFloat32, a.h_seq.data, row, n, h);
    if (a.v_seq.defined()) store_row(DType::kFloat32, a.v_seq.data, row, n, v);
  }
  store_row(DType::kFloat32, a.v_final.data, n0, n, v);
}

struct BackwardBlockArgs {
  const NeuronParams* p;
  const NeuronBackwardArgs* a;
  int64_t T, N;
  float k, vr;
  float reset_through_spike;  // 0 with detach_reset (no gradient through S in the reset), else 1
};

// kGradK: also accumulate dL/dk (ParametricLIF), which needs V[t-1], recomputed from H[t-1].
template <ChargeKind C, bool kHardReset, bool kGradK>
SPIKEOPS_CPU_CLONES void backward_block(const BackwardBlockArgs& b, int64_t n0, int n) {
  alignas(64) float gv[kBlock], gk[kBlock], gs[kBlock], sg[kBlock], gx[kBlock], tmp[kBlock];
  alignas(64) float h_buf[2][kBlock];
  const NeuronParams& p = *b.p;
  const NeuronBackwardArgs& a = *b.a;
  const float vth = p.v_threshold, v_reset = p.v_reset, k = b.k, vr = b.vr;
  const float through_spike = b.reset_through_spike;
  const float dx = neuron_charge_dx<C>(k), dv = neuron_charge_dv<C>(k);

  if (a.grad_v_final.defined()) {
    load_row(DType::kFloat32, a.grad_v_final.data, n0, n, gv);
  } else {
    std::fill(gv, gv + n, 0.0f);
  }
  std::fill(gk, gk + n, 0.0f);
  float* h = h_buf[0];
  float* h_prev = h_buf[1];
  if (b.T > 0) load_row(DType::kFloat32, a.h_seq.data, (b.T - 1) * b.N + n0, n, h);

  for (int64_t t = b.T - 1; t >= 0; --t) {
    const int64_t row = t * b.N + n0;
    load_row(a.grad_spike_seq.dtype, a.grad_spike_seq.data, row, n, gs);
    if (a.grad_v_seq.defined()) {
      load_row(DType::kFloat32, a.grad_v_seq.data, row, n, tmp);
      for (int i = 0; i < n; ++i) gv[i] += tmp[i];
    }
    surrogate_row(p.surrogate, h, vth, n, sg);
    if (kGradK) {
      // V[t-1]: the reset of H[t-1], or the initial potential at t = 0. H[t-1] is the next iteration's H.
      if (t > 0) {
        load_row(DType::kFloat32, a.h_seq.data, row - b.N, n, h_prev);
        for (int i = 0; i < n; ++i) {
          tmp[i] = neuron_reset<kHardReset>(h_prev[i], neuron_fire(h_prev[i], vth), vth, v_reset);
        }
      } else {
        load_row(DType::kFloat32, a.v_init.data, n0, n, tmp);
      }
    }
    for (int i = 0; i < n; ++i) {
      const float hi = h[i];
      const float si = neuron_fire(hi, vth);
      const float dv_dh =
          neuron_reset_dh<kHardReset>(si) + through_spike * neuron_reset_ds<kHardReset>(hi, vth, v_reset) * sg[i];
      const float gh = gs[i] * sg[i] + gv[i] * dv_dh;
      gx[i] = gh * dx;
      gv[i] = gh * dv;
      if (kGradK) gk[i] += gh * neuron_charge_dk<C>(hi, tmp[i], k, vr);
    }
    store_row(a.grad_x_seq.dtype, a.grad_x_seq.data, row, n, gx);
    if (t > 0) {
      if (kGradK) {
        std::swap(h, h_prev);
      } else {
        load_row(DType::kFloat32, a.h_seq.data, row - b.N, n, h);
      }
    }
  }
  store_row(DType::kFloat32, a.grad_v_init.data, n0, n, gv);
  if (kGradK) store_row(DType::kFloat32, a.grad_decay.data, n0, n, gk);
}

template <typename BlockArgs>
using BlockFn = void (*)(const BlockArgs&, int64_t, int);

template <typename BlockArgs>
void run_blocks(BlockFn<BlockArgs> fn, const BlockArgs& b) {
  const int64_t blocks = (b.N + kBlock - 1) / kBlock;
  const bool parallel = b.T * b.N >= kMinParallelWork && blocks > 1;
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t n0 = blk * kBlock;
    fn(b, n0, static_cast<int>(std::min<int64_t>(kBlock, b.N - n0)));
  }
}

float decay_of(const NeuronParams& p, const TensorView& decay) {
  switch (p.kind) {
    case NeuronKind::kIF:
      return 1.0f;
    case NeuronKind::kLIF:
      return lif_decay(p.tau);
    case NeuronKind::kParametricLIF:
      return *static_cast<const float*>(decay.data);
  }
  return 1.0f;
}

template <bool kHard>
BlockFn<ForwardBlockArgs> pick_forward(ChargeKind c) {
  switch (c) {
    case ChargeKind::kIF:
      return forward_block<ChargeKind::kIF, kHard>;
    case ChargeKind::kDecayInput:
      return forward_block<ChargeKind::kDecayInput, kHard>;
    case ChargeKind::kNoDecayInput:
      return forward_block<ChargeKind::kNoDecayInput, kHard>;
  }
  return nullptr;
}

template <bool kHard, bool kGradK>
BlockFn<BackwardBlockArgs> pick_backward(ChargeKind c) {
  switch (c) {
    case ChargeKind::kIF:
      return backward_block<ChargeKind::kIF, kHard, false>;
    case ChargeKind::kDecayInput:
      return backward_block<ChargeKind::kDecayInput, kHard, kGradK>;
    case ChargeKind::kNoDecayInput:
      return backward_block<ChargeKind::kNoDecayInput, kHard, kGradK>;
  }
  return nullptr;
}

}  // namespace

void neuron_forward(const NeuronParams& p, const NeuronForwardArgs& a) {
  ForwardBlockArgs b{&p, &a, a.x_seq.shape[0], a.x_seq.shape[1], decay_of(p, a.decay), charge_v_rest(p)};
  const ChargeKind c = charge_kind(p);
  run_blocks(p.hard_reset ? pick_forward<true>(c) : pick_forward<false>(c), b);
}

void neuron_backward(const NeuronParams& p, const NeuronBackwardArgs& a) {
  BackwardBlockArgs b{&p, &a, a.h_seq.shape[0], a.h_seq.shape[1], decay_of(p, a.decay), charge_v_rest(p),
                      p.detach_reset ? 0.0f : 1.0f};
  const ChargeKind c = charge_kind(p);
  const bool grad_k = p.kind == NeuronKind::kParametricLIF;
  BlockFn<BackwardBlockArgs> fn;
  if (p.hard_reset) {
    fn = grad_k ? pick_backward<true, true>(c) : pick_backward<true, false>(c);
  } else {
    fn = grad_k ? pick_backward<false, true>(c) : pick_backward<false, false>(c);
  }
  run_blocks(fn, b);
}

}  // namespace cpu
}  // namespace spikeops
