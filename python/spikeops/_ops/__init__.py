"""torch.library custom ops over the C++/CUDA core, one module per op family.

Every kernel is an op in the ``spikeops`` namespace with a fake implementation (shapes and dtypes only, so
``torch.compile(fullgraph=True)`` traces through it) and, where it is differentiable, an autograd formula
whose backward is itself a custom op. The ops take flat tensors; the modules in :mod:`spikeops.neuron`,
:mod:`spikeops.surrogate` and :mod:`spikeops.functional` do the reshaping and the friendly argument checks.
Importing this package registers every op.
"""

from __future__ import annotations

from . import _common, neuron, spike_conv, spike_linear, surrogate
from ._common import CUDA_BUILT, _view
from .neuron import NeuronKind, neuron_backward, neuron_forward, neuron_forward_ext, neuron_info
from .spike_conv import SPIKE_CONV_KERNELS, _conv_output_size, spike_conv2d, spike_conv2d_weight_grad
from .spike_linear import (PACKED_TILE_N, SPIKE_GEMM_KERNELS, _accumulate, _nonzero_as, _pack_rows,
                           firing_rate_estimate, pack_weight, spike_accumulate_rows_t)
from .surrogate import spike_fn, surrogate_backward

# spike_linear stays the module (spikeops._ops.spike_linear); the op is torch.ops.spikeops.spike_linear.
__all__ = ["neuron_forward", "neuron_backward", "spike_fn", "surrogate_backward", "CUDA_BUILT"]
