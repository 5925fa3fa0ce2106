"""The fused multi-step neuron ops: spikeops::neuron_forward and spikeops::neuron_backward, one pair for every
neuron model (the core's NeuronKind: its states S, saved values K and learnable scalars P come from the core)."""

from __future__ import annotations

import enum
import functools
from typing import Optional

import torch
from torch import Tensor

from .. import _C
from ..spike_tensor import SpikeTensor
from . import _checks
from ._checks import FLOAT_DTYPES, SPIKE_DTYPES
from ._common import _DEVICE_TYPES, _flag, _float32, _number, _stream, _surrogate, _view

#: The neuron models of the core, mirrored from C++ (``spikeops::NeuronKind``): ``NeuronKind.LIF`` etc.
NeuronKind = enum.IntEnum("NeuronKind", {name: int(value) for name, value in _C.NeuronKind.__members__.items()})


@functools.lru_cache(maxsize=None)
def neuron_info(kind: int) -> dict:
    """What the core's model `kind` keeps per neuron: name, states, saved, learnable, extra_names, saved_grad
    (whether the backward takes a gradient for the saved values: they are an output) and spiking (False for a
    model that never fires and outputs its potential, its saved value)."""
    return _C.neuron_info(_C.NeuronKind(int(kind)))


# neuron_info(kind)["saved_grad"] per kind, read while torch.compile traces the autograd setup (which cannot call
# into the extension).
_SAVED_GRAD = {int(kind): bool(neuron_info(kind)["saved_grad"]) for kind in NeuronKind}


def _kind(fn: str, neuron_kind) -> int:
    if isinstance(neuron_kind, bool) or not isinstance(neuron_kind, int) or neuron_kind not in NeuronKind._value2member_map_:
        known = ", ".join(f"{k.value} ({k.name})" for k in NeuronKind)
        raise ValueError(f"{fn}: neuron_kind must be a spikeops NeuronKind: {known}; got {neuron_kind!r}")
    return int(neuron_kind)


def _neuron_params(fn: str, neuron_kind: int, v_threshold: float, v_reset: Optional[float], tau: float,
                   decay_input: bool, extra, detach_reset: bool, surrogate_kind: int, alpha: float,
                   beta: float) -> "_C.NeuronParams":
    """The core's NeuronParams from an op's arguments. The ops are public (torch.ops.spikeops.*), so every
    argument is checked here and errors name the op `fn` and the argument."""
    kind = _kind(fn, neuron_kind)
    info = neuron_info(kind)
    p = _C.NeuronParams()
    p.kind = _C.NeuronKind(kind)
    p.v_threshold = _float32(v_threshold, f"{fn}: v_threshold")
    p.hard_reset = v_reset is not None
    p.v_reset = 0.0 if v_reset is None else _float32(v_reset, f"{fn}: v_reset")
    # Only the LIF reads tau (IF has no time constant, ParametricLIF takes its k as a learnable scalar).
    p.tau = _float32(tau, f"{fn}: tau", above_one=True) if kind == NeuronKind.LIF else _number(tau, f"{fn}: tau")
    p.decay_input = _flag(decay_input, f"{fn}: decay_input")
    names = info["extra_names"]
    if not isinstance(extra, (list, tuple)) or len(extra) != len(names):
        raise ValueError(f"{fn}: extra must be a list of {len(names)} floats for {info['name']} "
                         f"({', '.join(names) or 'none'}), got {extra!r}")
    p.extra = [_float32(v, f"{fn}: {info['name']} {name} (extra[{i}])") for i, (v, name) in enumerate(zip(extra, names))] \
        + [0.0] * (_C.MAX_NEURON_EXTRA_PARAMS - len(names))
    p.detach_reset = _flag(detach_reset, f"{fn}: detach_reset")
    p.surrogate = _surrogate(surrogate_kind, alpha, beta, fn)
    return p


_F32 = (torch.float32,)


def _check_per_model(fn: str, t, arg: str, lead: int, rest: tuple, rest_text: str) -> None:
    """A float32 [lead, *rest] tensor, or [*rest] when lead is 1 (a one-state model's [N])."""
    _checks.tensor(t, arg, fn, _F32)
    if not (tuple(t.shape) == (lead,) + rest or (lead == 1 and tuple(t.shape) == rest)):
        _checks.shape(t, arg, fn, (lead,) + rest, rest_text)


def _check_learnable(fn: str, learnable, info: dict, device_of: Tensor, device_arg: str) -> None:
    """learnable: [P] float32, required when the model has P > 0 learnable scalars; None otherwise."""
    P = info["learnable"]
    if P == 0:
        if learnable is not None:
            raise ValueError(f"{fn}: {info['name']} has no learnable scalars, so learnable must be None")
        return
    if learnable is None:
        raise ValueError(f"{fn}: learnable is required for {info['name']}: a [{P}] float32 tensor")
    _checks.tensor(learnable, "learnable", fn, _F32)
    _checks.shape(learnable, "learnable", fn, (P,))
    _checks.same_device(fn, device_arg, device_of, ("learnable", learnable))


def _check_forward_tensors(fn: str, x_seq, state_init, learnable, info: dict, spike_dtype, store_saved,
                           store_v_seq) -> tuple:
    """The tensor and dtype arguments of neuron_forward (after _neuron_params checked the others); (T, N)."""
    _checks.tensor(x_seq, "x_seq", fn, FLOAT_DTYPES, dim=2, layout="[T, N]")
    T, N = x_seq.shape
    _check_per_model(fn, state_init, "state_init", info["states"], (N,), "[S, N], N = x_seq.shape[1]")
    _checks.same_device(fn, "x_seq", x_seq, ("state_init", state_init))
    _check_learnable(fn, learnable, info, x_seq, "x_seq")
    _checks.dtype_arg(spike_dtype, "spike_dtype", fn, SPIKE_DTYPES)
    _flag(store_saved, f"{fn}: store_saved")
    _flag(store_v_seq, f"{fn}: store_v_seq")
    return T, N


def _check_backward_tensors(fn: str, grad_spike_seq, grad_v_seq, grad_state_final, saved, state_init, learnable,
                            surrogate_grad_seq, info: dict, grad_x_dtype, grad_saved) -> tuple:
    """The tensor and dtype arguments of neuron_backward (after _neuron_params checked the others); (T, N)."""
    K, S = info["saved"], info["states"]
    _checks.tensor(saved, "saved", fn, _F32, dim=3, layout="[K, T, N]")
    _, T, N = saved.shape
    _checks.shape(saved, "saved", fn, (K, T, N), f"{info['name']} saves {K} value(s) per neuron-step")
    _checks.tensor(grad_spike_seq, "grad_spike_seq", fn, FLOAT_DTYPES, dim=2, layout="[T, N]", optional=True)
    if grad_spike_seq is not None:
        _checks.shape(grad_spike_seq, "grad_spike_seq", fn, (T, N), "[T, N] of saved")
    for arg, t in (("grad_v_seq", grad_v_seq), ("surrogate_grad_seq", surrogate_grad_seq)):
        _checks.tensor(t, arg, fn, _F32, optional=True)
        if t is not None:
            _checks.shape(t, arg, fn, (T, N), "[T, N] of saved")
    _check_per_model(fn, state_init, "state_init", S, (N,), "[S, N], N = saved.shape[2]")
    if grad_state_final is not None:
        _checks.tensor(grad_state_final, "grad_state_final", fn, _F32)
        _checks.shape(grad_state_final, "grad_state_final", fn, tuple(state_init.shape), "state_init's")
    if grad_saved is not None:
        if not info["saved_grad"]:
            raise ValueError(f"{fn}: grad_saved must be None: {info['name']}'s saved values are not an output, so no "
                             "gradient reaches them")
        _checks.tensor(grad_saved, "grad_saved", fn, _F32)
        _checks.shape(grad_saved, "grad_saved", fn, tuple(saved.shape), "saved's")
    _checks.same_device(fn, "saved", saved, ("grad_spike_seq", grad_spike_seq), ("grad_v_seq", grad_v_seq),
                        ("grad_state_final", grad_state_final), ("state_init", state_init),
                        ("surrogate_grad_seq", surrogate_grad_seq), ("grad_saved", grad_saved))
    _check_learnable(fn, learnable, info, saved, "saved")
    _checks.dtype_arg(grad_x_dtype, "grad_x_dtype", fn, FLOAT_DTYPES)
    return T, N


@torch.library.custom_op("spikeops::neuron_forward", mutates_args=(), device_types=_DEVICE_TYPES)
def neuron_forward(x_seq: Tensor, state_init: Tensor, learnable: Optional[Tensor], neuron_kind: int,
                   v_threshold: float, v_reset: Optional[float], tau: float, decay_input: bool, extra: list[float],
                   detach_reset: bool, surrogate_kind: int, alpha: float, beta: float,
                   spike_dtype: torch.dtype, store_saved: bool,
                   store_v_seq: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Fused multi-step neuron forward, for any model (``neuron_kind``, a :data:`NeuronKind`).

    Args:
        x_seq (Tensor): [T, N] input current, float32/float16/bfloat16, contiguous, or strides (0, 1): the same
            row at every step (``x.expand(T, N)``), read in place.
        state_init (Tensor): [S, N] float32 state before step 0 (state 0 is V); [N] for a one-state model.
        learnable (Tensor, optional): [P] float32 learnable scalars of the model (ParametricLIF: k = sigmoid(w)).
        v_reset (float, optional): hard-reset potential; None for the soft reset.
        extra (list[float]): the model's extra scalar parameters (``neuron_info(kind)['extra_names']``).
        spike_dtype (torch.dtype): dtype of the spikes: float32/float16/bfloat16/uint8.
        store_saved (bool): also return what the backward needs; False for inference.
        store_v_seq (bool): also return V after every step.

    Returns:
        spike_seq [T, N] (spike_dtype), state_final (state_init's shape) float32, saved [K, T, N] float32 (or
        [0] when not stored), v_seq [T, N] float32 (or [0] when not stored).
    """
    fn = "spikeops::neuron_forward"
    params = _neuron_params(fn, neuron_kind, v_threshold, v_reset, tau, decay_input, extra, detach_reset,
                            surrogate_kind, alpha, beta)
    info = neuron_info(neuron_kind)
    T, N = _check_forward_tensors(fn, x_seq, state_init, learnable, info, spike_dtype, store_saved, store_v_seq)
    device = x_seq.device
    spike_seq = torch.empty((T, N), dtype=spike_dtype, device=device)
    state_final = torch.empty(state_init.shape, dtype=torch.float32, device=device)
    saved = torch.empty((info["saved"], T, N) if store_saved else (0,), dtype=torch.float32, device=device)
    v_seq = torch.empty((T, N) if store_v_seq else (0,), dtype=torch.float32, device=device)
    args = _C.NeuronForwardArgs()
    args.x_seq = _view(x_seq, "x_seq")
    args.state_init = _view(state_init, "state_init")
    args.learnable = _view(learnable, "learnable")
    args.spike_seq = _view(spike_seq, "spike_seq")
    args.state_final = _view(state_final, "state_final")
    args.saved = _view(saved if store_saved else None, "saved")
    args.v_seq = _view(v_seq if store_v_seq else None, "v_seq")
    args.stream = _stream(x_seq)
    _C.neuron_multistep_forward(params, args)
    return spike_seq, state_final, saved, v_seq


@neuron_forward.register_fake
def _(x_seq, state_init, learnable, neuron_kind, v_threshold, v_reset, tau, decay_input, extra, detach_reset,
      surrogate_kind, alpha, beta, spike_dtype, store_saved, store_v_seq):
    fn = "spikeops::neuron_forward"
    _neuron_params(fn, neuron_kind, v_threshold, v_reset, tau, decay_input, extra, detach_reset, surrogate_kind,
                   alpha, beta)
    info = neuron_info(neuron_kind)
    T, N = _check_forward_tensors(fn, x_seq, state_init, learnable, info, spike_dtype, store_saved, store_v_seq)
    new = x_seq.new_empty
    return (new((T, N), dtype=spike_dtype), new(state_init.shape, dtype=torch.float32),
            new((info["saved"], T, N) if store_saved else (0,), dtype=torch.float32),
            new((T, N) if store_v_seq else (0,), dtype=torch.float32))


@torch.library.custom_op("spikeops::neuron_backward", mutates_args=(), device_types=_DEVICE_TYPES)
def neuron_backward(grad_spike_seq: Optional[Tensor], grad_v_seq: Optional[Tensor], grad_state_final: Optional[Tensor],
                    saved: Tensor, state_init: Tensor, learnable: Optional[Tensor],
                    surrogate_grad_seq: Optional[Tensor], neuron_kind: int, v_threshold: float,
                    v_reset: Optional[float], tau: float, decay_input: bool, extra: list[float],
                    detach_reset: bool, surrogate_kind: int, alpha: float, beta: float,
                    grad_x_dtype: torch.dtype, grad_saved: Optional[Tensor] = None) -> tuple[Tensor, Tensor, Tensor]:
    """Fused multi-step neuron backward (surrogate gradient through T steps).

    Args:
        grad_spike_seq (Tensor, optional): [T, N] float32/float16/bfloat16 gradient of the spikes; None: 0 (spikes
            that reach no loss, e.g. LIAF's, whose output is act(H)).
        grad_v_seq (Tensor, optional): [T, N] float32 gradient of v_seq.
        grad_state_final (Tensor, optional): float32 gradient of state_final (state_init's shape).
        saved (Tensor): [K, T, N] float32, what the forward saved.
        state_init (Tensor): [S, N] (or [N]) float32 initial state.
        surrogate_grad_seq (Tensor, optional): [T, N] float32 σ'(u) at every step, used instead of the surrogate
            ``surrogate_kind`` (a surrogate the core has no formula for, computed by the caller).
        grad_x_dtype (torch.dtype): dtype of grad_x_seq (the input's dtype).
        grad_saved (Tensor, optional): [K, T, N] float32 gradient reaching the saved values, for a model whose
            saved values are an output (``neuron_info(kind)['saved_grad']``: the LIF family's H, which LIAF
            returns through its activation).

    Returns:
        grad_x_seq [T, N] (grad_x_dtype), grad_state_init (state_init's shape) float32, grad_learnable [P, N]
        float32 per-neuron dL/d(learnable) summed over time ([0] when the model has none).
    """
    fn = "spikeops::neuron_backward"
    params = _neuron_params(fn, neuron_kind, v_threshold, v_reset, tau, decay_input, extra, detach_reset,
                            surrogate_kind, alpha, beta)
    info = neuron_info(neuron_kind)
    T, N = _check_backward_tensors(fn, grad_spike_seq, grad_v_seq, grad_state_final, saved, state_init, learnable,
                                   surrogate_grad_seq, info, grad_x_dtype, grad_saved)
    device = saved.device
    P = info["learnable"]
    grad_x_seq = torch.empty((T, N), dtype=grad_x_dtype, device=device)
    grad_state_init = torch.empty(state_init.shape, dtype=torch.float32, device=device)
    grad_learnable = torch.empty((P, N) if P else (0,), dtype=torch.float32, device=device)
    args = _C.NeuronBackwardArgs()
    args.grad_spike_seq = _view(grad_spike_seq, "grad_spike_seq")
    args.grad_v_seq = _view(grad_v_seq, "grad_v_seq")
    args.grad_state_final = _view(grad_state_final, "grad_state_final")
    args.grad_saved = _view(grad_saved, "grad_saved")
    args.saved = _view(saved, "saved")
    args.state_init = _view(state_init, "state_init")
    args.learnable = _view(learnable, "learnable")
    args.surrogate_grad_seq = _view(surrogate_grad_seq, "surrogate_grad_seq")
    args.grad_x_seq = _view(grad_x_seq, "grad_x_seq")
    args.grad_state_init = _view(grad_state_init, "grad_state_init")
    args.grad_learnable = _view(grad_learnable if P else None, "grad_learnable")
    args.stream = _stream(saved)
    _C.neuron_multistep_backward(params, args)
    return grad_x_seq, grad_state_init, grad_learnable


@neuron_backward.register_fake
def _(grad_spike_seq, grad_v_seq, grad_state_final, saved, state_init, learnable, surrogate_grad_seq,
      neuron_kind, v_threshold, v_reset, tau, decay_input, extra, detach_reset, surrogate_kind, alpha, beta,
      grad_x_dtype, grad_saved=None):
    fn = "spikeops::neuron_backward"
    _neuron_params(fn, neuron_kind, v_threshold, v_reset, tau, decay_input, extra, detach_reset, surrogate_kind,
                   alpha, beta)
    info = neuron_info(neuron_kind)
    T, N = _check_backward_tensors(fn, grad_spike_seq, grad_v_seq, grad_state_final, saved, state_init, learnable,
                                   surrogate_grad_seq, info, grad_x_dtype, grad_saved)
    new = saved.new_empty
    P = info["learnable"]
    return (new((T, N), dtype=grad_x_dtype), new(state_init.shape, dtype=torch.float32),
            new((P, N) if P else (0,), dtype=torch.float32))


_NEURON_FLAGS = ("neuron_kind", "v_threshold", "v_reset", "tau", "decay_input", "extra", "detach_reset",
                 "surrogate_kind", "alpha", "beta")


def _neuron_setup_context(ctx, inputs, output):
    x_seq, state_init, learnable = inputs[0], inputs[1], inputs[2]
    # Unused outputs (saved mostly, often state_final and v_seq) then reach the backward as None instead of zero
    # tensors that would cost an allocation and a pass over memory.
    ctx.set_materialize_grads(False)
    ctx.flags = dict(zip(_NEURON_FLAGS, inputs[3:13]))
    ctx.x_dtype = x_seq.dtype
    ctx.surrogate_grad = None
    if not inputs[14]:
        # Without the saved values the backward cannot run; the module asks for them whenever a gradient may be
        # needed.
        ctx.has_saved = False
        ctx.save_for_backward(state_init, learnable)
        return
    ctx.has_saved = True
    ctx.save_for_backward(output[2], state_init, learnable)
    if not _SAVED_GRAD[inputs[3]]:
        # Only models whose saved values are an output (the LIF family's H, which LIAF returns) take their
        # gradient; for the others they are bookkeeping, not a function the backward could differentiate.
        ctx.mark_non_differentiable(output[2])


def _neuron_backward(ctx, grad_spike_seq, grad_state_final, grad_saved, grad_v_seq):
    if not ctx.has_saved:
        raise RuntimeError("spikeops.neuron_forward was called with store_saved=False, so it cannot be "
                           "differentiated; pass store_saved=True when gradients are needed")
    saved, state_init, learnable = ctx.saved_tensors
    if grad_spike_seq is not None and not grad_spike_seq.is_floating_point():
        grad_spike_seq = None  # 1-byte spikes carry no gradient
    surrogate_grad_seq = ctx.surrogate_grad(saved) if ctx.surrogate_grad is not None else None
    grad_x, grad_state_init, grad_learnable = neuron_backward(
        grad_spike_seq.contiguous() if grad_spike_seq is not None else None,
        grad_v_seq.contiguous() if grad_v_seq is not None and grad_v_seq.numel() > 0 else None,
        grad_state_final.contiguous() if grad_state_final is not None else None,
        saved, state_init, learnable, surrogate_grad_seq, grad_x_dtype=ctx.x_dtype,
        grad_saved=grad_saved.contiguous() if grad_saved is not None else None, **ctx.flags)
    grad_l = grad_learnable.sum(1).to(learnable.dtype) if learnable is not None else None
    return (grad_x, grad_state_init, grad_l) + (None,) * 13


torch.library.register_autograd("spikeops::neuron_forward", _neuron_backward,
                                setup_context=_neuron_setup_context)


class _NeuronFunction(torch.autograd.Function):
    """neuron_forward with what the op cannot take as arguments: its spikes written in 1 byte and returned as a
    SpikeTensor presenting ``spike_dtype`` (``spike_tensor``), and/or a surrogate derivative the core has no
    formula for (``surrogate_grad``: saved [K, T, N] -> σ'(u) [T, N], called by the backward). The same kernel,
    setup and backward as the op."""

    @staticmethod
    def forward(spike_tensor, surrogate_grad, *inputs):
        if spike_tensor:
            outs = neuron_forward(*inputs[:13], torch.uint8, *inputs[14:])
            return (SpikeTensor(outs[0], inputs[13], _trusted=True),) + tuple(outs[1:])
        return neuron_forward(*inputs)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _neuron_setup_context(ctx, inputs[2:], output)
        ctx.surrogate_grad = inputs[1]

    @staticmethod
    def backward(ctx, *grads):
        return (None, None) + _neuron_backward(ctx, *grads)


def neuron_forward_ext(*inputs, spike_tensor: bool = False, surrogate_grad=None) -> tuple:
    """neuron_forward's arguments and outputs; with ``spike_tensor`` the spikes are a :class:`SpikeTensor` of
    dtype ``spike_dtype`` (float32/float16/bfloat16) stored in 1 byte per spike; with ``surrogate_grad`` the
    backward takes σ'(u) from that function of the saved values instead of the core's surrogate."""
    if not spike_tensor and surrogate_grad is None:
        return neuron_forward(*inputs)
    return _NeuronFunction.apply(spike_tensor, surrogate_grad, *inputs)
