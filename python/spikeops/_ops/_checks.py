"""Argument checks of the registered ops, shared with the friendly wrappers (functional, layer, neuron, surrogate).

torch.ops.spikeops.* is public: users and torch.compile call the ops without going through the wrappers. Each op's
body and its fake implementation (what torch.compile and FakeTensorMode run instead of the body) call the same
check first, so a bad argument fails with one message wherever the call enters. The wrappers call these checks
too, with their own name as ``fn``, instead of keeping copies of the rules.

Errors name ``fn`` (the function as the caller wrote it: "spike_conv2d", "LIFNode", "spikeops::spike_conv2d"), the
argument and what was expected: TypeError for a value of the wrong type or dtype, ValueError for a wrong value
or shape. Arguments of the wrong Python type for an op's schema (stride=1.5, tau=None) never reach these checks:
torch's dispatcher rejects them first with a RuntimeError naming the op and the argument.
"""

from __future__ import annotations

from typing import Iterable, Optional, Sequence

import torch
from torch import Tensor

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
# What the spike ops read as spikes: uint8 0/1, int8 -1/0/1 (signed spikes; the backward saves float spikes so),
# floats 0/1 or -1/0/1 (the values themselves are checked by spike_values.spike_operand).
SPIKE_DTYPES = (torch.uint8, torch.int8) + FLOAT_DTYPES
SPIKE_GEMM_KERNELS = ("auto", "events", "tiled", "tensor_core", "dense")
CUDA_ONLY_KERNELS = ("tiled", "tensor_core")
SPIKE_CONV_KERNELS = ("auto", "events", "dense")

# The core takes sizes, strides, paddings and dilations below 2^31 (int32 arithmetic in the kernels).
INT32_LIMIT = 2**31 - 1


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def _dtypes_text(dtypes: Sequence[torch.dtype]) -> str:
    return "/".join(dtype_name(d) for d in dtypes)


def _shape_text(shape: Iterable[int]) -> str:
    return "[" + ", ".join(str(int(s)) for s in shape) + "]"


def tensor(t, arg: str, fn: str, dtypes: Optional[Sequence[torch.dtype]] = None, dim: Optional[int] = None,
           layout: str = "", optional: bool = False) -> None:
    """`t` is a Tensor (or None when ``optional``) of one of ``dtypes`` with ``dim`` dimensions; ``layout``
    ("[T, N]") says in the message what the dimensions are."""
    if t is None and optional:
        return
    if not isinstance(t, Tensor):
        raise TypeError(f"{fn}: {arg} must be a torch.Tensor, got {type(t).__name__}")
    if dtypes is not None and t.dtype not in dtypes:
        raise TypeError(f"{fn}: {arg} must have dtype {_dtypes_text(dtypes)}, got {dtype_name(t.dtype)}")
    if dim is not None and t.dim() != dim:
        raise ValueError(f"{fn}: {arg} must be a {dim}-D tensor{' ' + layout if layout else ''}, got shape "
                         f"{_shape_text(t.shape)}")


def shape(t: Tensor, arg: str, fn: str, expected: Sequence[int], why: str = "") -> None:
    if tuple(t.shape) != tuple(expected):
        raise ValueError(f"{fn}: {arg} must have shape {_shape_text(expected)}, got {_shape_text(t.shape)}"
                         + (f" ({why})" if why else ""))


def same_device(fn: str, ref_arg: str, ref: Tensor, *others) -> None:
    """Every tensor of ``others`` (pairs arg, tensor-or-None) is on ``ref``'s device."""
    for arg, t in others:
        if t is not None and t.device != ref.device:
            verb = "are" if ref_arg == "spikes" else "is"
            raise ValueError(f"{fn}: {arg} is on {t.device} but {ref_arg} {verb} on {ref.device}")


def dtype_arg(value, arg: str, fn: str, dtypes: Sequence[torch.dtype]) -> None:
    if value not in dtypes:
        raise TypeError(f"{fn}: {arg} must be one of torch.{', torch.'.join(dtype_name(d) for d in dtypes)}, "
                        f"got {value!r}")


def choice(value, arg: str, fn: str, choices: Sequence[str]) -> None:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{fn}: {arg} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def _is_int(value) -> bool:
    # SymInt: sizes traced symbolically by torch.compile (a weight_shape taken from a tensor's shape).
    return isinstance(value, (int, torch.SymInt)) and not isinstance(value, bool)


def integer(value, arg: str, fn: str, minimum: int, maximum: int = INT32_LIMIT) -> int:
    """An int in [minimum, maximum] (bools are not ints here)."""
    if not _is_int(value):
        raise TypeError(f"{fn}: {arg} must be an int, got {value!r}")
    if not minimum <= value <= maximum:
        raise ValueError(f"{fn}: {arg} must be an int from {minimum} to {maximum}, got {value}")
    return value


def int_list(value, arg: str, fn: str, length: int, minimum: int, maximum: int = INT32_LIMIT,
             scalar_ok: bool = False) -> tuple:
    """A list or tuple of ``length`` ints in [minimum, maximum], as a tuple; with ``scalar_ok`` a single int stands
    for ``length`` copies of itself (the friendly wrappers' stride=1)."""
    if scalar_ok and _is_int(value):
        value = (value,) * length
    ints = isinstance(value, (list, tuple, torch.Size)) and len(value) == length and all(map(_is_int, value))
    if not ints:
        what = "an int or " if scalar_ok else ""
        raise TypeError(f"{fn}: {arg} must be {what}a list of {length} ints, got {value!r}")
    if not all(minimum <= v <= maximum for v in value):
        raise ValueError(f"{fn}: {arg} must be ints from {minimum} to {maximum}, got {list(value)}")
    return tuple(value)


def gemm_kernel(kernel, device: Optional[torch.device], fn: str) -> None:
    """``kernel`` is one of SPIKE_GEMM_KERNELS, and not a CUDA-only one for tensors on another device (not checked
    when device is None, as at a module's construction)."""
    choice(kernel, "kernel", fn, SPIKE_GEMM_KERNELS)
    if device is not None and kernel in CUDA_ONLY_KERNELS and device.type != "cuda":
        raise ValueError(f"{fn}: kernel={kernel!r} runs on CUDA tensors only, the spikes are on {device}; use "
                         f"'auto', 'events' or 'dense'")


def conv_kernel(kernel, fn: str) -> None:
    choice(kernel, "kernel", fn, SPIKE_CONV_KERNELS)


# ---------------------------------------------------------------------------------------------------------
# The spike GEMM
# ---------------------------------------------------------------------------------------------------------

def spike_linear(fn: str, spikes, weight, bias, kernel, leading_dims: bool = False) -> None:
    """spikes [M, K] (``leading_dims``: [*, K]), weight [N, K] float, bias [N] float or None, on one device."""
    tensor(spikes, "spikes", fn, SPIKE_DTYPES)
    tensor(weight, "weight", fn, FLOAT_DTYPES, dim=2, layout="[N, K]")
    if leading_dims:
        if spikes.dim() < 1 or spikes.shape[-1] != weight.shape[1]:
            raise ValueError(f"{fn}: spikes must be [*, K] with K = weight.shape[1] = {weight.shape[1]}, "
                             f"got shape {_shape_text(spikes.shape)}")
    else:
        tensor(spikes, "spikes", fn, dim=2, layout="[M, K]")
        if spikes.shape[1] != weight.shape[1]:
            raise ValueError(f"{fn}: spikes must be [M, K] with K = weight.shape[1] = {weight.shape[1]}, "
                             f"got shape {_shape_text(spikes.shape)}")
    tensor(bias, "bias", fn, FLOAT_DTYPES, optional=True)
    if bias is not None:
        shape(bias, "bias", fn, (weight.shape[0],), "[N], N = weight.shape[0]")
    same_device(fn, "spikes", spikes, ("weight", weight), ("bias", bias))
    gemm_kernel(kernel, spikes.device, fn)


def spike_accumulate_rows_t(fn: str, spikes, rows, out_dtype, kernel) -> None:
    """spikes [M, K] uint8 (or int8 signed spikes), rows [K, N] float, out_dtype a float dtype, on one device."""
    tensor(spikes, "spikes", fn, (torch.uint8, torch.int8), dim=2, layout="[M, K]")
    tensor(rows, "rows", fn, FLOAT_DTYPES, dim=2, layout="[K, N]")
    if rows.shape[0] != spikes.shape[1]:
        raise ValueError(f"{fn}: rows must be [K, N] with K = spikes.shape[1] = {spikes.shape[1]}, got shape "
                         f"{_shape_text(rows.shape)}")
    dtype_arg(out_dtype, "out_dtype", fn, FLOAT_DTYPES)
    same_device(fn, "spikes", spikes, ("rows", rows))
    gemm_kernel(kernel, spikes.device, fn)


# ---------------------------------------------------------------------------------------------------------
# The spike convolution
# ---------------------------------------------------------------------------------------------------------

def conv_geometry(fn: str, stride, padding, dilation, scalar_ok: bool = False) -> tuple:
    """(stride, padding, dilation) as pairs of ints: stride and dilation >= 1, padding >= 0."""
    return (int_list(stride, "stride", fn, 2, 1, scalar_ok=scalar_ok),
            int_list(padding, "padding", fn, 2, 0, scalar_ok=scalar_ok),
            int_list(dilation, "dilation", fn, 2, 1, scalar_ok=scalar_ok))


def conv_output_size(fn: str, input_hw, kernel_hw, stride, padding, dilation) -> tuple:
    """(OH, OW) of a convolution whose geometry conv_geometry accepted, or a ValueError when the dilated kernel
    does not fit the padded input."""
    out = []
    for i in range(2):
        span = dilation[i] * (kernel_hw[i] - 1) + 1
        size = input_hw[i] + 2 * padding[i]
        if size < span:
            raise ValueError(f"{fn}: the kernel {tuple(kernel_hw)} with dilation {tuple(dilation)} does not fit "
                             f"the padded input of {input_hw[0] + 2 * padding[0]}x{input_hw[1] + 2 * padding[1]}")
        out.append((size - span) // stride[i] + 1)
    return tuple(out)


def conv_input(fn: str, spikes: Tensor) -> None:
    """An input plane of zero height or width is refused, as torch's convolution does, unless the batch or the
    channels are empty: otherwise its dense path raises where the event kernel returns the bias, and which one
    runs is the policy's choice."""
    n, c, h, w = spikes.shape
    if n and c and not (h and w):
        raise ValueError(f"{fn}: spikes must have H and W > 0 (unless N or C is 0), got shape "
                         f"{_shape_text(spikes.shape)}")


def conv_groups(fn: str, groups, in_channels: int, out_channels: int, weight_in_channels: int,
                weight_arg: str = "weight") -> None:
    integer(groups, "groups", fn, 1)
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"{fn}: groups must be a positive int dividing C={in_channels} and C_out={out_channels}, "
                         f"got {groups}")
    if weight_in_channels * groups != in_channels:
        raise ValueError(f"{fn}: {weight_arg} expects {weight_in_channels * groups} input channels "
                         f"({weight_in_channels} per group x {groups} groups), spikes have {in_channels}")


def spike_conv2d(fn: str, spikes, weight, bias, stride, padding, dilation, groups, kernel,
                 scalar_ok: bool = False) -> tuple:
    """spikes [N, C, H, W], weight [C_out, C / groups, kh, kw] float, bias [C_out] of the weight's dtype, one
    device, a geometry whose kernel fits the padded input. Returns (stride, padding, dilation) as pairs."""
    tensor(spikes, "spikes", fn, SPIKE_DTYPES, dim=4, layout="[N, C, H, W]")
    tensor(weight, "weight", fn, FLOAT_DTYPES, dim=4, layout="[C_out, C / groups, kh, kw]")
    conv_input(fn, spikes)
    same_device(fn, "spikes", spikes, ("weight", weight))
    if bias is not None:
        if not isinstance(bias, Tensor):
            raise TypeError(f"{fn}: bias must be a torch.Tensor or None, got {type(bias).__name__}")
        if tuple(bias.shape) != (weight.shape[0],) or bias.device != weight.device or bias.dtype != weight.dtype:
            raise ValueError(f"{fn}: bias must be [C_out] = [{weight.shape[0]}], {weight.dtype} on {weight.device} "
                             f"(the weight's), got shape {tuple(bias.shape)}, {bias.dtype} on {bias.device}")
    conv_groups(fn, groups, spikes.shape[1], weight.shape[0], weight.shape[1])
    geometry = conv_geometry(fn, stride, padding, dilation, scalar_ok)
    conv_output_size(fn, spikes.shape[2:], weight.shape[2:], *geometry)
    conv_kernel(kernel, fn)
    return geometry


def spike_conv2d_weight_grad(fn: str, spikes, grad_out, weight_shape, stride, padding, dilation, groups,
                             out_dtype, kernel) -> None:
    """spikes [N, C, H, W], weight_shape [C_out, C / groups, kh, kw], grad_out [N, C_out, OH, OW] float, one
    device."""
    tensor(spikes, "spikes", fn, SPIKE_DTYPES, dim=4, layout="[N, C, H, W]")
    tensor(grad_out, "grad_out", fn, FLOAT_DTYPES, dim=4, layout="[N, C_out, OH, OW]")
    conv_input(fn, spikes)
    same_device(fn, "spikes", spikes, ("grad_out", grad_out))
    weight_shape = int_list(weight_shape, "weight_shape", fn, 4, 0)
    conv_groups(fn, groups, spikes.shape[1], weight_shape[0], weight_shape[1], "weight_shape")
    geometry = conv_geometry(fn, stride, padding, dilation)
    oh, ow = conv_output_size(fn, spikes.shape[2:], weight_shape[2:], *geometry)
    shape(grad_out, "grad_out", fn, (spikes.shape[0], weight_shape[0], oh, ow), "[N, C_out, OH, OW]")
    dtype_arg(out_dtype, "out_dtype", fn, FLOAT_DTYPES)
    conv_kernel(kernel, fn)
