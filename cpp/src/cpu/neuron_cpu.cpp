// CPU kernels of the multi-step neurons, generic over the model (spikeops/detail/neuron_model.hpp). The whole
// time loop is fused: each block of kBlock neurons keeps its state in L1 and walks t = 0..T-1 (forward) or
// T-1..0 (backward), so every tensor is streamed once per direction. Blocks run in parallel with OpenMP; the
// inner loops over a block vectorize (the model's step is inlined into them).
#include <algorithm>
#include <cstdint>

#include "backend.hpp"
#include "cpu/simd.hpp"
#include "cpu/surrogate_row.hpp"
#include "spikeops/detail/neuron_math.hpp"
#include "spikeops/detail/neuron_models.hpp"
#include "spikeops/neuron.hpp"

namespace spikeops {
namespace cpu {
namespace {

// Prefetches elements [offset, offset + n) of a tensor.
SPIKEOPS_CPU_INLINE void prefetch_row(const TensorView& t, int64_t offset, int n, bool write) {
  const int64_t size = static_cast<int64_t>(dtype_size(t.dtype));
  prefetch_bytes(static_cast<const char*>(t.data) + offset * size, n * size, write);
}

// The gradient of spikes or saved values that reach no loss.
alignas(64) const float kZeroRow[kBlock] = {};

// Below this many neuron-steps, threads cost more than they save.
constexpr int64_t kMinParallelWork = 1 << 15;

template <typename M>
struct ForwardBlockArgs {
  typename M::Consts c;
  const NeuronForwardArgs* a;
  int64_t T, N;
  int64_t x_step;  // N, or 0 when x_seq repeats one row
};

// The rows of step t+1 (at `row`; x at `x_row`), fetched while step t runs.
template <typename M>
SPIKEOPS_CPU_INLINE void prefetch_forward_rows(const ForwardBlockArgs<M>& b, int64_t row, int64_t x_row, int n) {
  const NeuronForwardArgs& a = *b.a;
  const int64_t plane = b.T * b.N;
  prefetch_row(a.x_seq, x_row, n, false);
  prefetch_row(a.spike_seq, row, n, true);
  for (int k = 0; k < M::kSaved && a.saved.defined(); ++k) prefetch_row(a.saved, k * plane + row, n, true);
  if (a.v_seq.defined()) prefetch_row(a.v_seq, row, n, true);
}

template <typename M>
SPIKEOPS_CPU_CLONES void forward_block(const ForwardBlockArgs<M>& b, int64_t n0, int n) {
  constexpr int S = M::kStates, K = M::kSaved;
  constexpr int C = NeuronConstStates<M>::value;  // constant states (the last C): read, never written back
  alignas(64) float st[S][kBlock], x_buf[kBlock], s_buf[kBlock], saved_buf[K][kBlock];
  const NeuronForwardArgs& a = *b.a;
  const typename M::Consts c = b.c;
  const DType spike_dtype = a.spike_seq.dtype;
  const int64_t plane = b.T * b.N;  // elements of one state (or saved value) over all steps
  for (int j = 0; j < S; ++j) load_row(DType::kFloat32, a.state_init.data, j * b.N + n0, n, st[j]);
  for (int64_t t = 0; t < b.T; ++t) {
    const int64_t row = t * b.N + n0;
    if (t + 1 < b.T) prefetch_forward_rows(b, row + b.N, (t + 1) * b.x_step + n0, n);
    // float32 rows are read and written in place; other dtypes go through the L1 buffers.
    const float* x = row_as_float(a.x_seq.dtype, a.x_seq.data, t * b.x_step + n0, n, x_buf);
    float* sp = row_target(spike_dtype, a.spike_seq.data, row, s_buf);
    float* sv[K];
    for (int k = 0; k < K; ++k) {
      sv[k] = a.saved.defined() ? static_cast<float*>(a.saved.data) + k * plane + row : saved_buf[k];
    }
    for (int i = 0; i < n; ++i) {
      float s[S], saved[K];
      for (int j = 0; j < S; ++j) s[j] = st[j][i];
      sp[i] = M::step(c, s, x[i], saved);
      for (int j = 0; j < S - C; ++j) st[j][i] = s[j];
      for (int k = 0; k < K; ++k) sv[k][i] = saved[k];
    }
    finish_row(spike_dtype, a.spike_seq.data, row, n, sp);
    if (a.v_seq.defined()) store_row(DType::kFloat32, a.v_seq.data, row, n, st[0]);
  }
  for (int j = 0; j < S; ++j) store_row(DType::kFloat32, a.state_final.data, j * b.N + n0, n, st[j]);
}

template <typename M>
struct BackwardBlockArgs {
  typename M::Consts c;
  const NeuronParams* p;
  const NeuronBackwardArgs* a;
  int64_t T, N;
  float through_spike;  // 0 with detach_reset (no gradient through S in the reset), else 1
};

// The rows of step t-1 (at `row`), fetched while step t runs.
template <typename M>
SPIKEOPS_CPU_INLINE void prefetch_backward_rows(const BackwardBlockArgs<M>& b, int64_t row, int n) {
  const NeuronBackwardArgs& a = *b.a;
  const int64_t plane = b.T * b.N;
  if (a.grad_spike_seq.defined()) prefetch_row(a.grad_spike_seq, row, n, false);
  for (int k = 0; k < M::kSaved; ++k) prefetch_row(a.saved, k * plane + row, n, false);
  if (a.grad_v_seq.defined()) prefetch_row(a.grad_v_seq, row, n, false);
  for (int k = 0; k < M::kSaved && a.grad_saved.defined(); ++k) prefetch_row(a.grad_saved, k * plane + row, n, false);
  if (a.surrogate_grad_seq.defined()) prefetch_row(a.surrogate_grad_seq, row, n, false);
  prefetch_row(a.grad_x_seq, row, n, true);
}

template <typename M>
SPIKEOPS_CPU_CLONES void backward_block(const BackwardBlockArgs<M>& b, int64_t n0, int n) {
  constexpr int S = M::kStates, K = M::kSaved, P = M::kLearnable > 0 ? M::kLearnable : 1;
  constexpr int C = NeuronConstStates<M>::value;  // constant states: the last C rows of the state
  alignas(64) float g[S][kBlock], gl[P][kBlock], prev[S][kBlock], u[kBlock], sg_buf[kBlock], gs_buf[kBlock],
      gx_buf[kBlock];
  const NeuronBackwardArgs& a = *b.a;
  const typename M::Consts c = b.c;
  const float through_spike = b.through_spike;
  const float* saved_seq = static_cast<const float*>(a.saved.data);
  const int64_t plane = b.T * b.N;

  for (int j = 0; j < S; ++j) {
    if (a.grad_state_final.defined()) {
      load_row(DType::kFloat32, a.grad_state_final.data, j * b.N + n0, n, g[j]);
    } else {
      std::fill(g[j], g[j] + n, 0.0f);
    }
  }
  for (int k = 0; k < M::kLearnable; ++k) std::fill(gl[k], gl[k] + n, 0.0f);
  if (M::kNeedsPrev) {
    for (int j = S - C; j < S; ++j) load_row(DType::kFloat32, a.state_init.data, j * b.N + n0, n, prev[j]);
  }

  for (int64_t t = b.T - 1; t >= 0; --t) {
    const int64_t row = t * b.N + n0;
    if (t > 0) prefetch_backward_rows(b, row - b.N, n);
    const float* sv[K];
    const float* gsv_rows[K];  // dL/d(saved values) from outside: zeros unless given (models with kSavedGrad)
    for (int k = 0; k < K; ++k) {
      sv[k] = saved_seq + k * plane + row;
      gsv_rows[k] = a.grad_saved.defined() ? static_cast<const float*>(a.grad_saved.data) + k * plane + row
                                           : kZeroRow;
    }
    const float* gs = a.grad_spike_seq.defined()
                          ? row_as_float(a.grad_spike_seq.dtype, a.grad_spike_seq.data, row, n, gs_buf)
                          : kZeroRow;
    float* gx = row_target(a.grad_x_seq.dtype, a.grad_x_seq.data, row, gx_buf);
    if (a.grad_v_seq.defined()) {
      const float* gvs = static_cast<const float*>(a.grad_v_seq.data) + row;
      for (int i = 0; i < n; ++i) g[0][i] += gvs[i];
    }
    const float* sg;
    if (!model_spikes<M>::value) {
      sg = kZeroRow;  // a readout never fires: no surrogate to compute
    } else if (a.surrogate_grad_seq.defined()) {
      sg = static_cast<const float*>(a.surrogate_grad_seq.data) + row;
    } else {
      for (int i = 0; i < n; ++i) {
        float saved[K];
        for (int k = 0; k < K; ++k) saved[k] = sv[k][i];
        u[i] = M::fire_input(c, saved);
      }
      surrogate_row(b.p->surrogate, u, 0.0f, n, sg_buf);
      sg = sg_buf;
    }
    if (M::kNeedsPrev) {
      // The state before step t: rebuilt from step t-1's saved values, or the initial state at t = 0. The
      // constant states, the last C rows, keep their initial values from the first load.
      if (t > 0) {
        for (int i = 0; i < n; ++i) {
          float saved[K], s[S] = {};  // state_after may rebuild only what backward reads
          for (int k = 0; k < K; ++k) saved[k] = sv[k][i - b.N];
          M::state_after(c, saved, s);
          for (int j = 0; j < S - C; ++j) prev[j][i] = s[j];
        }
      } else {
        for (int j = 0; j < S - C; ++j) load_row(DType::kFloat32, a.state_init.data, j * b.N + n0, n, prev[j]);
      }
    }
    for (int i = 0; i < n; ++i) {
      float saved[K], gsv[K], pv[S], gi[S], gli[P];
      for (int k = 0; k < K; ++k) {
        saved[k] = sv[k][i];
        gsv[k] = gsv_rows[k][i];
      }
      for (int j = 0; j < S; ++j) {
        pv[j] = M::kNeedsPrev ? prev[j][i] : 0.0f;
        gi[j] = g[j][i];
      }
      for (int k = 0; k < M::kLearnable; ++k) gli[k] = gl[k][i];
      gx[i] = model_backward<M>(c, saved, pv, sg[i], gs[i], through_spike, gi, gli, gsv);
      for (int j = 0; j < S; ++j) g[j][i] = gi[j];
      for (int k = 0; k < M::kLearnable; ++k) gl[k][i] = gli[k];
    }
    finish_row(a.grad_x_seq.dtype, a.grad_x_seq.data, row, n, gx);
  }
  for (int j = 0; j < S; ++j) store_row(DType::kFloat32, a.grad_state_init.data, j * b.N + n0, n, g[j]);
  for (int k = 0; k < M::kLearnable; ++k) store_row(DType::kFloat32, a.grad_learnable.data, k * b.N + n0, n, gl[k]);
}

template <typename BlockArgs>
void run_blocks(void (*fn)(const BlockArgs&, int64_t, int), const BlockArgs& b) {
  const int64_t blocks = (b.N + kBlock - 1) / kBlock;
  const bool parallel = b.T * b.N >= kMinParallelWork && blocks > 1;
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t n0 = blk * kBlock;
    fn(b, n0, static_cast<int>(std::min<int64_t>(kBlock, b.N - n0)));
  }
}

// The model's constants with its learnable scalars (host memory on the CPU) bound.
template <typename M>
typename M::Consts bound_consts(const NeuronParams& p, const TensorView& learnable) {
  typename M::Consts c = M::consts(p);
  M::bind(c, M::kLearnable > 0 ? static_cast<const float*>(learnable.data) : nullptr);
  return c;
}

}  // namespace

void neuron_forward(const NeuronParams& p, const NeuronForwardArgs& a) {
  with_neuron_model(p, [&](auto model) {
    using M = decltype(model);
    const ForwardBlockArgs<M> b{bound_consts<M>(p, a.learnable), &a, a.x_seq.shape[0], a.x_seq.shape[1],
                                input_step(a.x_seq)};
    run_blocks(forward_block<M>, b);
  });
}

void neuron_backward(const NeuronParams& p, const NeuronBackwardArgs& a) {
  with_neuron_model(p, [&](auto model) {
    using M = decltype(model);
    const int64_t T = a.grad_x_seq.shape[0], N = a.grad_x_seq.shape[1];
    const BackwardBlockArgs<M> b{bound_consts<M>(p, a.learnable), &p, &a, T, N, p.detach_reset ? 0.0f : 1.0f};
    run_blocks(backward_block<M>, b);
  });
}

}  // namespace cpu
}  // namespace spikeops
