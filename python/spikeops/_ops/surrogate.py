"""The standalone spike function (what a surrogate object computes when called on a tensor) and its backward:
spikeops::spike_fn and spikeops::surrogate_backward."""

from __future__ import annotations

import torch
from torch import Tensor

from .. import _C
from ._common import _DEVICE_TYPES, _stream, _surrogate, _view


@torch.library.custom_op("spikeops::spike_fn", mutates_args=(), device_types=_DEVICE_TYPES)
def spike_fn(x: Tensor, surrogate_kind: int, alpha: float, beta: float) -> Tensor:
    """Heaviside step Θ(x) = (x >= 0) in x's dtype; its gradient is the surrogate σ'(x).

    Args:
        x (Tensor): any shape, float32/float16/bfloat16, contiguous.
        surrogate_kind (int): a ``spikeops._C.SurrogateKind`` value; alpha and beta its parameters.

    Returns:
        Tensor: spikes of x's shape and dtype, exactly 0 or 1.
    """
    # The forward does not use the surrogate, but a bad one must fail here, not later in the backward.
    _C.validate_surrogate(_surrogate(surrogate_kind, alpha, beta), "spike_fn: surrogate")
    spike = torch.empty_like(x)
    _C.heaviside_forward(_view(x, "x"), _view(spike, "spike"), _stream(x))
    return spike


@spike_fn.register_fake
def _(x, surrogate_kind, alpha, beta):
    return torch.empty_like(x)


@torch.library.custom_op("spikeops::surrogate_backward", mutates_args=(), device_types=_DEVICE_TYPES)
def surrogate_backward(grad_spike: Tensor, x: Tensor, surrogate_kind: int, alpha: float,
                       beta: float) -> Tensor:
    """grad_x = grad_spike * σ'(x), elementwise, in x's dtype (computed in float32)."""
    grad_x = torch.empty_like(x)
    _C.surrogate_backward(_surrogate(surrogate_kind, alpha, beta), _view(grad_spike, "grad_spike"),
                          _view(x, "x"), _view(grad_x, "grad_x"), _stream(x))
    return grad_x


@surrogate_backward.register_fake
def _(grad_spike, x, surrogate_kind, alpha, beta):
    return torch.empty_like(x)


def _spike_fn_setup_context(ctx, inputs, output):
    x, ctx.surrogate_kind, ctx.alpha, ctx.beta = inputs
    ctx.save_for_backward(x)


def _spike_fn_backward(ctx, grad_spike):
    (x,) = ctx.saved_tensors
    if grad_spike is None:
        return None, None, None, None
    grad_x = surrogate_backward(grad_spike.contiguous(), x, ctx.surrogate_kind, ctx.alpha, ctx.beta)
    return grad_x, None, None, None


torch.library.register_autograd("spikeops::spike_fn", _spike_fn_backward, setup_context=_spike_fn_setup_context)
