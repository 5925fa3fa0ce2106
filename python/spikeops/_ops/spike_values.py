"""The values the spike ops take: spikes 0/1, and signed spikes -1/0/+1; any other value raises.

A spike op adds the weights that spikes select, so a value that is not a spike cannot be computed by it, and is
never read as one spike: 0.5, 2, NaN, inf, or a byte above 1 (raw pixels) raise ValueError naming the op, the
argument and the value. Signed spikes (``encoding.delta(off_spike=True)``) are computed accumulate-only as
acc(+1 spikes) - acc(-1 spikes), two products only when a -1 is present.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor

from .. import _C
from ..spike_tensor import trusted_spike_bytes
from ._checks import FLOAT_DTYPES
from ._common import _stream, _view


class SpikeOperand(NamedTuple):
    """Spikes as the kernels take them."""

    positive: Tensor            # uint8 0/1: the +1 spikes (all of them when there is no -1)
    negative: Optional[Tensor]  # uint8 0/1: the -1 spikes; None when there are none
    rate: float                 # the fraction of nonzero values when it was counted, else -1.0


def _advice(fn: str) -> str:
    layer = "Conv2d" if "conv" in fn else "Linear"
    return (f"values that are not spikes need a dense product (layer.{layer} with a float input and "
            f"spike_input=False, or torch.nn.functional), or encode them as spikes first (spikeops.encoding)")


def _capturing(t: Tensor) -> bool:
    return t.device.type == "cuda" and torch.cuda.is_current_stream_capturing()


def _refuse_capture(t: Tensor, fn: str, arg: str) -> None:
    if _capturing(t):
        raise ValueError(f"{fn}: {arg} of dtype {t.dtype} are checked to be spikes by reading a count back to the "
                         "host, which CUDA graph capture forbids; pass a SpikeTensor (a neuron with "
                         "spike_tensor=True, or spikeops.to_spike_tensor before the capture), whose bytes are "
                         "trusted")


def _in_memory_order(t: Tensor):
    """(t seen as a contiguous tensor in memory order, the permutation that gives t back), or (None, None)
    where t is not dense in memory."""
    order = sorted(range(t.dim()), key=lambda d: t.stride(d), reverse=True)
    viewed = t.permute(order)
    if not viewed.is_contiguous():
        return None, None
    return viewed, sorted(range(t.dim()), key=lambda d: order[d])


def _as_stored(t: Tensor) -> Tensor:
    """t's elements in memory order where t is dense in memory (a transposed view too), for reductions whose
    result does not depend on the order: torch copies a transposed view before reducing it."""
    viewed, _ = _in_memory_order(t)
    return t if viewed is None else viewed


def _split_signed(t: Tensor) -> SpikeOperand:
    """Signed spikes (float or int8 holding -1) as bytes of their +1 and their -1 spikes."""
    return SpikeOperand(torch.eq(t, 1).view(torch.uint8), torch.eq(t, -1).view(torch.uint8), -1.0)


def spike_operand(spikes: Tensor, fn: str, arg: str = "spikes") -> SpikeOperand:
    """``spikes`` checked and converted for the kernels, or a ValueError naming fn, arg and the value.

    uint8: bytes 0/1, read once to check them (one pass), unless they are a SpikeTensor's (checked when it was
    made). int8 (the backward's copy of float spikes): -1/0/1. float32/float16/bfloat16: 0/1 or -1/0/1,
    converted to bytes and checked in the same pass (spikeops._C.spike_bytes), which also counts the firing
    rate. On CUDA the check reads a count back (a wait for the stream); under CUDA graph capture, where that
    is impossible, only a SpikeTensor's bytes are taken."""
    if spikes.numel() == 0:
        return SpikeOperand(spikes if spikes.dtype == torch.uint8 else torch.zeros_like(spikes, dtype=torch.uint8),
                            None, -1.0)
    if spikes.dtype == torch.uint8:
        if trusted_spike_bytes(spikes):
            return SpikeOperand(spikes, None, -1.0)
        _refuse_capture(spikes, fn, arg)
        largest = int(_as_stored(spikes).max())
        if largest > 1:
            raise ValueError(f"{fn}: {arg} must be spikes, bytes of 0 or 1, found a byte of {largest}; "
                             + _advice(fn))
        return SpikeOperand(spikes, None, -1.0)
    if spikes.dtype == torch.int8:
        _refuse_capture(spikes, fn, arg)
        lo, hi = (int(v) for v in torch.aminmax(_as_stored(spikes)))
        if lo < -1 or hi > 1:
            raise ValueError(f"{fn}: {arg} must be spikes -1, 0 or 1, found {lo if lo < -1 else hi}")
        return _split_signed(spikes) if lo < 0 else SpikeOperand(spikes.view(torch.uint8), None, -1.0)
    if spikes.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{fn}: {arg} must be uint8 or float32/float16/bfloat16 spikes, got {spikes.dtype}")
    _refuse_capture(spikes, fn, arg)
    values, back = _in_memory_order(spikes)
    if values is None:
        values = spikes.contiguous()
        back = list(range(spikes.dim()))
    out = torch.empty_like(values, dtype=torch.uint8)
    nonzero, negative, invalid = _C.spike_bytes(_view(values, arg, fn), _view(out, "bytes", fn), _stream(values))
    if invalid:
        bad = spikes[(spikes != 0) & (spikes != 1) & (spikes != -1)]
        raise ValueError(f"{fn}: {arg} must be spikes 0 or 1 (or -1, signed spikes), found {invalid} other "
                         f"value{'s' if invalid > 1 else ''}, e.g. {bad.flatten()[0].item()}; " + _advice(fn))
    if negative:
        return _split_signed(spikes)
    return SpikeOperand(out.permute(back), None, nonzero / spikes.numel())


def has_nan(t: Tensor) -> bool:
    """Whether t holds a NaN (one pass; a read-back on CUDA)."""
    return bool(torch.isnan(t).any())
