"""SpikingJelly 2.0's LIF variants (``activation_based/neuron/lif_variants.py``): KLIFNode, CUBALIFNode, LIAFNode,
ComplementaryLIFNode and GatedLIFNode, with SpikingJelly's names, constructor arguments, defaults, parameters and
per-step equations (in SpikingJelly's operation order, so float32 results are the same bit for bit).

KLIFNode, CUBALIFNode and ComplementaryLIFNode run the fused C++/CUDA kernels
(cpp/include/spikeops/detail/neurons/lif_variants.hpp), GatedLIFNode (not a BaseNode in SpikingJelly either) too
(gated_lif.hpp: its input current is computed in PyTorch, its per-channel parameters enter as constant states);
LIAFNode runs :class:`~spikeops.neuron.BaseNode`'s PyTorch step loop (``neuronal_charge``, ``neuronal_fire``,
``neuronal_reset``).
State is kept in float32 whatever the input dtype, as for the other spikeops neurons. Every state variable is a
memory (``_memories``): ``reset()`` restores it and ``detach()`` cuts its graph.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, Optional, Union

import torch
from torch import Tensor, nn

from . import _ops
from ._ops import _checks
from ._ops._common import _flag, _float32
from .base import MemoryModule, check_step_mode
from ._ops import NeuronKind
from .neuron import BaseNode, LIFNode, _kernel_surrogate, _surrogate_fuses, spike_options
from .surrogate import Rect, Sigmoid, SurrogateFunctionBase

__all__ = ["KLIFNode", "CUBALIFNode", "LIAFNode", "ComplementaryLIFNode", "GatedLIFNode"]


def _materialize(node: nn.Module, name: str, like: Tensor) -> Tensor:
    """The state ``name`` of ``node`` as a float32 tensor shaped like ``like`` (the materialized v): a float (after
    ``reset()``) is filled in; a stored tensor must already have that shape and device."""
    value = getattr(node, name)
    if not isinstance(value, Tensor):
        return torch.full(like.shape, value, dtype=torch.float32, device=like.device)
    cls = type(node).__name__
    if value.shape != like.shape:
        raise ValueError(f"{cls}: the stored state {name} has shape {tuple(value.shape)} but this input needs "
                         f"{tuple(like.shape)}; call spikeops.functional.reset_net(net) (or node.reset()) between "
                         "inputs of different shapes")
    if value.device != like.device:
        raise ValueError(f"{cls}: the stored state {name} is on {value.device} but the input is on {like.device}; "
                         "call spikeops.functional.reset_net(net) after moving the network")
    return value


def _check_param_device(node: nn.Module, param: Tensor, name: str, device: torch.device) -> None:
    if param.device != device:
        raise ValueError(f"{type(node).__name__}: the parameter {name} is on {param.device} but the input is on "
                         f"{device}; move the module with .to(device)")


def _lif_charge_div(v: Tensor, x: Tensor, tau: float, decay_input: bool, v_reset: Optional[float]) -> Tensor:
    """SpikingJelly's LIF charge, dividing by tau (a float32 division, not a multiplication by 1/tau)."""
    vr = 0.0 if v_reset is None else v_reset
    if decay_input:
        return v + (x - (v - vr)) / tau
    return v - (v - vr) / tau + x


class KLIFNode(BaseNode):
    """K-based LIF (KLIF, Jiang & Zhang 2023) with a learnable scalar ``k`` (initialised to 1).

    Per step (Vr = v_reset, or 0 with the soft reset; the division by tau is a float32 division)::

        H = V + (X - (V - Vr)) / tau        (decay_input=True)
        H = V - (V - Vr) / tau + X          (decay_input=False)
        F = relu(k * H)
        S = heaviside(F - v_threshold)      (surrogate argument u = F - v_threshold)
        scale_reset=False:  V = (1 - S) F + S v_reset          or  V = F - S v_threshold
        scale_reset=True:   V = (1 - S) (F / k) + S v_reset    or  V = F / k - S (v_threshold / k)
        (S in the reset is S.detach() with detach_reset=True)

    Args:
        scale_reset (bool): reset in the unscaled domain (F / k). Default False.
        tau (float): membrane time constant, > 1. Default 2.0.
        decay_input (bool): whether the input is divided by tau too. Default True.
        v_threshold, v_reset, surrogate_function, detach_reset, step_mode, store_v_seq, spike_dtype,
        spike_tensor: as :class:`~spikeops.neuron.BaseNode` (the last two are spikeops' additions).
    """

    def __init__(self, scale_reset: bool = False, tau: float = 2.0, decay_input: bool = True,
                 v_threshold: float = 1.0, v_reset: Optional[float] = 0.0,
                 surrogate_function: Optional[SurrogateFunctionBase] = None, detach_reset: bool = False,
                 step_mode: str = "s", store_v_seq: bool = False, spike_dtype: Optional[torch.dtype] = None,
                 spike_tensor: bool = False):
        name = type(self).__name__
        tau = _float32(tau, f"{name}: tau", above_one=True)
        super().__init__(v_threshold, v_reset, surrogate_function, detach_reset, step_mode, "torch",
                         store_v_seq, spike_dtype, spike_tensor)
        self.scale_reset = _flag(scale_reset, f"{name}: scale_reset")
        self.tau = tau
        self.decay_input = _flag(decay_input, f"{name}: decay_input")
        self.k = nn.Parameter(torch.as_tensor(1.0))

    _neuron_kind = NeuronKind.KLIF

    def _extra(self) -> list:
        return [1.0 if self.scale_reset else 0.0]

    def _learnable_tensor(self, device: torch.device) -> Tensor:
        _check_param_device(self, self.k, "k", device)
        return self.k.float().reshape(1)

    def _fire_input(self, saved: Tensor) -> Tensor:
        return torch.relu(self.k.detach().float() * saved[0]) - self.v_threshold  # F - v_threshold from H

    def neuronal_charge(self, x: Tensor) -> None:
        _check_param_device(self, self.k, "k", x.device)
        h = _lif_charge_div(self.v, x, self.tau, self.decay_input, self.v_reset)
        self.v = torch.relu(self.k * h)

    def neuronal_reset(self, spike: Tensor) -> None:
        if not self.scale_reset:
            return super().neuronal_reset(spike)
        spike_d = spike.detach() if self.detach_reset else spike
        v = self.v / self.k
        if self.v_reset is None:
            self.v = self.jit_soft_reset(v, spike_d, self.v_threshold / self.k)
        else:
            self.v = self.jit_hard_reset(v, spike_d, self.v_reset)

    def extra_repr(self) -> str:
        return (f"scale_reset={self.scale_reset}, tau={self.tau}, decay_input={self.decay_input}, "
                + super().extra_repr())


class CUBALIFNode(BaseNode):
    """Current-based LIF (SpikingJelly's ``CUBALIFNode``): a synaptic current ``c`` and the potential ``v``.

    Per step::

        C = C * c_decay + X
        H = V * v_decay + C
        S = heaviside(H - v_threshold)      (surrogate argument u = H - v_threshold)
        V = (1 - S) H + S v_reset  (hard)   or   V = H - S v_threshold  (soft, v_reset=None)

    States: ``v`` (initially v_reset, 0 with the soft reset) and ``c`` (initially 0).

    Args:
        c_decay (float): decay factor of the current. Default 0.5.
        v_decay (float): decay factor of the potential. Default 0.75.
        v_threshold (float): Default 0.5.
        v_reset (float or None): Default 0.0.
        surrogate_function: Default ``surrogate.Rect()``.
        detach_reset, step_mode, backend, store_v_seq, spike_dtype, spike_tensor: as
            :class:`~spikeops.neuron.BaseNode`. SpikingJelly's constructor stops at ``surrogate_function`` (its
            instances set these as attributes); spikeops also takes them as keyword arguments.
    """

    _memories = BaseNode._memories + ("c",)

    def __init__(self, c_decay: float = 0.5, v_decay: float = 0.75, v_threshold: float = 0.5,
                 v_reset: Optional[float] = 0.0, surrogate_function: Optional[SurrogateFunctionBase] = None,
                 detach_reset: bool = False, step_mode: str = "s", backend: str = "torch",
                 store_v_seq: bool = False, spike_dtype: Optional[torch.dtype] = None, spike_tensor: bool = False):
        name = type(self).__name__
        c_decay = _float32(c_decay, f"{name}: c_decay")
        v_decay = _float32(v_decay, f"{name}: v_decay")
        if surrogate_function is None:
            surrogate_function = Rect()
        super().__init__(v_threshold, v_reset, surrogate_function, detach_reset, step_mode, backend,
                         store_v_seq, spike_dtype, spike_tensor)
        self.c_decay = c_decay
        self.v_decay = v_decay
        self.c: Union[float, Tensor] = 0.0

    _neuron_kind = NeuronKind.CUBALIF
    _state_names = ("v", "c")

    def _extra(self) -> list:
        return [self.c_decay, self.v_decay]

    def reset(self) -> None:
        super().reset()
        self.c = 0.0

    def detach(self) -> None:
        super().detach()
        if isinstance(self.c, Tensor):
            self.c = self.c.detach()

    def v_float_to_tensor(self, x: Tensor) -> None:
        super().v_float_to_tensor(x)
        self.c = _materialize(self, "c", self.v)

    def neuronal_charge(self, x: Tensor) -> None:
        self.c = self.c * self.c_decay + x
        self.v = self.v * self.v_decay + self.c

    def extra_repr(self) -> str:
        return f"c_decay={self.c_decay}, v_decay={self.v_decay}, " + super().extra_repr()


class LIAFNode(LIFNode):
    """Leaky integrate and analog fire (LIAF-Net, Wu et al. 2020): a LIF whose output is ``act`` of the charged
    potential instead of its spike; the spike still drives the reset.

    Per step (the LIF charge of :class:`~spikeops.neuron.LIFNode`, 1/tau applied as a float32 multiplier)::

        H = V + (X - (V - Vr)) / tau  (decay_input)   or   H = V - (V - Vr) / tau + X
        Y = act(H - v_threshold)  (threshold_related=True)   or   Y = act(H)
        S = heaviside(H - v_threshold)      (surrogate argument u = H - v_threshold; S is not returned)
        V = (1 - S) H + S v_reset  (hard)   or   V = H - S v_threshold  (soft); S detached with detach_reset

    The output Y is analog: ``spike_dtype=torch.uint8`` and ``spike_tensor=True`` are refused.

    Args:
        act (callable): the activation applied to the charged potential (e.g. ``torch.relu``).
        threshold_related (bool): apply ``act`` to ``H - v_threshold`` (True) or to ``H`` (False).
        *args, **kwargs: :class:`~spikeops.neuron.LIFNode`'s arguments.
    """

    # The fused LIF kernel (set here so that this class's _step, the loop's, counts as the model's own); the output
    # is act of its saved H, whose gradient the kernel's backward takes back into the recurrence.
    _neuron_kind = NeuronKind.LIF
    _saved_output = True

    def __init__(self, act: Callable, threshold_related: bool, *args, **kwargs):
        name = type(self).__name__
        if not callable(act):
            raise TypeError(f"{name}: act must be callable (a function of the charged potential, e.g. "
                            f"torch.relu), got {type(act).__name__}")
        threshold_related = _flag(threshold_related, f"{name}: threshold_related")
        super().__init__(*args, **kwargs)
        if self.spike_dtype == torch.uint8 or self.spike_tensor:
            raise ValueError(f"{name}: the output act(H) is analog, not 0/1 spikes; spike_dtype must be None or a "
                             "float dtype and spike_tensor False")
        self.act = act
        self.threshold_related = threshold_related

    def _step(self, x: Tensor) -> Tensor:
        self.v_float_to_tensor(x)
        self.neuronal_charge(x)
        y = self.act(self.v - self.v_threshold if self.threshold_related else self.v)
        spike = self.neuronal_fire()
        self.neuronal_reset(spike)
        return y

    def _output(self, spike_seq: Tensor, saved: Tensor, x_seq: Tensor) -> Tensor:
        h = saved.view(x_seq.shape)  # [1, T, N]: H, as a view (no select and its zero-filled backward)
        return self._present(self.act(h - self.v_threshold if self.threshold_related else h), x_seq.dtype)

    def extra_repr(self) -> str:
        return f"threshold_related={self.threshold_related}, " + super().extra_repr()


class ComplementaryLIFNode(BaseNode):
    """Complementary LIF (CLIF, Huang et al. 2024): a soft-reset LIF with a complementary potential ``m``.

    Per step (no input decay, soft reset; the divisions by tau are float32 divisions)::

        H = V - (V - 0) / tau + X
        S = heaviside(H - v_threshold)      (surrogate argument u = H - v_threshold)
        M = M * sigmoid(H / tau) + S
        V = H - S * (v_threshold + sigmoid(M))

    States: ``v`` and ``m``, both initially 0. There is no ``v_reset`` and no ``detach_reset`` (as in
    SpikingJelly, the reset always carries the gradient). ``store_state_seqs=True`` keeps
    ``state_seqs = [v_seq, m_seq]`` (each [T, N, *]) after a multi-step call; single-step calls do not record them.

    Args:
        tau (float): membrane time constant, > 1. Default 2.0.
        v_threshold (float): Default 1.0.
        surrogate_function: Default ``surrogate.Rect(alpha=1.0)``.
        step_mode (str): 's' or 'm'. Default 's'.
        store_state_seqs (bool): Default False.
        spike_dtype, spike_tensor: as :class:`~spikeops.neuron.BaseNode` (spikeops' additions).
    """

    _memories = BaseNode._memories + ("m", "state_seqs")

    def __init__(self, tau: float = 2.0, v_threshold: float = 1.0,
                 surrogate_function: Optional[SurrogateFunctionBase] = None, step_mode: str = "s",
                 store_state_seqs: bool = False, spike_dtype: Optional[torch.dtype] = None,
                 spike_tensor: bool = False):
        name = type(self).__name__
        tau = _float32(tau, f"{name}: tau", above_one=True)
        if surrogate_function is None:
            surrogate_function = Rect(alpha=1.0)
        super().__init__(v_threshold, None, surrogate_function, False, step_mode, "torch", False, spike_dtype,
                         spike_tensor)
        self.tau = tau
        self.m: Union[float, Tensor] = 0.0
        self.store_state_seqs = store_state_seqs

    _neuron_kind = NeuronKind.ComplementaryLIF
    _state_names = ("v", "m")

    def _fused(self) -> bool:
        return not self.store_state_seqs and super()._fused()  # state_seqs is recorded by the step loop

    @property
    def store_state_seqs(self) -> bool:
        """Whether a multi-step call keeps ``state_seqs = [v_seq, m_seq]``; setting it clears ``state_seqs``."""
        return self._store_state_seqs

    @store_state_seqs.setter
    def store_state_seqs(self, value: bool) -> None:
        self._store_state_seqs = _flag(value, f"{type(self).__name__}: store_state_seqs")
        self.state_seqs = None

    def reset(self) -> None:
        super().reset()
        self.m = 0.0
        self.state_seqs = None

    def detach(self) -> None:
        super().detach()
        if isinstance(self.m, Tensor):
            self.m = self.m.detach()
        if self.state_seqs is not None:
            self.state_seqs = [s.detach() for s in self.state_seqs]

    def v_float_to_tensor(self, x: Tensor) -> None:
        super().v_float_to_tensor(x)
        self.m = _materialize(self, "m", self.v)

    def neuronal_charge(self, x: Tensor) -> None:
        self.v = self.v - (self.v - 0.0) / self.tau + x

    def neuronal_reset(self, spike: Tensor) -> None:
        h = self.v
        self.m = self.m * torch.sigmoid(h / self.tau) + spike
        self.v = h - spike * (self.v_threshold + torch.sigmoid(self.m))

    def _loop(self, x_seq: Tensor) -> Tensor:
        if not self.store_state_seqs:
            return super()._loop(x_seq)
        if x_seq.shape[0] == 0:
            out = super()._loop(x_seq)
            empty = torch.empty(x_seq.shape, dtype=torch.float32, device=x_seq.device)
            self.state_seqs = [empty, empty.clone()]
            return out
        spikes, vs, ms = [], [], []
        for x in x_seq:
            spikes.append(self._step(x))
            vs.append(self.v)
            ms.append(self.m)
        if self.store_v_seq:
            self.v_seq = torch.stack(vs)
        self.state_seqs = [torch.stack(vs), torch.stack(ms)]
        return self._present(torch.stack(spikes), x_seq.dtype)

    def extra_repr(self) -> str:
        return f"tau={self.tau}, store_state_seqs={self.store_state_seqs}, " + super().extra_repr()


def _open_unit(value, what: str) -> float:
    """A float in (0, 1): the GLIF initial values are stored as their logit -log(1 / value - 1)."""
    v = _float32(value, what)
    if not 0.0 < v < 1.0:
        raise ValueError(f"{what} must be in (0, 1) (it is stored as its logit), got {v}")
    return v


def _positive_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be an int >= 1, got {value!r}")
    return value


class GatedLIFNode(MemoryModule):
    """Gated LIF (GLIF, Yao et al. 2022): every membrane quantity is learnable and three gates mix the LIF
    variants. Multi-step only, exactly ``T`` steps per call.

    Parameters (each of shape ``()``, or ``(inplane,)`` for channel-wise GLIF; the equations use their sigmoid):
    ``alpha``, ``beta``, ``gamma`` (gates, initialised uniform in (-0.1, 0.1)), ``tau``, ``v_threshold``,
    ``linear_decay``, ``v_subreset``, and ``conduct`` of shape ``(T, *)``, all initialised to the logit of their
    ``init_*`` value. With a = sigmoid(alpha) etc., per step t (S starts at 0 in every call, V persists)::

        I = X * (1 - b * (1 - conduct[t]))
        H = ((1 - a * (1 - tau)) * V - (1 - a) * linear_decay) + I
        H = H - (1 - a * (1 - tau)) * V * g * S - (1 - g) * v_subreset * S      (S: the previous step's spike)
        S = heaviside(H - v_threshold)      (surrogate argument u = H - v_threshold)
        V = H

    States: ``v`` (initially 0) and ``u`` (equal to ``v`` after a call, as in SpikingJelly).

    It runs the fused kernel (8 bytes saved per neuron-step for the backward: H and u), with the gradient of every
    parameter, and the spike S fed to the next step without detach, as SpikingJelly. SpikingJelly's step loop runs
    instead only for a surrogate that is not a Heaviside step (``spiking=False``, PoissonPass, ...), for a
    surrogate without a kernel formula under ``torch.compile``, and for a user's function that does not spike at
    u >= 0.

    Args:
        T (int): number of time steps of every call.
        inplane (int or None): channels; None: layer-wise (scalar) parameters, else channel-wise ones, applied to
            dimension 2 of ``x_seq`` [T, N, C, *].
        init_linear_decay (float or None): in (0, 1); None: ``init_v_threshold / (T * 2)``.
        init_v_subreset (float or None): in (0, 1); None: ``init_v_threshold``.
        init_tau (float): in (0, 1). Default 0.25.
        init_v_threshold (float): in (0, 1). Default 0.5.
        init_conduct (float): in (0, 1). Default 0.5.
        surrogate_function: Default ``surrogate.Sigmoid()``.
        step_mode (str): only 'm'.
        spike_dtype, spike_tensor: as :class:`~spikeops.neuron.BaseNode` (spikeops' additions).
    """

    _memories = ("v", "u")

    def __init__(self, T: int, inplane: Optional[int] = None, init_linear_decay: Optional[float] = None,
                 init_v_subreset: Optional[float] = None, init_tau: float = 0.25, init_v_threshold: float = 0.5,
                 init_conduct: float = 0.5, surrogate_function: Optional[SurrogateFunctionBase] = None,
                 step_mode: str = "m", spike_dtype: Optional[torch.dtype] = None, spike_tensor: bool = False):
        super().__init__()
        name = type(self).__name__
        T = _positive_int(T, f"{name}: T")
        if inplane is not None:
            inplane = _positive_int(inplane, f"{name}: inplane")
        init_tau = _open_unit(init_tau, f"{name}: init_tau")
        init_v_threshold = _open_unit(init_v_threshold, f"{name}: init_v_threshold")
        init_conduct = _open_unit(init_conduct, f"{name}: init_conduct")
        init_linear_decay = init_v_threshold / (T * 2) if init_linear_decay is None else \
            _open_unit(init_linear_decay, f"{name}: init_linear_decay")
        init_v_subreset = init_v_threshold if init_v_subreset is None else \
            _open_unit(init_v_subreset, f"{name}: init_v_subreset")
        if surrogate_function is None:
            surrogate_function = Sigmoid()
        if not callable(surrogate_function):
            raise TypeError(f"{name}: surrogate_function must be callable, got {type(surrogate_function).__name__}")
        self.spike_dtype, self.spike_tensor = spike_options(name, spike_dtype, spike_tensor)
        self.surrogate_function = surrogate_function
        self.step_mode = step_mode
        self.T = T
        self.inplane = inplane
        self.v: Union[float, Tensor] = 0.0
        self.u: Union[float, Tensor] = 0.0
        shape = () if inplane is None else (inplane,)
        # SpikingJelly draws the gates with numpy's global generator; torch's gives the same distribution and
        # follows torch.manual_seed.
        self.alpha, self.beta, self.gamma = [
            nn.Parameter((0.2 * (torch.rand(shape, dtype=torch.float64) - 0.5)).float()) for _ in range(3)]

        def logit(p: float, size: tuple) -> nn.Parameter:
            return nn.Parameter(torch.full(size, -math.log(1 / p - 1), dtype=torch.float))

        self.tau = logit(init_tau, shape)
        self.v_threshold = logit(init_v_threshold, shape)
        self.linear_decay = logit(init_linear_decay, shape)
        self.v_subreset = logit(init_v_subreset, shape)
        self.conduct = logit(init_conduct, (T, *shape))

    @property
    def step_mode(self) -> str:
        return self._step_mode

    @step_mode.setter
    def step_mode(self, value: str) -> None:
        name = type(self).__name__
        check_step_mode(value, name)
        if value != "m":
            raise ValueError(f"{name}: step_mode must be 'm' (the conduct gate is per time step, so a call runs "
                             f"all T steps of x_seq [T, N, *]), got {value!r}")
        self._step_mode = value

    def reset(self) -> None:
        self.v = 0.0
        self.u = 0.0

    def detach(self) -> None:
        if isinstance(self.v, Tensor):
            self.v = self.v.detach()
        if isinstance(self.u, Tensor):
            self.u = self.u.detach()

    def extra_repr(self) -> str:
        return (f"T={self.T}, inplane={self.inplane}, step_mode={self.step_mode}, spike_dtype={self.spike_dtype}"
                + (", spike_tensor=True" if self.spike_tensor else ""))

    def _check_input(self, x_seq) -> None:
        name = type(self).__name__
        _checks.tensor(x_seq, "x_seq", name, _checks.FLOAT_DTYPES)
        if x_seq.dim() < 2 or x_seq.shape[0] != self.T:
            raise ValueError(f"{name}: x_seq must be [T, N, *] with T = {self.T} (the T given to the constructor), "
                             f"got shape {tuple(x_seq.shape)}")
        if self.inplane is not None and (x_seq.dim() < 3 or x_seq.shape[2] != self.inplane):
            raise ValueError(f"{name}: channel-wise GLIF (inplane={self.inplane}) takes x_seq [T, N, C, *] with "
                             f"C = {self.inplane}, got shape {tuple(x_seq.shape)}")
        if x_seq.device.type not in ("cpu", "cuda"):
            raise ValueError(f"{name}: x_seq must be on a cpu or cuda device, got {x_seq.device}")
        for pname, p in self.named_parameters(recurse=False):
            _check_param_device(self, p, pname, x_seq.device)

    def _gate(self, p: Tensor, step_dim: int) -> Tensor:
        """sigmoid(p) shaped to broadcast over one step [N, C, *] (channel-wise) or as a scalar (layer-wise)."""
        if self.inplane is None:
            return p.sigmoid()
        return p.sigmoid().view(-1, *([1] * (step_dim - 2)))

    def forward(self, x_seq: Tensor) -> Tensor:
        """x_seq [T, N, *] (channel-wise: [T, N, C, *]) -> spikes [T, N, *]."""
        self._check_input(x_seq)
        if not _surrogate_fuses(self.surrogate_function):
            return self._loop(x_seq)
        return self._run(x_seq)

    def _gates(self, d: int) -> tuple:
        """sigmoid of alpha, beta, gamma, tau, v_threshold, linear_decay, v_subreset (see _gate)."""
        return tuple(self._gate(p, d) for p in (self.alpha, self.beta, self.gamma, self.tau, self.v_threshold,
                                                self.linear_decay, self.v_subreset))

    def _current(self, x_seq: Tensor, beta: Tensor) -> Tensor:
        """I = X (1 - b (1 - conduct[t])) for every step, computed as SpikingJelly's step does: layer-wise, a
        0-dimensional factor keeps a float16/bfloat16 X's dtype, so that case goes step by step."""
        conduct = self.conduct.sigmoid()
        if self.inplane is None:
            if x_seq.dtype != torch.float32:
                return torch.stack([x_seq[t] * (1 - beta * (1 - conduct[t])) for t in range(self.T)])
            conduct = conduct.view(-1, *([1] * (x_seq.dim() - 1)))
        else:
            conduct = conduct.view(self.T, 1, -1, *([1] * (x_seq.dim() - 3)))
        return x_seq * (1 - beta * (1 - conduct))

    def _run(self, x_seq: Tensor) -> Tensor:
        """The fused kernel (cpp/include/spikeops/detail/neurons/gated_lif.hpp): I computed here feeds x_seq, and
        the per-layer or per-channel K, D, G, R and v_threshold enter as constant states expanded to the
        neurons, so autograd reaches every parameter. S starts at 0."""
        T, step_shape = self.T, x_seq.shape[1:]
        N = math.prod(step_shape)
        a, b, g, tau, v_threshold, linear_decay, v_subreset = self._gates(x_seq.dim() - 1)
        current = self._current(x_seq, b)
        v = _materialize(self, "v", torch.empty(step_shape, dtype=torch.float32, device=x_seq.device))
        consts = [1 - a * (1 - tau), (1 - a) * linear_decay, g, (1 - g) * v_subreset, v_threshold]
        state_init = torch.stack([v.reshape(N), torch.zeros(N, dtype=torch.float32, device=x_seq.device)]
                                 + [c.expand(step_shape).reshape(N) for c in consts])
        needs_grad = torch.is_grad_enabled() and (current.requires_grad or state_init.requires_grad)
        sg = self.surrogate_function
        kernel_sg = _kernel_surrogate(sg)
        # As BaseNode._run: a surrogate without a kernel formula gives the backward σ'(u) from the saved u.
        surrogate_grad = None if kernel_sg or not needs_grad else functools.partial(BaseNode._surrogate_grad, self)
        kind, alpha, beta = (sg.kind_id, sg.alpha, sg.beta) if kernel_sg else (int(Sigmoid.kind), 4.0, 0.0)
        spike_seq, state_final, saved, _ = _ops.neuron_forward_ext(
            current.reshape(T, N).contiguous(), state_init, None, NeuronKind.GatedLIF, 0.0, None, 2.0, True, [],
            False, kind, alpha, beta, self.spike_dtype or x_seq.dtype, needs_grad or not kernel_sg, False,
            spike_tensor=self.spike_tensor, surrogate_grad=surrogate_grad)
        if not kernel_sg and not BaseNode._fires_heaviside(self, saved):
            return self._loop(x_seq)  # the user's function spikes otherwise: the step loop, state untouched
        self.v = state_final[0].view(step_shape)
        self.u = self.v
        return spike_seq.view(x_seq.shape)

    def _fire_input(self, saved: Tensor) -> Tensor:
        """u = H - v_threshold, the kernel's second saved value (BaseNode._surrogate_grad reads it)."""
        return saved[1]

    def _loop(self, x_seq: Tensor) -> Tensor:
        """SpikingJelly's step loop, for the surrogates the kernel cannot run (see _surrogate_fuses) and a user's
        function that does not spike as heaviside(u)."""
        d = x_seq.dim() - 1
        alpha, beta, gamma, tau, v_threshold, linear_decay, v_subreset = self._gates(d)
        v = _materialize(self, "v", torch.empty(x_seq.shape[1:], dtype=torch.float32, device=x_seq.device))
        spike = torch.zeros(x_seq.shape[1:], dtype=torch.float32, device=x_seq.device)
        spikes = []
        for t in range(self.T):
            conduct = self._gate(self.conduct[t], d)
            x = x_seq[t]
            input_current = x * (1 - beta * (1 - conduct))
            v_next = ((1 - alpha * (1 - tau)) * v - (1 - alpha) * linear_decay) + input_current
            v_next = v_next - (1 - alpha * (1 - tau)) * v * gamma * spike - (1 - gamma) * v_subreset * spike
            spike = self.surrogate_function(v_next - v_threshold)
            if not isinstance(spike, Tensor):
                raise TypeError(f"{type(self).__name__}: surrogate_function must return a tensor, got "
                                f"{type(spike).__name__}")
            v = v_next
            spikes.append(spike)
        self.v = v
        self.u = v
        # BaseNode's spike_dtype / spike_tensor handling reads only those two attributes and the class name.
        return BaseNode._present(self, torch.stack(spikes), x_seq.dtype)
