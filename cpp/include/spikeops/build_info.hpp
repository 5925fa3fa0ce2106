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

}  // namespace spikeops
