// Device memory, streams, copies and two element-wise helpers for the model runtime (device_memory.hpp).
#include "backend.hpp"
#include "cuda_utils.cuh"

namespace spikeops {
namespace cuda {

namespace {

__global__ void fill_kernel(float* p, int64_t n, float value) {
  for (int64_t i = global_thread_index(); i < n; i += grid_thread_count()) p[i] = value;
}

__global__ void bytes_to_float_kernel(const uint8_t* s, int64_t n, float* x) {
  for (int64_t i = global_thread_index(); i < n; i += grid_thread_count()) x[i] = s[i] != 0 ? 1.0f : 0.0f;
}

}  // namespace

int device_count() {
  int count = 0;
  check_cuda(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
  return count;
}

void* device_alloc(std::size_t bytes, int device_index) {
  DeviceGuard guard(device_index);
  void* p = nullptr;
  check_cuda(cudaMalloc(&p, bytes), "cudaMalloc (model runtime buffer)");
  return p;
}

void device_free(void* p, int device_index) noexcept {
  try {
    DeviceGuard guard(device_index);  // the memory is freed on its device
    static_cast<void>(cudaFree(p));
  } catch (...) {
    // The device could not be made current (the context is gone at process exit): nothing left to free.
  }
}

void* stream_create(int device_index) {
  DeviceGuard guard(device_index);
  cudaStream_t s = nullptr;
  check_cuda(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
  return s;
}

void stream_destroy(void* stream, int device_index) noexcept {
  try {
    DeviceGuard guard(device_index);
    static_cast<void>(cudaStreamDestroy(as_stream(stream)));
  } catch (...) {
  }
}

void stream_synchronize(void* stream, int device_index) {
  DeviceGuard guard(device_index);
  check_cuda(cudaStreamSynchronize(as_stream(stream)), "cudaStreamSynchronize (model run)");
}

void copy_async(void* dst, const void* src, std::size_t bytes, CopyKind kind, void* stream, int device_index) {
  DeviceGuard guard(device_index);
  check_cuda(cudaMemcpyAsync(dst, src, bytes,
                             kind == CopyKind::kHostToDevice ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost,
                             as_stream(stream)),
             kind == CopyKind::kHostToDevice ? "cudaMemcpyAsync (to the device)" : "cudaMemcpyAsync (to the host)");
}

void fill(float* p, int64_t n, float value, void* stream, int device_index) {
  if (n <= 0) return;
  DeviceGuard guard(device_index);
  fill_kernel<<<grid_blocks(n), kThreadsPerBlock, 0, as_stream(stream)>>>(p, n, value);
  check_launch("fill_kernel");
}

void bytes_to_float(const uint8_t* s, int64_t n, float* x, void* stream, int device_index) {
  if (n <= 0) return;
  DeviceGuard guard(device_index);
  bytes_to_float_kernel<<<grid_blocks(n), kThreadsPerBlock, 0, as_stream(stream)>>>(s, n, x);
  check_launch("bytes_to_float_kernel");
}

}  // namespace cuda
}  // namespace spikeops
