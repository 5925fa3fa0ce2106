"""The parallel spiking neurons of SpikingJelly 2.0 (Fang et al., 2023): PSN, MaskedPSN, SlidingPSN.

A PSN is not a recurrence: its charge is a learnable mixing of the inputs over time, H = W X + B with W [T, T]
and X the inputs as [T, N] (batch and features folded into N), followed by the Heaviside step S = Θ(H). So it runs
as one GEMM over T (``torch.addmm``) and spikeops' spike op (``spikeops::spike_fn``: Θ forward, the surrogate
derivative backward); autograd keeps H (and the GEMM's input X) for the backward. A surrogate without a kernel
formula (a user's ``autograd.Function``, a surrogate subclass with its own ``forward``, ``spiking=False``) is
called as a function on H instead, so its own forward and derivative are what run.

H is computed in the promoted dtype of the input and the parameters (float32 unless the module was converted);
the spikes come back in ``spike_dtype`` (default: the input's dtype) or as a :class:`spikeops.SpikeTensor`.
"""

from __future__ import annotations

import math
import numbers
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import _ops
from ._ops import _checks
from ._ops._common import _flag, _float32
from .base import MemoryModule, StepModule, check_step_mode
from .neuron import _kernel_surrogate, spike_options
from .spike_tensor import to_spike_tensor
from .surrogate import ATan

__all__ = ["PSN", "MaskedPSN", "SlidingPSN"]



def _positive_int(value, arg: str, owner: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{owner}: {arg} must be an int >= 1, got {value!r}")
    return int(value)


class _ParallelNeuron(nn.Module):
    """What the three share: the surrogate and spike form arguments, input checks, and the fire step."""

    def _init_spiking(self, surrogate_function, spike_dtype: Optional[torch.dtype], spike_tensor: bool) -> None:
        name = type(self).__name__
        if surrogate_function is None:
            surrogate_function = ATan()
        if not callable(surrogate_function):
            raise TypeError(f"{name}: surrogate_function must be callable: a spikeops.surrogate function "
                            f"(e.g. surrogate.ATan()) or a function of H, got {type(surrogate_function).__name__}")
        self.surrogate_function = surrogate_function
        self.spike_dtype, self.spike_tensor = spike_options(name, spike_dtype, spike_tensor)

    def _check_input(self, x, arg: str, layout: str, min_dim: int) -> None:
        name = type(self).__name__
        _checks.tensor(x, arg, name, _checks.FLOAT_DTYPES)
        if x.dim() < min_dim:
            raise ValueError(f"{name}: {arg} must be {layout}, got shape {tuple(x.shape)}")
        if x.device != self.weight.device:
            raise ValueError(f"{name}: {arg} is on {x.device} but the parameters are on {self.weight.device}; "
                             "move the module with .to(device)")

    def _mix(self, weight: Tensor, bias: Tensor, x2d: Tensor) -> Tensor:
        """H = bias + weight @ x2d in the promoted dtype of the input and the parameters."""
        dtype = torch.promote_types(x2d.dtype, weight.dtype)
        return torch.addmm(bias.to(dtype), weight.to(dtype), x2d.to(dtype))

    def _fire(self, h: Tensor, shape, x_dtype: torch.dtype) -> Tensor:
        """Θ(H) with the surrogate gradient, as [shape] spikes in spike_dtype / spike_tensor form."""
        sg = self.surrogate_function
        if _kernel_surrogate(sg):
            spike = _ops.spike_fn(h.contiguous(), sg.kind_id, sg.alpha, sg.beta)
            zero_one = True
        else:
            spike = sg(h)
            if not isinstance(spike, Tensor):
                raise TypeError(f"{type(self).__name__}: surrogate_function must return a tensor, got "
                                f"{type(spike).__name__}")
            zero_one = False
        spike = spike.view(shape)
        if (self.spike_tensor or self.spike_dtype == torch.uint8) and not zero_one:
            # 1-byte spikes hold only 0 and 1: a smooth output (spiking=False) would be truncated silently.
            if bool(((spike != 0) & (spike != 1)).any()):
                raise ValueError(f"{type(self).__name__}: spike_dtype=torch.uint8 and spike_tensor=True store 0/1 "
                                 "spikes, but surrogate_function returned other values; use a float spike_dtype")
        spike = spike.to(self.spike_dtype or x_dtype)
        return to_spike_tensor(spike) if self.spike_tensor else spike

    def _spike_repr(self) -> str:
        return (f", spike_dtype={self.spike_dtype}" if self.spike_dtype is not None else "") + \
            (", spike_tensor=True" if self.spike_tensor else "")


class PSN(_ParallelNeuron, StepModule):
    """Parallel spiking neuron: H = W X + B, S = Θ(H), over a whole sequence of T steps (multi-step only).

    Args:
        T (int): the number of time steps; the input must have exactly T steps.
        surrogate_function (callable): the spike function with its surrogate gradient. Default
            ``surrogate.ATan()``.
        spike_dtype (torch.dtype or None): dtype of the spikes; None (default) uses the input's dtype.
            ``torch.uint8`` writes 1-byte spikes (no gradient flows through them).
        spike_tensor (bool): return the spikes as a :class:`spikeops.SpikeTensor`. Default False.

    Parameters:
        weight: [T, T], Kaiming-uniform initialised (a = sqrt(5)), as SpikingJelly.
        bias: [T, 1], initialised to -1 (the threshold is -bias).

    Shape: x_seq [T, N, *] float32/float16/bfloat16 -> spikes [T, N, *].
    """

    def __init__(self, T: int, surrogate_function=None, spike_dtype: Optional[torch.dtype] = None,
                 spike_tensor: bool = False):
        super().__init__()
        self.T = _positive_int(T, "T", "PSN")
        self._init_spiking(surrogate_function, spike_dtype, spike_tensor)
        self.weight = nn.Parameter(torch.zeros([self.T, self.T]))
        self.bias = nn.Parameter(torch.zeros([self.T, 1]))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        nn.init.constant_(self.bias, -1.0)

    @property
    def step_mode(self) -> str:
        return "m"

    @step_mode.setter
    def step_mode(self, value: str) -> None:
        if value != "m":
            raise ValueError(f"PSN: supports step_mode 'm' only (its weight mixes all T steps), got {value!r}")

    def forward(self, x_seq: Tensor) -> Tensor:
        self._check_input(x_seq, "x_seq", f"[T, N, *] with T = {self.T}", 1)
        if x_seq.shape[0] != self.T:
            raise ValueError(f"PSN: x_seq must be [T, N, *] with T = {self.T}, got shape {tuple(x_seq.shape)}")
        h = self._mix(self.weight, self.bias, _steps(x_seq))
        return self._fire(h, x_seq.shape, x_seq.dtype)

    def extra_repr(self) -> str:
        return f"T={self.T}" + self._spike_repr()


class _QueuedPSN(_ParallelNeuron, MemoryModule):
    """MaskedPSN and SlidingPSN: both step modes, single-step mode keeping the last inputs in ``queue``."""

    def reset(self) -> None:
        self.queue = []

    def detach(self) -> None:
        self.queue = [q.detach() for q in self.queue]

    def forward(self, x: Tensor) -> Tensor:
        if self.step_mode == "s":
            return self.single_step_forward(x)
        return self.multi_step_forward(x)


class MaskedPSN(_QueuedPSN):
    """Masked PSN: H = (W ⊙ M_k(λ)) X + B, S = Θ(H), where M_k[i][j] = 1 for j <= i <= j + k - 1 (else 0) and
    M_k(λ) = λ M_k + (1 - λ) J (J all ones); λ >= 1 applies M_k fully.

    Train with λ growing from ``lambda_init`` to 1 (set ``self.lambda_ = ...``); once λ >= 1 step t reads only the
    last k inputs, and single-step mode can run it one step per call.

    Args:
        k (int): the order: how many recent steps each step reads once fully masked.
        T (int): the number of time steps.
        lambda_init (float): initial λ. Default 0.
        surrogate_function (callable): as :class:`PSN`. Default ``surrogate.ATan()``.
        step_mode (str): 's' (one step per call, [N, *], needs λ >= 1 and at most T calls between resets) or 'm'
            ([T, N, *]). Default 's'.
        spike_dtype, spike_tensor: as :class:`PSN`.

    Parameters and buffers: weight [T, T] (Kaiming uniform, a = sqrt(5)), bias [T, 1] (-1), ``_lambda_`` (λ, a
    scalar buffer), ``mask0`` (M_k) and ``mask1`` (J). State (single-step mode): ``time_step`` and ``queue``, the
    last k inputs flattened.
    """

    _memories = ("time_step", "queue")

    def __init__(self, k: int, T: int, lambda_init: float = 0.0, surrogate_function=None, step_mode: str = "s",
                 spike_dtype: Optional[torch.dtype] = None, spike_tensor: bool = False):
        super().__init__()
        self.k = k = _positive_int(k, "k", "MaskedPSN")
        self.T = T = _positive_int(T, "T", "MaskedPSN")
        self.step_mode = check_step_mode(step_mode, "MaskedPSN")
        self._init_spiking(surrogate_function, spike_dtype, spike_tensor)
        self.register_buffer("_lambda_", torch.as_tensor(_float32(lambda_init, "MaskedPSN: lambda_init")))
        self.weight = nn.Parameter(torch.zeros([T, T]))
        self.bias = nn.Parameter(torch.zeros([T, 1]))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        nn.init.constant_(self.bias, -1.0)
        mask1 = torch.ones([T, T])
        self.register_buffer("mask0", torch.tril(mask1) * torch.triu(mask1, -(k - 1)))
        self.register_buffer("mask1", mask1)
        self.time_step = 0
        self.queue: list = []

    @property
    def lambda_(self) -> Tensor:
        return self._lambda_

    @lambda_.setter
    def lambda_(self, value) -> None:
        self._lambda_.fill_(_float32(value, "MaskedPSN: lambda_"))

    @staticmethod
    def gen_masked_weight(lambda_: Tensor, mask0: Tensor, mask1: Tensor, weight: Tensor) -> Tensor:
        return (lambda_ * mask0 + (1.0 - lambda_) * mask1) * weight

    def masked_weight(self) -> Tensor:
        """W ⊙ M_k(λ) [T, T]. λ is clamped at 1 rather than branched on (no host sync, one graph under
        torch.compile); with λ = 1 the mix is M_k exactly, so this is SpikingJelly's ``weight * mask0``."""
        return self.gen_masked_weight(self._lambda_.clamp(max=1.0), self.mask0, self.mask1, self.weight)

    def reset(self) -> None:
        super().reset()
        self.time_step = 0

    def single_step_forward(self, x: Tensor) -> Tensor:
        """Step ``time_step`` of the sequence: x [N, *] -> spikes [N, *]."""
        self._check_input(x, "x", "[N, *]", 0)
        lam = float(self._lambda_)
        if not lam >= 1.0:
            raise ValueError(f"MaskedPSN: single-step mode needs lambda_ >= 1 (the mask fully applied, so a step "
                             f"reads only the last k inputs), got lambda_={lam}")
        if self.time_step >= self.T:
            raise OverflowError(f"MaskedPSN: already ran T={self.T} steps; call reset() (or "
                                "spikeops.functional.reset_net) before the next sequence")
        queue = _push(self.queue, x, self.k, "MaskedPSN")
        t = self.time_step
        row = self.masked_weight()[t:t + 1, t + 1 - len(queue):t + 1]
        h = self._mix(row, self.bias[t:t + 1], torch.stack(queue))
        spike = self._fire(h, x.shape, x.dtype)
        self.queue, self.time_step = queue, t + 1
        return spike

    def multi_step_forward(self, x_seq: Tensor) -> Tensor:
        """The whole sequence in one GEMM: x_seq [T, N, *] -> spikes [T, N, *] (the single-step state is not
        used or changed)."""
        self._check_input(x_seq, "x_seq", f"[T, N, *] with T = {self.T}", 1)
        if x_seq.shape[0] != self.T:
            raise ValueError(f"MaskedPSN: x_seq must be [T, N, *] with T = {self.T}, got shape "
                             f"{tuple(x_seq.shape)}")
        h = self._mix(self.masked_weight(), self.bias, _steps(x_seq))
        return self._fire(h, x_seq.shape, x_seq.dtype)

    def extra_repr(self) -> str:
        return f"step_mode={self.step_mode}, k={self.k}, lambda_={float(self._lambda_)}, T={self.T}" + \
            self._spike_repr()


class SlidingPSN(_QueuedPSN):
    """Sliding PSN: H[t] = Σ_{i=0}^{k-1} W_i X[t - k + 1 + i] + B (terms before step 0 are absent), S = Θ(H).

    Multi-step mode builds the [T, T] banded Toeplitz matrix of W (``gen_gemm_weight``) for any T and runs one
    GEMM (``backend='gemm'``), or a 1-D convolution over time (``backend='conv'``, as SpikingJelly before 2.0).

    Args:
        k (int): the order (the window length).
        exp_init (bool): True: W = (..., 1/4, 1/2, 1); False: Kaiming uniform (a = sqrt(5)). Default True.
        surrogate_function (callable): as :class:`PSN`. Default ``surrogate.ATan()``.
        step_mode (str): 's' ([N, *], one step per call, any number of steps) or 'm' ([T, N, *]). Default 's'.
        backend (str): multi-step computation, 'gemm' (default) or 'conv' (SpikingJelly 2.0 has no such argument
            and always uses the GEMM; older versions had both). The convolution, one channel over N sequences, is
            much slower than the GEMM on the CPU (bench/psn.py); it is kept for code written for those versions.
        spike_dtype, spike_tensor: as :class:`PSN`.

    Parameters: weight [k], bias a scalar (-1). State (single-step mode): ``queue``, the last k inputs flattened.
    """

    _memories = ("queue",)

    def __init__(self, k: int, exp_init: bool = True, surrogate_function=None, step_mode: str = "s",
                 backend: str = "gemm", spike_dtype: Optional[torch.dtype] = None, spike_tensor: bool = False):
        super().__init__()
        self.k = k = _positive_int(k, "k", "SlidingPSN")
        self.step_mode = check_step_mode(step_mode, "SlidingPSN")
        _checks.choice(backend, "backend", "SlidingPSN", self.supported_backends)
        self.backend = backend
        self._init_spiking(surrogate_function, spike_dtype, spike_tensor)
        if _flag(exp_init, "SlidingPSN: exp_init"):
            weight = torch.ones([k])
            for i in range(k - 2, -1, -1):
                weight[i] = weight[i + 1] / 2.0
        else:
            weight = torch.ones([1, k])
            nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
            weight = weight[0]
        self.weight = nn.Parameter(weight)
        self.bias = nn.Parameter(torch.as_tensor(-1.0))
        self.queue: list = []

    @property
    def supported_backends(self) -> tuple:
        return ("gemm", "conv")

    def gen_gemm_weight(self, T: int) -> Tensor:
        """The [T, T] matrix of the multi-step GEMM: row t holds W's last min(k, t + 1) entries, ending at column t
        (W[i][j] = weight[k - 1 - (i - j)] for 0 <= i - j < k, else 0)."""
        steps = torch.arange(T, device=self.weight.device)
        lag = steps[:, None] - steps[None, :]
        index = torch.where((lag >= 0) & (lag < self.k), self.k - 1 - lag, self.k)  # k: the appended zero
        return F.pad(self.weight, (0, 1))[index]

    def single_step_forward(self, x: Tensor) -> Tensor:
        """One step: x [N, *] -> spikes [N, *], from the last k inputs."""
        self._check_input(x, "x", "[N, *]", 0)
        queue = _push(self.queue, x, self.k, "SlidingPSN")
        w = self.weight[self.k - len(queue):].unsqueeze(0)
        h = self._mix(w, self.bias.reshape(1, 1), torch.stack(queue))
        spike = self._fire(h, x.shape, x.dtype)
        self.queue = queue
        return spike

    def multi_step_forward(self, x_seq: Tensor) -> Tensor:
        """x_seq [T, N, *] -> spikes [T, N, *], any T (the single-step state is not used or changed)."""
        self._check_input(x_seq, "x_seq", "[T, N, *]", 1)
        x2d = _steps(x_seq)
        # conv1d refuses an input shorter than its kernel; with T = 0 both backends give an empty H.
        if self.backend == "gemm" or x_seq.shape[0] == 0:
            h = self._mix(self.gen_gemm_weight(x_seq.shape[0]), self.bias, x2d)
        else:
            dtype = torch.promote_types(x2d.dtype, self.weight.dtype)
            # [T, N] -> [N, 1, T], k - 1 zeros before step 0: a causal correlation with W over time.
            x_nct = F.pad(x2d.to(dtype).t().unsqueeze(1), (self.k - 1, 0))
            h = F.conv1d(x_nct, self.weight.to(dtype).view(1, 1, -1)).squeeze(1).t() + self.bias.to(dtype)
        return self._fire(h, x_seq.shape, x_seq.dtype)

    def extra_repr(self) -> str:
        return f"step_mode={self.step_mode}, order={self.k}, backend={self.backend!r}" + self._spike_repr()


def _steps(x_seq: Tensor) -> Tensor:
    """x_seq [T, *] as [T, N] (explicit N: reshape(T, -1) is ambiguous when a size is 0)."""
    return x_seq.reshape(x_seq.shape[0], math.prod(x_seq.shape[1:]))


def _push(queue: list, x: Tensor, k: int, owner: str) -> list:
    """A new queue: the old one's last k - 1 entries then x flattened (a new list, so a saved state stays put)."""
    flat = x.reshape(-1)
    if queue:
        last = queue[-1]
        if last.shape != flat.shape or last.device != flat.device:
            raise ValueError(f"{owner}: the queued inputs have {last.numel()} elements on {last.device} but this "
                             f"input has {flat.numel()} on {flat.device}; call spikeops.functional.reset_net(net) "
                             "(or reset()) between inputs of different shapes")
    return queue[max(0, len(queue) - (k - 1)):] + [flat]
