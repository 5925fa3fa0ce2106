"""Spiking neurons with SpikingJelly's names, arguments and defaults: IFNode, LIFNode, ParametricLIFNode.

All three run in the fused C++/CUDA kernels (one pass over memory per direction for a whole sequence).
A :class:`BaseNode` subclass that defines or overrides SpikingJelly's ``neuronal_charge``, ``neuronal_fire`` or
``neuronal_reset``, and a built-in neuron given a surrogate the kernels have no formula for, run a PyTorch step
loop of those methods instead (see ``docs/design/neurons.md``, "Custom neurons").
``step_mode='s'`` takes ``[N, *]`` and advances one step per call; ``step_mode='m'`` takes ``[T, N, *]``.
The membrane potential ``v`` is kept on the module in float32, persists across calls and is cleared by
``reset()`` (or :func:`spikeops.functional.reset_net`). Calling a single-step neuron T times gives exactly
what one multi-step call gives.

Threads: because of that state, one neuron (or a network holding one) must not be called from two threads at
once; give each thread its own copy (``copy.deepcopy(net)``). The kernels themselves keep no state between
calls, so separate neurons run safely in parallel threads.
"""

from __future__ import annotations

import math
from typing import Optional, Union

import torch
from torch import Tensor, nn

from . import _ops
from ._ops import NeuronKind, _checks
from ._ops._common import _flag, _float32
from .base import MemoryModule, check_step_mode
from .spike_tensor import to_spike_tensor
from .surrogate import Sigmoid, SurrogateFunctionBase

__all__ = ["BaseNode", "SimpleBaseNode", "IFNode", "LIFNode", "ParametricLIFNode", "QIFNode", "EIFNode",
           "IzhikevichNode", "NonSpikingBaseNode", "NonSpikingIFNode", "NonSpikingLIFNode", "ALIFNode",
           "KLIFNode", "CUBALIFNode", "LIAFNode", "ComplementaryLIFNode", "GatedLIFNode",
           "PSN", "MaskedPSN", "SlidingPSN"]

_FLOAT_DTYPES = _checks.FLOAT_DTYPES
_SPIKE_DTYPES = _FLOAT_DTYPES + (torch.uint8,)
_BACKENDS = ("torch", "cupy", "triton", "spikeops")

# The per-step methods a fused kernel implements: a subclass that overrides any of them runs the step loop.
_STEP_METHODS = ("v_float_to_tensor", "neuronal_charge", "neuronal_fire", "neuronal_reset", "jit_hard_reset",
                 "jit_soft_reset")
# A surrogate's methods that decide its spike and its derivative: a subclass of a built-in surrogate that overrides
# one of them is not what the kernel's formula for that kind computes.
_SURROGATE_METHODS = ("forward", "spiking_function", "backward", "derivative")


def spike_options(name: str, spike_dtype: Optional[torch.dtype], spike_tensor: bool) -> tuple:
    """A neuron's ``spike_dtype`` and ``spike_tensor`` arguments, checked; errors name the class ``name``."""
    if spike_dtype is not None and spike_dtype not in _SPIKE_DTYPES:
        raise ValueError(f"{name}: spike_dtype must be None, torch.float32, torch.float16, torch.bfloat16 "
                         f"or torch.uint8, got {spike_dtype}")
    spike_tensor = _flag(spike_tensor, f"{name}: spike_tensor")
    if spike_tensor and spike_dtype == torch.uint8:
        raise ValueError(f"{name}: spike_tensor=True already stores the spikes in 1 byte; spike_dtype must "
                         "then be None or the float dtype it presents to autograd, got torch.uint8")
    return spike_dtype, spike_tensor


def _defining_class(cls: type, attr: str) -> Optional[type]:
    return next((c for c in cls.__mro__ if attr in c.__dict__), None)


def _fused_equations(cls: type, methods: tuple = _STEP_METHODS) -> bool:
    """Whether cls runs the equations of the built-in kind it inherits (none of the step methods overridden)."""
    owner = _defining_class(cls, "_neuron_kind")
    if owner is None or owner.__dict__["_neuron_kind"] is None:
        return False
    return all(getattr(cls, m) is getattr(owner, m) for m in methods)


def _kernel_surrogate(sg) -> bool:
    """Whether the fused kernels compute the surrogate ``sg`` exactly: a spikeops surrogate in spiking mode whose
    class has a kernel ``kind`` and overrides none of the methods of the class that set that kind. Anything else
    (a user's autograd.Function or module, a subclass overriding ``forward``, ``spiking=False``) makes a neuron
    call it in a PyTorch step loop."""
    if not isinstance(sg, SurrogateFunctionBase) or not sg.spiking:
        return False
    cls = type(sg)
    if torch.compiler.is_compiling():  # traced once per graph: no cache for Dynamo to guard on
        return _surrogate_class_has_formula(cls)
    known = _SURROGATE_CLASSES.get(cls)
    if known is None:
        known = _SURROGATE_CLASSES[cls] = _surrogate_class_has_formula(cls)
    return known


def _surrogate_fuses(sg) -> bool:
    """Whether a neuron with surrogate ``sg`` can run its fused kernel in this call (its derivative from the
    kernel's formula, or else given to the backward as a [T, N] tensor)."""
    # spiking=False returns the primitive, and a class without a kernel formula (PoissonPass,
    # MultiLevelSpikeCount) is not a Heaviside step: neither is what the kernel fires.
    if isinstance(sg, SurrogateFunctionBase) and (not sg.spiking or not type(sg).has_kernel_formula):
        return False
    # Under torch.compile a surrogate without a kernel formula runs the step loop, which Dynamo traces: the
    # fused path's check of its spikes is data-dependent and its derivative is taken by autograd.grad.
    return not torch.compiler.is_compiling() or _kernel_surrogate(sg)


# Surrogate class -> whether the kernels have its formula. Classes are not redefined in place, so no entry is stale.
_SURROGATE_CLASSES: dict = {}


def _surrogate_class_has_formula(cls: type) -> bool:
    owner = _defining_class(cls, "kind")
    if owner is None or owner.__dict__["kind"] is None or not getattr(cls, "has_kernel_formula", True):
        return False
    return all(getattr(cls, m, None) is getattr(owner, m, None) for m in _SURROGATE_METHODS)


class BaseNode(MemoryModule):
    """Common machinery of the spiking neurons.

    Args:
        v_threshold (float): firing threshold. Default 1.0.
        v_reset (float or None): hard-reset potential; None selects the soft reset (subtract v_threshold).
        surrogate_function (callable): the spike function with its surrogate gradient. Default
            ``surrogate.Sigmoid()``. A spikeops surrogate runs in the fused kernels; any other callable (a
            ``torch.autograd.Function``'s ``apply``, a module, a surrogate subclass overriding ``forward``, or
            ``spiking=False``) is called on ``v - v_threshold`` in a PyTorch step loop.
        detach_reset (bool): do not propagate gradient through the reset. Default False.
        step_mode (str): 's' or 'm'. Default 's'.
        backend (str): accepted for SpikingJelly compatibility ('torch', 'cupy', 'triton', 'spikeops'); the
            spikeops kernels run whatever it says, on CPU and CUDA.
        store_v_seq (bool): keep ``v_seq``, V after each step, as SpikingJelly 2.0 does: a multi-step call sets
            it to [T, N, *]; in single-step mode each call appends its V (a new sequence starts after
            ``reset()`` or when the shape, device or dtype changes; every step copies the sequence, so this is
            for monitoring). Default False.
        spike_dtype (torch.dtype or None): dtype of the spikes; None (default) uses the input's dtype.
            ``torch.uint8`` writes 1-byte spikes (no gradient flows through a uint8 tensor).
        spike_tensor (bool): return the spikes as a :class:`spikeops.SpikeTensor`: written and stored in
            1 byte each, while autograd sees a float tensor (of ``spike_dtype``, default the input's dtype), so
            the surrogate gradient still reaches this neuron. ``layer.Linear``/``layer.Conv2d`` read the bytes
            directly. Default False.

    Custom neurons: define ``neuronal_charge(x)`` (it sets ``self.v`` to H from ``self.v`` and ``x``), and
    override ``neuronal_fire()`` or ``neuronal_reset(spike)`` if needed, as in SpikingJelly. Such a neuron runs
    those methods in a PyTorch step loop (both step modes), with the same state, ``store_v_seq``,
    ``detach_reset``, ``spike_dtype`` and ``spike_tensor`` handling as the built-in neurons.
    """

    _neuron_kind: Optional[int] = None  # the fused kernel's NeuronKind; None: the step loop
    _state_names = ("v",)  # the kernel's state variables, in its order (V first): attributes of the module
    _fused_class = False  # set per subclass by __init_subclass__
    _memories = ("v", "v_seq")

    def __init__(self, v_threshold: float = 1.0, v_reset: Optional[float] = 0.0,
                 surrogate_function: Optional[SurrogateFunctionBase] = None, detach_reset: bool = False,
                 step_mode: str = "s", backend: str = "torch", store_v_seq: bool = False,
                 spike_dtype: Optional[torch.dtype] = None, spike_tensor: bool = False):
        super().__init__()
        name = type(self).__name__
        self.v_threshold = self._finite("v_threshold", v_threshold)
        self.v_reset = None if v_reset is None else self._finite("v_reset", v_reset)
        if surrogate_function is None:
            surrogate_function = Sigmoid()
        if not callable(surrogate_function):
            raise TypeError(f"{name}: surrogate_function must be callable: a spikeops.surrogate function "
                            f"(e.g. surrogate.Sigmoid()) or a function of v - v_threshold, got "
                            f"{type(surrogate_function).__name__}")
        self.surrogate_function = surrogate_function
        self.detach_reset = _flag(detach_reset, f"{name}: detach_reset")
        self.step_mode = check_step_mode(step_mode, name)
        if backend not in _BACKENDS:
            raise ValueError(f"{name}: backend must be one of {_BACKENDS}, got {backend!r}")
        self.backend = backend
        self.store_v_seq = _flag(store_v_seq, f"{name}: store_v_seq")
        self.spike_dtype, self.spike_tensor = spike_options(name, spike_dtype, spike_tensor)
        self.v: Union[float, Tensor] = self.v_init_value
        self.v_seq: Optional[Tensor] = None

    # ---- state ----
    @property
    def v_init_value(self) -> float:
        return 0.0 if self.v_reset is None else self.v_reset

    def reset(self) -> None:
        """Forget the membrane potential: the next call starts from v_reset (0 with the soft reset)."""
        self.v = self.v_init_value
        self.v_seq = None

    def detach(self) -> None:
        """Cut the autograd graph through the state (truncated BPTT), the stored ``v_seq`` included."""
        if isinstance(self.v, Tensor):
            self.v = self.v.detach()
        if isinstance(self.v_seq, Tensor):
            self.v_seq = self.v_seq.detach()

    def extra_repr(self) -> str:
        return (f"v_threshold={self.v_threshold}, v_reset={self.v_reset}, detach_reset={self.detach_reset}, "
                f"step_mode={self.step_mode}, store_v_seq={self.store_v_seq}, spike_dtype={self.spike_dtype}"
                + (", spike_tensor=True" if self.spike_tensor else ""))

    def _finite(self, name: str, value) -> float:
        # A number float32 holds: the kernels compute in float32, so 1e39 must fail here, not at the first forward.
        return _float32(value, f"{type(self).__name__}: {name}")

    # ---- SpikingJelly's per-step API (the step loop runs these; the fused kernels compute the same) ----
    def v_float_to_tensor(self, x: Tensor) -> None:
        """Turn a float ``v`` (after ``reset()``) into a float32 tensor of x's shape; a stored tensor must match x."""
        self.v = self._state(x)

    def neuronal_charge(self, x: Tensor) -> None:
        """Set ``self.v`` to the charged potential H from ``self.v`` (V[t-1]) and the input ``x`` (X[t])."""
        raise NotImplementedError(f"{type(self).__name__} must define neuronal_charge(self, x), which sets self.v "
                                  "to the charged potential H[t] from self.v (V[t-1]) and x (X[t])")

    def neuronal_fire(self) -> Tensor:
        """The spikes S[t] = surrogate_function(H[t] - v_threshold)."""
        return self.surrogate_function(self.v - self.v_threshold)

    def neuronal_reset(self, spike: Tensor) -> None:
        """V[t] from H[t] (``self.v``) and the spikes: hard reset to ``v_reset``, or soft (subtract the threshold)."""
        spike_d = spike.detach() if self.detach_reset else spike
        if self.v_reset is None:
            self.v = self.jit_soft_reset(self.v, spike_d, self.v_threshold)
        else:
            self.v = self.jit_hard_reset(self.v, spike_d, self.v_reset)

    @staticmethod
    def jit_hard_reset(v: Tensor, spike: Tensor, v_reset: float) -> Tensor:
        return (1.0 - spike) * v + spike * v_reset

    @staticmethod
    def jit_soft_reset(v: Tensor, spike: Tensor, v_threshold: float) -> Tensor:
        return v - spike * v_threshold

    def _fused(self) -> bool:
        """Whether this call runs the fused kernel: built-in equations, and a surrogate in spiking mode (one
        without a kernel formula gives the backward its derivative as a [T, N] tensor; see _run)."""
        return type(self)._fused_class and _surrogate_fuses(self.surrogate_function)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._fused_class = _fused_equations(cls)

    # ---- per-neuron-type hooks ----
    def _tau(self) -> float:
        """The model's tau (NeuronParams::tau): the module's ``tau``; models without one do not read it."""
        return getattr(self, "tau", 2.0)

    def _decay_input(self) -> bool:
        """The model's decay_input: the module's ``decay_input``; models without one do not read it."""
        return getattr(self, "decay_input", True)

    def _learnable_tensor(self, device: torch.device) -> Optional[Tensor]:
        """The model's learnable scalars as the kernel takes them ([P] float32), None when it has none."""
        return None

    def _extra(self) -> list:
        """The model's extra scalar parameters (NeuronParams::extra), in the order its C++ definition names them."""
        return []

    # ---- forward ----
    def forward(self, x: Tensor) -> Tensor:
        if self.step_mode == "s":
            return self.single_step_forward(x)
        return self.multi_step_forward(x)

    def single_step_forward(self, x: Tensor) -> Tensor:
        """One step: x [N, *] -> spikes [N, *]."""
        self._check_input(x, "x", min_dim=0)
        if not self._fused():
            spike = self._present(self._step(x), x.dtype)
        else:
            spike = self._run(x.unsqueeze(0), store_v_seq=False)[0]
        if self.store_v_seq:
            self._append_v_seq(self.v)
        return spike

    def _append_v_seq(self, v: Tensor) -> None:
        """Single-step store_v_seq: append V to v_seq, restarting it when the shape, device or dtype changes."""
        step = v.unsqueeze(0)
        seq = self.v_seq
        if seq is None or seq.shape[1:] != step.shape[1:] or seq.device != step.device or seq.dtype != step.dtype:
            self.v_seq = step.clone()
        else:
            self.v_seq = torch.cat((seq, step))

    def multi_step_forward(self, x_seq: Tensor) -> Tensor:
        """T steps in one fused call: x_seq [T, N, *] -> spikes [T, N, *]."""
        self._check_input(x_seq, "x_seq", min_dim=1)
        if not self._fused():
            return self._loop(x_seq)
        return self._run(x_seq, store_v_seq=self.store_v_seq)

    # ---- the step loop (custom neurons, custom surrogates) ----
    def _step(self, x: Tensor) -> Tensor:
        """SpikingJelly's single step: charge, fire, reset."""
        self.v_float_to_tensor(x)
        self.neuronal_charge(x)
        spike = self.neuronal_fire()
        self.neuronal_reset(spike)
        return spike

    def _loop(self, x_seq: Tensor) -> Tensor:
        """SpikingJelly's multi-step forward: the single step over T (v_seq stacks V after each step)."""
        T = x_seq.shape[0]
        if T == 0:
            self.v = self._state(x_seq.new_empty(x_seq.shape[1:]))
            if self.store_v_seq:
                self.v_seq = torch.empty(x_seq.shape, dtype=torch.float32, device=x_seq.device)
            return self._present(x_seq.new_empty(x_seq.shape), x_seq.dtype)
        spikes, vs = [], []
        for t in range(T):
            spikes.append(self._step(x_seq[t]))
            if self.store_v_seq:
                vs.append(self.v)
        if self.store_v_seq:
            self.v_seq = torch.stack(vs)
        return self._present(torch.stack(spikes), x_seq.dtype)

    def _present(self, spike: Tensor, x_dtype: torch.dtype) -> Tensor:
        """The loop's spikes in the dtype and form the fused path returns (spike_dtype, spike_tensor)."""
        name = type(self).__name__
        if not isinstance(spike, Tensor):
            raise TypeError(f"{name}: neuronal_fire (surrogate_function) must return a tensor, got "
                            f"{type(spike).__name__}")
        if self.spike_tensor or self.spike_dtype == torch.uint8:
            # 1-byte spikes hold only 0 and 1: a smooth output (spiking=False, a custom neuronal_fire) would be
            # truncated silently.
            if bool(((spike != 0) & (spike != 1)).any()):
                raise ValueError(f"{name}: spike_dtype=torch.uint8 and spike_tensor=True store 0/1 spikes, but "
                                 "neuronal_fire (surrogate_function) returned other values; use a float "
                                 "spike_dtype")
        if self.spike_tensor:
            return to_spike_tensor(spike.to(self.spike_dtype or x_dtype))
        return spike.to(self.spike_dtype or x_dtype)

    def _check_input(self, x, arg: str, min_dim: int) -> None:
        name = type(self).__name__
        _checks.tensor(x, arg, name, _FLOAT_DTYPES)
        if x.dim() < min_dim:
            raise ValueError(f"{name}: in multi-step mode {arg} must be [T, N, *], got shape {tuple(x.shape)}")
        if x.device.type not in ("cpu", "cuda"):
            raise ValueError(f"{name}: {arg} must be on a cpu or cuda device, got {x.device}")
        if x.device.type == "cuda" and not _ops.CUDA_BUILT:
            raise RuntimeError(f"{name}: {arg} is on {x.device}, but this spikeops was built without CUDA "
                               "(install it where nvcc is on the PATH, or set SPIKEOPS_CUDA=ON)")

    def _state(self, like: Tensor, name: str = "v") -> Tensor:
        """The state variable `name` (default the membrane potential) as a float32 tensor of the per-step shape
        of `like` ([N, *])."""
        shape = like.shape
        value = getattr(self, name)
        what = "membrane potential" if name == "v" else f"state {name}"
        if isinstance(value, float):
            return torch.full(shape, value, dtype=torch.float32, device=like.device)
        if value.shape != shape:
            raise ValueError(f"{type(self).__name__}: the stored {what} has shape "
                             f"{tuple(value.shape)} but this input needs {tuple(shape)}; call "
                             "spikeops.functional.reset_net(net) (or node.reset()) between inputs of "
                             "different shapes")
        if value.device != like.device:
            raise ValueError(f"{type(self).__name__}: the stored {what} is on {value.device} "
                             f"but the input is on {like.device}; call spikeops.functional.reset_net(net) "
                             "after moving the network")
        return value

    def _run(self, x_seq: Tensor, store_v_seq: bool) -> Tensor:
        T = x_seq.shape[0]
        step_shape = x_seq.shape[1:]
        N = math.prod(step_shape)  # explicit: reshape(T, -1) is ambiguous when a size is 0
        like = x_seq[0] if T > 0 else x_seq.new_empty(step_shape)
        states = [self._state(like, name) for name in self._state_names]
        state_init = states[0].reshape(N) if len(states) == 1 else torch.stack([s.reshape(N) for s in states])
        learnable = self._learnable_tensor(x_seq.device)
        # A model whose output is made from its saved values (LIAF's act(H)) keeps its spikes, which only reset it,
        # in 1 byte.
        spike_dtype = torch.uint8 if self._saved_output else self.spike_dtype or x_seq.dtype
        needs_grad = torch.is_grad_enabled() and (
            x_seq.requires_grad or any(s.requires_grad for s in states)
            or (learnable is not None and learnable.requires_grad))
        sg = self.surrogate_function
        kernel_sg = _kernel_surrogate(sg)
        # A surrogate the core has no formula for (a user's autograd.Function, a subclass overriding its
        # function): the kernel fires heaviside(u), which is checked against the user's function below, and the
        # backward takes σ'(u) from that function at the saved u.
        surrogate_grad = None if kernel_sg or not needs_grad else self._surrogate_grad
        # Without a kernel formula the op's surrogate arguments are never read (the backward gets
        # surrogate_grad_seq): any valid kernel surrogate stands in, the default Sigmoid.
        kind, alpha, beta = (sg.kind_id, sg.alpha, sg.beta) if kernel_sg else (int(Sigmoid.kind), 4.0, 0.0)
        spike_seq, state_final, saved, v_seq = _ops.neuron_forward_ext(
            _as_steps(x_seq, T, N), state_init.contiguous(), learnable, self._neuron_kind,
            self.v_threshold, self.v_reset, self._tau(), self._decay_input(), self._extra(), self.detach_reset,
            kind, alpha, beta, spike_dtype, needs_grad or not kernel_sg or self._saved_output, store_v_seq,
            spike_tensor=self.spike_tensor, surrogate_grad=surrogate_grad)
        if not kernel_sg and not self._fires_heaviside(saved):
            return self._loop(x_seq)  # the user's function spikes otherwise: its own step loop, state untouched
        if len(states) == 1:
            setattr(self, self._state_names[0], state_final.view(step_shape))
        else:
            for i, name in enumerate(self._state_names):
                setattr(self, name, state_final[i].view(step_shape))
        if store_v_seq:
            self.v_seq = v_seq.view(x_seq.shape)
        return self._output(spike_seq, saved, x_seq)

    # Whether the output is made from the kernel's saved values rather than its spikes (see _output).
    _saved_output = False

    def _output(self, spike_seq: Tensor, saved: Tensor, x_seq: Tensor) -> Tensor:
        """What a fused call returns: the spikes [T, N] as x_seq's shape. A model that outputs something else
        computes it here from the saved values [K, T, N] (differentiable: the kernel's backward takes their
        gradient, see ``neuron_info(kind)['saved_grad']``) and sets ``_saved_output``."""
        return spike_seq.view(x_seq.shape)

    def _fires_heaviside(self, saved: Tensor) -> bool:
        """Whether surrogate_function, a function the core does not know, spikes as heaviside(u) (u >= 0) at
        every u of this call, as the kernel did."""
        # The check must not draw from the random generators (a surrogate may sample).
        devices = [saved.device] if saved.device.type == "cuda" else []
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            u = self._fire_input(saved)
            spike = self.surrogate_function(u)
            return isinstance(spike, Tensor) and spike.shape == u.shape and bool(
                torch.equal(spike, (u >= 0).to(spike.dtype)))

    def _fire_input(self, saved: Tensor) -> Tensor:
        """u, the surrogate's argument, from the kernel's saved values [K, T, N] (the LIF family saves H)."""
        return saved[0] - self.v_threshold

    def _surrogate_grad(self, saved: Tensor) -> Tensor:
        """σ'(u) [T, N] with this neuron's surrogate function (one the core has no formula for): the derivative
        of surrogate_function at the saved u, by autograd, as the step loop would take it."""
        with torch.enable_grad():
            u = self._fire_input(saved).detach().requires_grad_(True)
            spike = self.surrogate_function(u)
            if not isinstance(spike, Tensor) or spike.shape != u.shape:
                raise TypeError(f"{type(self).__name__}: surrogate_function must return a tensor of its input's "
                                f"shape, got {type(spike).__name__}")
            (grad,) = torch.autograd.grad(spike, u, torch.ones_like(spike), allow_unused=True)
        return torch.zeros_like(u) if grad is None else grad.float().contiguous()


def _as_steps(x_seq: Tensor, T: int, N: int) -> Tensor:
    """x_seq [T, *] as the [T, N] the kernels take: contiguous, or left a view when it repeats one contiguous row at
    every step (stride 0 over T, as ``x.expand(T, ...)`` of a static input gives), which they read in place."""
    x = x_seq.reshape(T, N)
    if x.stride(0) == 0 and (x.stride(1) == 1 or N <= 1):
        return x
    return x.contiguous()


def _charge(node: BaseNode, x: Tensor, k) -> None:
    """The LIF charge with decay k (the kernels' formula): H = V + (X - (V - Vr)) k, or V - (V - Vr) k + X."""
    vr = 0.0 if node.v_reset is None else node.v_reset
    if node.decay_input:
        node.v = node.v + (x - (node.v - vr)) * k
    else:
        node.v = node.v - (node.v - vr) * k + x


class SimpleBaseNode(BaseNode):
    """SpikingJelly 2.0's base class for neurons written as ``neuronal_charge`` (with ``neuronal_fire`` and
    ``neuronal_reset`` if needed) in plain PyTorch. In spikeops :class:`BaseNode` takes such subclasses too; both
    run them in a PyTorch step loop (see :class:`BaseNode`, "Custom neurons")."""


class IFNode(BaseNode):
    """Integrate-and-fire neuron: H = V + X.

    Args: as :class:`BaseNode`.
    """

    _neuron_kind = NeuronKind.IF

    def neuronal_charge(self, x: Tensor) -> None:
        self.v = self.v + x


class LIFNode(BaseNode):
    """Leaky integrate-and-fire neuron.

    ``decay_input=True``: H = V + (X - (V - V_reset)) / tau; ``False``: H = V - (V - V_reset) / tau + X
    (V_reset taken as 0 with the soft reset). 1/tau is applied as a float32 multiplier.

    Args:
        tau (float): membrane time constant, > 1. Default 2.0.
        decay_input (bool): whether the input is divided by tau too. Default True.
        others: as :class:`BaseNode`.
    """

    _neuron_kind = NeuronKind.LIF

    def __init__(self, tau: float = 2.0, decay_input: bool = True, v_threshold: float = 1.0,
                 v_reset: Optional[float] = 0.0, surrogate_function: Optional[SurrogateFunctionBase] = None,
                 detach_reset: bool = False, step_mode: str = "s", backend: str = "torch",
                 store_v_seq: bool = False, spike_dtype: Optional[torch.dtype] = None,
                 spike_tensor: bool = False):
        tau = _float32(tau, f"{type(self).__name__}: tau", above_one=True)
        super().__init__(v_threshold, v_reset, surrogate_function, detach_reset, step_mode, backend,
                         store_v_seq, spike_dtype, spike_tensor)
        self.tau = tau
        self.decay_input = _flag(decay_input, f"{type(self).__name__}: decay_input")

    def neuronal_charge(self, x: Tensor) -> None:
        # A Python float multiplies a float32 tensor as float32: 1/tau rounded once, as the kernel takes it.
        _charge(self, x, 1.0 / self.tau)

    def extra_repr(self) -> str:
        return f"tau={self.tau}, decay_input={self.decay_input}, " + super().extra_repr()


class ParametricLIFNode(BaseNode):
    """LIF neuron with a learnable time constant: 1/tau is replaced by k = sigmoid(w).

    Args:
        init_tau (float): initial tau, > 1; ``w`` starts at ``-log(init_tau - 1)``. Default 2.0.
        decay_input (bool): as :class:`LIFNode`. Default True.
        others: as :class:`BaseNode`.
    """

    _neuron_kind = NeuronKind.ParametricLIF

    def __init__(self, init_tau: float = 2.0, decay_input: bool = True, v_threshold: float = 1.0,
                 v_reset: Optional[float] = 0.0, surrogate_function: Optional[SurrogateFunctionBase] = None,
                 detach_reset: bool = False, step_mode: str = "s", backend: str = "torch",
                 store_v_seq: bool = False, spike_dtype: Optional[torch.dtype] = None,
                 spike_tensor: bool = False):
        name = type(self).__name__
        init_tau = _float32(init_tau, f"{name}: init_tau", above_one=True)
        w = torch.as_tensor(-math.log(init_tau - 1.0), dtype=torch.float32)
        # The kernels take k = sigmoid(w) in float32 (what _learnable_tensor computes), and the backward gets dH/dk
        # from H and V as (H - V) / k: k must not underflow (to 0, or to a float32 subnormal), which happens
        # for init_tau above about 8.5e37.
        if not torch.sigmoid(w).item() >= torch.finfo(torch.float32).tiny:
            raise ValueError(f"{name}: init_tau={init_tau} gives a decay 1/tau that underflows float32 "
                             f"(init_tau must be at most about 8.5e37)")
        super().__init__(v_threshold, v_reset, surrogate_function, detach_reset, step_mode, backend,
                         store_v_seq, spike_dtype, spike_tensor)
        self.decay_input = _flag(decay_input, f"{type(self).__name__}: decay_input")
        self.w = nn.Parameter(w)

    def neuronal_charge(self, x: Tensor) -> None:
        _charge(self, x, self._learnable_tensor(x.device)[0])  # k as the kernel takes it, w's device checked

    def _learnable_tensor(self, device: torch.device) -> Tensor:
        if self.w.device != device:
            raise ValueError(f"ParametricLIFNode: the parameter w is on {self.w.device} but the input is on "
                             f"{device}; move the module with .to(device)")
        return self.w.float().sigmoid().reshape(1)

    def extra_repr(self) -> str:
        return f"tau={1.0 / torch.sigmoid(self.w.detach()).item():.4f}, decay_input={self.decay_input}, " + \
            super().extra_repr()

# SpikingJelly 2.0's further models, imported last: they subclass BaseNode.
from .neuron_nonlinear import QIFNode, EIFNode, IzhikevichNode  # noqa: E402,F401
from .neuron_nonspiking import NonSpikingBaseNode, NonSpikingIFNode, NonSpikingLIFNode  # noqa: E402,F401
from .neuron_adaptive import ALIFNode  # noqa: E402,F401
from .neuron_lif_variants import CUBALIFNode, ComplementaryLIFNode, GatedLIFNode, KLIFNode, LIAFNode  # noqa: E402,F401
from .neuron_psn import PSN, MaskedPSN, SlidingPSN  # noqa: E402,F401  (a GEMM over T, not a recurrence)
