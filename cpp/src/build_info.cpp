#include "spikeops/build_info.hpp"

#include <string>

#include "backend.hpp"
#include "spikeops/error.hpp"
#include "cpu/simd.hpp"
#include "spikeops/config.hpp"

namespace spikeops {

BuildInfo build_info() {
  BuildInfo info;
  info.version = SPIKEOPS_VERSION_STRING;
  info.cpu_simd = cpu::simd_level();
  info.cpu_simd_compiled = SPIKEOPS_CPU_HAS_CLONES ? "avx512,avx2,baseline" : "baseline";
#if defined(_OPENMP)
  info.openmp = true;
#endif
  info.openmp_threads = cpu::max_threads();
  info.cuda = cuda::compiled();
  info.cuda_architectures = info.cuda ? cuda::architectures() : "";
  return info;
}

void set_cpu_threads(int n) {
  if (n < 1) throw Error("set_cpu_threads: n must be >= 1, got " + std::to_string(n));
  cpu::set_max_threads(n);
}

int cpu_threads() { return cpu::max_threads(); }

}  // namespace spikeops
