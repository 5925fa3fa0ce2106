"""What every op family shares: dtype maps, tensor views for the core, the stream, CPU thread sync."""

from __future__ import annotations

import math
import struct
from typing import Optional

import torch
from torch import Tensor

from .. import _C

CUDA_BUILT: bool = bool(_C.build_info()["cuda"])
_DEVICE_TYPES = ("cpu", "cuda") if CUDA_BUILT else ("cpu",)

_CORE_DTYPE = {
    torch.float32: _C.DType.float32,
    torch.float16: _C.DType.float16,
    torch.bfloat16: _C.DType.bfloat16,
    torch.uint8: _C.DType.uint8,
    torch.float64: _C.DType.float64,
}


# The core describes a tensor with at most this many dimensions (spikeops::kMaxDims); elementwise ops flatten.
_MAX_DIMS = 8
_FLOAT32_TINY = torch.finfo(torch.float32).tiny  # the smallest normal float32


def _view(t: Optional[Tensor], arg: str, fn: str = "spikeops") -> "_C.TensorView":
    """Describe a tensor to the core (pointer, dtype, shape, strides, device); None -> an absent view."""
    if t is None:
        return _C.TensorView()
    if t.dtype not in _CORE_DTYPE:
        raise TypeError(f"{fn}: {arg}: spikeops kernels do not take dtype {t.dtype}")
    if t.dim() > _MAX_DIMS:
        raise ValueError(f"{fn}: {arg} must have at most {_MAX_DIMS} dimensions, got {t.dim()} "
                         f"(shape {tuple(t.shape)})")
    if t.device.type == "cuda":
        device, index = _C.Device.cuda, t.device.index or 0
    elif t.device.type == "cpu":
        device, index = _C.Device.cpu, 0
        _sync_cpu_threads()
    else:
        raise ValueError(f"spikeops kernels run on cpu or cuda tensors, got a tensor on {t.device}")
    return _C.TensorView(t.data_ptr(), _CORE_DTYPE[t.dtype], list(t.shape), list(t.stride()), device, index)


def _number(value, what: str) -> float:
    """`value` as a Python float, or a TypeError naming `what` (strings, bools and None are not numbers here)."""
    if isinstance(value, (str, bytes, bool)) or value is None:
        raise TypeError(f"{what} must be a number, got {value!r}")
    try:
        return float(value)
    except OverflowError:  # an int beyond any float
        raise ValueError(f"{what} must be finite and fit float32, got an integer of {value.bit_length()} bits") \
            from None
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{what} must be a number, got {type(value).__name__}") from None


def _round_float32(v: float) -> float:
    """v rounded to float32 (inf where it is beyond float32's range)."""
    try:
        return struct.unpack("f", struct.pack("f", v))[0]
    except OverflowError:
        return math.copysign(math.inf, v)


def _float32(value, what: str, *, positive: bool = False, above_one: bool = False) -> float:
    """`value` as a Python float, checked to be a number the float32 kernels can use; errors name `what`
    ("LIFNode: tau"). The kernels compute in float32, so a value finite in Python but not in float32 (1e39) must
    fail here, not at the first forward (or never). Default: finite in float32 (magnitude <= 3.4e38).
    ``positive``: a normal float32 > 0 (>= 1.2e-38), so that the 1/value the kernels compute is finite too.
    ``above_one``: > 1 (a time constant)."""
    v = _number(value, what)
    v32 = _round_float32(v)
    if positive:
        if not (v32 >= _FLOAT32_TINY and math.isfinite(v32)):
            raise ValueError(f"{what} must be a finite number > 0 that float32 holds as a normal number "
                             f"(1.2e-38 to 3.4e38), got {v}")
    elif above_one:
        if not (v > 1.0 and math.isfinite(v32)):
            raise ValueError(f"{what} must be a finite number > 1 that fits float32 (<= 3.4e38), got {v}")
    elif not math.isfinite(v32):
        raise ValueError(f"{what} must be finite and fit float32 (magnitude <= 3.4e38), got {v}")
    return v


def _flag(value, what: str) -> bool:
    """A bool argument of an op (a Python bool, or an int 0/1 as torch.library may pass), or a TypeError."""
    if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
        return bool(value)
    raise TypeError(f"{what} must be a bool, got {value!r}")


_SURROGATE_KINDS = {int(k): k for k in _C.SurrogateKind.__members__.values()}


def _surrogate(kind: int, alpha: float, beta: float, fn: str = "spikeops") -> "_C.Surrogate":
    """The core's Surrogate from an op's arguments; errors name `fn` and the argument."""
    if isinstance(kind, bool) or not isinstance(kind, int) or kind not in _SURROGATE_KINDS:
        raise ValueError(f"{fn}: surrogate_kind must be one of {sorted(_SURROGATE_KINDS)}, got {kind!r}")
    alpha = _float32(alpha, f"{fn}: alpha")
    beta = _float32(beta, f"{fn}: beta")
    surrogate = _C.Surrogate(_SURROGATE_KINDS[kind], alpha, beta)
    # Each kind's own ranges (most need alpha > 0, QPseudoSpike alpha > 1, ...) live in the core; its message
    # ("surrogate.alpha of QPseudoSpike must be > 1") is reworded to name the op's own argument.
    try:
        _C.validate_surrogate(surrogate, "surrogate")
    except ValueError as e:
        raise ValueError(f"{fn}: {str(e).removeprefix('surrogate.')}") from None
    return surrogate


def _sync_cpu_threads() -> None:
    """Let the CPU kernels use as many threads as torch does (torch.set_num_threads), for the calling thread."""
    n = torch.get_num_threads()
    if _C.cpu_threads() != n:
        _C.set_cpu_threads(n)


def _stream(t: Tensor) -> int:
    # Read on every call: the caller may have switched streams since the last one.
    return torch.cuda.current_stream(t.device).cuda_stream if t.device.type == "cuda" else 0

