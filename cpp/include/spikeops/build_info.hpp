// What this build of the library contains.
#pragma once

#include <string>

namespace spikeops {

struct BuildInfo {
  std::string version;
  std::string cpu_simd;          // SIMD level the CPU kernels use on this machine: avx512, avx2 or baseline
  std::string cpu_simd_compiled; // the levels compiled in, e.g. "avx512,avx2,baseline"
  bool openmp = false;
  int openmp_threads = 1;
  bool cuda = false;
  std::string cuda_architectures;  // CMAKE_CUDA_ARCHITECTURES of the build, empty without CUDA
};

BuildInfo build_info();

// Threads the CPU kernels may use when called from this thread (OpenMP's setting for the calling thread);
// n < 1 throws spikeops::Error. Without OpenMP the kernels are single-threaded and this does nothing.
void set_cpu_threads(int n);
int cpu_threads();

}  // namespace spikeops
