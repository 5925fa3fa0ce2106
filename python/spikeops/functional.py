"""Network-level helpers (SpikingJelly's ``functional``): reset, detach, step-mode switching, and the
accumulate-only spike GEMM ``spike_linear``."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn

from .base import MemoryModule, StepModule, check_step_mode

__all__ = ["reset_net", "detach_net", "set_step_mode", "spike_linear"]


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

_FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def spike_linear(spikes: Tensor, weight: Tensor, bias: Optional[Tensor] = None,
                 check_spikes: bool = False) -> Tensor:
    """``F.linear(spikes.float(), weight, bias)`` by adding the weight columns the spikes select: no multiplies.

    Args:
        spikes (Tensor): [*, K] spikes: ``uint8`` (1 byte per spike; no gradient flows to an integer tensor) or
            float32/float16/bfloat16 0/1 (the gradient ``grad_out . weight`` flows back to them, e.g. into
            the neuron that fired them). Any nonzero value counts as one spike; its value is not a multiplier.
        weight (Tensor): [N, K] float32, float16 or bfloat16, on the spikes' device.
        bias (Tensor, optional): [N].
        check_spikes (bool): verify that every value is 0 or 1 and raise ValueError otherwise (one extra pass).

    Returns:
        Tensor: [*, N] in the weight's dtype, accumulated in float32. For the backward only the spikes are
        kept, in 1 byte each; the weight gradient is itself computed by the accumulate-only kernel.
    """
    if not isinstance(spikes, Tensor) or (spikes.dtype != torch.uint8 and spikes.dtype not in _FLOAT_DTYPES):
        got = spikes.dtype if isinstance(spikes, Tensor) else type(spikes).__name__
        raise TypeError(f"spike_linear: spikes must be a uint8 or float32/float16/bfloat16 tensor of 0/1, got {got}")
    if not isinstance(weight, Tensor) or weight.dtype not in _FLOAT_DTYPES:
        got = weight.dtype if isinstance(weight, Tensor) else type(weight).__name__
        raise TypeError(f"spike_linear: weight must be a float32/float16/bfloat16 tensor, got {got}")
    if weight.dim() != 2:
        raise ValueError(f"spike_linear: weight must be [N, K], got shape {tuple(weight.shape)}")
    if spikes.dim() < 1 or spikes.shape[-1] != weight.shape[1]:
        raise ValueError(f"spike_linear: spikes must be [*, K] with K = weight.shape[1] = {weight.shape[1]}, "
                         f"got shape {tuple(spikes.shape)}")
    if spikes.device != weight.device:
        raise ValueError(f"spike_linear: weight is on {weight.device} but spikes are on {spikes.device}")
    if bias is not None:
        if not isinstance(bias, Tensor) or bias.shape != (weight.shape[0],):
            got = tuple(bias.shape) if isinstance(bias, Tensor) else type(bias).__name__
            raise ValueError(f"spike_linear: bias must be [N] = [{weight.shape[0]}], got {got}")
        if bias.device != weight.device:
            raise ValueError(f"spike_linear: bias is on {bias.device} but weight is on {weight.device}")
    if check_spikes and spikes.numel() > 0:
        bad = (spikes != 0) & (spikes != 1)
        if bool(bad.any()):
            raise ValueError(f"spike_linear: spikes must be 0 or 1, found {int(bad.sum())} other values "
                             f"(e.g. {spikes[bad][0].item()})")
    lead = spikes.shape[:-1]
    spikes_2d = spikes.reshape(math.prod(lead), spikes.shape[-1])  # explicit: -1 is ambiguous when K = 0
    if spikes_2d.dtype == torch.uint8:
        spikes_2d = spikes_2d.contiguous()
    out = torch.ops.spikeops.spike_linear(spikes_2d, weight, bias)
    return out.view(*lead, weight.shape[0])
