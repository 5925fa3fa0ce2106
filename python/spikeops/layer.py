"""Step-mode-aware layers (SpikingJelly's ``layer``): a multi-step network fits in one ``nn.Sequential``.

In ``step_mode='m'`` the stateless layers fold time into the batch (``[T, N, *] -> [T*N, *]``), run, and
unfold; in ``'s'`` they are the plain torch layers.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from . import _ops
from .base import MemoryModule, StepModule, check_step_mode
from .functional import spike_conv2d, spike_linear
from .spike_tensor import SpikeTensor

__all__ = ["SeqToANNContainer", "MultiStepContainer", "GCContainer", "Linear", "Conv2d", "Flatten", "MaxPool2d",
           "AvgPool2d", "BatchNorm2d", "Dropout"]


def _seq_to_ann(module_forward, x_seq: Tensor, owner: str) -> Tensor:
    if x_seq.dim() < 2:
        raise ValueError(f"{owner}: in step_mode='m' the input must be [T, N, *], got shape {tuple(x_seq.shape)}")
    T, N = x_seq.shape[0], x_seq.shape[1]
    y = module_forward(x_seq.flatten(0, 1))
    return y.view((T, N) + tuple(y.shape[1:]))


class SeqToANNContainer(nn.Sequential):
    """Runs stateless modules on a sequence [T, N, *] by folding T into the batch dimension."""

    def forward(self, x_seq: Tensor) -> Tensor:
        return _seq_to_ann(super().forward, x_seq, "SeqToANNContainer")


class MultiStepContainer(nn.Sequential):
    """Runs single-step modules over a sequence [T, N, *], one step at a time."""

    def forward(self, x_seq: Tensor) -> Tensor:
        return torch.stack([super(MultiStepContainer, self).forward(x) for x in x_seq.unbind(0)])


class GCContainer(nn.Sequential):
    """Gradient checkpointing of a block of layers, neurons included (SpikingJelly's ``memopt.GCContainer``).

    While training, the forward keeps only the block's input for the backward, not what the layers inside
    save (a neuron's float32 membrane potentials, a layer's input): the backward runs the block again, from
    the state its neurons had when the forward started, to rebuild them. With a spike input (a
    :class:`spikeops.SpikeTensor` or ``uint8``) that input is 1 byte per spike, so a network split into blocks
    that each end in a neuron keeps 1 byte per spike for the backward; the cost is a second forward of each
    block. Gradients are those of the same layers without the container (the block runs the same kernels on
    the same values; the random number generator state is restored too). Without gradients (``torch.no_grad``,
    inference) it is a plain ``nn.Sequential``.

    Args:
        *modules: the layers of the block, run in order like ``nn.Sequential``. Unlike SpikingJelly's, it
            takes no spike compressor as first argument: spikes already travel in 1 byte.

    Notes:
        The neurons' state must be reset between batches as usual (``functional.reset_net``). Layers that
        update buffers in their forward (BatchNorm's running statistics) update them again in the backward,
        as with any gradient checkpointing. Under ``torch.compile`` the container runs eagerly (a graph
        break; the layers around it are compiled).
    """

    def __init__(self, *modules: nn.Module):
        if modules and not isinstance(modules[0], nn.Module):
            raise TypeError("GCContainer: every argument must be an nn.Module (spikeops' GCContainer takes no "
                            f"spike compressor first, unlike SpikingJelly's), got {type(modules[0]).__name__}")
        super().__init__(*modules)

    # Under torch.compile the block runs eagerly (a graph break): dynamo does not trace a checkpoint whose
    # function sets the neurons' state (torch 2.13).
    @torch.compiler.disable
    def forward(self, x: Tensor) -> Tensor:
        if not torch.is_grad_enabled():
            return super().forward(x)
        stateful = [m for m in self.modules() if isinstance(m, MemoryModule)]
        for m in stateful:
            if not m._memories:
                raise TypeError(f"GCContainer: {type(m).__name__} is a MemoryModule that does not name its state "
                                "in _memories, so the backward could not run it again from its initial state")
        start = [m.memory_state() for m in stateful]
        first_call = True

        def run(inp: Tensor) -> Tensor:
            nonlocal first_call
            if first_call:  # the forward
                first_call = False
                return nn.Sequential.forward(self, inp)
            # The backward's recomputation: from the state the forward started with, and the state of now put
            # back afterwards (in `finally`, as torch stops a recomputation early once it has what it needs).
            now = [m.memory_state() for m in stateful]
            try:
                for m, state in zip(stateful, start):
                    m.load_memory_state(state)
                return nn.Sequential.forward(self, inp)
            finally:
                for m, state in zip(stateful, now):
                    m.load_memory_state(state)

        return checkpoint(run, x, use_reentrant=False)


class _StepModeLayer(StepModule):
    def _init_step_mode(self, step_mode: str) -> None:
        self.step_mode = check_step_mode(step_mode, type(self).__name__)

    def forward(self, x: Tensor) -> Tensor:
        if self.step_mode == "s":
            return super().forward(x)
        return _seq_to_ann(super().forward, x, type(self).__name__)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", step_mode={self.step_mode}"


class Linear(_StepModeLayer, nn.Linear):
    """``nn.Linear`` that also takes [T, N, in_features] in step_mode='m', and runs spikes on the spike GEMM.

    A :class:`spikeops.SpikeTensor` (1-byte spikes that carry a gradient) or a ``uint8`` input (1-byte spikes,
    no gradient) goes to :func:`spikeops.functional.spike_linear`, which adds the selected weight columns
    instead of multiplying. With ``spike_input=True`` float inputs are taken
    as spikes too, 0/1 or signed -1/0/1 (any other value raises ValueError): the gradient still flows back to
    them, and the backward
    keeps them in 1 byte instead of 4. Other float inputs use the dense ``nn.Linear``.

    Args:
        spike_input (bool): treat float inputs as spikes. Default False.
        kernel (str): the spike GEMM's kernel for spike inputs (see :func:`spikeops.functional.spike_linear`):
            "auto" (default), "events", "tiled", "tensor_core" (CUDA only) or "dense".
        others: as ``nn.Linear``, plus ``step_mode``.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, step_mode: str = "s",
                 spike_input: bool = False, kernel: str = "auto", **kw):
        super().__init__(in_features, out_features, bias, **kw)
        self._init_step_mode(step_mode)
        self.spike_input = bool(spike_input)
        _ops.spike_linear.check_kernel(kernel, None, "Linear")  # the device is checked at each call
        self.kernel = kernel

    def forward(self, x: Tensor) -> Tensor:
        if isinstance(x, SpikeTensor) or (isinstance(x, Tensor) and (x.dtype == torch.uint8 or self.spike_input)):
            if self.step_mode == "m" and x.dim() < 2:
                raise ValueError(f"Linear: in step_mode='m' the input must be [T, N, *], got shape {tuple(x.shape)}")
            # Rows are independent, so [T, N, K] needs no folding: spike_linear takes any leading dims.
            return spike_linear(x, self.weight, self.bias, kernel=self.kernel)
        if isinstance(x, Tensor) and not x.is_floating_point():
            raise TypeError(f"Linear: the input must be float or uint8 spikes, got {x.dtype}")
        return super().forward(x)

    def extra_repr(self) -> str:
        kernel = "" if self.kernel == "auto" else f", kernel={self.kernel!r}"
        return super().extra_repr() + f", spike_input={self.spike_input}{kernel}"


class Conv2d(_StepModeLayer, nn.Conv2d):
    """``nn.Conv2d`` that also takes [T, N, C, H, W] in step_mode='m', and runs 1-byte spikes on the spike GEMM.

    A ``uint8`` input or a :class:`spikeops.SpikeTensor` goes to :func:`spikeops.functional.spike_conv2d` (zero
    padding only; a SpikeTensor's bytes are what the backward keeps); float inputs use the dense ``nn.Conv2d``.

    Args:
        kernel (str): the spike convolution's kernel for spike inputs (see
            :func:`spikeops.functional.spike_conv2d`): "auto" (default), "events" or "dense".
        others: as ``nn.Conv2d``, plus ``step_mode``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", step_mode: str = "s",
                 kernel: str = "auto", **kw):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, **kw)
        self._init_step_mode(step_mode)
        _ops.spike_conv.check_conv_kernel(kernel, "Conv2d")
        self.kernel = kernel

    def _conv_forward(self, x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
        if x.dtype != torch.uint8 and not isinstance(x, SpikeTensor):
            if not x.is_floating_point():
                raise TypeError(f"Conv2d: the input must be float or uint8 spikes, got {x.dtype}")
            return super()._conv_forward(x, weight, bias)
        if self.padding_mode != "zeros" or isinstance(self.padding, str):
            raise ValueError(f"Conv2d: 1-byte spike inputs support numeric zero padding only, this layer has "
                             f"padding={self.padding!r}, padding_mode={self.padding_mode!r}")
        return spike_conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups,
                            kernel=self.kernel)

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.kernel == "auto" else f", kernel={self.kernel!r}")


class Flatten(_StepModeLayer, nn.Flatten):
    """``nn.Flatten``; in step_mode='m' the time dimension is kept."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1, step_mode: str = "s"):
        super().__init__(start_dim, end_dim)
        self._init_step_mode(step_mode)


class MaxPool2d(_StepModeLayer, nn.MaxPool2d):
    """``nn.MaxPool2d`` that also takes [T, N, C, H, W] in step_mode='m'."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices: bool = False,
                 ceil_mode: bool = False, step_mode: str = "s"):
        super().__init__(kernel_size, stride, padding, dilation, return_indices, ceil_mode)
        self._init_step_mode(step_mode)


class AvgPool2d(_StepModeLayer, nn.AvgPool2d):
    """``nn.AvgPool2d`` that also takes [T, N, C, H, W] in step_mode='m'."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: Optional[int] = None, step_mode: str = "s"):
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
        self._init_step_mode(step_mode)


class BatchNorm2d(_StepModeLayer, nn.BatchNorm2d):
    """``nn.BatchNorm2d``; in step_mode='m' statistics are taken over time and batch together."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: Optional[float] = 0.1,
                 affine: bool = True, track_running_stats: bool = True, step_mode: str = "s", **kw):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, **kw)
        self._init_step_mode(step_mode)


class Dropout(_StepModeLayer, nn.Dropout):
    """``nn.Dropout``; in step_mode='m' each time step draws its own mask (SpikingJelly shares one mask)."""

    def __init__(self, p: float = 0.5, step_mode: str = "s"):
        super().__init__(p)
        self._init_step_mode(step_mode)
