// CUDA kernels of the multi-step neurons. One thread owns V adjacent neurons and walks t = 0..T-1 (forward)
// or T-1..0 (backward) with their state in registers, so every tensor is streamed once per direction; rows of
// V neurons are adjacent in memory, so a warp's accesses coalesce. The per-step math is the SPIKEOPS_HD code
// of spikeops/neuron.hpp that the CPU kernels run, in the same order, so spikes match the CPU bit for bit.
#include <cstdint>

#include "backend.hpp"
#include "cuda_utils.cuh"
#include "spikeops/detail/neuron_math.hpp"
#include "spikeops/neuron.hpp"

namespace spikeops {
namespace cuda {
namespace {

struct ForwardKernelArgs {
  const void* x_seq;
  DType x_dtype;
  int64_t x_step;  // elements between one step's input and the next: N, or 0 (one row repeated)
  const float* v_init;
  const float* decay;  // ParametricLIF: k lives on the device; nullptr: use `k`
  void* spike_seq;
  DType spike_dtype;
  float* v_final;
  float* h_seq;  // nullptr when not requested
  float* v_seq;  // nullptr when not requested
  int64_t T, N;
  float k, vr, v_threshold, v_reset;
};

template <ChargeKind C, bool kHardReset, int V>
__global__ void __launch_bounds__(kThreadsPerBlock) neuron_forward_kernel(const ForwardKernelArgs a) {
  const float k = a.decay != nullptr ? *a.decay : a.k;
  const float vth = a.v_threshold, v_reset = a.v_reset, vr = a.vr;
  for (int64_t n0 = global_thread_index() * V; n0 < a.N; n0 += grid_thread_count() * V) {
    float v[V];
    load_vec<V>(DType::kFloat32, a.v_init, n0, v);
    // The next step's input is requested before this step's stores so that its latency overlaps the work;
    // the compiler cannot hoist the load itself, as the outputs might alias the input for all it knows.
    float x_next[V];
    if (a.T > 0) load_vec<V>(a.x_dtype, a.x_seq, n0, x_next);
    for (int64_t t = 0; t < a.T; ++t) {
      const int64_t i = t * a.N + n0;
      float x[V], h[V], s[V];
#pragma unroll
      for (int j = 0; j < V; ++j) x[j] = x_next[j];
      if (t + 1 < a.T) load_vec<V>(a.x_dtype, a.x_seq, (t + 1) * a.x_step + n0, x_next);
#pragma unroll
      for (int j = 0; j < V; ++j) {
        h[j] = neuron_charge<C>(v[j], x[j], k, vr);
        s[j] = neuron_fire(h[j], vth);
        v[j] = neuron_reset<kHardReset>(h[j], s[j], vth, v_reset);
      }
      store_vec<V>(a.spike_dtype, a.spike_seq, i, s);
      if (a.h_seq != nullptr) store_vec<V>(DType::kFloat32, a.h_seq, i, h);
      if (a.v_seq != nullptr) store_vec<V>(DType::kFloat32, a.v_seq, i, v);
    }
    store_vec<V>(DType::kFloat32, a.v_final, n0, v);
  }
}

struct BackwardKernelArgs {
  const void* grad_spike_seq;
  DType grad_spike_dtype;
  const float* grad_v_seq;    // nullptr when absent
  const float* grad_v_final;  // nullptr when absent: zero
  const float* h_seq;
  const float* v_init;  // ParametricLIF only
  const float* decay;   // ParametricLIF: k lives on the device; nullptr: use `k`
  void* grad_x_seq;
  DType grad_x_dtype;
  float* grad_v_init;
  float* grad_decay;  // ParametricLIF only
  int64_t T, N;
  float k, vr, v_threshold, v_reset;
  float through_spike;  // 0 with detach_reset (no gradient through S in the reset), else 1
  SurrogateKind surrogate;
  float alpha, beta;
};

// kGradK: also accumulate dL/dk (ParametricLIF), which needs V[t-1], recomputed from H[t-1].
template <ChargeKind C, bool kHardReset, bool kGradK, int V>
__global__ void __launch_bounds__(kThreadsPerBlock) neuron_backward_kernel(const BackwardKernelArgs a) {
  const float k = a.decay != nullptr ? *a.decay : a.k;
  const float vth = a.v_threshold, v_reset = a.v_reset, vr = a.vr, through_spike = a.through_spike;
  const float dx = neuron_charge_dx<C>(k), dv = neuron_charge_dv<C>(k);
  for (int64_t n0 = global_thread_index() * V; n0 < a.N; n0 += grid_thread_count() * V) {
    float gv[V], gk[V];
    if (a.grad_v_final != nullptr) {
      load_vec<V>(DType::kFloat32, a.grad_v_final, n0, gv);
    } else {
#pragma unroll
      for (int j = 0; j < V; ++j) gv[j] = 0.0f;
    }
#pragma unroll
    for (int j = 0; j < V; ++j) gk[j] = 0.0f;

    // As in the forward, step t-1's inputs are requested before step t's store. H[t-1] doubles as the source
    // of V[t-1] for dL/dk.
    float h_next[V], gs_next[V], gvs_next[V];
#pragma unroll
    for (int j = 0; j < V; ++j) gvs_next[j] = 0.0f;  // stays 0 without grad_v_seq
    if (a.T > 0) {
      const int64_t i = (a.T - 1) * a.N + n0;
      load_vec<V>(DType::kFloat32, a.h_seq, i, h_next);
      load_vec<V>(a.grad_spike_dtype, a.grad_spike_seq, i, gs_next);
      if (a.grad_v_seq != nullptr) load_vec<V>(DType::kFloat32, a.grad_v_seq, i, gvs_next);
    }
    for (int64_t t = a.T - 1; t >= 0; --t) {
      const int64_t i = t * a.N + n0;
      float h[V], gs[V], gvs[V];
#pragma unroll
      for (int j = 0; j < V; ++j) {
        h[j] = h_next[j];
        gs[j] = gs_next[j];
        gvs[j] = gvs_next[j];
      }
      if (t > 0) {
        load_vec<V>(DType::kFloat32, a.h_seq, i - a.N, h_next);
        load_vec<V>(a.grad_spike_dtype, a.grad_spike_seq, i - a.N, gs_next);
        if (a.grad_v_seq != nullptr) load_vec<V>(DType::kFloat32, a.grad_v_seq, i - a.N, gvs_next);
      }
      if (a.grad_v_seq != nullptr) {
#pragma unroll
        for (int j = 0; j < V; ++j) gv[j] += gvs[j];
      }
      float v_prev[V];
      if (kGradK) {
        // V[t-1]: the reset of H[t-1], or the initial potential at t = 0.
        if (t > 0) {
#pragma unroll
          for (int j = 0; j < V; ++j) {
            v_prev[j] = neuron_reset<kHardReset>(h_next[j], neuron_fire(h_next[j], vth), vth, v_reset);
          }
        } else {
          load_vec<V>(DType::kFloat32, a.v_init, n0, v_prev);
        }
      }
      float sg[V], gx[V];
      surrogate_grad_vec<V>(a.surrogate, a.alpha, a.beta, h, vth, sg);
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const float s = neuron_fire(h[j], vth);
        const float dv_dh = neuron_reset_dh<kHardReset>(s) +
                            through_spike * neuron_reset_ds<kHardReset>(h[j], vth, v_reset) * sg[j];
        const float gh = gs[j] * sg[j] + gv[j] * dv_dh;
        gx[j] = gh * dx;
        gv[j] = gh * dv;
        if (kGradK) gk[j] += gh * neuron_charge_dk<C>(h[j], v_prev[j], k, vr);
      }
      store_vec<V>(a.grad_x_dtype, a.grad_x_seq, i, gx);
    }
    store_vec<V>(DType::kFloat32, a.grad_v_init, n0, gv);
    if (kGradK) store_vec<V>(DType::kFloat32, a.grad_decay, n0, gk);
  }
}

// ---- Dispatch ----

using ForwardKernel = void (*)(ForwardKernelArgs);
using BackwardKernel = void (*)(BackwardKernelArgs);

// Neurons per thread: the preferred width when N is a multiple of it and every tensor is aligned for it, else
// 4 under the same conditions, else 1. Rows start at multiples of N elements, so N % V == 0 keeps every
// row's V-groups aligned.
int neuron_vector_width(int64_t N, std::initializer_list<const TensorView*> tensors) {
  const int preferred = preferred_vector_width(tensors);
  for (const int v : {preferred, 4}) {
    if (N % v == 0 && aligned_for_vectors(v, tensors)) return v;
  }
  return 1;
}

template <ChargeKind C, bool kHard>
ForwardKernel pick_forward_width(int v) {
  switch (v) {
    case 8:
      return neuron_forward_kernel<C, kHard, 8>;
    case 4:
      return neuron_forward_kernel<C, kHard, 4>;
    default:
      return neuron_forward_kernel<C, kHard, 1>;
  }
}

template <bool kHard>
ForwardKernel pick_forward(ChargeKind c, int v) {
  switch (c) {
    case ChargeKind::kIF:
      return pick_forward_width<ChargeKind::kIF, kHard>(v);
    case ChargeKind::kDecayInput:
      return pick_forward_width<ChargeKind::kDecayInput, kHard>(v);
    case ChargeKind::kNoDecayInput:
      return pick_forward_width<ChargeKind::kNoDecayInput, kHard>(v);
  }
  return nullptr;
}

template <ChargeKind C, bool kHard, bool kGradK>
BackwardKernel pick_backward_width(int v) {
  switch (v) {
    case 8:
      return neuron_backward_kernel<C, kHard, kGradK, 8>;
    case 4:
      return neuron_backward_kernel<C, kHard, kGradK, 4>;
    default:
      return neuron_backward_kernel<C, kHard, kGradK, 1>;
  }
}

// IF has no k, so it never accumulates dL/dk (as on the CPU).
template <bool kHard, bool kGradK>
BackwardKernel pick_backward(ChargeKind c, int v) {
  switch (c) {
    case ChargeKind::kIF:
      return pick_backward_width<ChargeKind::kIF, kHard, false>(v);
    case ChargeKind::kDecayInput:
      return pick_backward_width<ChargeKind::kDecayInput, kHard, kGradK>(v);
    case ChargeKind::kNoDecayInput:
      return pick_backward_width<ChargeKind::kNoDecayInput, kHard, kGradK>(v);
  }
  return nullptr;
}

const float* optional_float(const TensorView& t) {
  return t.defined() ? static_cast<const float*>(t.data) : nullptr;
}
float* optional_float_out(const TensorView& t) { return t.defined() ? static_cast<float*>(t.data) : nullptr; }

}  // namespace

void neuron_forward(const NeuronParams& p, const NeuronForwardArgs& a) {
  const int64_t T = a.x_seq.shape[0], N = a.x_seq.shape[1];
  const bool parametric = p.kind == NeuronKind::kParametricLIF;
  ForwardKernelArgs k;
  k.x_seq = a.x_seq.data;
  k.x_dtype = a.x_seq.dtype;
  k.x_step = input_step(a.x_seq);
  k.v_init = static_cast<const float*>(a.v_init.data);
  k.decay = parametric ? static_cast<const float*>(a.decay.data) : nullptr;
  k.spike_seq = a.spike_seq.data;
  k.spike_dtype = a.spike_seq.dtype;
  k.v_final = static_cast<float*>(a.v_final.data);
  k.h_seq = optional_float_out(a.h_seq);
  k.v_seq = optional_float_out(a.v_seq);
  k.T = T;
  k.N = N;
  k.k = host_decay(p);
  k.vr = charge_v_rest(p);
  k.v_threshold = p.v_threshold;
  k.v_reset = p.v_reset;

  const int v = neuron_vector_width(N, {&a.x_seq, &a.v_init, &a.spike_seq, &a.v_final, &a.h_seq, &a.v_seq});
  const ChargeKind c = charge_kind(p);
  const ForwardKernel kernel = p.hard_reset ? pick_forward<true>(c, v) : pick_forward<false>(c, v);

  DeviceGuard guard(a.x_seq.device_index);
  kernel<<<grid_blocks(N / v), kThreadsPerBlock, 0, as_stream(a.stream)>>>(k);
  check_launch("neuron_forward_kernel");
}

void neuron_backward(const NeuronParams& p, const NeuronBackwardArgs& a) {
  const int64_t T = a.h_seq.shape[0], N = a.h_seq.shape[1];
  const bool grad_k = p.kind == NeuronKind::kParametricLIF;
  BackwardKernelArgs k;
  k.grad_spike_seq = a.grad_spike_seq.data;
  k.grad_spike_dtype = a.grad_spike_seq.dtype;
  k.grad_v_seq = optional_float(a.grad_v_seq);
  k.grad_v_final = optional_float(a.grad_v_final);
  k.h_seq = static_cast<const float*>(a.h_seq.data);
  k.v_init = grad_k ? static_cast<const float*>(a.v_init.data) : nullptr;
  k.decay = grad_k ? static_cast<const float*>(a.decay.data) : nullptr;
  k.grad_x_seq = a.grad_x_seq.data;
  k.grad_x_dtype = a.grad_x_seq.dtype;
  k.grad_v_init = static_cast<float*>(a.grad_v_init.data);
  k.grad_decay = grad_k ? static_cast<float*>(a.grad_decay.data) : nullptr;
  k.T = T;
  k.N = N;
  k.k = host_decay(p);
  k.vr = charge_v_rest(p);
  k.v_threshold = p.v_threshold;
  k.v_reset = p.v_reset;
  k.through_spike = p.detach_reset ? 0.0f : 1.0f;
  k.surrogate = p.surrogate.kind;
  k.alpha = p.surrogate.alpha;
  k.beta = p.surrogate.beta;

  // v_init and grad_decay are only read or written for ParametricLIF; the others may pass anything there.
  const TensorView none;
  const TensorView& v_init = grad_k ? a.v_init : none;
  const TensorView& grad_decay = grad_k ? a.grad_decay : none;
  const int v = neuron_vector_width(N, {&a.grad_spike_seq, &a.grad_v_seq, &a.grad_v_final, &a.h_seq, &v_init,
                                        &a.grad_x_seq, &a.grad_v_init, &grad_decay});
  const ChargeKind c = charge_kind(p);
  BackwardKernel kernel;
  if (p.hard_reset) {
    kernel = grad_k ? pick_backward<true, true>(c, v) : pick_backward<true, false>(c, v);
  } else {
    kernel = grad_k ? pick_backward<false, true>(c, v) : pick_backward<false, false>(c, v);
  }

  DeviceGuard guard(a.h_seq.device_index);
  kernel<<<grid_blocks(N / v), kThreadsPerBlock, 0, as_stream(a.stream)>>>(k);
  check_launch("neuron_backward_kernel");
}

}  // namespace cuda
}  // namespace spikeops
