"""Network-level helpers (SpikingJelly's ``functional``): reset, detach, step-mode switching, and the
accumulate-only spike GEMM ``spike_linear``."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn

from ._ops import _checks
from .base import MemoryModule, StepModule, check_step_mode
from .spike_tensor import SpikeTensor

__all__ = ["reset_net", "detach_net", "set_step_mode", "spike_linear", "spike_conv2d"]


def reset_net(net: nn.Module) -> None:
    """Reset the state of every stateful module in ``net`` (call it between samples or batches)."""
    if not isinstance(net, nn.Module):
        raise TypeError(f"reset_net: net must be a torch.nn.Module, got {type(net).__name__}")
    for m in net.modules():
        if isinstance(m, MemoryModule):
            m.reset()


def detach_net(net: nn.Module) -> None:
    """Cut the autograd graph through every stateful module's state (truncated BPTT)."""
    if not isinstance(net, nn.Module):
        raise TypeError(f"detach_net: net must be a torch.nn.Module, got {type(net).__name__}")
    for m in net.modules():
        if isinstance(m, MemoryModule):
            m.detach()


def set_step_mode(net: nn.Module, step_mode: str) -> None:
    """Set ``step_mode`` ('s' or 'm') on every step-mode-aware module in ``net``."""
    if not isinstance(net, nn.Module):
        raise TypeError(f"set_step_mode: net must be a torch.nn.Module, got {type(net).__name__}")
    check_step_mode(step_mode, "set_step_mode")
    for m in net.modules():
        if isinstance(m, StepModule):
            m.step_mode = step_mode


# ---------------------------------------------------------------------------------------------------------
# Spike GEMM
# ---------------------------------------------------------------------------------------------------------

def spike_linear(spikes: Tensor, weight: Tensor, bias: Optional[Tensor] = None, kernel: str = "auto") -> Tensor:
    """``F.linear(spikes.float(), weight, bias)`` by adding the weight columns the spikes select: no multiplies.

    Every kernel computes what ``F.linear`` computes on the spikes as floats, up to float32 summation order, inf
    and NaN included: as in a dense product, 0 x inf = 0 x NaN = NaN, so an inf or NaN in weight row n (or bias
    n) makes output column n NaN (or inf) for every sample, whatever the firing rate or kernel; so does an inf
    or NaN in column n of the output gradient for the weight gradient.

    Args:
        spikes (Tensor): [*, K] spikes: a :class:`spikeops.SpikeTensor` (1 byte per spike, read as it is, and
            the gradient ``grad_out . weight`` flows back to it, e.g. into the neuron that fired it), ``uint8``
            bytes 0/1 (no gradient flows to an integer tensor), or float32/float16/bfloat16 0/1 or signed
            -1/0/1 spikes (``encoding.delta(off_spike=True)``; the gradient flows back to them). A -1 spike
            subtracts its weight column (a second accumulate-only product, only when a -1 is present). Any other
            value (0.5, 2, inf, NaN, a byte above 1 such as a raw pixel) raises ValueError: use
            ``layer.Linear(spike_input=False)`` or ``F.linear`` for values, or encode them as spikes first.
            Float spikes are checked as they are converted to bytes (the same pass); uint8 spikes cost one
            extra read; a SpikeTensor's bytes are checked once, when it is made. On CUDA the check reads a
            count back (merged with the firing-rate read of ``kernel="auto"`` for float spikes); under CUDA
            graph capture, which forbids that, only SpikeTensor spikes are taken (others raise ValueError).
        weight (Tensor): [N, K] float32, float16 or bfloat16, on the spikes' device.
        bias (Tensor, optional): [N].
        kernel (str): which kernel computes the product, forward and weight gradient: ``"auto"`` (the core's
            policy, from the shape, the device and an estimate of the firing rate), ``"events"`` (event-driven),
            ``"tiled"`` or ``"tensor_core"`` (CUDA only), ``"dense"`` (a dense GEMM on the spikes as floats:
            torch's on the CPU, tensor cores on CUDA). All give the same result up to float32 summation order.

    Returns:
        Tensor: [*, N] in the weight's dtype, accumulated in float32. For the backward only the spikes are
        kept, in 1 byte each; the weight gradient is itself computed by the accumulate-only kernel.
    """
    _checks.spike_linear("spike_linear", spikes, weight, bias, kernel, leading_dims=True)
    lead = spikes.shape[:-1]
    spikes_2d = spikes.reshape(math.prod(lead), spikes.shape[-1])  # explicit: -1 is ambiguous when K = 0
    if spikes_2d.dtype == torch.uint8 or isinstance(spikes_2d, SpikeTensor):
        spikes_2d = spikes_2d.contiguous()  # 1 byte per element: the kernel reads rows of bytes
    out = torch.ops.spikeops.spike_linear(spikes_2d, weight, bias, kernel)
    return out.view(*lead, weight.shape[0])


def spike_conv2d(spikes: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride=1, padding=0,
                 dilation=1, groups: int = 1, kernel: str = "auto") -> Tensor:
    """``F.conv2d(spikes.float(), weight, bias, ...)`` on 1-byte spikes, adding the weights that spikes select.

    On the CPU the convolution is event-driven: each output pixel sums, in registers, the weight rows that the
    spikes under its kernel taps select, and the weight gradient adds, for each spike and tap, the output
    gradient at the pixel the tap reaches: no multiplies, work in proportion to the spikes. Above the firing
    rates of the core's policy (``spikeops._C.CPU_CONV_DENSE_ABOVE_RATE`` for the forward,
    ``spikeops._C.CPU_CONV_DENSE_ABOVE_RATE_WEIGHT_GRADIENT`` for the weight gradient) torch's dense convolution
    is faster and is used instead (same result up to float32 summation order). On CUDA the core's kernel adds,
    for each output, the weights its spikes select (and, for the weight gradient, for each weight the output
    gradients where its input spiked).

    A :class:`spikeops.SpikeTensor` input is read the same way, and receives the gradient of its spikes (a
    dense transposed convolution); the backward keeps the spikes in 1 byte. Every path computes what the dense
    convolution of the zero-padded spikes as floats computes, inf and NaN included: an inf or NaN in weight[o]
    makes output channel o NaN everywhere (0 x inf = 0 x NaN = NaN, the padding's zeros included), whatever the
    firing rate. (torch's own convolution skips the padding in some of its algorithms and not in others; the
    dense path here pads explicitly when an operand is not finite, so that every path agrees.)

    Args:
        spikes (Tensor): [N, C, H, W] uint8 spikes, bytes 0/1 (checked in one pass; a byte above 1 raises
            ValueError; no gradient flows to them) or a SpikeTensor (checked when made; the gradient flows back
            to it).
        weight (Tensor): [C_out, C / groups, kh, kw] float32/float16/bfloat16.
        bias (Tensor, optional): [C_out].
        stride, padding, dilation: ints or pairs, as ``F.conv2d`` (zero padding).
        groups (int): as ``F.conv2d``.
        kernel (str): which kernel computes the convolution, forward and weight gradient: ``"auto"`` (the core's
            policy), ``"events"`` (the core's accumulate-only kernels) or ``"dense"`` (torch's convolution on the
            spikes as floats).

    Returns:
        Tensor: [N, C_out, OH, OW] in the weight's dtype.
    """
    # Stricter than the op, which reads float 0/1 too: a float tensor given here is taken for an input that is
    # not spikes (layer.Conv2d sends those to torch's convolution).
    if not isinstance(spikes, Tensor) or (spikes.dtype != torch.uint8 and not isinstance(spikes, SpikeTensor)):
        got = spikes.dtype if isinstance(spikes, Tensor) else type(spikes).__name__
        raise TypeError(f"spike_conv2d: spikes must be a uint8 tensor or a SpikeTensor, got {got}")
    stride, padding, dilation = _checks.spike_conv2d("spike_conv2d", spikes, weight, bias, stride, padding, dilation,
                                                     groups, kernel, scalar_ok=True)
    return torch.ops.spikeops.spike_conv2d(spikes, weight, bias, list(stride), list(padding), list(dilation), groups,
                                           kernel)
