"""What every op family shares: dtype maps, tensor views for the core, the stream, CPU thread sync."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .. import _C

CUDA_BUILT: bool = bool(_C.build_info()["cuda"])
_DEVICE_TYPES = ("cpu", "cuda") if CUDA_BUILT else ("cpu",)

_FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_SPIKE_DTYPES = _FLOAT_DTYPES + (torch.uint8,)
_CORE_DTYPE = {
    torch.float32: _C.DType.float32,
    torch.float16: _C.DType.float16,
    torch.bfloat16: _C.DType.bfloat16,
    torch.uint8: _C.DType.uint8,
    torch.float64: _C.DType.float64,
}


def _view(t: Optional[Tensor], arg: str) -> "_C.TensorView":
    """Describe a tensor to the core (pointer, dtype, shape, strides, device); None -> an absent view."""
    if t is None:
        return _C.TensorView()
    if t.dtype not in _CORE_DTYPE:
        raise TypeError(f"{arg}: spikeops kernels do not take dtype {t.dtype}")
    if t.device.type == "cuda":
        device, index = _C.Device.cuda, t.device.index or 0
    elif t.device.type == "cpu":
        device, index = _C.Device.cpu, 0
        _sync_cpu_threads()
    else:
        raise ValueError(f"spikeops kernels run on cpu or cuda tensors, got a tensor on {t.device}")
    return _C.TensorView(t.data_ptr(), _CORE_DTYPE[t.dtype], list(t.shape), list(t.stride()), device, index)


_SURROGATE_KINDS = {int(k): k for k in _C.SurrogateKind.__members__.values()}


def _surrogate(kind: int, alpha: float, beta: float) -> "_C.Surrogate":
    """The core's Surrogate; an unknown kind raises ValueError naming surrogate_kind."""
    if kind not in _SURROGATE_KINDS:
        raise ValueError(f"surrogate_kind must be one of {sorted(_SURROGATE_KINDS)}, got {kind}")
    return _C.Surrogate(_SURROGATE_KINDS[kind], alpha, beta)


def _shape_2d(t: Tensor, arg: str) -> tuple:
    """(T, N) of a [T, N] tensor, or a ValueError naming the argument."""
    if t.dim() != 2:
        raise ValueError(f"{arg} must be a 2-D [T, N] tensor, got shape {tuple(t.shape)}")
    return tuple(t.shape)


def _check_spike_dtype(spike_dtype: torch.dtype) -> None:
    if spike_dtype not in _SPIKE_DTYPES:
        raise TypeError(f"spike_dtype must be float32, float16, bfloat16 or uint8, got {spike_dtype}")


def _sync_cpu_threads() -> None:
    """Let the CPU kernels use as many threads as torch does (torch.set_num_threads), for the calling thread."""
    n = torch.get_num_threads()
    if _C.cpu_threads() != n:
        _C.set_cpu_threads(n)


def _stream(t: Tensor) -> int:
    # Read on every call: the caller may have switched streams since the last one.
    return torch.cuda.current_stream(t.device).cuda_stream if t.device.type == "cuda" else 0

