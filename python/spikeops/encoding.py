"""Spike encoders: SpikingJelly's encoder modules and snnTorch's ``spikegen`` functions.

Modules (SpikingJelly 2.0 ``spikingjelly.activation_based.encoding`` names and semantics):

- :class:`PoissonEncoder`: one step per call, ``spike = (rand_like(x) <= x)``.
- :class:`LatencyEncoder`: stateful; the t-th call returns step ``t % T`` of a one-spike-per-input code whose
  firing time is earlier for larger inputs (``'linear'`` or ``'log'``).

Functions producing a whole sequence ``[T, N, *]`` at once (snnTorch ``snntorch.spikegen`` names and
semantics):

- :func:`rate`: Bernoulli (Poisson-like) spike trains, firing probability ``clamp(data * gain + offset, 0, 1)``
  per step, drawn for all T steps in one go (several times faster than T calls of ``torch.rand``).
- :func:`latency`: one spike per input at a time given by an RC (log) or linear code.
- :func:`delta`: a spike where the input changed by at least ``threshold`` since the previous step.

Every encoder takes a ``dtype``: the float dtypes, or ``torch.uint8`` / ``torch.bool`` for 1-byte spikes that
hold exactly the same information (spikes are exact 0/1).

Example::

    from spikeops import encoding
    x_seq = encoding.rate(images, num_steps=100)                  # [100, N, 1, 28, 28] float32 0/1
    x_u8 = encoding.rate(images, num_steps=100, dtype=torch.uint8)
    enc = encoding.PoissonEncoder()
    s = enc(images)                                               # one step, [N, 1, 28, 28]
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn

from .base import MemoryModule, check_step_mode

__all__ = ["PoissonEncoder", "LatencyEncoder", "rate", "latency", "delta"]

# Probabilities are compared with 15 random bits: P(spike) = round(p * 2^15) / 2^15 (|error| <= 2^-16),
# exactly 0 for p = 0 and exactly 1 for p = 1. One 64-bit draw gives 4 such numbers.
_RATE_BITS = 15
_RATE_ONE = 1 << _RATE_BITS


def _check_dtype(dtype: torch.dtype, fn: str) -> torch.dtype:
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"{fn}: dtype must be a torch.dtype (e.g. torch.float32 or torch.uint8), got {dtype!r}")
    if dtype.is_complex:
        raise TypeError(f"{fn}: dtype must be a real floating dtype, torch.uint8 or torch.bool, got {dtype}")
    return dtype


def _as_float(data, fn: str) -> Tensor:
    if not isinstance(data, Tensor):
        raise TypeError(f"{fn}: data must be a torch.Tensor, got {type(data).__name__}")
    return data if data.is_floating_point() else data.float()


def _check_real(value, arg: str, fn: str, positive: bool = False) -> float:
    """A finite real hyper-parameter (> 0 with ``positive``), or an error naming it."""
    if isinstance(value, (str, bytes, bool)) or value is None:
        raise TypeError(f"{fn}: {arg} must be a number, got {value!r}")
    try:
        v = float(value)
    except OverflowError:  # an int beyond any float
        raise ValueError(f"{fn}: {arg} must be a finite number, got an integer of {value.bit_length()} bits") from None
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{fn}: {arg} must be a number, got {type(value).__name__}") from None
    if not math.isfinite(v) or (positive and not v > 0):
        raise ValueError(f"{fn}: {arg} must be a finite number{' > 0' if positive else ''}, got {v}")
    return v


def _check_steps(num_steps, fn: str) -> int:
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"{fn}: num_steps must be an int >= 1, got {num_steps!r}")
    return num_steps


# ------------------------------------------------------------------------------------------------ modules

class PoissonEncoder(nn.Module):
    """SpikingJelly's Poisson encoder: ``spike = (rand_like(x) <= x)``, one time step per call.

    The input is the firing probability of each element and must lie in [0, 1] (SpikingJelly leaves this
    to the user; values outside just saturate). The encoder is stateless, so ``step_mode`` changes
    nothing: a [T, N, *] input gives T independent steps. To encode a whole sequence from one image in a
    single call, pass ``x.expand(T, *x.shape)`` or use :func:`rate` (same distribution, faster).

    Args:
        step_mode (str): 's' or 'm', accepted for SpikingJelly compatibility. Default 's'.
        dtype (torch.dtype, optional): dtype of the spikes; None (default) gives x's dtype, as SpikingJelly.
            ``torch.uint8`` gives 1-byte spikes.

    Shape:
        x: [*] float in [0, 1] -> spikes [*] of ``dtype``.
    """

    def __init__(self, step_mode: str = "s", dtype: Optional[torch.dtype] = None):
        super().__init__()
        self.step_mode = check_step_mode(step_mode, "PoissonEncoder")
        self.dtype = None if dtype is None else _check_dtype(dtype, "PoissonEncoder")

    def forward(self, x: Tensor) -> Tensor:
        if not isinstance(x, Tensor) or not x.is_floating_point():
            got = x.dtype if isinstance(x, Tensor) else type(x).__name__
            raise TypeError(f"PoissonEncoder: x must be a floating-point tensor of probabilities, got {got}")
        return torch.rand_like(x).le(x).to(self.dtype or x.dtype)

    def extra_repr(self) -> str:
        return f"step_mode={self.step_mode}, dtype={self.dtype}"


class LatencyEncoder(MemoryModule):
    """SpikingJelly's latency encoder: each input fires once, at a time that is earlier for larger inputs.

    Firing time of an input ``0 <= x <= 1`` over a period of ``T`` steps (SpikingJelly 2.0,
    ``spikingjelly.activation_based.encoding.LatencyEncoder``):

    - ``enc_function='linear'``: ``t_f = round((T - 1) * (1 - x))``;
    - ``enc_function='log'``: ``t_f = round(T - 1 - ln(alpha * x + 1))`` with ``alpha = exp(T - 1) - 1``, so
      that ``x = 1`` fires at t = 0 and ``x = 0`` at t = T - 1. It is evaluated in float64 as the equal
      ``-ln(x + (1 - x) exp(1 - T))``, which never overflows (``alpha`` itself does, in float64 for T >= 711 and
      in float32 for T >= 90).

    It is stateful like SpikingJelly's: the first call encodes its input; the t-th call returns step
    ``t % T`` of that code (later inputs are ignored until :meth:`reset`, and may be None, as in SpikingJelly).
    A later input of another shape or device than the encoded one raises ValueError instead of silently getting
    the old code: call :meth:`reset` (or ``functional.reset_net``) between batches. In ``step_mode='m'`` a call
    with ``x_seq`` [T', N, *] returns the next T' steps, [T', N, *]. :meth:`encode` returns the whole [T, *]
    code of an input without touching the state.

    Args:
        T (int): the encoding period (latest firing time + 1), >= 1.
        enc_function (str): 'linear' (default) or 'log'.
        step_mode (str): 's' (default) or 'm'.
        dtype (torch.dtype, optional): dtype of the spikes; None (default) gives x's dtype.
    """

    _memories = ("spike", "t")

    def __init__(self, T: int, enc_function: str = "linear", step_mode: str = "s",
                 dtype: Optional[torch.dtype] = None):
        super().__init__()
        if isinstance(T, bool) or not isinstance(T, int) or T < 1:
            raise ValueError(f"LatencyEncoder: T must be an int >= 1, got {T!r}")
        if enc_function not in ("linear", "log"):
            raise ValueError(f"LatencyEncoder: enc_function must be 'linear' or 'log', got {enc_function!r}")
        self.T = T
        self.enc_function = enc_function
        if enc_function == "log":
            # SpikingJelly's attribute; the code itself does not use it (see encode).
            self.alpha = math.expm1(T - 1.0) if T - 1.0 < 709.0 else math.inf
        self.step_mode = check_step_mode(step_mode, "LatencyEncoder")
        self.dtype = None if dtype is None else _check_dtype(dtype, "LatencyEncoder")
        self.spike: Optional[Tensor] = None
        self.t = 0

    def reset(self) -> None:
        """Forget the encoded input: the next call encodes anew and returns step 0."""
        self.spike = None
        self.t = 0

    def detach(self) -> None:
        """Nothing to detach: the code carries no gradient."""

    def encode(self, x: Tensor) -> Tensor:
        """The whole code of x: [*] in [0, 1] -> [T, *] spikes (one spike per element)."""
        if not isinstance(x, Tensor) or not x.is_floating_point():
            got = x.dtype if isinstance(x, Tensor) else type(x).__name__
            raise TypeError(f"LatencyEncoder: x must be a floating-point tensor in [0, 1], got {got}")
        if x.numel() and (bool((x < 0).any()) or bool((x > 1).any()) or bool(x.isnan().any())):
            raise ValueError("LatencyEncoder: x must lie in [0, 1]")
        if self.enc_function == "log":
            # T - 1 - ln(alpha x + 1) = -ln(x + (1 - x) e^(1-T)), since alpha x + 1 = e^(T-1) (x + (1 - x) e^(1-T)).
            # For x = 0 and large T the exponential underflows to 0 and ln gives +inf; the code is T - 1 there.
            xd = x.double()
            t_f = torch.log(xd + (1.0 - xd) * math.exp(1.0 - self.T)).neg_().clamp_(0.0, self.T - 1.0).round().long()
        else:
            t_f = ((self.T - 1.0) * (1.0 - x)).round().long()
        steps = torch.arange(self.T, device=x.device).view((self.T,) + (1,) * x.dim())
        return (t_f.unsqueeze(0) == steps).to(self.dtype or x.dtype)

    def single_step_forward(self, x: Optional[Tensor]) -> Tensor:
        if self.spike is None:
            self.spike = self.encode(x)
        elif isinstance(x, Tensor) and (x.shape != self.spike.shape[1:] or x.device != self.spike.device):
            raise ValueError(f"LatencyEncoder: x has shape {tuple(x.shape)} on {x.device}, but the code in use was "
                             f"encoded from an input of shape {tuple(self.spike.shape[1:])} on {self.spike.device} "
                             "(the encoder keeps its first input's code until reset()); call encoder.reset() or "
                             "spikeops.functional.reset_net(net) between batches")
        out = self.spike[self.t]
        self.t = (self.t + 1) % self.T
        return out

    def multi_step_forward(self, x_seq: Tensor) -> Tensor:
        return torch.stack([self.single_step_forward(x) for x in x_seq.unbind(0)])

    def forward(self, x: Tensor) -> Tensor:
        if self.step_mode == "s":
            return self.single_step_forward(x)
        return self.multi_step_forward(x)

    def extra_repr(self) -> str:
        return f"T={self.T}, enc_function={self.enc_function!r}, step_mode={self.step_mode}, dtype={self.dtype}"


# ------------------------------------------------------------------------------------------------ functions

def _bernoulli_fast(p: Tensor, shape, dtype: torch.dtype, generator: Optional[torch.Generator]) -> Tensor:
    """Spikes of `shape` (= [T] + p.shape, or p.shape) with P(1) = p quantised to 2^-15."""
    # threshold q - 1 with q = round(p * 2^15) in [0, 2^15]: spike where r <= q - 1, i.e. r < q, r uniform
    # on [0, 2^15); q - 1 fits int16 ([-1, 2^15 - 1]), so p = 0 never fires and p = 1 always does.
    thr = torch.round(p.float() * _RATE_ONE).sub_(1).to(torch.int16)
    n = math.prod(shape)
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=p.device)
    words.random_(-(2 ** 63), None, generator=generator)  # 64 uniform bits each
    r = words.view(torch.int16)[:n].view(shape)
    r.bitwise_and_(_RATE_ONE - 1)
    out = torch.empty(shape, dtype=dtype, device=p.device)
    return torch.le(r, thr, out=out)


def _bernoulli_static(p: Tensor, T: int, dtype: torch.dtype, generator: Optional[torch.Generator]) -> Tensor:
    """[T, *p.shape] spikes of probability p (the same at every step)."""
    shape = (T,) + tuple(p.shape)
    M = p.numel()
    if p.device.type == "cpu" and M > 0 and T > 1:
        # Elements with p = 0 or p = 1 need no random numbers (they never / always fire). Inputs such as MNIST
        # are mostly 0, so drawing only for the others, and copying them into place, is several times faster.
        flat = p.reshape(M)
        active = ((flat > 0) & (flat < 1)).nonzero().squeeze(1)
        K = active.numel()
        if K <= M // 2:
            out = torch.empty((T, M), dtype=dtype)
            out.copy_((flat >= 1).to(dtype).expand(T, M))
            if K:
                out.index_copy_(1, active, _bernoulli_fast(flat[active], (T, K), dtype, generator))
            return out.view(shape)
    return _bernoulli_fast(p, shape, dtype, generator)


def rate(data: Tensor, num_steps: Optional[int] = None, gain: float = 1, offset: float = 0,
         first_spike_time: int = 0, time_var_input: bool = False, dtype: torch.dtype = torch.float32,
         generator: Optional[torch.Generator] = None, exact: bool = False) -> Tensor:
    """Rate (Bernoulli) coding of a whole sequence at once, as snnTorch's ``spikegen.rate``.

    Each step fires independently with probability ``clamp(data * gain + offset, 0, 1)``. With static data
    the result is [num_steps, *data.shape]; with ``time_var_input=True`` data is already [T, *] and each step
    is drawn from its own slice. The first ``first_spike_time`` steps are silent (snnTorch's option; with
    time-varying input they are prepended as zeros, as snnTorch does).

    The probabilities are quantised to multiples of 2^-15 (``|error| <= 1.6e-5``; 0 and 1 are exact), which
    lets one 64-bit random draw serve 4 spikes; on the CPU, elements whose probability is exactly 0 or 1 take
    no random numbers at all, so mostly-blank inputs such as MNIST encode several times faster still.
    ``exact=True`` draws one float per spike instead (``rand < p``, several times slower). Either way the
    spikes have the distribution of SpikingJelly's :class:`PoissonEncoder` applied ``num_steps`` times, up to
    that quantisation (the random streams differ, so the same seed gives different spikes).

    Args:
        data (Tensor): [N, *] firing probabilities (any real dtype; computed in float32).
        num_steps (int): the number of steps T (required unless ``time_var_input``).
        gain (float), offset (float): probability = data * gain + offset, then clamped to [0, 1].
        first_spike_time (int): number of silent steps at the start. Default 0.
        time_var_input (bool): data is already a sequence [T, *]. Default False.
        dtype (torch.dtype): dtype of the spikes, float32 by default; ``torch.uint8`` gives 1-byte spikes.
        generator (torch.Generator, optional): the random generator (on data's device).
        exact (bool): draw a full-precision uniform per spike. Default False.

    Returns:
        Tensor: [T, N, *] spikes of ``dtype``, on data's device.
    """
    fn = "rate"
    data = _as_float(data, fn)
    dtype = _check_dtype(dtype, fn)
    gain = _check_real(gain, "gain", fn)
    offset = _check_real(offset, "offset", fn)
    if first_spike_time < 0:
        raise ValueError(f"{fn}: first_spike_time must be >= 0, got {first_spike_time}")
    if time_var_input:
        if num_steps:
            raise ValueError(f"{fn}: num_steps must not be given with time_var_input=True (the first dimension "
                             "of data, plus first_spike_time, sets the number of steps)")
        if data.dim() < 1:
            raise ValueError(f"{fn}: with time_var_input=True data must be [T, *], got a 0-d tensor")
    else:
        num_steps = _check_steps(num_steps, fn)
        if first_spike_time > num_steps - 1:
            raise ValueError(f"{fn}: first_spike_time ({first_spike_time}) must be <= num_steps - 1 "
                             f"({num_steps - 1})")
    p = (data * gain + offset).clamp_(0.0, 1.0)
    if p.numel() and bool(p.isnan().any()):
        raise ValueError(f"{fn}: data contains NaN")
    if time_var_input:
        shape = tuple(p.shape)
        if exact:
            spikes = torch.rand(shape, device=p.device, generator=generator).lt_(p).to(dtype)
        else:
            spikes = _bernoulli_fast(p, shape, dtype, generator)
        if first_spike_time > 0:
            zeros = spikes.new_zeros((first_spike_time,) + shape[1:])
            spikes = torch.cat((zeros, spikes))
        return spikes
    shape = (num_steps,) + tuple(p.shape)
    if exact:
        spikes = torch.rand(shape, device=p.device, generator=generator).lt_(p).to(dtype)
    else:
        spikes = _bernoulli_static(p, num_steps, dtype, generator)
    if first_spike_time > 0:
        spikes[:first_spike_time] = 0
    return spikes


def latency(data: Tensor, num_steps: Optional[int] = None, threshold: float = 0.01, tau: float = 1,
            first_spike_time: int = 0, on_target: float = 1, off_target: float = 0, clip: bool = False,
            normalize: bool = False, linear: bool = False, bypass: bool = False, epsilon: float = 1e-7,
            dtype: torch.dtype = torch.float32) -> Tensor:
    """Latency coding, as snnTorch's ``spikegen.latency``: one spike per input, earlier for larger inputs.

    Spike time (in steps, before rounding to the nearest step with round-half-to-even):

    - log code (default), an RC circuit charging to the input: ``tau * ln(x / (x - threshold))`` with
      ``x = max(data, threshold + epsilon)``; ``normalize=True`` rescales the times so the latest falls on
      ``num_steps - 1``;
    - ``linear=True``: ``min(tau * (1 - data), tau * (1 - threshold))``; ``normalize=True`` sets
      ``tau = num_steps - 1 - first_spike_time``.

    ``first_spike_time`` is added to every time. Inputs below ``threshold`` fire at the latest time, or not at
    all with ``clip=True``. Times beyond ``num_steps - 1`` raise unless ``bypass=True``, which drops those spikes
    (and, without ``num_steps``, sizes the output to the latest spike). The output is
    ``max(spike * on_target, off_target)``.

    Args:
        data (Tensor): [N, *] values in [0, 1].
        num_steps (int): the number of steps T (required unless ``bypass``).
        threshold (float): in (0, 1). Default 0.01.
        tau (float): > 0, the time constant. Default 1.
        first_spike_time (int), on_target (float), off_target (float), clip (bool), normalize (bool),
        linear (bool), bypass (bool), epsilon (float): as snnTorch.
        dtype (torch.dtype): float32 by default; ``torch.uint8`` gives 1-byte spikes (needs the default
            on_target=1, off_target=0).

    Returns:
        Tensor: [T, N, *] of ``dtype``.
    """
    fn = "latency"
    data = _as_float(data, fn)
    dtype = _check_dtype(dtype, fn)
    if data.numel() and (bool((data < 0).any()) or bool((data > 1).any()) or bool(data.isnan().any())):
        raise ValueError(f"{fn}: data must lie in [0, 1]")
    if not 0 < _check_real(threshold, "threshold", fn) < 1:
        raise ValueError(f"{fn}: threshold must be in (0, 1), got {threshold}")
    tau = _check_real(tau, "tau", fn, positive=True)
    if tau > torch.finfo(torch.float32).max:  # the times are computed in float32
        raise ValueError(f"{fn}: tau must fit float32 (at most 3.4e38), got {tau}")
    epsilon = _check_real(epsilon, "epsilon", fn, positive=True)
    on_target = _check_real(on_target, "on_target", fn)
    off_target = _check_real(off_target, "off_target", fn)
    if first_spike_time < 0:
        raise ValueError(f"{fn}: first_spike_time must be >= 0, got {first_spike_time}")
    if not num_steps and not bypass:
        raise ValueError(f"{fn}: num_steps must be given (or bypass=True to size the output to the latest spike)")
    if num_steps:
        num_steps = _check_steps(num_steps, fn)
        if first_spike_time > num_steps - 1:
            raise ValueError(f"{fn}: first_spike_time ({first_spike_time}) must be <= num_steps - 1")
    if normalize and not num_steps:
        raise ValueError(f"{fn}: normalize=True needs num_steps")
    if (not dtype.is_floating_point) and (on_target != 1 or off_target != 0):
        raise ValueError(f"{fn}: dtype {dtype} holds 0/1 spikes only; use a float dtype for on_target="
                         f"{on_target}, off_target={off_target}")

    below = data < threshold
    if linear:
        if normalize:
            tau = num_steps - 1 - first_spike_time
        spike_time = torch.clamp_max(-tau * (data - 1), -tau * (threshold - 1)) + first_spike_time
    else:
        x = torch.clamp(data, min=threshold + epsilon)
        spike_time = tau * torch.log(x / (x - threshold))
        spike_time = spike_time + first_spike_time
        if normalize and spike_time.numel():
            shifted = spike_time - first_spike_time
            spike_time = shifted * (num_steps - first_spike_time - 1) / shifted.max() + first_spike_time
    if spike_time.numel() and not bool(spike_time.isfinite().all()):
        # The times are float32: a large tau (or a tiny epsilon) overflows them, and no step can hold inf or NaN.
        raise ValueError(f"{fn}: tau={tau} (with epsilon={epsilon}) gives spike times beyond float32's range; "
                         "use a smaller tau or a larger epsilon")
    latest = int(torch.round(spike_time.max()).item()) if spike_time.numel() else 0
    if not num_steps:
        num_steps = latest + 1
        if num_steps <= 0:
            raise ValueError(f"{fn}: the spike times give num_steps={num_steps}; normalise data or lower threshold")
        if num_steps * max(data.numel(), 1) >= 2**63:  # more elements than a tensor can have
            raise ValueError(f"{fn}: tau={tau} gives spike times up to {latest}, too many steps for an output "
                             "sized to the latest spike; give num_steps, lower tau or set normalize=True")
    if latest > num_steps - 1 and not bypass:
        raise ValueError(f"{fn}: the latest spike time ({latest}) is beyond num_steps - 1 ({num_steps - 1}); "
                         "lower tau, set normalize=True, or bypass=True to drop the late spikes")
    step = torch.round(torch.clamp_max(spike_time, num_steps - 1)).long()
    keep = torch.round(spike_time) <= num_steps - 1
    if clip:
        keep = keep & ~below
    steps = torch.arange(num_steps, device=data.device).view((num_steps,) + (1,) * data.dim())
    spikes = (step.unsqueeze(0) == steps) & keep.unsqueeze(0)
    if dtype.is_floating_point:
        out = spikes.to(dtype)
        if on_target != 1 or off_target != 0:
            out = torch.clamp(out * on_target, min=off_target)
        return out
    return spikes.to(dtype)


def delta(data: Tensor, threshold: float = 0.1, padding: bool = False, off_spike: bool = False,
          dtype: torch.dtype = torch.float32) -> Tensor:
    """Delta modulation, as snnTorch's ``spikegen.delta``: a spike where the input rose by >= threshold.

    ``spike[t] = 1 if data[t] - data[t-1] >= threshold``; with ``off_spike=True`` also
    ``-1 if data[t] - data[t-1] <= -threshold``. The step before t = 0 is zeros, or a copy of ``data[0]``
    with ``padding=True`` (so the first step never fires).

    Args:
        data (Tensor): [T, N, *] a time-varying input.
        threshold (float): the change that fires. Default 0.1.
        padding (bool), off_spike (bool): as above. Default False.
        dtype (torch.dtype): float32 by default; ``torch.uint8`` for 1-byte spikes (``torch.int8`` with
            ``off_spike=True``, whose -1 spikes uint8 cannot hold).

    Returns:
        Tensor: [T, N, *] of ``dtype``.
    """
    fn = "delta"
    data = _as_float(data, fn)
    dtype = _check_dtype(dtype, fn)
    if data.dim() < 1:
        raise ValueError(f"{fn}: data must be [T, *], got a 0-d tensor")
    threshold = _check_real(threshold, "threshold", fn)  # NaN would silently never fire
    if off_spike and dtype in (torch.uint8, torch.bool):
        raise ValueError(f"{fn}: off_spike=True emits -1, which {dtype} cannot hold; use torch.int8 or a float dtype")
    if data.shape[0] == 0:
        return torch.empty(data.shape, dtype=dtype, device=data.device)
    first = data[:1] if padding else torch.zeros_like(data[:1])
    previous = torch.cat((first, data[:-1]))
    diff = data - previous
    on = (diff >= threshold).to(dtype)
    if not off_spike:
        return on
    return on - (diff <= -threshold).to(dtype)
