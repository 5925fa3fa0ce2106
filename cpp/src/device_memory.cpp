#include "device_memory.hpp"

#include <cstring>
#include <new>

#include "backend.hpp"

namespace spikeops {

namespace {
constexpr std::align_val_t kHostAlignment{64};
}

Buffer::Buffer(Buffer&& other) noexcept
    : device_(other.device_), index_(other.index_), data_(other.data_), capacity_(other.capacity_) {
  other.data_ = nullptr;
  other.capacity_ = 0;
}

Buffer::~Buffer() { release(); }

void Buffer::release() noexcept {
  if (data_ == nullptr) return;
  if (device_ == Device::kCUDA) {
    cuda::device_free(data_, index_);
  } else {
    ::operator delete(data_, kHostAlignment);
  }
  data_ = nullptr;
  capacity_ = 0;
}

void* Buffer::reserve(std::size_t bytes) {
  if (bytes > capacity_) {
    release();
    data_ = device_ == Device::kCUDA ? cuda::device_alloc(bytes, index_) : ::operator new(bytes, kHostAlignment);
    capacity_ = bytes;
  }
  return data_;
}

OwnedStream::OwnedStream(Device device, int index) : index_(index) {
  if (device == Device::kCUDA) stream_ = cuda::stream_create(index);
}

OwnedStream::~OwnedStream() {
  if (stream_ != nullptr) cuda::stream_destroy(stream_, index_);
}

int cuda_device_count() { return cuda::compiled() ? cuda::device_count() : 0; }

void copy_from_host(const Place& place, void* dst, const void* host_src, std::size_t bytes) {
  if (bytes == 0) return;
  if (place.on_cuda()) {
    cuda::copy_async(dst, host_src, bytes, cuda::CopyKind::kHostToDevice, place.stream, place.index);
  } else {
    std::memcpy(dst, host_src, bytes);
  }
}

void copy_to_host(const Place& place, void* host_dst, const void* src, std::size_t bytes) {
  if (bytes == 0) return;
  if (place.on_cuda()) {
    cuda::copy_async(host_dst, src, bytes, cuda::CopyKind::kDeviceToHost, place.stream, place.index);
  } else {
    std::memcpy(host_dst, src, bytes);
  }
}

void synchronize(const Place& place) {
  if (place.on_cuda()) cuda::stream_synchronize(place.stream, place.index);
}

void fill(const Place& place, float* p, int64_t n, float value) {
  if (place.on_cuda()) {
    cuda::fill(p, n, value, place.stream, place.index);
    return;
  }
  for (int64_t i = 0; i < n; ++i) p[i] = value;
}

void bytes_to_float(const Place& place, const uint8_t* s, int64_t n, float* x) {
  if (place.on_cuda()) {
    cuda::bytes_to_float(s, n, x, place.stream, place.index);
    return;
  }
  for (int64_t i = 0; i < n; ++i) x[i] = s[i] != 0 ? 1.0f : 0.0f;
}

}  // namespace spikeops
