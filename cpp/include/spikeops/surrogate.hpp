// Surrogate gradients: the spike is a Heaviside step Θ(x) = (x >= 0) forward, and σ'(x) stands in for its
// derivative backward. Names, default parameters and formulas are SpikingJelly's, plus snnTorch's FastSigmoid.
// Every SpikingJelly surrogate whose forward is Θ and whose derivative is closed-form is here; PoissonPass and
// MultiLevelSpikeCount (forward not Θ) exist only in Python.
#pragma once

#include "spikeops/config.hpp"
#include "spikeops/tensor.hpp"

namespace spikeops {

enum class SurrogateKind : int {
  kSigmoid = 0,             // α σ(αx)(1 - σ(αx)),                   α = 4
  kATan = 1,                // (α/2) / (1 + (π/2 α x)^2),              α = 2
  kPiecewiseQuadratic = 2,  // max(0, α - α^2 |x|) for |x| <= 1/α,     α = 1
  kPiecewiseExp = 3,        // (α/2) exp(-α|x|),                       α = 1
  kSoftSign = 4,            // 1 / (2α (1/α + |x|)^2),                 α = 2
  kSuperSpike = 5,          // α / (|x| + 1)^2,                        α = 1
  kErf = 6,                 // (α/√π) exp(-(αx)^2),                    α = 2
  kRect = 7,                // α if |x| < 1/(2α) else 0,               α = 1
  kPiecewiseLeakyReLU = 8,  // 1/(2w) if |x| < w else c,               w = 1 (alpha), c = 0.01 (beta)
  kFastSigmoid = 9,         // 1 / (slope |x| + 1)^2 (snnTorch),       slope = 25 (alpha)
  kNonzeroSignLogAbs = 10,  // 1 / (1/α + |x|),                        α = 1
  kS2NN = 11,               // α σ(αx)(1 - σ(αx)) for x < 0, β / (x + 1) for x >= 0,   α = 4, β = 1
  kQPseudoSpike = 12,       // (1 + 2|x| / (α - 1))^-α,                α = 2 (> 1)
  kLeakyKReLU = 13,         // k for x >= 0, else leak,                leak = 0 (alpha), k = 1 (beta)
  kFakeNumericalGradient = 14,  // min(sign(x) / x, α), sign(x) = 1 for x >= 0 else -1,   α = 0.3
  kLogTailedReLU = 15,      // α for x <= 0, 1 for 0 < x <= 1, 1/x for x > 1,   α = 0
  kSquarewaveFourierSeries = 16,  // (4/T) Σ_{i=1}^{n-1} cos((2i - 1) 2π x / T),  T_period = 8 (alpha), n = 2 (beta)
  kDeterministicPass = 17,  // 1 (straight-through)
};
constexpr int kNumSurrogateKinds = 18;

// X(kind) for every SurrogateKind: kernels expand it into a switch whose cases each see a constant kind.
#define SPIKEOPS_FOR_EACH_SURROGATE_KIND(X) \
  X(kSigmoid)                               \
  X(kATan)                                  \
  X(kPiecewiseQuadratic)                    \
  X(kPiecewiseExp)                          \
  X(kSoftSign)                              \
  X(kSuperSpike)                            \
  X(kErf)                                   \
  X(kRect)                                  \
  X(kPiecewiseLeakyReLU)                    \
  X(kFastSigmoid)                           \
  X(kNonzeroSignLogAbs)                     \
  X(kS2NN)                                  \
  X(kQPseudoSpike)                          \
  X(kLeakyKReLU)                            \
  X(kFakeNumericalGradient)                 \
  X(kLogTailedReLU)                         \
  X(kSquarewaveFourierSeries)               \
  X(kDeterministicPass)

const char* surrogate_name(SurrogateKind kind);

// A surrogate and its parameters. `alpha` is α (w for PiecewiseLeakyReLU, slope for FastSigmoid, leak for
// LeakyKReLU, T_period for SquarewaveFourierSeries); `beta` is PiecewiseLeakyReLU's c, S2NN's β, LeakyKReLU's k
// and SquarewaveFourierSeries' n (an integer held as a float); the other kinds ignore it.
struct Surrogate {
  SurrogateKind kind = SurrogateKind::kSigmoid;
  float alpha = 4.0f;
  float beta = 0.0f;
};

// SpikingJelly's default parameters for `kind`.
Surrogate default_surrogate(SurrogateKind kind);

// Throws spikeops::Error when the kind is unknown or a parameter is out of range. alpha and beta must be finite;
// where the formula divides by alpha it must also be a normal float32 > 0 (>= FLT_MIN): every kind but
// LeakyKReLU, FakeNumericalGradient, LogTailedReLU and DeterministicPass (any finite alpha) and QPseudoSpike
// (alpha > 1); SquarewaveFourierSeries' n (beta) must be an integer in [1, 2^24].
void validate_surrogate(const Surrogate& s, const char* arg_name = "surrogate");

// spike = Θ(x) = (x >= 0), elementwise. x: float32/float16/bfloat16; spike: same shape, any dtype
// (float32/float16/bfloat16/uint8). Both contiguous and on one device; `stream` is a cudaStream_t for CUDA.
void heaviside_forward(const TensorView& x, const TensorView& spike, void* stream = nullptr);

// grad_x = grad_spike * σ'(x), elementwise. grad_spike and x: float32/float16/bfloat16 of one shape;
// grad_x: float32/float16/bfloat16 of that shape.
void surrogate_backward(const Surrogate& s, const TensorView& grad_spike, const TensorView& x,
                        const TensorView& grad_x, void* stream = nullptr);

}  // namespace spikeops
