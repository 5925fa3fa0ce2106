"""The standalone spike function (what a surrogate object computes when called on a tensor) and its backward:
spikeops::spike_fn and spikeops::surrogate_backward."""

from __future__ import annotations

import torch
from torch import Tensor

from .. import _C
from . import _checks
from ._checks import FLOAT_DTYPES
from ._common import _DEVICE_TYPES, _stream, _surrogate, _view


def _check_spike_fn(fn: str, x, surrogate_kind: int, alpha: float, beta: float) -> "_C.Surrogate":
    """The surrogate the arguments describe; x any shape, float. The forward does not use the surrogate, but a
    bad one must fail at the call, not later in the backward."""
    surrogate = _surrogate(surrogate_kind, alpha, beta, fn)
    _checks.tensor(x, "x", fn, FLOAT_DTYPES)
    return surrogate


def _check_surrogate_backward(fn: str, grad_spike, x, surrogate_kind: int, alpha: float,
                              beta: float) -> "_C.Surrogate":
    surrogate = _surrogate(surrogate_kind, alpha, beta, fn)
    _checks.tensor(x, "x", fn, FLOAT_DTYPES)
    _checks.tensor(grad_spike, "grad_spike", fn, FLOAT_DTYPES)
    # Before flattening: [2, 3] and [3, 2] have the same number of elements.
    if grad_spike.shape != x.shape:
        raise ValueError(f"{fn}: grad_spike must have the shape of x {list(x.shape)}, got {list(grad_spike.shape)}")
    _checks.same_device(fn, "x", x, ("grad_spike", grad_spike))
    return surrogate


def _flat(t: Tensor) -> Tensor:
    """t as the contiguous 1-D tensor the core's elementwise kernels take: they see neither rank nor strides,
    so any rank works (the core describes at most 8 dimensions)."""
    return t.contiguous().view(-1)


@torch.library.custom_op("spikeops::spike_fn", mutates_args=(), device_types=_DEVICE_TYPES)
def spike_fn(x: Tensor, surrogate_kind: int, alpha: float, beta: float) -> Tensor:
    """Heaviside step Θ(x) = (x >= 0) in x's dtype; its gradient is the surrogate σ'(x).

    Args:
        x (Tensor): any shape and rank, float32/float16/bfloat16.
        surrogate_kind (int): a ``spikeops._C.SurrogateKind`` value; alpha and beta its parameters.

    Returns:
        Tensor: spikes of x's shape and dtype, exactly 0 or 1.
    """
    fn = "spikeops::spike_fn"
    _check_spike_fn(fn, x, surrogate_kind, alpha, beta)
    flat = _flat(x)
    spike = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    _C.heaviside_forward(_view(flat, "x", fn), _view(spike.view(-1), "spike", fn), _stream(x))
    return spike


@spike_fn.register_fake
def _(x, surrogate_kind, alpha, beta):
    _check_spike_fn("spikeops::spike_fn", x, surrogate_kind, alpha, beta)
    return x.new_empty(x.shape)


@torch.library.custom_op("spikeops::surrogate_backward", mutates_args=(), device_types=_DEVICE_TYPES)
def surrogate_backward(grad_spike: Tensor, x: Tensor, surrogate_kind: int, alpha: float,
                       beta: float) -> Tensor:
    """grad_x = grad_spike * σ'(x), elementwise, in x's dtype (computed in float32); any shape and rank."""
    fn = "spikeops::surrogate_backward"
    surrogate = _check_surrogate_backward(fn, grad_spike, x, surrogate_kind, alpha, beta)
    flat_x, flat_grad = _flat(x), _flat(grad_spike)
    grad_x = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    _C.surrogate_backward(surrogate, _view(flat_grad, "grad_spike", fn), _view(flat_x, "x", fn),
                          _view(grad_x.view(-1), "grad_x", fn), _stream(x))
    return grad_x


@surrogate_backward.register_fake
def _(grad_spike, x, surrogate_kind, alpha, beta):
    _check_surrogate_backward("spikeops::surrogate_backward", grad_spike, x, surrogate_kind, alpha, beta)
    return x.new_empty(x.shape)


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
