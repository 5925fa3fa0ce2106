"""SpikingJelly 2.0's non-spiking neurons: NonSpikingIFNode and NonSpikingLIFNode (output layers that read
the membrane potential instead of spikes).

As SpikingJelly's ``NonSpikingBaseNode`` they are multi-step only (``[T, N, *]`` in), start every call from
V = 0 (no state is kept between calls) and decode the potentials over T as ``decode`` says. The potentials are
computed and decoded in float32 and returned in the input's dtype (SpikingJelly computes in the input's dtype:
the same for float32, more exact for float16/bfloat16). Both run the core's fused kernel (the models
NonSpikingIF and NonSpikingLIF: one pass over T forward and backward); a subclass with its own
``neuronal_charge`` runs it in a PyTorch step loop.
"""

from __future__ import annotations

import math
from typing import List, Optional, Union

import torch
from torch import Tensor

from . import _ops
from ._ops import NeuronKind, _checks
from ._ops._common import _float32
from .base import MemoryModule
# neuron.py imports this module after defining _fused_equations (at its end, to re-export these classes).
from .neuron import _fused_equations
from .surrogate import Sigmoid

__all__ = ["NonSpikingBaseNode", "NonSpikingIFNode", "NonSpikingLIFNode"]

DECODES = (None, "max-mem", "max-abs-mem", "mean-mem", "last_mem")
# The kernel's surrogate arguments, which these models never read (they do not fire): any valid surrogate.
_UNUSED_SURROGATE = int(Sigmoid.kind)


class NonSpikingBaseNode(MemoryModule):
    """Multi-step membrane integrator: V[-1] = 0, V[t] = charge(V[t-1], X[t]) for t < T, then decoded.

    decode:
        None          the list of the T potentials V[t] ([N, *] each), as SpikingJelly returns it
        'max-mem'     max over t of V[t]
        'max-abs-mem' the V[t] of largest magnitude (max_t V if |max_t V| > |min_t V|, else min_t V)
        'mean-mem'    mean over t of V[t]
        'last_mem'    V[T-1]

    ``self.v`` holds the last potential (float32) after a call; ``reset()`` and ``detach()`` (and
    ``functional.reset_net``/``detach_net``) clear or detach it, though every call starts from 0 anyway.
    A sequence with T = 0 has no potential to decode: a decode other than None raises.
    """

    # The core's model for this class's own neuronal_charge (None: no kernel, a step loop), and whether this class
    # runs it (neuronal_charge not overridden), decided once per class.
    _neuron_kind: Optional[NeuronKind] = None
    _fused_class = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._fused_class = _fused_equations(cls, ("neuronal_charge",))

    def __init__(self, decode: Optional[str] = None):
        super().__init__()
        if decode not in DECODES:
            raise ValueError(f"{type(self).__name__}: decode must be one of {DECODES}, got {decode!r}")
        self.decode = decode
        self.v: Union[float, Tensor] = 0.0

    @property
    def step_mode(self) -> str:
        return "m"

    @step_mode.setter
    def step_mode(self, value: str) -> None:
        if value != "m":
            raise ValueError(f"{type(self).__name__}: step_mode can only be 'm' (a non-spiking neuron decodes a "
                             f"whole sequence [T, N, *]), got {value!r}")

    def neuronal_charge(self, x: Tensor) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define neuronal_charge(self, x), which sets self.v "
                                  "from self.v (V[t-1]) and x (X[t])")

    def reset(self) -> None:
        self.v = 0.0

    def detach(self) -> None:
        if isinstance(self.v, Tensor):
            self.v = self.v.detach()

    def forward(self, x_seq: Tensor) -> Union[Tensor, List[Tensor]]:
        name = type(self).__name__
        _checks.tensor(x_seq, "x_seq", name, _checks.FLOAT_DTYPES)
        if x_seq.dim() < 1:
            raise ValueError(f"{name}: x_seq must be [T, N, *] (multi-step only), got shape {tuple(x_seq.shape)}")
        T = x_seq.shape[0]
        if T == 0 and self.decode is not None:
            raise ValueError(f"{name}: decode={self.decode!r} needs at least one time step, got x_seq of shape "
                             f"{tuple(x_seq.shape)}")
        if type(self)._fused_class:
            v_stack = self._fused(x_seq, self._neuron_kind)
        else:
            self.v = torch.zeros(x_seq.shape[1:], dtype=torch.float32, device=x_seq.device)
            v_seq = []
            for t in range(T):
                self.neuronal_charge(x_seq[t].float())
                v_seq.append(self.v)
            v_stack = torch.stack(v_seq) if T > 0 else torch.empty(x_seq.shape, dtype=torch.float32,
                                                                    device=x_seq.device)
        if self.decode is None:
            return [v.to(x_seq.dtype) for v in v_stack.unbind(0)]
        return self._decoded(v_stack).to(x_seq.dtype)

    def _fused(self, x_seq: Tensor, kind: NeuronKind) -> Tensor:
        """V after every step [T, N, *] (float32) from the fused kernel, which saves it as its output; the spikes
        (all 0, in 1 byte) and the surrogate arguments are not used by these models."""
        T, step_shape = x_seq.shape[0], x_seq.shape[1:]
        N = math.prod(step_shape)
        x = x_seq.reshape(T, N).contiguous()
        _, state_final, saved, _ = _ops.neuron_forward(
            x, torch.zeros(N, dtype=torch.float32, device=x_seq.device), None, kind, 1.0, None,
            float(getattr(self, "tau", 2.0)), True, [], False, _UNUSED_SURROGATE, 4.0, 0.0, torch.uint8, True, False)
        self.v = state_final.view(step_shape)
        return saved.view(x_seq.shape)  # [1, T, N]: V, as a view (no select and its zero-filled backward)

    def _decoded(self, v_stack: Tensor) -> Tensor:
        if self.decode == "last_mem":
            return v_stack[-1]
        if self.decode == "max-mem":
            return v_stack.max(0).values
        if self.decode == "max-abs-mem":
            max_mem, min_mem = v_stack.max(0).values, v_stack.min(0).values
            return max_mem * (max_mem.abs() > min_mem.abs()) + min_mem * (max_mem.abs() <= min_mem.abs())
        return v_stack.mean(0)

    def extra_repr(self) -> str:
        return f"decode={self.decode!r}"


class NonSpikingIFNode(NonSpikingBaseNode):
    """Non-spiking IF: V[t] = V[t-1] + X[t], V[-1] = 0, decoded over T (see :class:`NonSpikingBaseNode`).

    Args:
        decode (str or None): None, 'max-mem', 'max-abs-mem', 'mean-mem' or 'last_mem'. Default None.
    """

    _neuron_kind = NeuronKind.NonSpikingIF

    def neuronal_charge(self, x: Tensor) -> None:
        self.v = self.v + x


class NonSpikingLIFNode(NonSpikingBaseNode):
    """Non-spiking LIF: V[t] = V[t-1] + (X[t] - V[t-1]) / tau, V[-1] = 0, decoded over T.

    Args:
        tau (float): membrane time constant, > 1. Default 2.0.
        decode (str or None): as :class:`NonSpikingIFNode`. Default None.
    """

    _neuron_kind = NeuronKind.NonSpikingLIF

    def __init__(self, tau: float = 2.0, decode: Optional[str] = None):
        tau = _float32(tau, f"{type(self).__name__}: tau", above_one=True)
        super().__init__(decode)
        self.tau = tau

    def neuronal_charge(self, x: Tensor) -> None:
        self.v = self.v + (x - self.v) / self.tau

    def extra_repr(self) -> str:
        return f"tau={self.tau}, " + super().extra_repr()
