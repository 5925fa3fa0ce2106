// What the CUDA part of this build contains, for spikeops' build information.
#include "backend.hpp"

// CMake defines the architectures as a string; a build outside CMake still compiles.
#ifndef SPIKEOPS_CUDA_ARCHITECTURES
#define SPIKEOPS_CUDA_ARCHITECTURES "unknown"
#endif

namespace spikeops {
namespace cuda {

bool compiled() { return true; }

const char* architectures() { return SPIKEOPS_CUDA_ARCHITECTURES; }

}  // namespace cuda
}  // namespace spikeops
