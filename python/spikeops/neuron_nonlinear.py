"""SpikingJelly 2.0's nonlinear integrate-and-fire neurons: QIFNode, EIFNode and IzhikevichNode.

They run in the fused C++/CUDA kernels (cpp/include/spikeops/detail/neurons/nonlinear_if.hpp); their
``neuronal_charge``/``neuronal_fire``/``neuronal_reset`` are SpikingJelly's per-step API, which a subclass
overriding one of them runs in :class:`~spikeops.neuron.BaseNode`'s PyTorch step loop instead. The charge is
written in SpikingJelly 2.0.0's operation order (a division by tau, as it does), so float32 results equal its CPU ones. The state is float32
whatever the input dtype.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ._neuron_state import ExtraStateNode
from ._ops._common import _float32
from ._ops import NeuronKind
from .neuron import BaseNode
from .surrogate import SurrogateFunctionBase

__all__ = ["QIFNode", "EIFNode", "IzhikevichNode"]


def _check_reset_order(node: BaseNode, v_rest: float) -> None:
    """SpikingJelly's constraint with a hard reset: v_reset < v_threshold and v_reset <= v_rest."""
    name = type(node).__name__
    if node.v_reset is None:
        return
    if not node.v_threshold > node.v_reset:
        raise ValueError(f"{name}: v_threshold must be > v_reset, got v_threshold={node.v_threshold}, "
                         f"v_reset={node.v_reset}")
    if not v_rest >= node.v_reset:
        raise ValueError(f"{name}: v_rest must be >= v_reset, got v_rest={v_rest}, v_reset={node.v_reset}")


class QIFNode(BaseNode):
    """Quadratic integrate-and-fire neuron (SpikingJelly 2.0's ``QIFNode``).

    Per step, with V[t-1] the potential after the last step:
        H[t] = V[t-1] + (X[t] + a0 (V[t-1] - v_rest)(V[t-1] - v_c)) / tau
        S[t] = Θ(H[t] - v_threshold)                              (surrogate argument H[t] - v_threshold)
        V[t] = S[t] v_reset + (1 - S[t]) H[t]   (hard)   or   H[t] - S[t] v_threshold   (v_reset=None)
    with S detached in the reset when ``detach_reset``. V starts at v_reset (0 with the soft reset).

    Args:
        tau (float): membrane time constant, > 1. Default 2.0.
        v_c (float): critical voltage. Default 0.8.
        a0 (float): quadratic coefficient, > 0. Default 1.0.
        v_threshold (float): firing threshold. Default 1.0.
        v_rest (float): resting potential. Default 0.0.
        v_reset (float or None): hard-reset potential (< v_threshold and <= v_rest), or None for the soft
            reset. Default -0.1.
        surrogate_function, detach_reset, step_mode, store_v_seq, backend, spike_dtype, spike_tensor: as
            :class:`~spikeops.neuron.BaseNode` (the last three keyword-only).
    """

    def __init__(self, tau: float = 2.0, v_c: float = 0.8, a0: float = 1.0, v_threshold: float = 1.0,
                 v_rest: float = 0.0, v_reset: Optional[float] = -0.1,
                 surrogate_function: Optional[SurrogateFunctionBase] = None, detach_reset: bool = False,
                 step_mode: str = "s", store_v_seq: bool = False, *, backend: str = "torch",
                 spike_dtype: Optional[torch.dtype] = None, spike_tensor: bool = False):
        name = type(self).__name__
        tau = _float32(tau, f"{name}: tau", above_one=True)
        v_c = _float32(v_c, f"{name}: v_c")
        a0 = _float32(a0, f"{name}: a0", positive=True)
        v_rest = _float32(v_rest, f"{name}: v_rest")
        super().__init__(v_threshold, v_reset, surrogate_function, detach_reset, step_mode, backend,
                         store_v_seq, spike_dtype, spike_tensor)
        _check_reset_order(self, v_rest)
        self.tau, self.v_c, self.a0, self.v_rest = tau, v_c, a0, v_rest

    _neuron_kind = NeuronKind.QIF

    def _extra(self) -> list:
        return [self.v_c, self.a0, self.v_rest]

    def neuronal_charge(self, x: Tensor) -> None:
        v = self.v
        self.v = v + (x.float() + self.a0 * (v - self.v_rest) * (v - self.v_c)) / self.tau

    def extra_repr(self) -> str:
        return super().extra_repr() + f", tau={self.tau}, v_c={self.v_c}, a0={self.a0}, v_rest={self.v_rest}"


class EIFNode(BaseNode):
    """Exponential integrate-and-fire neuron (SpikingJelly 2.0's ``EIFNode``).

    Per step:
        H[t] = V[t-1] + (X[t] + v_rest - V[t-1] + delta_T exp((V[t-1] - theta_rh) / delta_T)) / tau
        S[t] = Θ(H[t] - v_threshold)                              (surrogate argument H[t] - v_threshold)
        V[t] = S[t] v_reset + (1 - S[t]) H[t]   (hard)   or   H[t] - S[t] v_threshold   (v_reset=None)
    The exponential grows without bound above theta_rh: a potential far above it overflows to inf, as in
    SpikingJelly.

    Args:
        tau (float): membrane time constant, > 1. Default 2.0.
        delta_T (float): sharpness, > 0. Default 1.0.
        theta_rh (float): rheobase threshold. Default 0.8.
        v_threshold (float): firing threshold. Default 1.0.
        v_rest (float): resting potential. Default 0.0.
        v_reset (float or None): as :class:`QIFNode`. Default -0.1.
        others: as :class:`QIFNode`.
    """

    def __init__(self, tau: float = 2.0, delta_T: float = 1.0, theta_rh: float = 0.8, v_threshold: float = 1.0,
                 v_rest: float = 0.0, v_reset: Optional[float] = -0.1,
                 surrogate_function: Optional[SurrogateFunctionBase] = None, detach_reset: bool = False,
                 step_mode: str = "s", store_v_seq: bool = False, *, backend: str = "torch",
                 spike_dtype: Optional[torch.dtype] = None, spike_tensor: bool = False):
        name = type(self).__name__
        tau = _float32(tau, f"{name}: tau", above_one=True)
        delta_T = _float32(delta_T, f"{name}: delta_T", positive=True)
        theta_rh = _float32(theta_rh, f"{name}: theta_rh")
        v_rest = _float32(v_rest, f"{name}: v_rest")
        super().__init__(v_threshold, v_reset, surrogate_function, detach_reset, step_mode, backend,
                         store_v_seq, spike_dtype, spike_tensor)
        _check_reset_order(self, v_rest)
        self.tau, self.delta_T, self.theta_rh, self.v_rest = tau, delta_T, theta_rh, v_rest

    _neuron_kind = NeuronKind.EIF

    def _extra(self) -> list:
        return [self.delta_T, self.theta_rh, self.v_rest]

    def neuronal_charge(self, x: Tensor) -> None:
        v = self.v
        self.v = v + (x.float() + self.v_rest - v + self.delta_T * torch.exp((v - self.theta_rh) / self.delta_T)) \
            / self.tau

    def extra_repr(self) -> str:
        return super().extra_repr() + f", tau={self.tau}, delta_T={self.delta_T}, theta_rh={self.theta_rh}, " \
            f"v_rest={self.v_rest}"


class IzhikevichNode(ExtraStateNode):
    """Izhikevich neuron: a QIF membrane with an adaptation current ``w`` (SpikingJelly 2.0's ``IzhikevichNode``).

    Per step, from V[t-1] and W[t-1]:
        H[t] = V[t-1] + (X[t] + a0 (V[t-1] - v_rest)(V[t-1] - v_c) - W[t-1]) / tau
        S[t] = Θ(H[t] - v_threshold)                              (surrogate argument H[t] - v_threshold)
        W[t] = W[t-1] + (a (H[t] - v_rest) - W[t-1]) / tau_w + b S[t]
        V[t] = S[t] v_reset + (1 - S[t]) H[t]   (hard)   or   H[t] - S[t] v_threshold   (v_reset=None)
    ``detach_reset`` detaches S in V's reset only (W's jump b S keeps its gradient, as in SpikingJelly).
    V starts at v_reset (0 with the soft reset), W at w_rest.

    Args:
        tau (float): membrane time constant, > 1. Default 2.0.
        v_c (float): critical voltage. Default 0.8.
        a0 (float): quadratic coefficient, > 0. Default 1.0.
        v_threshold (float): firing threshold. Default 1.0.
        v_reset (float or None): hard-reset potential, or None for the soft reset. Default 0.0.
        v_rest (float): resting potential. Default -0.1.
        w_rest (float): initial adaptation current. Default 0.0.
        tau_w (float): adaptation time constant, > 0. Default 2.0.
        a (float): subthreshold coupling. Default 0.0.
        b (float): spike-triggered jump of w. Default 0.0.
        others: as :class:`QIFNode`.
    """

    _memories = ("v", "w", "v_seq")
    _extra_states = ("w",)
    _neuron_kind = NeuronKind.Izhikevich
    _state_names = ("v", "w")

    def __init__(self, tau: float = 2.0, v_c: float = 0.8, a0: float = 1.0, v_threshold: float = 1.0,
                 v_reset: Optional[float] = 0.0, v_rest: float = -0.1, w_rest: float = 0.0, tau_w: float = 2.0,
                 a: float = 0.0, b: float = 0.0, surrogate_function: Optional[SurrogateFunctionBase] = None,
                 detach_reset: bool = False, step_mode: str = "s", store_v_seq: bool = False, *,
                 backend: str = "torch", spike_dtype: Optional[torch.dtype] = None, spike_tensor: bool = False):
        name = type(self).__name__
        tau = _float32(tau, f"{name}: tau", above_one=True)
        v_c = _float32(v_c, f"{name}: v_c")
        a0 = _float32(a0, f"{name}: a0", positive=True)
        v_rest = _float32(v_rest, f"{name}: v_rest")
        w_rest = float(_float32(w_rest, f"{name}: w_rest"))
        tau_w = _float32(tau_w, f"{name}: tau_w", positive=True)
        a = _float32(a, f"{name}: a")
        b = _float32(b, f"{name}: b")
        super().__init__(v_threshold, v_reset, surrogate_function, detach_reset, step_mode, backend,
                         store_v_seq, spike_dtype, spike_tensor)
        self.tau, self.v_c, self.a0, self.v_rest = tau, v_c, a0, v_rest
        self.w_rest, self.tau_w, self.a, self.b = w_rest, tau_w, a, b
        self._init_extra_states()

    def _extra_init(self, name: str) -> float:
        return self.w_rest

    def _extra(self) -> list:
        return [self.v_c, self.a0, self.v_rest, self.tau_w, self.a, self.b]

    def neuronal_charge(self, x: Tensor) -> None:
        v = self.v
        self.v = v + (x.float() + self.a0 * (v - self.v_rest) * (v - self.v_c) - self.w) / self.tau

    def neuronal_reset(self, spike: Tensor) -> None:
        # W[t] takes H[t] (self.v before the reset) and the undetached spike.
        self.w = self.w + (self.a * (self.v - self.v_rest) - self.w) / self.tau_w + self.b * spike
        super().neuronal_reset(spike)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", tau={self.tau}, v_c={self.v_c}, a0={self.a0}, v_rest={self.v_rest}, " \
            f"w_rest={self.w_rest}, tau_w={self.tau_w}, a={self.a}, b={self.b}"
