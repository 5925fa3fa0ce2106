"""Spiking neurons with SpikingJelly's names, arguments and defaults: IFNode, LIFNode, ParametricLIFNode.

All three run in the fused C++/CUDA kernels (one pass over memory per direction for a whole sequence).
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
from ._ops import _checks
from ._ops._common import _flag, _float32
from .base import MemoryModule, check_step_mode
from .surrogate import Sigmoid, SurrogateFunctionBase

__all__ = ["BaseNode", "IFNode", "LIFNode", "ParametricLIFNode"]

_FLOAT_DTYPES = _checks.FLOAT_DTYPES
_SPIKE_DTYPES = _FLOAT_DTYPES + (torch.uint8,)
_BACKENDS = ("torch", "cupy", "triton", "spikeops")


class BaseNode(MemoryModule):
    """Common machinery of the spiking neurons.

    Args:
        v_threshold (float): firing threshold. Default 1.0.
        v_reset (float or None): hard-reset potential; None selects the soft reset (subtract v_threshold).
        surrogate_function (SurrogateFunctionBase): surrogate gradient. Default ``surrogate.Sigmoid()``.
        detach_reset (bool): do not propagate gradient through the reset. Default False.
        step_mode (str): 's' or 'm'. Default 's'.
        backend (str): accepted for SpikingJelly compatibility ('torch', 'cupy', 'triton', 'spikeops'); the
            spikeops kernels run whatever it says, on CPU and CUDA.
        store_v_seq (bool): in multi-step mode keep ``v_seq`` ([T, N, *] float32). Default False.
        spike_dtype (torch.dtype or None): dtype of the spikes; None (default) uses the input's dtype.
            ``torch.uint8`` writes 1-byte spikes (no gradient flows through a uint8 tensor).
        spike_tensor (bool): return the spikes as a :class:`spikeops.SpikeTensor`: written and stored in
            1 byte each, while autograd sees a float tensor (of ``spike_dtype``, default the input's dtype), so
            the surrogate gradient still reaches this neuron. ``layer.Linear``/``layer.Conv2d`` read the bytes
            directly. Default False.
    """

    _neuron_kind = -1
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
        if not isinstance(surrogate_function, SurrogateFunctionBase):
            raise TypeError(f"{name}: surrogate_function must be a spikeops.surrogate function "
                            f"(e.g. surrogate.Sigmoid()), got {type(surrogate_function).__name__}")
        if not surrogate_function.has_kernel_formula:
            # Until neurons run such surrogates in a PyTorch step loop, say so rather than fail on a missing kind.
            raise NotImplementedError(f"{name}: surrogate_function {type(surrogate_function).__name__} has no kernel "
                                      "formula (its forward is not the Heaviside step); the fused neurons cannot "
                                      "run it")
        self.surrogate_function = surrogate_function
        self.detach_reset = _flag(detach_reset, f"{name}: detach_reset")
        self.step_mode = check_step_mode(step_mode, name)
        if backend not in _BACKENDS:
            raise ValueError(f"{name}: backend must be one of {_BACKENDS}, got {backend!r}")
        self.backend = backend
        self.store_v_seq = _flag(store_v_seq, f"{name}: store_v_seq")
        if spike_dtype is not None and spike_dtype not in _SPIKE_DTYPES:
            raise ValueError(f"{name}: spike_dtype must be None, torch.float32, torch.float16, torch.bfloat16 "
                             f"or torch.uint8, got {spike_dtype}")
        self.spike_dtype = spike_dtype
        self.spike_tensor = _flag(spike_tensor, f"{name}: spike_tensor")
        if self.spike_tensor and spike_dtype == torch.uint8:
            raise ValueError(f"{name}: spike_tensor=True already stores the spikes in 1 byte; spike_dtype must "
                             "then be None or the float dtype it presents to autograd, got torch.uint8")
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
        """Cut the autograd graph through the state (truncated BPTT)."""
        if isinstance(self.v, Tensor):
            self.v = self.v.detach()

    def extra_repr(self) -> str:
        return (f"v_threshold={self.v_threshold}, v_reset={self.v_reset}, detach_reset={self.detach_reset}, "
                f"step_mode={self.step_mode}, store_v_seq={self.store_v_seq}, spike_dtype={self.spike_dtype}"
                + (", spike_tensor=True" if self.spike_tensor else ""))

    def _finite(self, name: str, value) -> float:
        # A number float32 holds: the kernels compute in float32, so 1e39 must fail here, not at the first forward.
        return _float32(value, f"{type(self).__name__}: {name}")

    # ---- per-neuron-type hooks ----
    def _tau(self) -> float:
        return 2.0  # unused by IF and ParametricLIF

    def _decay_input(self) -> bool:
        return True

    def _decay_tensor(self, device: torch.device) -> Optional[Tensor]:
        return None

    # ---- forward ----
    def forward(self, x: Tensor) -> Tensor:
        if self.step_mode == "s":
            return self.single_step_forward(x)
        return self.multi_step_forward(x)

    def single_step_forward(self, x: Tensor) -> Tensor:
        """One step: x [N, *] -> spikes [N, *]."""
        self._check_input(x, "x", min_dim=0)
        spike_seq = self._run(x.unsqueeze(0), store_v_seq=False)
        return spike_seq[0]

    def multi_step_forward(self, x_seq: Tensor) -> Tensor:
        """T steps in one fused call: x_seq [T, N, *] -> spikes [T, N, *]."""
        self._check_input(x_seq, "x_seq", min_dim=1)
        return self._run(x_seq, store_v_seq=self.store_v_seq)

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

    def _state(self, like: Tensor) -> Tensor:
        """The membrane potential as a float32 tensor of the per-step shape of `like` ([N, *])."""
        shape = like.shape
        if isinstance(self.v, float):
            return torch.full(shape, self.v, dtype=torch.float32, device=like.device)
        if self.v.shape != shape:
            raise ValueError(f"{type(self).__name__}: the stored membrane potential has shape "
                             f"{tuple(self.v.shape)} but this input needs {tuple(shape)}; call "
                             "spikeops.functional.reset_net(net) (or node.reset()) between inputs of "
                             "different shapes")
        if self.v.device != like.device:
            raise ValueError(f"{type(self).__name__}: the stored membrane potential is on {self.v.device} "
                             f"but the input is on {like.device}; call spikeops.functional.reset_net(net) "
                             "after moving the network")
        return self.v

    def _run(self, x_seq: Tensor, store_v_seq: bool) -> Tensor:
        T = x_seq.shape[0]
        step_shape = x_seq.shape[1:]
        N = math.prod(step_shape)  # explicit: reshape(T, -1) is ambiguous when a size is 0
        v = self._state(x_seq[0] if T > 0 else x_seq.new_empty(step_shape))
        decay = self._decay_tensor(x_seq.device)
        spike_dtype = self.spike_dtype or x_seq.dtype
        needs_grad = torch.is_grad_enabled() and (
            x_seq.requires_grad or v.requires_grad or (decay is not None and decay.requires_grad))
        sg = self.surrogate_function
        forward = _ops.neuron_forward_spike_tensor if self.spike_tensor else _ops.neuron_forward
        spike_seq, v_final, _, v_seq = forward(
            _as_steps(x_seq, T, N), v.reshape(N).contiguous(), decay, self._neuron_kind,
            self.v_threshold, self.v_reset, self._tau(), self._decay_input(), self.detach_reset,
            sg.kind_id, sg.alpha, sg.beta, spike_dtype, needs_grad, store_v_seq)
        self.v = v_final.view(step_shape)
        if store_v_seq:
            self.v_seq = v_seq.view(x_seq.shape)
        return spike_seq.view(x_seq.shape)


def _as_steps(x_seq: Tensor, T: int, N: int) -> Tensor:
    """x_seq [T, *] as the [T, N] the kernels take: contiguous, or left a view when it repeats one contiguous row at
    every step (stride 0 over T, as ``x.expand(T, ...)`` of a static input gives), which they read in place."""
    x = x_seq.reshape(T, N)
    if x.stride(0) == 0 and (x.stride(1) == 1 or N <= 1):
        return x
    return x.contiguous()


class IFNode(BaseNode):
    """Integrate-and-fire neuron: H = V + X.

    Args: as :class:`BaseNode`.
    """

    _neuron_kind = 0


class LIFNode(BaseNode):
    """Leaky integrate-and-fire neuron.

    ``decay_input=True``: H = V + (X - (V - V_reset)) / tau; ``False``: H = V - (V - V_reset) / tau + X
    (V_reset taken as 0 with the soft reset). 1/tau is applied as a float32 multiplier.

    Args:
        tau (float): membrane time constant, > 1. Default 2.0.
        decay_input (bool): whether the input is divided by tau too. Default True.
        others: as :class:`BaseNode`.
    """

    _neuron_kind = 1

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

    def _tau(self) -> float:
        return self.tau

    def _decay_input(self) -> bool:
        return self.decay_input

    def extra_repr(self) -> str:
        return f"tau={self.tau}, decay_input={self.decay_input}, " + super().extra_repr()


class ParametricLIFNode(BaseNode):
    """LIF neuron with a learnable time constant: 1/tau is replaced by k = sigmoid(w).

    Args:
        init_tau (float): initial tau, > 1; ``w`` starts at ``-log(init_tau - 1)``. Default 2.0.
        decay_input (bool): as :class:`LIFNode`. Default True.
        others: as :class:`BaseNode`.
    """

    _neuron_kind = 2

    def __init__(self, init_tau: float = 2.0, decay_input: bool = True, v_threshold: float = 1.0,
                 v_reset: Optional[float] = 0.0, surrogate_function: Optional[SurrogateFunctionBase] = None,
                 detach_reset: bool = False, step_mode: str = "s", backend: str = "torch",
                 store_v_seq: bool = False, spike_dtype: Optional[torch.dtype] = None,
                 spike_tensor: bool = False):
        name = type(self).__name__
        init_tau = _float32(init_tau, f"{name}: init_tau", above_one=True)
        w = torch.as_tensor(-math.log(init_tau - 1.0), dtype=torch.float32)
        # The kernels take k = sigmoid(w) in float32 (what _decay_tensor computes), and the backward gets dH/dk
        # from H and V as (H - V) / k: k must not underflow (to 0, or to a float32 subnormal), which happens
        # for init_tau above about 8.5e37.
        if not torch.sigmoid(w).item() >= torch.finfo(torch.float32).tiny:
            raise ValueError(f"{name}: init_tau={init_tau} gives a decay 1/tau that underflows float32 "
                             f"(init_tau must be at most about 8.5e37)")
        super().__init__(v_threshold, v_reset, surrogate_function, detach_reset, step_mode, backend,
                         store_v_seq, spike_dtype, spike_tensor)
        self.decay_input = _flag(decay_input, f"{type(self).__name__}: decay_input")
        self.w = nn.Parameter(w)

    def _decay_input(self) -> bool:
        return self.decay_input

    def _decay_tensor(self, device: torch.device) -> Tensor:
        if self.w.device != device:
            raise ValueError(f"ParametricLIFNode: the parameter w is on {self.w.device} but the input is on "
                             f"{device}; move the module with .to(device)")
        return self.w.float().sigmoid().reshape(1)

    def extra_repr(self) -> str:
        return f"tau={1.0 / torch.sigmoid(self.w.detach()).item():.4f}, decay_input={self.decay_input}, " + \
            super().extra_repr()
