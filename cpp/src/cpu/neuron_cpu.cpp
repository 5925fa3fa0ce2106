// CPU kernels of the multi-step neurons. The whole time loop is fused: each block of kBlock neurons keeps its
// state in L1 and walks t = 0..T-1 (forward) or T-1..0 (backward), so every tensor is streamed once per
// direction. Blocks run in parallel with OpenMP; the inner loops over a block vectorize.
#include <algorithm>
#include <cstdint>

#include "backend.hpp"
#include "cpu/simd.hpp"
#include "cpu/surrogate_row.hpp"
#include "spikeops/detail/neuron_math.hpp"
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
  int64_t x_step;  // N, or 0 when x_seq repeats one row
};

template <ChargeKind C, bool kHardReset>
SPIKEOPS_CPU_CLONES void forward_block(const ForwardBlockArgs& b, int64_t n0, int n) {
  alignas(64) float v[kBlock], x_buf[kBlock], h_buf[kBlock], s_buf[kBlock];
  const NeuronParams& p = *b.p;
  const NeuronForwardArgs& a = *b.a;
  const float vth = p.v_threshold, v_reset = p.v_reset, k = b.k, vr = b.vr;
  const DType spike_dtype = a.spike_seq.dtype;
  load_row(DType::kFloat32, a.v_init.data, n0, n, v);
  for (int64_t t = 0; t < b.T; ++t) {
    const int64_t row = t * b.N + n0;
    // float32 rows are read and written in place; other dtypes go through the L1 buffers.
    const float* x = row_as_float(a.x_seq.dtype, a.x_seq.data, t * b.x_step + n0, n, x_buf);
    float* h = a.h_seq.defined() ? static_cast<float*>(a.h_seq.data) + row : h_buf;
    float* s = row_target(spike_dtype, a.spike_seq.data, row, s_buf);
    for (int i = 0; i < n; ++i) {
      const float hi = neuron_charge<C>(v[i], x[i], k, vr);
      const float si = neuron_fire(hi, vth);
      h[i] = hi;
      s[i] = si;
      v[i] = neuron_reset<kHardReset>(hi, si, vth, v_reset);
    }
    finish_row(spike_dtype, a.spike_seq.data, row, n, s);
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
  alignas(64) float gv[kBlock], gk[kBlock], gs_buf[kBlock], sg[kBlock], gx_buf[kBlock], v_prev[kBlock];
  const NeuronParams& p = *b.p;
  const NeuronBackwardArgs& a = *b.a;
  const float vth = p.v_threshold, v_reset = p.v_reset, k = b.k, vr = b.vr;
  const float through_spike = b.reset_through_spike;
  const float dx = neuron_charge_dx<C>(k), dv = neuron_charge_dv<C>(k);
  const float* h_seq = static_cast<const float*>(a.h_seq.data);

  if (a.grad_v_final.defined()) {
    load_row(DType::kFloat32, a.grad_v_final.data, n0, n, gv);
  } else {
    std::fill(gv, gv + n, 0.0f);
  }
  std::fill(gk, gk + n, 0.0f);

  for (int64_t t = b.T - 1; t >= 0; --t) {
    const int64_t row = t * b.N + n0;
    const float* h = h_seq + row;
    const float* gs = row_as_float(a.grad_spike_seq.dtype, a.grad_spike_seq.data, row, n, gs_buf);
    float* gx = row_target(a.grad_x_seq.dtype, a.grad_x_seq.data, row, gx_buf);
    if (a.grad_v_seq.defined()) {
      const float* gvs = static_cast<const float*>(a.grad_v_seq.data) + row;
      for (int i = 0; i < n; ++i) gv[i] += gvs[i];
    }
    surrogate_row(p.surrogate, h, vth, n, sg);
    if (kGradK) {
      // V[t-1]: the reset of H[t-1], or the initial potential at t = 0.
      if (t > 0) {
        const float* hp = h - b.N;
        for (int i = 0; i < n; ++i) {
          v_prev[i] = neuron_reset<kHardReset>(hp[i], neuron_fire(hp[i], vth), vth, v_reset);
        }
      } else {
        load_row(DType::kFloat32, a.v_init.data, n0, n, v_prev);
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
      if (kGradK) gk[i] += gh * neuron_charge_dk<C>(hi, v_prev[i], k, vr);
    }
    finish_row(a.grad_x_seq.dtype, a.grad_x_seq.data, row, n, gx);
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
  return p.kind == NeuronKind::kParametricLIF ? *static_cast<const float*>(decay.data) : host_decay(p);
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
  ForwardBlockArgs b{&p, &a, a.x_seq.shape[0], a.x_seq.shape[1], decay_of(p, a.decay), charge_v_rest(p),
                     input_step(a.x_seq)};
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
