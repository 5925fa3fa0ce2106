// Public entry points of the standalone spike function: validation, then the CPU or CUDA kernel.
#include "spikeops/surrogate.hpp"

#include <cmath>
#include <limits>
#include <string>

#include "backend.hpp"
#include "spikeops/error.hpp"
#include "validate.hpp"

namespace spikeops {

const char* surrogate_name(SurrogateKind kind) {
  switch (kind) {
    case SurrogateKind::kSigmoid: return "Sigmoid";
    case SurrogateKind::kATan: return "ATan";
    case SurrogateKind::kPiecewiseQuadratic: return "PiecewiseQuadratic";
    case SurrogateKind::kPiecewiseExp: return "PiecewiseExp";
    case SurrogateKind::kSoftSign: return "SoftSign";
    case SurrogateKind::kSuperSpike: return "SuperSpike";
    case SurrogateKind::kErf: return "Erf";
    case SurrogateKind::kRect: return "Rect";
    case SurrogateKind::kPiecewiseLeakyReLU: return "PiecewiseLeakyReLU";
    case SurrogateKind::kFastSigmoid: return "FastSigmoid";
    case SurrogateKind::kNonzeroSignLogAbs: return "NonzeroSignLogAbs";
    case SurrogateKind::kS2NN: return "S2NN";
    case SurrogateKind::kQPseudoSpike: return "QPseudoSpike";
    case SurrogateKind::kLeakyKReLU: return "LeakyKReLU";
    case SurrogateKind::kFakeNumericalGradient: return "FakeNumericalGradient";
    case SurrogateKind::kLogTailedReLU: return "LogTailedReLU";
    case SurrogateKind::kSquarewaveFourierSeries: return "SquarewaveFourierSeries";
    case SurrogateKind::kDeterministicPass: return "DeterministicPass";
  }
  return "unknown surrogate";
}

Surrogate default_surrogate(SurrogateKind kind) {
  switch (kind) {
    case SurrogateKind::kSigmoid: return {kind, 4.0f, 0.0f};
    case SurrogateKind::kATan: return {kind, 2.0f, 0.0f};
    case SurrogateKind::kSoftSign: return {kind, 2.0f, 0.0f};
    case SurrogateKind::kErf: return {kind, 2.0f, 0.0f};
    case SurrogateKind::kPiecewiseLeakyReLU: return {kind, 1.0f, 0.01f};
    case SurrogateKind::kFastSigmoid: return {kind, 25.0f, 0.0f};
    case SurrogateKind::kS2NN: return {kind, 4.0f, 1.0f};
    case SurrogateKind::kQPseudoSpike: return {kind, 2.0f, 0.0f};
    case SurrogateKind::kLeakyKReLU: return {kind, 0.0f, 1.0f};
    case SurrogateKind::kFakeNumericalGradient: return {kind, 0.3f, 0.0f};
    case SurrogateKind::kLogTailedReLU: return {kind, 0.0f, 0.0f};
    case SurrogateKind::kSquarewaveFourierSeries: return {kind, 8.0f, 2.0f};
    default: return {kind, 1.0f, 0.0f};
  }
}

void validate_surrogate(const Surrogate& s, const char* arg_name) {
  const int kind = static_cast<int>(s.kind);
  const std::string name(arg_name);
  if (kind < 0 || kind >= kNumSurrogateKinds) {
    throw Error(name + ".kind must be a SurrogateKind in [0, " + std::to_string(kNumSurrogateKinds) + "), got " +
                std::to_string(kind));
  }
  const char* sg = surrogate_name(s.kind);
  if (!std::isfinite(s.alpha)) {
    throw Error(name + ".alpha of " + sg + " must be finite, got " + std::to_string(s.alpha));
  }
  if (!std::isfinite(s.beta)) {
    throw Error(name + ".beta of " + sg + " must be finite, got " + std::to_string(s.beta));
  }
  switch (s.kind) {
    case SurrogateKind::kLeakyKReLU:
    case SurrogateKind::kFakeNumericalGradient:
    case SurrogateKind::kLogTailedReLU:
    case SurrogateKind::kDeterministicPass:
      return;  // no division by alpha: any finite value is a valid (if odd) surrogate
    case SurrogateKind::kQPseudoSpike:
      // 2 / (alpha - 1): alpha = 1 divides by 0, alpha < 1 makes the base negative (NaN gradients).
      if (!(s.alpha > 1.0f)) {
        throw Error(name + ".alpha of QPseudoSpike must be > 1, got " + std::to_string(s.alpha));
      }
      return;
    case SurrogateKind::kSquarewaveFourierSeries:
      // n is a loop count: an integer held exactly by float32.
      if (!(s.beta >= 1.0f && s.beta <= 16777216.0f && s.beta == std::floor(s.beta))) {
        throw Error(name + ".beta of SquarewaveFourierSeries (its n) must be an integer in [1, 2^24], got " +
                    std::to_string(s.beta));
      }
      break;
    default:
      break;
  }
  // A normal float32 (not a subnormal): the derivatives divide by alpha (1/alpha, 1/(2 alpha)), which would
  // overflow to inf for a subnormal one.
  if (!(s.alpha >= std::numeric_limits<float>::min())) {
    throw Error(name + ".alpha of " + sg +
                " must be a finite number > 0 that float32 holds as a normal number (>= 1.2e-38), got " +
                std::to_string(s.alpha));
  }
}

namespace {
constexpr auto kFloat32 = DType::kFloat32;
constexpr auto kFloat16 = DType::kFloat16;
constexpr auto kBFloat16 = DType::kBFloat16;
constexpr auto kUInt8 = DType::kUInt8;
}  // namespace

void heaviside_forward(const TensorView& x, const TensorView& spike, void* stream) {
  validate::Checker check("heaviside_forward");
  check.tensor(x, "x", x.ndim, {kFloat32, kFloat16, kBFloat16});
  check.tensor(spike, "spike", x.ndim, {kFloat32, kFloat16, kBFloat16, kUInt8});
  check.same_shape(spike, "spike", x, "x");
  check.same_device(spike, "spike", x, "x");
  if (x.numel() == 0) return;
  if (x.device == Device::kCUDA) {
    cuda::heaviside_forward(x, spike, stream);
  } else {
    cpu::heaviside_forward(x, spike);
  }
}

void surrogate_backward(const Surrogate& s, const TensorView& grad_spike, const TensorView& x,
                        const TensorView& grad_x, void* stream) {
  validate::Checker check("surrogate_backward");
  check.nested([&] { validate_surrogate(s); });
  check.tensor(x, "x", x.ndim, {kFloat32, kFloat16, kBFloat16});
  check.tensor(grad_spike, "grad_spike", x.ndim, {kFloat32, kFloat16, kBFloat16});
  check.tensor(grad_x, "grad_x", x.ndim, {kFloat32, kFloat16, kBFloat16});
  check.same_shape(grad_spike, "grad_spike", x, "x");
  check.same_shape(grad_x, "grad_x", x, "x");
  check.same_device(grad_spike, "grad_spike", x, "x");
  check.same_device(grad_x, "grad_x", x, "x");
  if (x.numel() == 0) return;
  if (x.device == Device::kCUDA) {
    cuda::surrogate_backward(s, grad_spike, x, grad_x, stream);
  } else {
    cpu::surrogate_backward(s, grad_spike, x, grad_x);
  }
}

}  // namespace spikeops
