"""Network-level helpers (SpikingJelly's ``functional``): reset, detach and step-mode switching."""

from __future__ import annotations

from torch import nn

from .base import MemoryModule, StepModule, check_step_mode

__all__ = ["reset_net", "detach_net", "set_step_mode"]


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
