// Internal: the argument checks that every 2-D convolution entry point shares.
#pragma once

#include <initializer_list>

#include "conv_geometry.hpp"
#include "spikeops/spike_conv.hpp"
#include "validate.hpp"

namespace spikeops {
namespace conv_check {

// The output size along one axis; fails when the kernel does not fit the padded input. All arguments are
// below 2^31 (checked by the callers), so nothing overflows.
int64_t output_size(const validate::Checker& check, int64_t in, int64_t kernel, int64_t stride, int64_t padding,
                    int64_t dilation);

// Spikes stored channels-last (torch.channels_last) and not also contiguous.
bool channels_last_layout(const TensorView& t);

// A 4-D tensor in the layout of the input: contiguous (NCHW), or channels-last when the input is; then the
// other checks of Checker::tensor.
void layout(const validate::Checker& check, const TensorView& t, const char* arg, bool channels_last,
            std::initializer_list<DType> dtypes);

// Checks the input (4-D, input_dtypes, channels-last only where allowed and on the CPU), the weight in its
// layout (weight_dtypes for kOIHW; float32 for kPacked), the parameters and the sizes; returns the geometry.
// O is the weight's for kOIHW, else `outputs` (read by the caller from the output tensor, checked 4-D).
ConvGeometry geometry(const validate::Checker& check, const TensorView& input, const char* input_arg,
                      std::initializer_list<DType> input_dtypes, bool allow_channels_last, const TensorView& weight,
                      const char* weight_arg, ConvWeightLayout weight_layout,
                      std::initializer_list<DType> weight_dtypes, int64_t outputs, const Conv2dParams& p);

}  // namespace conv_check
}  // namespace spikeops
