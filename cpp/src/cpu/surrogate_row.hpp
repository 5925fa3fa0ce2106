// out[i] = σ'(x[i] - shift) over a row, one vectorizable loop per surrogate kind.
#pragma once

#include "cpu/simd.hpp"
#include "spikeops/detail/surrogate_math.hpp"
#include "spikeops/surrogate.hpp"

namespace spikeops {
namespace cpu {

template <SurrogateKind K>
SPIKEOPS_CPU_INLINE void surrogate_row_kind(float alpha, float beta, const float* x, float shift, int n,
                                            float* out) {
  for (int i = 0; i < n; ++i) out[i] = surrogate_grad(K, alpha, beta, x[i] - shift);
}

// The switch runs once per row, so each loop body sees a constant kind and vectorizes.
SPIKEOPS_CPU_INLINE void surrogate_row(const Surrogate& s, const float* x, float shift, int n, float* out) {
  switch (s.kind) {
#define SPIKEOPS_SURROGATE_CASE(KIND)                                 \
  case SurrogateKind::KIND:                                           \
    surrogate_row_kind<SurrogateKind::KIND>(s.alpha, s.beta, x, shift, n, out); \
    return;
    SPIKEOPS_FOR_EACH_SURROGATE_KIND(SPIKEOPS_SURROGATE_CASE)
#undef SPIKEOPS_SURROGATE_CASE
  }
}

}  // namespace cpu
}  // namespace spikeops
