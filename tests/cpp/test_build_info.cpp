// What the build says about itself, and the CPU kernels' thread setting (build_info.hpp).
#include <cstdio>

#include "spikeops/spikeops.hpp"
#include "test_util.hpp"

using namespace spikeops;

namespace {

TEST(BuildInfo, DescribesThisBuild) {
  const BuildInfo info = build_info();
  // The log of a CI run says which SIMD level and which CUDA the other tests ran with.
  std::printf("spikeops %s, cpu simd %s (compiled: %s), openmp %d, cuda %d %s\n", info.version.c_str(),
              info.cpu_simd.c_str(), info.cpu_simd_compiled.c_str(), info.openmp ? 1 : 0, info.cuda ? 1 : 0,
              info.cuda_architectures.c_str());
  EXPECT_EQ(info.version, SPIKEOPS_VERSION_STRING);
}

TEST(BuildInfo, SetCpuThreads) {
  EXPECT_ERROR(set_cpu_threads(0), "n must be >= 1");
  set_cpu_threads(1);
  EXPECT_EQ(cpu_threads(), 1);
}

}  // namespace
