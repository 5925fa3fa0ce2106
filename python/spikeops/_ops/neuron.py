"""The fused multi-step neuron ops: spikeops::neuron_forward and spikeops::neuron_backward."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .. import _C
from ..spike_tensor import SpikeTensor
from . import _checks
from ._checks import FLOAT_DTYPES, SPIKE_DTYPES
from ._common import _DEVICE_TYPES, _flag, _float32, _number, _stream, _surrogate, _view


_NEURON_KINDS = {0: "IF", 1: "LIF", 2: "ParametricLIF"}


def _neuron_params(fn: str, neuron_kind: int, v_threshold: float, v_reset: Optional[float], tau: float,
                   decay_input: bool, detach_reset: bool, surrogate_kind: int, alpha: float,
                   beta: float) -> "_C.NeuronParams":
    """The core's NeuronParams from an op's arguments. The ops are public (torch.ops.spikeops.*), so every
    argument is checked here and errors name the op `fn` and the argument."""
    if isinstance(neuron_kind, bool) or not isinstance(neuron_kind, int) or neuron_kind not in _NEURON_KINDS:
        raise ValueError(f"{fn}: neuron_kind must be 0 (IF), 1 (LIF) or 2 (ParametricLIF), got {neuron_kind!r}")
    p = _C.NeuronParams()
    p.kind = _C.NeuronKind(neuron_kind)
    p.v_threshold = _float32(v_threshold, f"{fn}: v_threshold")
    p.hard_reset = v_reset is not None
    p.v_reset = 0.0 if v_reset is None else _float32(v_reset, f"{fn}: v_reset")
    # Only the LIF reads tau (IF has no time constant, ParametricLIF takes decay).
    p.tau = _float32(tau, f"{fn}: tau", above_one=True) if neuron_kind == 1 else _number(tau, f"{fn}: tau")
    p.decay_input = _flag(decay_input, f"{fn}: decay_input")
    p.detach_reset = _flag(detach_reset, f"{fn}: detach_reset")
    p.surrogate = _surrogate(surrogate_kind, alpha, beta, fn)
    return p


_F32 = (torch.float32,)


def _check_decay(fn: str, decay, neuron_kind: int, device_of: Tensor, device_arg: str) -> None:
    """decay: [1] float32, required by ParametricLIF (neuron_kind 2); the other neurons ignore it."""
    if neuron_kind == 2 and decay is None:
        raise ValueError(f"{fn}: decay is required for ParametricLIF (neuron_kind 2): a [1] float32 tensor k")
    _checks.tensor(decay, "decay", fn, _F32 if neuron_kind == 2 else None, optional=True)
    if decay is not None and neuron_kind == 2:
        _checks.shape(decay, "decay", fn, (1,))
    _checks.same_device(fn, device_arg, device_of, ("decay", decay))


def _check_forward_tensors(fn: str, x_seq, v_init, decay, neuron_kind: int, spike_dtype, store_h_seq,
                           store_v_seq) -> tuple:
    """The tensor and dtype arguments of neuron_forward (after _neuron_params checked the others); (T, N)."""
    _checks.tensor(x_seq, "x_seq", fn, FLOAT_DTYPES, dim=2, layout="[T, N]")
    T, N = x_seq.shape
    _checks.tensor(v_init, "v_init", fn, _F32)
    _checks.shape(v_init, "v_init", fn, (N,), "[N], N = x_seq.shape[1]")
    _checks.same_device(fn, "x_seq", x_seq, ("v_init", v_init))
    _check_decay(fn, decay, neuron_kind, x_seq, "x_seq")
    _checks.dtype_arg(spike_dtype, "spike_dtype", fn, SPIKE_DTYPES)
    _flag(store_h_seq, f"{fn}: store_h_seq")
    _flag(store_v_seq, f"{fn}: store_v_seq")
    return T, N


def _check_backward_tensors(fn: str, grad_spike_seq, grad_v_seq, grad_v_final, h_seq, v_init, decay,
                            neuron_kind: int, grad_x_dtype) -> tuple:
    """The tensor and dtype arguments of neuron_backward (after _neuron_params checked the others); (T, N)."""
    _checks.tensor(h_seq, "h_seq", fn, _F32, dim=2, layout="[T, N]")
    T, N = h_seq.shape
    _checks.tensor(grad_spike_seq, "grad_spike_seq", fn, FLOAT_DTYPES, dim=2, layout="[T, N]")
    _checks.shape(grad_spike_seq, "grad_spike_seq", fn, (T, N), "h_seq's")
    _checks.tensor(grad_v_seq, "grad_v_seq", fn, _F32, optional=True)
    if grad_v_seq is not None:
        _checks.shape(grad_v_seq, "grad_v_seq", fn, (T, N), "h_seq's")
    _checks.tensor(grad_v_final, "grad_v_final", fn, _F32, optional=True)
    if grad_v_final is not None:
        _checks.shape(grad_v_final, "grad_v_final", fn, (N,), "[N], N = h_seq.shape[1]")
    _checks.tensor(v_init, "v_init", fn, _F32)
    _checks.shape(v_init, "v_init", fn, (N,), "[N], N = h_seq.shape[1]")
    _checks.same_device(fn, "h_seq", h_seq, ("grad_spike_seq", grad_spike_seq), ("grad_v_seq", grad_v_seq),
                        ("grad_v_final", grad_v_final), ("v_init", v_init))
    _check_decay(fn, decay, neuron_kind, h_seq, "h_seq")
    _checks.dtype_arg(grad_x_dtype, "grad_x_dtype", fn, FLOAT_DTYPES)
    return T, N


@torch.library.custom_op("spikeops::neuron_forward", mutates_args=(), device_types=_DEVICE_TYPES)
def neuron_forward(x_seq: Tensor, v_init: Tensor, decay: Optional[Tensor], neuron_kind: int,
                   v_threshold: float, v_reset: Optional[float], tau: float, decay_input: bool,
                   detach_reset: bool, surrogate_kind: int, alpha: float, beta: float,
                   spike_dtype: torch.dtype, store_h_seq: bool,
                   store_v_seq: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Fused multi-step neuron forward.

    Args:
        x_seq (Tensor): [T, N] input current, float32/float16/bfloat16, contiguous, or strides (0, 1): the same
            row at every step (``x.expand(T, N)``), read in place.
        v_init (Tensor): [N] float32 membrane potential before step 0.
        decay (Tensor, optional): [1] float32 k = sigmoid(w), ParametricLIF only.
        neuron_kind (int): 0 IF, 1 LIF, 2 ParametricLIF.
        v_reset (float, optional): hard-reset potential; None for the soft reset.
        spike_dtype (torch.dtype): dtype of the spikes: float32/float16/bfloat16/uint8.
        store_h_seq (bool): also return H (what the backward needs); False for inference.
        store_v_seq (bool): also return V after every step.

    Returns:
        spike_seq [T, N] (spike_dtype), v_final [N] float32, h_seq [T, N] float32 (or [0] when not stored),
        v_seq [T, N] float32 (or [0] when not stored).
    """
    fn = "spikeops::neuron_forward"
    params = _neuron_params(fn, neuron_kind, v_threshold, v_reset, tau, decay_input, detach_reset,
                            surrogate_kind, alpha, beta)
    T, N = _check_forward_tensors(fn, x_seq, v_init, decay, neuron_kind, spike_dtype, store_h_seq, store_v_seq)
    spike_seq = torch.empty((T, N), dtype=spike_dtype, device=x_seq.device)
    v_final = torch.empty((N,), dtype=torch.float32, device=x_seq.device)
    h_seq = torch.empty((T, N) if store_h_seq else (0,), dtype=torch.float32, device=x_seq.device)
    v_seq = torch.empty((T, N) if store_v_seq else (0,), dtype=torch.float32, device=x_seq.device)
    args = _C.NeuronForwardArgs()
    args.x_seq = _view(x_seq, "x_seq")
    args.v_init = _view(v_init, "v_init")
    args.decay = _view(decay if neuron_kind == 2 else None, "decay")
    args.spike_seq = _view(spike_seq, "spike_seq")
    args.v_final = _view(v_final, "v_final")
    args.h_seq = _view(h_seq if store_h_seq else None, "h_seq")
    args.v_seq = _view(v_seq if store_v_seq else None, "v_seq")
    args.stream = _stream(x_seq)
    _C.neuron_multistep_forward(params, args)
    return spike_seq, v_final, h_seq, v_seq


@neuron_forward.register_fake
def _(x_seq, v_init, decay, neuron_kind, v_threshold, v_reset, tau, decay_input, detach_reset,
      surrogate_kind, alpha, beta, spike_dtype, store_h_seq, store_v_seq):
    fn = "spikeops::neuron_forward"
    _neuron_params(fn, neuron_kind, v_threshold, v_reset, tau, decay_input, detach_reset, surrogate_kind, alpha,
                   beta)
    T, N = _check_forward_tensors(fn, x_seq, v_init, decay, neuron_kind, spike_dtype, store_h_seq, store_v_seq)
    new = x_seq.new_empty
    return (new((T, N), dtype=spike_dtype), new((N,), dtype=torch.float32),
            new((T, N) if store_h_seq else (0,), dtype=torch.float32),
            new((T, N) if store_v_seq else (0,), dtype=torch.float32))


@torch.library.custom_op("spikeops::neuron_backward", mutates_args=(), device_types=_DEVICE_TYPES)
def neuron_backward(grad_spike_seq: Tensor, grad_v_seq: Optional[Tensor], grad_v_final: Optional[Tensor],
                    h_seq: Tensor, v_init: Tensor, decay: Optional[Tensor], neuron_kind: int,
                    v_threshold: float, v_reset: Optional[float], tau: float, decay_input: bool,
                    detach_reset: bool, surrogate_kind: int, alpha: float, beta: float,
                    grad_x_dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
    """Fused multi-step neuron backward (surrogate gradient through T steps).

    Args:
        grad_spike_seq (Tensor): [T, N] float32/float16/bfloat16 gradient of the spikes.
        grad_v_seq (Tensor, optional): [T, N] float32 gradient of v_seq.
        grad_v_final (Tensor, optional): [N] float32 gradient of the final membrane potential.
        h_seq (Tensor): [T, N] float32 charged potential saved by the forward.
        v_init (Tensor): [N] float32 initial potential (read by ParametricLIF only).
        grad_x_dtype (torch.dtype): dtype of grad_x_seq (the input's dtype).

    Returns:
        grad_x_seq [T, N] (grad_x_dtype), grad_v_init [N] float32, grad_decay [N] float32 per-neuron
        dL/dk summed over time (ParametricLIF; [0] otherwise).
    """
    fn = "spikeops::neuron_backward"
    params = _neuron_params(fn, neuron_kind, v_threshold, v_reset, tau, decay_input, detach_reset,
                            surrogate_kind, alpha, beta)
    T, N = _check_backward_tensors(fn, grad_spike_seq, grad_v_seq, grad_v_final, h_seq, v_init, decay,
                                   neuron_kind, grad_x_dtype)
    device = h_seq.device
    grad_x_seq = torch.empty((T, N), dtype=grad_x_dtype, device=device)
    grad_v_init = torch.empty((N,), dtype=torch.float32, device=device)
    grad_decay = torch.empty((N,) if neuron_kind == 2 else (0,), dtype=torch.float32, device=device)
    args = _C.NeuronBackwardArgs()
    args.grad_spike_seq = _view(grad_spike_seq, "grad_spike_seq")
    args.grad_v_seq = _view(grad_v_seq, "grad_v_seq")
    args.grad_v_final = _view(grad_v_final, "grad_v_final")
    args.h_seq = _view(h_seq, "h_seq")
    args.v_init = _view(v_init if neuron_kind == 2 else None, "v_init")
    args.decay = _view(decay if neuron_kind == 2 else None, "decay")
    args.grad_x_seq = _view(grad_x_seq, "grad_x_seq")
    args.grad_v_init = _view(grad_v_init, "grad_v_init")
    args.grad_decay = _view(grad_decay if neuron_kind == 2 else None, "grad_decay")
    args.stream = _stream(h_seq)
    _C.neuron_multistep_backward(params, args)
    return grad_x_seq, grad_v_init, grad_decay


@neuron_backward.register_fake
def _(grad_spike_seq, grad_v_seq, grad_v_final, h_seq, v_init, decay, neuron_kind, v_threshold, v_reset,
      tau, decay_input, detach_reset, surrogate_kind, alpha, beta, grad_x_dtype):
    fn = "spikeops::neuron_backward"
    _neuron_params(fn, neuron_kind, v_threshold, v_reset, tau, decay_input, detach_reset, surrogate_kind, alpha,
                   beta)
    T, N = _check_backward_tensors(fn, grad_spike_seq, grad_v_seq, grad_v_final, h_seq, v_init, decay,
                                   neuron_kind, grad_x_dtype)
    new = h_seq.new_empty
    return (new((T, N), dtype=grad_x_dtype), new((N,), dtype=torch.float32),
            new((N,) if neuron_kind == 2 else (0,), dtype=torch.float32))


_NEURON_FLAGS = ("neuron_kind", "v_threshold", "v_reset", "tau", "decay_input", "detach_reset",
                 "surrogate_kind", "alpha", "beta")


def _neuron_setup_context(ctx, inputs, output):
    x_seq, v_init, decay = inputs[0], inputs[1], inputs[2]
    # Unused outputs (H always, often v_final and v_seq) then reach the backward as None instead of zero
    # tensors that would cost an allocation and a pass over memory.
    ctx.set_materialize_grads(False)
    ctx.flags = dict(zip(_NEURON_FLAGS, inputs[3:12]))
    ctx.x_dtype = x_seq.dtype
    if not inputs[13]:
        # Without H the backward cannot run; the module asks for H whenever a gradient may be needed.
        ctx.has_h = False
        ctx.save_for_backward(v_init, decay)
        return
    ctx.has_h = True
    ctx.save_for_backward(output[2], v_init, decay)


def _neuron_backward(ctx, grad_spike_seq, grad_v_final, grad_h_seq, grad_v_seq):
    if not ctx.has_h:
        raise RuntimeError("spikeops.neuron_forward was called with store_h_seq=False, so it cannot be "
                           "differentiated; pass store_h_seq=True when gradients are needed")
    h_seq, v_init, decay = ctx.saved_tensors
    if grad_spike_seq is None or not grad_spike_seq.is_floating_point():
        grad_spike_seq = torch.zeros_like(h_seq, dtype=ctx.x_dtype)
    grad_x, grad_v_init, grad_decay = neuron_backward(
        grad_spike_seq.contiguous(),
        grad_v_seq.contiguous() if grad_v_seq is not None and grad_v_seq.numel() > 0 else None,
        grad_v_final.contiguous() if grad_v_final is not None else None,
        h_seq, v_init, decay, grad_x_dtype=ctx.x_dtype, **ctx.flags)
    grad_k = grad_decay.sum().reshape(1).to(decay.dtype) if ctx.flags["neuron_kind"] == 2 else None
    return (grad_x, grad_v_init, grad_k) + (None,) * 12


torch.library.register_autograd("spikeops::neuron_forward", _neuron_backward,
                                setup_context=_neuron_setup_context)


class _NeuronSpikeTensor(torch.autograd.Function):
    """neuron_forward with its spikes written in 1 byte and returned as a SpikeTensor presenting ``spike_dtype``:
    the same kernel, setup and backward as the op (the gradient of the spikes arrives as a float tensor)."""

    @staticmethod
    def forward(*inputs):
        outs = neuron_forward(*inputs[:12], torch.uint8, *inputs[13:])
        return (SpikeTensor(outs[0], inputs[12], _trusted=True),) + tuple(outs[1:])

    @staticmethod
    def setup_context(ctx, inputs, output):
        _neuron_setup_context(ctx, inputs, output)

    @staticmethod
    def backward(ctx, *grads):
        return _neuron_backward(ctx, *grads)


def neuron_forward_spike_tensor(*inputs) -> tuple:
    """neuron_forward's arguments and outputs, with the spikes a :class:`SpikeTensor` of dtype ``spike_dtype``
    (float32/float16/bfloat16) stored in 1 byte per spike."""
    return _NeuronSpikeTensor.apply(*inputs)
