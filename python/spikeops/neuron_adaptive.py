"""ALIFNode: a LIF neuron with an adaptive threshold (Bellec et al. 2018, "Long short-term memory and
learning-to-learn in networks of spiking neurons"; the semantics of Norse 1.1.0's ``lsnn_feed_forward_step``).
SpikingJelly has no such neuron; the API is SpikingJelly's LIFNode's plus ``tau_adapt`` and ``beta``."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from ._neuron_state import ExtraStateNode
from ._ops import NeuronKind
from ._ops._common import _flag, _float32
from .neuron import _charge
from .surrogate import SurrogateFunctionBase

__all__ = ["ALIFNode"]


class ALIFNode(ExtraStateNode):
    """Adaptive-threshold LIF neuron (LSNN): each spike raises the threshold, which relaxes back to v_threshold.

    Per step, from V[t-1] and the adaptation A[t-1] (k = 1/tau and rho = 1 - 1/tau_adapt, each applied as one
    float32 multiplier):
        H[t]  = V[t-1] + (X[t] - (V[t-1] - Vr)) k      (decay_input)   or   V[t-1] - (V[t-1] - Vr) k + X[t]
        A'[t] = A[t-1] rho                              (decay before the threshold test, as Norse)
        B[t]  = v_threshold + beta A'[t]                (the threshold of this step)
        S[t]  = Θ(H[t] - B[t])                          (surrogate argument H[t] - B[t])
        A[t]  = A'[t] + S[t]
        V[t]  = S[t] v_reset + (1 - S[t]) H[t]   (hard)   or   H[t] - S[t] B[t]   (v_reset=None)
    Vr is v_reset (0 with the soft reset). ``detach_reset`` detaches S in V's reset only; A's increment keeps
    its gradient (as Norse's feed-forward step). The soft reset subtracts the step's threshold B[t] (Bellec
    et al.). V starts at v_reset (0 with the soft reset), A at 0. With beta=0 this is :class:`LIFNode`.

    Norse's ``lsnn_feed_forward_step(input, LSNNFeedForwardState(v, i, b), LSNNParameters(...), dt)`` computes
    the same neuron (hard reset, decay_input=True) with: ``dt * tau_mem_inv = 1/tau``, ``v_leak = v_reset``,
    ``v_th = v_threshold``, ``v_reset = v_reset``, ``dt * tau_adapt_inv = 1/tau_adapt``, ``beta = beta``,
    ``dt * tau_syn_inv = 1``, its threshold ``b = v_threshold + beta * A`` (b starts at v_th), and its input
    one step early (its current i integrates into v at the next step: i starts at X[0] and step t is given
    X[t+1]). Norse fires where v - b > 0, this class where H - B >= 0; they differ only at exact ties.

    Args:
        tau (float): membrane time constant, > 1. Default 2.0.
        tau_adapt (float): time constant of the adaptation, > 1. Default 200.0.
        beta (float): threshold increase per unit of adaptation, >= 0. Default 0.01 (Bellec et al.'s
            beta=1.8 scales each spike's increment by 1 - rho, about 1/tau_adapt; Norse and this class add 1).
        decay_input (bool): as :class:`LIFNode`. Default True.
        v_threshold (float): the baseline threshold b0. Default 1.0.
        v_reset (float or None): hard-reset potential, or None for the soft reset. Default 0.0.
        others: as :class:`~spikeops.neuron.BaseNode`.
    """

    _memories = ("v", "a", "v_seq")
    _extra_states = ("a",)
    _neuron_kind = NeuronKind.ALIF
    _state_names = ("v", "a")

    def __init__(self, tau: float = 2.0, tau_adapt: float = 200.0, beta: float = 0.01, decay_input: bool = True,
                 v_threshold: float = 1.0, v_reset: Optional[float] = 0.0,
                 surrogate_function: Optional[SurrogateFunctionBase] = None, detach_reset: bool = False,
                 step_mode: str = "s", backend: str = "torch", store_v_seq: bool = False,
                 spike_dtype: Optional[torch.dtype] = None, spike_tensor: bool = False):
        name = type(self).__name__
        tau = _float32(tau, f"{name}: tau", above_one=True)
        tau_adapt = _float32(tau_adapt, f"{name}: tau_adapt", above_one=True)
        beta = _float32(beta, f"{name}: beta")
        if not beta >= 0.0:
            raise ValueError(f"{name}: beta must be >= 0 (a spike raises the threshold), got {beta}")
        super().__init__(v_threshold, v_reset, surrogate_function, detach_reset, step_mode, backend,
                         store_v_seq, spike_dtype, spike_tensor)
        self.tau, self.tau_adapt, self.beta = tau, tau_adapt, beta
        self.decay_input = _flag(decay_input, f"{name}: decay_input")
        self._init_extra_states()

    def _extra_init(self, name: str) -> float:
        return 0.0

    def _extra(self) -> list:
        return [self.adapt_decay, self.beta]

    def _fire_input(self, saved: Tensor) -> Tensor:
        return saved[0] - saved[1]  # H - B: the kernel saves H and the step's threshold B

    @property
    def adapt_decay(self) -> float:
        """rho = 1 - 1/tau_adapt, the factor A keeps per step (applied as a float32 multiplier)."""
        return 1.0 - 1.0 / self.tau_adapt

    def neuronal_charge(self, x: Tensor) -> None:
        _charge(self, x, 1.0 / self.tau)
        self.a = self.a * self.adapt_decay

    def threshold(self) -> Tensor:
        """B[t] = v_threshold + beta A'[t] (after neuronal_charge has decayed A)."""
        return self.v_threshold + self.beta * self.a

    def neuronal_fire(self) -> Tensor:
        return self.surrogate_function(self.v - self.threshold())

    def neuronal_reset(self, spike: Tensor) -> None:
        b = self.threshold()
        spike_d = spike.detach() if self.detach_reset else spike
        if self.v_reset is None:
            self.v = self.jit_soft_reset(self.v, spike_d, b)
        else:
            self.v = self.jit_hard_reset(self.v, spike_d, self.v_reset)
        self.a = self.a + spike

    def extra_repr(self) -> str:
        return f"tau={self.tau}, tau_adapt={self.tau_adapt}, beta={self.beta}, decay_input={self.decay_input}, " \
            + super().extra_repr()
