// CUDA kernels of the multi-step neurons, generic over the model (spikeops/detail/neuron_model.hpp). One thread
// owns V adjacent neurons and walks t = 0..T-1 (forward) or T-1..0 (backward) with their state in registers, so
// every tensor is streamed once per direction; rows of V neurons are adjacent in memory, so a warp's accesses
// coalesce. The per-step math is the model's SPIKEOPS_HD code that the CPU kernels run, in the same order, so
// spikes match the CPU bit for bit.
#include <cstdint>

#include "backend.hpp"
#include "cuda_utils.cuh"
#include "spikeops/detail/neuron_math.hpp"
#include "spikeops/detail/neuron_models.hpp"
#include "spikeops/neuron.hpp"

namespace spikeops {
namespace cuda {
namespace {

template <typename M>
struct ForwardKernelArgs {
  typename M::Consts c;
  const float* learnable;  // device memory; nullptr when the model has none
  const void* x_seq;
  DType x_dtype;
  int64_t x_step;  // elements between one step's input and the next: N, or 0 (one row repeated)
  const float* state_init;
  void* spike_seq;
  DType spike_dtype;
  float* state_final;
  float* saved;  // nullptr when not requested
  float* v_seq;  // nullptr when not requested
  int64_t T, N;
};

template <typename M, int V>
__global__ void __launch_bounds__(kThreadsPerBlock) neuron_forward_kernel(const ForwardKernelArgs<M> a) {
  constexpr int S = M::kStates, K = M::kSaved;
  typename M::Consts c = a.c;
  M::bind(c, a.learnable);
  const int64_t plane = a.T * a.N;
  for (int64_t n0 = global_thread_index() * V; n0 < a.N; n0 += grid_thread_count() * V) {
    float st[S][V];
#pragma unroll
    for (int j = 0; j < S; ++j) load_vec<V>(DType::kFloat32, a.state_init, j * a.N + n0, st[j]);
    // The next step's input is requested before this step's stores so that its latency overlaps the work;
    // the compiler cannot hoist the load itself, as the outputs might alias the input for all it knows.
    float x_next[V];
    if (a.T > 0) load_vec<V>(a.x_dtype, a.x_seq, n0, x_next);
    for (int64_t t = 0; t < a.T; ++t) {
      const int64_t i = t * a.N + n0;
      float x[V], sp[V], sv[K][V];
#pragma unroll
      for (int j = 0; j < V; ++j) x[j] = x_next[j];
      if (t + 1 < a.T) load_vec<V>(a.x_dtype, a.x_seq, (t + 1) * a.x_step + n0, x_next);
#pragma unroll
      for (int e = 0; e < V; ++e) {
        float s[S], saved[K];
#pragma unroll
        for (int j = 0; j < S; ++j) s[j] = st[j][e];
        sp[e] = M::step(c, s, x[e], saved);
#pragma unroll
        for (int j = 0; j < S; ++j) st[j][e] = s[j];
#pragma unroll
        for (int k = 0; k < K; ++k) sv[k][e] = saved[k];
      }
      store_vec<V>(a.spike_dtype, a.spike_seq, i, sp);
      if (a.saved != nullptr) {
#pragma unroll
        for (int k = 0; k < K; ++k) store_vec<V>(DType::kFloat32, a.saved, k * plane + i, sv[k]);
      }
      if (a.v_seq != nullptr) store_vec<V>(DType::kFloat32, a.v_seq, i, st[0]);
    }
#pragma unroll
    for (int j = 0; j < S; ++j) store_vec<V>(DType::kFloat32, a.state_final, j * a.N + n0, st[j]);
  }
}

template <typename M>
struct BackwardKernelArgs {
  typename M::Consts c;
  const float* learnable;  // device memory; nullptr when the model has none
  const void* grad_spike_seq;  // nullptr when absent: zero
  DType grad_spike_dtype;
  const float* grad_v_seq;          // nullptr when absent
  const float* grad_state_final;    // nullptr when absent: zero
  const float* grad_saved;          // nullptr when absent: zero (models with kSavedGrad only)
  const float* saved;
  const float* state_init;
  const float* surrogate_grad_seq;  // nullptr: compute σ'(u) with the surrogate below
  void* grad_x_seq;
  DType grad_x_dtype;
  float* grad_state_init;
  float* grad_learnable;  // nullptr when the model has none
  int64_t T, N;
  float through_spike;  // 0 with detach_reset (no gradient through S in the reset), else 1
  SurrogateKind surrogate;
  float alpha, beta;
};

template <typename M, int V>
__global__ void __launch_bounds__(kThreadsPerBlock) neuron_backward_kernel(const BackwardKernelArgs<M> a) {
  constexpr int S = M::kStates, K = M::kSaved, P = M::kLearnable > 0 ? M::kLearnable : 1;
  constexpr int C = NeuronConstStates<M>::value;  // constant states: the last C rows of the state
  typename M::Consts c = a.c;
  M::bind(c, a.learnable);
  const int64_t plane = a.T * a.N;
  for (int64_t n0 = global_thread_index() * V; n0 < a.N; n0 += grid_thread_count() * V) {
    float g[S][V], gl[P][V];
#pragma unroll
    for (int j = 0; j < S; ++j) {
      if (a.grad_state_final != nullptr) {
        load_vec<V>(DType::kFloat32, a.grad_state_final, j * a.N + n0, g[j]);
      } else {
#pragma unroll
        for (int e = 0; e < V; ++e) g[j][e] = 0.0f;
      }
    }
#pragma unroll
    for (int k = 0; k < P; ++k) {
#pragma unroll
      for (int e = 0; e < V; ++e) gl[k][e] = 0.0f;
    }
    // As in the forward, step t-1's inputs are requested before step t's work so that their latency overlaps
    // it; step t-1's saved values double as the source of the state before step t.
    // A readout never fires: σ' is 0, neither computed nor read.
    const bool own_sg = a.surrogate_grad_seq == nullptr && model_spikes<M>::value;
    const bool no_sg = !model_spikes<M>::value;
    float sv_next[K][V], gsv_next[K][V], gs_next[V], gvs_next[V], sg_next[V];
    auto load_step = [&](int64_t i) {
#pragma unroll
      for (int k = 0; k < K; ++k) load_vec<V>(DType::kFloat32, a.saved, k * plane + i, sv_next[k]);
      if (a.grad_saved != nullptr) {
#pragma unroll
        for (int k = 0; k < K; ++k) load_vec<V>(DType::kFloat32, a.grad_saved, k * plane + i, gsv_next[k]);
      }
      if (a.grad_spike_seq != nullptr) load_vec<V>(a.grad_spike_dtype, a.grad_spike_seq, i, gs_next);
      if (a.grad_v_seq != nullptr) load_vec<V>(DType::kFloat32, a.grad_v_seq, i, gvs_next);
      if (!own_sg && !no_sg) load_vec<V>(DType::kFloat32, a.surrogate_grad_seq, i, sg_next);
    };
    if (a.T > 0) load_step((a.T - 1) * a.N + n0);
    float prev[S][V];
    if (M::kNeedsPrev) {
#pragma unroll
      for (int j = S - C; j < S; ++j) load_vec<V>(DType::kFloat32, a.state_init, j * a.N + n0, prev[j]);
    }
    for (int64_t t = a.T - 1; t >= 0; --t) {
      const int64_t i = t * a.N + n0;
      float sv[K][V], gsv[K][V], gs[V], sg[V];
#pragma unroll
      for (int e = 0; e < V; ++e) {
#pragma unroll
        for (int k = 0; k < K; ++k) {
          sv[k][e] = sv_next[k][e];
          gsv[k][e] = a.grad_saved != nullptr ? gsv_next[k][e] : 0.0f;
        }
        gs[e] = a.grad_spike_seq != nullptr ? gs_next[e] : 0.0f;
        if (a.grad_v_seq != nullptr) g[0][e] += gvs_next[e];
        if (!own_sg) sg[e] = no_sg ? 0.0f : sg_next[e];
      }
      if (t > 0) load_step(i - a.N);
      if (own_sg) {
        float u[V];
#pragma unroll
        for (int e = 0; e < V; ++e) {
          float saved[K];
#pragma unroll
          for (int k = 0; k < K; ++k) saved[k] = sv[k][e];
          u[e] = M::fire_input(c, saved);
        }
        surrogate_grad_vec<V>(a.surrogate, a.alpha, a.beta, u, 0.0f, sg);
      }
      // The state before step t: rebuilt from step t-1's saved values, or the initial state at t = 0. The
      // constant states, the last C rows, keep their initial values, loaded before the time loop.
      if (M::kNeedsPrev) {
        if (t > 0) {
#pragma unroll
          for (int e = 0; e < V; ++e) {
            float saved[K], s[S] = {};  // state_after may rebuild only what backward reads
#pragma unroll
            for (int k = 0; k < K; ++k) saved[k] = sv_next[k][e];
            M::state_after(c, saved, s);
#pragma unroll
            for (int j = 0; j < S - C; ++j) prev[j][e] = s[j];
          }
        } else {
#pragma unroll
          for (int j = 0; j < S - C; ++j) load_vec<V>(DType::kFloat32, a.state_init, j * a.N + n0, prev[j]);
        }
      }
      float gx[V];
#pragma unroll
      for (int e = 0; e < V; ++e) {
        float saved[K], gsaved[K], pv[S], gi[S], gli[P];
#pragma unroll
        for (int k = 0; k < K; ++k) {
          saved[k] = sv[k][e];
          gsaved[k] = gsv[k][e];
        }
#pragma unroll
        for (int j = 0; j < S; ++j) {
          pv[j] = M::kNeedsPrev ? prev[j][e] : 0.0f;
          gi[j] = g[j][e];
        }
#pragma unroll
        for (int k = 0; k < P; ++k) gli[k] = gl[k][e];
        gx[e] = model_backward<M>(c, saved, pv, sg[e], gs[e], a.through_spike, gi, gli, gsaved);
#pragma unroll
        for (int j = 0; j < S; ++j) g[j][e] = gi[j];
#pragma unroll
        for (int k = 0; k < P; ++k) gl[k][e] = gli[k];
      }
      store_vec<V>(a.grad_x_dtype, a.grad_x_seq, i, gx);
    }
#pragma unroll
    for (int j = 0; j < S; ++j) store_vec<V>(DType::kFloat32, a.grad_state_init, j * a.N + n0, g[j]);
    if (M::kLearnable > 0) {
#pragma unroll
      for (int k = 0; k < M::kLearnable; ++k) store_vec<V>(DType::kFloat32, a.grad_learnable, k * a.N + n0, gl[k]);
    }
  }
}

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

template <typename Args>
void launch(void (*kernel)(Args), const Args& args, int64_t threads, int device, void* stream, const char* name) {
  DeviceGuard guard(device);
  kernel<<<grid_blocks(threads), kThreadsPerBlock, 0, as_stream(stream)>>>(args);
  check_launch(name);
}

const float* optional_float(const TensorView& t) {
  return t.defined() ? static_cast<const float*>(t.data) : nullptr;
}
float* optional_float_out(const TensorView& t) { return t.defined() ? static_cast<float*>(t.data) : nullptr; }

}  // namespace

void neuron_forward(const NeuronParams& p, const NeuronForwardArgs& a) {
  with_neuron_model(p, [&](auto model) {
    using M = decltype(model);
    ForwardKernelArgs<M> k;
    k.c = M::consts(p);
    k.learnable = M::kLearnable > 0 ? static_cast<const float*>(a.learnable.data) : nullptr;
    k.x_seq = a.x_seq.data;
    k.x_dtype = a.x_seq.dtype;
    k.x_step = input_step(a.x_seq);
    k.state_init = static_cast<const float*>(a.state_init.data);
    k.spike_seq = a.spike_seq.data;
    k.spike_dtype = a.spike_seq.dtype;
    k.state_final = static_cast<float*>(a.state_final.data);
    k.saved = optional_float_out(a.saved);
    k.v_seq = optional_float_out(a.v_seq);
    k.T = a.x_seq.shape[0];
    k.N = a.x_seq.shape[1];
    const int v = neuron_vector_width(k.N, {&a.x_seq, &a.state_init, &a.spike_seq, &a.state_final, &a.saved,
                                            &a.v_seq});
    auto kernel = v == 8 ? neuron_forward_kernel<M, 8> : v == 4 ? neuron_forward_kernel<M, 4>
                                                                : neuron_forward_kernel<M, 1>;
    launch(kernel, k, k.N / v, a.x_seq.device_index, a.stream, "neuron_forward_kernel");
  });
}

void neuron_backward(const NeuronParams& p, const NeuronBackwardArgs& a) {
  with_neuron_model(p, [&](auto model) {
    using M = decltype(model);
    BackwardKernelArgs<M> k;
    k.c = M::consts(p);
    k.learnable = M::kLearnable > 0 ? static_cast<const float*>(a.learnable.data) : nullptr;
    k.grad_spike_seq = a.grad_spike_seq.defined() ? a.grad_spike_seq.data : nullptr;
    k.grad_spike_dtype = a.grad_spike_seq.dtype;
    k.grad_v_seq = optional_float(a.grad_v_seq);
    k.grad_state_final = optional_float(a.grad_state_final);
    k.grad_saved = optional_float(a.grad_saved);
    k.saved = static_cast<const float*>(a.saved.data);
    k.state_init = static_cast<const float*>(a.state_init.data);
    k.surrogate_grad_seq = optional_float(a.surrogate_grad_seq);
    k.grad_x_seq = a.grad_x_seq.data;
    k.grad_x_dtype = a.grad_x_seq.dtype;
    k.grad_state_init = static_cast<float*>(a.grad_state_init.data);
    k.grad_learnable = M::kLearnable > 0 ? static_cast<float*>(a.grad_learnable.data) : nullptr;
    k.T = a.grad_x_seq.shape[0];
    k.N = a.grad_x_seq.shape[1];
    k.through_spike = p.detach_reset ? 0.0f : 1.0f;
    k.surrogate = p.surrogate.kind;
    k.alpha = p.surrogate.alpha;
    k.beta = p.surrogate.beta;
    // grad_learnable is only written when the model has learnable scalars.
    const TensorView none;
    const TensorView& grad_learnable = M::kLearnable > 0 ? a.grad_learnable : none;
    const int v = neuron_vector_width(k.N, {&a.grad_spike_seq, &a.grad_v_seq, &a.grad_state_final, &a.grad_saved, &a.saved,
                                            &a.state_init, &a.surrogate_grad_seq, &a.grad_x_seq,
                                            &a.grad_state_init, &grad_learnable});
    auto kernel = v == 8 ? neuron_backward_kernel<M, 8> : v == 4 ? neuron_backward_kernel<M, 4>
                                                                 : neuron_backward_kernel<M, 1>;
    launch(kernel, k, k.N / v, a.saved.device_index, a.stream, "neuron_backward_kernel");
  });
}

}  // namespace cuda
}  // namespace spikeops
