// Public entry point of spike counting: validation, then the CPU or CUDA back end.
#include "spikeops/spike_count.hpp"

#include "backend.hpp"
#include "validate.hpp"

namespace spikeops {

int64_t count_nonzero(const TensorView& spikes, void* stream) {
  validate::Checker check("count_nonzero");
  if (!spikes.defined()) check.fail("spikes", "is required but was not given");
  check.tensor(spikes, "spikes", spikes.ndim, {DType::kUInt8});
  if (spikes.numel() == 0) return 0;
  if (spikes.device == Device::kCUDA) return cuda::count_nonzero(spikes, stream);
  return cpu::count_nonzero(static_cast<const uint8_t*>(spikes.data), spikes.numel());
}

SpikeValueCounts spike_bytes(const TensorView& values, const TensorView& bytes, void* stream) {
  validate::Checker check("spike_bytes");
  if (!values.defined()) check.fail("values", "is required but was not given");
  check.tensor(values, "values", values.ndim, {DType::kFloat32, DType::kFloat16, DType::kBFloat16});
  check.tensor(bytes, "bytes", values.ndim, {DType::kUInt8});
  check.same_shape(bytes, "bytes", values, "values");
  check.same_device(bytes, "bytes", values, "values");
  if (values.numel() == 0) return {};
  if (values.device == Device::kCUDA) return cuda::spike_bytes(values, bytes, stream);
  return cpu::spike_bytes(values, bytes);
}

}  // namespace spikeops
