// Umbrella header of the spikeops core library.
#pragma once

#include "spikeops/build_info.hpp"
#include "spikeops/config.hpp"
#include "spikeops/conv2d.hpp"
#include "spikeops/encoding.hpp"
#include "spikeops/error.hpp"
#include "spikeops/kernel_policy.hpp"
#include "spikeops/linear.hpp"
#include "spikeops/model.hpp"
#include "spikeops/neuron.hpp"
#include "spikeops/pool.hpp"
#include "spikeops/spike_conv.hpp"
#include "spikeops/spike_count.hpp"
#include "spikeops/spike_gemm.hpp"
#include "spikeops/surrogate.hpp"
#include "spikeops/tensor.hpp"
