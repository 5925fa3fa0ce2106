// The fused neuron kernels (neuron.hpp) through the public API: forward against a scalar re-statement of the
// contract, backward against finite differences, input repeated over time, empty tensors, and the errors.
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "spikeops/detail/neuron_math.hpp"
#include "spikeops/detail/numeric.hpp"
#include "spikeops/spikeops.hpp"
#include "test_util.hpp"

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

TEST(Neuron, ForwardMatchesContract) {
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.5f, 1.0f);
  const int64_t T = 9, N = 1031;  // N is not a multiple of the block or of any vector width
  for (int kind = 0; kind < 3; ++kind) {
    for (int hard = 0; hard < 2; ++hard) {
      for (int decay_input = 0; decay_input < 2; ++decay_input) {
        SCOPED_TRACE("kind " + std::to_string(kind) + " hard_reset " + std::to_string(hard) + " decay_input " +
                     std::to_string(decay_input));
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
        a.state_init = make_tensor_view(v0.data(), DType::kFloat32, {N});
        a.learnable = make_tensor_view(&k_param, DType::kFloat32, {1});
        a.spike_seq = make_tensor_view(spikes.data(), DType::kUInt8, {T, N});
        a.state_final = make_tensor_view(vfin.data(), DType::kFloat32, {N});
        a.saved = make_tensor_view(h.data(), DType::kFloat32, {T, N});
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
        EXPECT_TRUE(spikes_ok);
        EXPECT_TRUE(v_ok);
      }
    }
  }
}

// The backward of one neuron over T steps against central differences of the forward, using the Rect
// surrogate (derivative exactly 0 away from the threshold) on inputs that keep H far from it.
TEST(Neuron, BackwardMatchesFiniteDifferences) {
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
    a.state_init = make_tensor_view(&v_init, DType::kFloat32, {N});
    a.spike_seq = make_tensor_view(s, DType::kUInt8, {T, N});
    a.state_final = make_tensor_view(&vfin, DType::kFloat32, {N});
    a.saved = make_tensor_view(h, DType::kFloat32, {T, N});
    neuron_multistep_forward(p, a);
    return vfin;
  };
  forward(x, v0);
  NeuronBackwardArgs b;
  b.grad_spike_seq = make_tensor_view(gspike, DType::kFloat32, {T, N});
  b.grad_state_final = make_tensor_view(&gvfin, DType::kFloat32, {N});
  b.saved = make_tensor_view(h, DType::kFloat32, {T, N});
  b.state_init = make_tensor_view(&v0, DType::kFloat32, {N});
  b.grad_x_seq = make_tensor_view(gx, DType::kFloat32, {T, N});
  b.grad_state_init = make_tensor_view(&gv0, DType::kFloat32, {N});
  neuron_multistep_backward(p, b);
  const float eps = 1e-2f;
  for (int t = 0; t < T; ++t) {
    float xp[T], xm[T];
    for (int i = 0; i < T; ++i) xp[i] = xm[i] = x[i];
    xp[t] += eps;
    xm[t] -= eps;
    const float fd = (forward(xp, v0) - forward(xm, v0)) / (2 * eps);
    EXPECT_LT(std::fabs(fd - gx[t]), 1e-3f) << "grad_x_seq[" << t << "]: " << gx[t] << ", finite difference " << fd;
  }
  const float fd_v0 = (forward(x, v0 + eps) - forward(x, v0 - eps)) / (2 * eps);
  EXPECT_LT(std::fabs(fd_v0 - gv0), 1e-3f) << "grad_v_init: " << gv0 << ", finite difference " << fd_v0;
}

// x_seq with strides [0, 1] (one row read at every step) gives what the row copied T times gives.
TEST(Neuron, RepeatedInputMatchesCopies) {
  std::mt19937 rng(4);
  std::normal_distribution<float> normal(0.6f, 1.0f);
  const int64_t T = 5;
  for (int64_t N : {int64_t(1), int64_t(7), int64_t(1030)}) {
    for (int kind = 0; kind < 3; ++kind) {
      for (DType dtype : {DType::kFloat32, DType::kBFloat16}) {
        SCOPED_TRACE("N " + std::to_string(N) + " kind " + std::to_string(kind) + " dtype " + dtype_name(dtype));
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
          a.state_init = make_tensor_view(v0.data(), DType::kFloat32, {N});
          a.learnable = make_tensor_view(&k, DType::kFloat32, {1});
          a.spike_seq = make_tensor_view(s[repeated].data(), DType::kUInt8, {T, N});
          a.state_final = make_tensor_view(vf[repeated].data(), DType::kFloat32, {N});
          a.saved = make_tensor_view(h[repeated].data(), DType::kFloat32, {T, N});
          neuron_multistep_forward(p, a);
        }
        EXPECT_TRUE(s[0] == s[1] && h[0] == h[1] && vf[0] == vf[1]);
      }
    }
  }
}

// Only x_seq may repeat, and only with strides [0, 1].
TEST(Neuron, RepeatedInputRejectsOtherStrides) {
  float x[6] = {}, v[3] = {}, vf[3] = {};
  uint8_t s[6];
  NeuronForwardArgs a;
  a.x_seq = make_tensor_view(x, DType::kFloat32, {2, 3});
  a.state_init = make_tensor_view(v, DType::kFloat32, {3});
  a.spike_seq = make_tensor_view(s, DType::kUInt8, {2, 3});
  a.state_final = make_tensor_view(vf, DType::kFloat32, {3});
  a.x_seq.strides[0] = 1;
  EXPECT_ERROR(neuron_multistep_forward(NeuronParams{}, a), "x_seq must be contiguous");
  a.x_seq.strides[0] = 0;
  a.x_seq.strides[1] = 2;
  EXPECT_ERROR(neuron_multistep_forward(NeuronParams{}, a), "x_seq must be contiguous");
  a.x_seq.strides[1] = 1;
  a.spike_seq.strides[0] = 0;
  EXPECT_ERROR(neuron_multistep_forward(NeuronParams{}, a), "spike_seq must be contiguous");
}

// N = 0 and T = 0 are valid and touch nothing.
TEST(Neuron, EmptyTensorsAreValid) {
  NeuronParams p;
  NeuronForwardArgs a;
  float v = 0.25f, vf = 0.0f;
  a.x_seq = make_tensor_view(nullptr, DType::kFloat32, {4, 0});
  a.state_init = make_tensor_view(nullptr, DType::kFloat32, {0});
  a.spike_seq = make_tensor_view(nullptr, DType::kFloat32, {4, 0});
  a.state_final = make_tensor_view(nullptr, DType::kFloat32, {0});
  neuron_multistep_forward(p, a);
  a.x_seq = make_tensor_view(nullptr, DType::kFloat32, {0, 1});
  a.state_init = make_tensor_view(&v, DType::kFloat32, {1});
  a.spike_seq = make_tensor_view(nullptr, DType::kFloat32, {0, 1});
  a.state_final = make_tensor_view(&vf, DType::kFloat32, {1});
  neuron_multistep_forward(p, a);
  EXPECT_EQ(vf, v);
  // Empty tensors may come with any strides (torch describes an empty [2, 0] with strides [1, 1]).
  a.x_seq = make_tensor_view(nullptr, DType::kFloat32, {2, 0});
  a.x_seq.strides[0] = 1;
  a.x_seq.strides[1] = 1;
  a.state_init = make_tensor_view(nullptr, DType::kFloat32, {0});
  a.spike_seq = make_tensor_view(nullptr, DType::kFloat32, {2, 0});
  a.state_final = make_tensor_view(nullptr, DType::kFloat32, {0});
  neuron_multistep_forward(p, a);
  EXPECT_TRUE(a.x_seq.is_contiguous());
}

// A valid [2, 3] forward call on the CPU, which each error test spoils in one argument.
struct ForwardCall {
  float x[6] = {}, v[3] = {}, vf[3] = {}, h[6] = {};
  uint8_t s[6] = {};
  NeuronForwardArgs a;
  ForwardCall() {
    a.x_seq = make_tensor_view(x, DType::kFloat32, {2, 3});
    a.state_init = make_tensor_view(v, DType::kFloat32, {3});
    a.spike_seq = make_tensor_view(s, DType::kUInt8, {2, 3});
    a.state_final = make_tensor_view(vf, DType::kFloat32, {3});
    a.saved = make_tensor_view(h, DType::kFloat32, {2, 3});
  }
  ForwardCall(const ForwardCall&) = delete;
  ForwardCall& operator=(const ForwardCall&) = delete;
};

TEST(Neuron, ForwardRejectsBadTensors) {
  NeuronParams p;
  ForwardCall call;
  const NeuronForwardArgs& a = call.a;
  neuron_multistep_forward(p, a);  // the valid call

  NeuronForwardArgs bad = a;
  bad.state_init = make_tensor_view(call.v, DType::kFloat32, {2});
  EXPECT_ERROR(neuron_multistep_forward(p, bad), "state_init must have shape [3]");
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
  bad.state_final = TensorView();
  EXPECT_ERROR(neuron_multistep_forward(p, bad), "state_final is required");
  bad = a;
  bad.spike_seq.device = Device::kCUDA;
  EXPECT_ERROR(neuron_multistep_forward(p, bad), "spike_seq must be on the same device as x_seq");
}

TEST(Neuron, ForwardRejectsBadParams) {
  const NeuronParams p;
  ForwardCall call;
  const NeuronForwardArgs& a = call.a;
  NeuronParams bp = p;
  bp.tau = 1.0;
  EXPECT_ERROR(neuron_multistep_forward(bp, a), "tau must be a finite number > 1");
  // tau is a double, but the kernels compute 1/tau in float32: beyond float32's range it is rejected too.
  bp.tau = 1e39;
  EXPECT_ERROR(neuron_multistep_forward(bp, a), "tau must be a finite number > 1 that fits float32");
  bp.tau = static_cast<double>(std::numeric_limits<float>::max());
  neuron_multistep_forward(bp, a);
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
  EXPECT_ERROR(neuron_multistep_forward(bp, a), "learnable is required");
}

TEST(Neuron, BackwardRejectsBadTensors) {
  const NeuronParams p;
  float h[6] = {}, gs[6] = {}, gx[6], gv[3], v0[3] = {};
  NeuronBackwardArgs b;
  b.state_init = make_tensor_view(v0, DType::kFloat32, {3});
  b.grad_spike_seq = make_tensor_view(gs, DType::kFloat32, {2, 3});
  b.saved = make_tensor_view(h, DType::kFloat32, {2, 3});
  b.grad_x_seq = make_tensor_view(gx, DType::kFloat32, {2, 3});
  b.grad_state_init = make_tensor_view(gv, DType::kFloat32, {3});
  neuron_multistep_backward(p, b);  // the valid call
  NeuronBackwardArgs bb = b;
  bb.grad_x_seq = make_tensor_view(gx, DType::kFloat32, {3, 2});
  EXPECT_ERROR(neuron_multistep_backward(p, bb), "grad_x_seq must have shape [2, 3]");
  bb = b;
  bb.state_init = TensorView();
  EXPECT_ERROR(neuron_multistep_backward(p, bb), "state_init is required");
  bb = b;
  bb.surrogate_grad_seq = make_tensor_view(gx, DType::kFloat32, {3, 2});
  EXPECT_ERROR(neuron_multistep_backward(p, bb), "surrogate_grad_seq must have shape [2, 3]");
}

TEST(Neuron, CudaTensorsNeedCudaBuild) {
  if (build_info().cuda) GTEST_SKIP() << "this build has CUDA";
  ForwardCall call;
  NeuronForwardArgs gpu = call.a;
  for (TensorView* t : {&gpu.x_seq, &gpu.state_init, &gpu.spike_seq, &gpu.state_final, &gpu.saved}) t->device = Device::kCUDA;
  EXPECT_ERROR(neuron_multistep_forward(NeuronParams{}, gpu), "built without CUDA");
}

}  // namespace
