// Internal: the surrogate derivatives as scalar functions shared by the CPU and CUDA kernels (host and device
// code), so the CPU tests exercise the formulas the GPU runs. Not part of the API: see spikeops/surrogate.hpp.
#pragma once

#include <math.h>

#include "spikeops/config.hpp"
#include "spikeops/detail/numeric.hpp"
#include "spikeops/surrogate.hpp"

namespace spikeops {

// α σ(αx)(1 - σ(αx)) at |x| = ax, as α e / (1 + e)^2 with e = exp(-α|x|): symmetric and never overflows.
SPIKEOPS_HD float sigmoid_grad(float alpha, float ax) {
  const float e = detail::exp_nonpositive(-alpha * ax);
  const float d = 1.0f + e;
  return alpha * e / (d * d);
}

// σ'(x): the surrogate derivative at x (x is already H - v_threshold).
SPIKEOPS_HD float surrogate_grad(SurrogateKind kind, float alpha, float beta, float x) {
  using detail::abs_float;
  using detail::exp_nonpositive;
  const float ax = abs_float(x);
  switch (kind) {
    case SurrogateKind::kSigmoid:
      return sigmoid_grad(alpha, ax);
    case SurrogateKind::kATan: {
      // (αx) first: π/2 α alone overflows for α above 2.2e38, and inf * 0 would make σ'(0) NaN.
      const float z = 1.57079632679489661923f * (alpha * x);
      return alpha * 0.5f / (1.0f + z * z);
    }
    case SurrogateKind::kPiecewiseQuadratic:
      // α (α|x|), not α² |x|: α² overflows for α above 1.8e19, and α|x| <= 1 on this branch.
      return ax > 1.0f / alpha ? 0.0f : alpha - alpha * (alpha * ax);
    case SurrogateKind::kPiecewiseExp:
      return alpha * 0.5f * exp_nonpositive(-alpha * ax);
    case SurrogateKind::kSoftSign: {
      // 1 / (2α d²) as 1 / (2 (αd) d): d² underflows to 0 for large α (d = 1/α at x = 0), αd is about 1 there.
      const float d = 1.0f / alpha + ax;
      return 1.0f / (2.0f * (alpha * d) * d);
    }
    case SurrogateKind::kSuperSpike: {
      const float d = ax + 1.0f;
      return alpha / (d * d);
    }
    case SurrogateKind::kErf: {
      const float z = alpha * x;
      return exp_nonpositive(-(z * z)) * (alpha * 0.56418958354775628695f);  // α / √π
    }
    case SurrogateKind::kRect:
      return ax < 0.5f / alpha ? alpha : 0.0f;
    case SurrogateKind::kPiecewiseLeakyReLU:
      return ax < alpha ? 1.0f / (2.0f * alpha) : beta;
    case SurrogateKind::kFastSigmoid: {
      const float d = alpha * ax + 1.0f;
      return 1.0f / (d * d);
    }
    case SurrogateKind::kNonzeroSignLogAbs:
      return 1.0f / (1.0f / alpha + ax);
    case SurrogateKind::kS2NN:
      // NaN takes the β/(x + 1) side, as SpikingJelly's where(x < 0, ...) does.
      return x < 0.0f ? sigmoid_grad(alpha, ax) : beta / (x + 1.0f);
    case SurrogateKind::kQPseudoSpike:
      return powf(1.0f + 2.0f / (alpha - 1.0f) * ax, -alpha);
    case SurrogateKind::kLeakyKReLU:
      // NaN gets leak: SpikingJelly's mask (x >= 0) is false there.
      return x >= 0.0f ? beta : alpha;
    case SurrogateKind::kFakeNumericalGradient: {
      // SpikingJelly's clamp_max((2Θ(x) - 1) / x, α): -0 gives -inf (1 / -0), NaN stays NaN (fminf would drop it).
      const float g = (x >= 0.0f ? 1.0f : -1.0f) / x;
      return g > alpha ? alpha : g;
    }
    case SurrogateKind::kLogTailedReLU:
      return x > 1.0f ? 1.0f / x : (x <= 0.0f ? alpha : 1.0f);
    case SurrogateKind::kSquarewaveFourierSeries: {
      // The derivative of the first n - 1 odd harmonics of a square wave of period T (alpha); n = 1 gives 0.
      // Each harmonic's frequency (2i - 1) 2π/T is rounded to float32 once, from double, as SpikingJelly's
      // Python scalar is: rounding 2π/T first and multiplying in float32 moved the phase by up to 2e-5 at |x| = 30.
      const double w = 6.28318530717958647692 / static_cast<double>(alpha);
      const int n = static_cast<int>(beta);
      float sum = 0.0f;
      for (int i = 1; i < n; ++i) sum += cosf(static_cast<float>((2.0 * i - 1.0) * w) * x);
      return sum * (4.0f / alpha);
    }
    case SurrogateKind::kDeterministicPass:
      return 1.0f;
  }
  return 0.0f;
}

SPIKEOPS_HD float surrogate_grad(const Surrogate& s, float x) {
  return surrogate_grad(s.kind, s.alpha, s.beta, x);
}

}  // namespace spikeops
