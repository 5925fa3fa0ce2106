"""The accumulate-only spike convolution: spikeops::spike_conv2d and spikeops::spike_conv2d_weight_grad."""

from __future__ import annotations

from typing import List, Optional

import torch
from torch import Tensor

from .. import _C
from ..spike_tensor import SpikeTensor
from ._common import _DEVICE_TYPES, _view
from .spike_linear import (_accumulate, _as_bytes, _core_device, _nonzero_as, _plan, firing_rate_estimate,
                           pack_weight, spike_accumulate_rows_t)

# The kernel argument of the convolution ops. "auto" asks the core's policy (kernel_policy.hpp); "events" is the
# core's event-driven convolution on the CPU and, on CUDA, the spike GEMM over the input unfolded in bytes
# (im2col at 1 byte per element; the GEMM picks its own kernel); "dense" is torch's convolution on the spikes as
# floats. "unfold" runs the unfolded spike GEMM on either device: what CUDA tensors run, reachable on the CPU so
# that the tests exercise that path without a GPU.
SPIKE_CONV_KERNELS = ("auto", "events", "dense", "unfold")


def _conv_output_size(spikes_shape, kernel, stride, padding, dilation) -> tuple:
    out = []
    for i in range(2):
        span = dilation[i] * (kernel[i] - 1) + 1
        size = spikes_shape[2 + i] + 2 * padding[i]
        if size < span:
            raise ValueError(f"spike_conv2d: the kernel {tuple(kernel)} with dilation {tuple(dilation)} does not fit "
                             f"the padded input of {spikes_shape[2] + 2 * padding[0]}x{spikes_shape[3] + 2 * padding[1]}")
        out.append((size - span) // stride[i] + 1)
    return tuple(out)


def _unfold_bytes(spikes: Tensor, kernel, stride, padding, dilation) -> Tensor:
    """im2col of a uint8 [N, C, H, W] tensor: [N * OH * OW, kh * kw * C] (channels last), 1 byte per element.

    torch's unfold has no uint8 kernel; a strided view of the padded bytes in NHWC order and one copy do the
    same, and with channels innermost the copy moves runs of C contiguous bytes.
    """
    n, c, h, w = spikes.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    oh, ow = _conv_output_size(spikes.shape, kernel, stride, padding, dilation)
    x = torch.nn.functional.pad(spikes, (pw, pw, ph, ph)) if ph or pw else spikes
    x = x.permute(0, 2, 3, 1).contiguous()  # [N, H + 2ph, W + 2pw, C]
    sn, sy, sx, sc = x.stride()
    windows = x.as_strided((n, oh, ow, kh, kw, c), (sn, sy * sh, sx * sw, sy * dh, sx * dw, sc))
    return windows.reshape(n * oh * ow, kh * kw * c)


def _conv_groups(spikes_u8: Tensor, kernel, stride, padding, dilation, groups: int):
    """(group, unfolded spikes of the group [N * OH * OW, kh * kw * C/groups]) for each group."""
    c_in = spikes_u8.shape[1] // groups
    for g in range(groups):
        yield g, _unfold_bytes(spikes_u8[:, g * c_in:(g + 1) * c_in], kernel, stride, padding, dilation)


def _conv_memory_format(spikes: Tensor) -> torch.memory_format:
    """The layout spike_conv2d keeps: channels-last for spikes stored so (and not also contiguous), which the
    CPU kernels read and write as they lie (torch's convolutions are fastest in it on the CPU); else NCHW."""
    if not spikes.is_contiguous() and spikes.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def check_conv_kernel(kernel: str, op: str) -> None:
    """ValueError naming ``kernel`` for a value that is not one of SPIKE_CONV_KERNELS."""
    if kernel not in SPIKE_CONV_KERNELS:
        raise ValueError(f"{op}: kernel must be one of {', '.join(map(repr, SPIKE_CONV_KERNELS))}, got {kernel!r}")


def _unfold_gemm_kernel(cols: Tensor) -> str:
    """The spike GEMM's kernel inside the unfolded convolution: the policy's on CUDA; on the CPU, where that path
    runs only for tests, the core's kernel (never torch's dense GEMM, which would hide what CUDA runs)."""
    return "auto" if cols.device.type == "cuda" else "events"


def _conv_plan(spikes_u8: Tensor, out_channels: int, kernel_size, weight_gradient: bool, kernel: str,
               op: str) -> str:
    """The path that runs: "events" (the core's CPU kernels), "dense" (torch's), or "unfold" (the spike GEMM over
    the unfolded input): the forced kernel, or for "auto" the policy's choice. The firing rate is estimated only
    where the policy needs it (the CPU), from about 8 of the images: the side of a threshold is all it decides."""
    check_conv_kernel(kernel, op)
    on_cuda = spikes_u8.device.type == "cuda"
    if kernel == "auto":
        n, c, h, w = spikes_u8.shape
        problem = _C.SpikeConv2dProblem(n, c, h, w, out_channels, kernel_size[0], kernel_size[1], weight_gradient,
                                        _core_device(spikes_u8))
        rate = firing_rate_estimate(spikes_u8, slices=8) if _C.spike_conv2d_needs_firing_rate(problem) else -1.0
        kernel = "dense" if _C.choose_spike_conv2d_kernel(problem, rate) == _C.SpikeConvKernel.dense else "events"
    return "unfold" if kernel == "events" and on_cuda else kernel


@torch.library.custom_op("spikeops::spike_conv2d", mutates_args=(), device_types=_DEVICE_TYPES)
def spike_conv2d(spikes: Tensor, weight: Tensor, bias: Optional[Tensor], stride: List[int], padding: List[int],
                 dilation: List[int], groups: int, kernel: str = "auto") -> Tensor:
    """conv2d(spikes, weight) + bias with 1-byte spikes, adding the weights that spikes select (no multiplies).

    On the CPU, event-driven (cpp: spikeops::spike_conv2d), or torch's dense convolution above the policy's
    firing rate (kernel_policy.hpp); on CUDA, the spike GEMM over the unfolded input.

    Args:
        spikes (Tensor): [N, C, H, W] uint8 (or float 0/1; any nonzero value counts as one spike).
        weight (Tensor): [C_out, C / groups, kh, kw] float32/float16/bfloat16.
        bias (Tensor, optional): [C_out].
        stride, padding, dilation (list of 2 ints), groups (int): as F.conv2d (zero padding).
        kernel (str): one of SPIKE_CONV_KERNELS ("auto", "events", "dense"; "unfold" for tests). The backward's
            weight gradient uses the same kernel.

    Returns:
        Tensor: [N, C_out, OH, OW] in the weight's dtype, accumulated in float32.
    """
    check_conv_kernel(kernel, "spike_conv2d")
    layout = _conv_memory_format(spikes)
    spikes_u8 = _as_bytes(spikes).contiguous(memory_format=layout)
    kernel_size = (weight.shape[2], weight.shape[3])
    oh, ow = _conv_output_size(spikes_u8.shape, kernel_size, stride, padding, dilation)
    if weight.shape[0] == 0:  # no output channels (which torch's convolution would refuse)
        return weight.new_empty((spikes_u8.shape[0], 0, oh, ow)).contiguous(memory_format=layout)
    path = _conv_plan(spikes_u8, weight.shape[0], kernel_size, False, kernel, "spike_conv2d")
    if path == "dense":  # any nonzero byte is one spike
        return torch.nn.functional.conv2d(_nonzero_as(spikes_u8, weight.dtype), weight, bias, stride, padding,
                                          dilation, groups).contiguous(memory_format=layout)
    if path == "events":
        out = torch.empty((spikes_u8.shape[0], weight.shape[0], oh, ow), dtype=weight.dtype, memory_format=layout)
        # (views hold raw pointers: the tensors they describe are kept in variables until the call returns)
        weight, bias = weight.contiguous(), None if bias is None else bias.contiguous()
        _C.spike_conv2d(_view(spikes_u8, "spikes"), _view(weight, "weight"), _view(bias, "bias"),
                        _view(out, "out"), stride, padding, dilation, groups)
        return out
    n, c_out = spikes_u8.shape[0], weight.shape[0] // groups
    outs = []
    for g, cols in _conv_groups(spikes_u8, kernel_size, stride, padding, dilation, groups):
        w_g = weight[g * c_out:(g + 1) * c_out].permute(0, 2, 3, 1).reshape(c_out, -1)  # (kh, kw, C) order
        b_g = None if bias is None else bias[g * c_out:(g + 1) * c_out].float().contiguous()
        gemm_kernel, rate = _plan(cols, c_out, False, _unfold_gemm_kernel(cols), "spike_conv2d")
        outs.append(_accumulate(cols, pack_weight(w_g), True, b_g, c_out, weight.dtype, gemm_kernel,
                                rate))  # [N * OH * OW, c_out]
    out = outs[0] if groups == 1 else torch.cat(outs, dim=1)
    return out.view(n, oh, ow, weight.shape[0]).permute(0, 3, 1, 2).contiguous(memory_format=layout)


@spike_conv2d.register_fake
def _(spikes, weight, bias, stride, padding, dilation, groups, kernel="auto"):
    check_conv_kernel(kernel, "spike_conv2d")
    oh, ow = _conv_output_size(spikes.shape, (weight.shape[2], weight.shape[3]), stride, padding, dilation)
    return torch.empty((spikes.shape[0], weight.shape[0], oh, ow), dtype=weight.dtype, device=spikes.device,
                       memory_format=_conv_memory_format(spikes))


@torch.library.custom_op("spikeops::spike_conv2d_weight_grad", mutates_args=(), device_types=_DEVICE_TYPES)
def spike_conv2d_weight_grad(spikes: Tensor, grad_out: Tensor, weight_shape: List[int], stride: List[int],
                             padding: List[int], dilation: List[int], groups: int, out_dtype: torch.dtype,
                             kernel: str = "auto") -> Tensor:
    """The weight gradient of spike_conv2d: for each spike and kernel tap, the output gradient at the pixel the
    tap reaches is added (no multiplies); torch's dense one above the policy's firing rate (kernel_policy.hpp).

    Args:
        spikes (Tensor): [N, C, H, W] uint8 (or float 0/1; any nonzero value counts as one spike).
        grad_out (Tensor): [N, C_out, OH, OW] float32/float16/bfloat16.
        weight_shape (list of 4 ints): [C_out, C / groups, kh, kw].
        stride, padding, dilation, groups: the convolution's.
        out_dtype (torch.dtype): float32, float16 or bfloat16.
        kernel (str): as spike_conv2d's (the policy's weight-gradient threshold for "auto").

    Returns:
        Tensor: weight_shape in out_dtype.
    """
    check_conv_kernel(kernel, "spike_conv2d_weight_grad")
    layout = _conv_memory_format(spikes)
    spikes = _as_bytes(spikes).contiguous(memory_format=layout)
    if weight_shape[0] == 0 or spikes.shape[0] == 0:
        return grad_out.new_zeros(weight_shape, dtype=out_dtype)
    path = _conv_plan(spikes, weight_shape[0], weight_shape[2:], True, kernel, "spike_conv2d_weight_grad")
    if path == "dense":  # any nonzero byte is one spike
        return torch.nn.grad.conv2d_weight(_nonzero_as(spikes, grad_out.dtype), weight_shape, grad_out, stride,
                                           padding, dilation, groups).to(out_dtype).contiguous()
    if path == "events":
        grad_w = grad_out.new_empty(weight_shape, dtype=out_dtype)
        grad_out = grad_out.contiguous(memory_format=layout)  # kept in a variable: the view holds a raw pointer
        _C.spike_conv2d_weight_grad(_view(spikes, "spikes"), _view(grad_out, "grad_out"),
                                    _view(grad_w, "grad_weight"), stride, padding, dilation, groups)
        return grad_w
    c_out, _, kh, kw = weight_shape
    c_out //= groups
    grads = []
    for g, cols in _conv_groups(spikes, (kh, kw), stride, padding, dilation, groups):
        dy = grad_out[:, g * c_out:(g + 1) * c_out].permute(0, 2, 3, 1).reshape(-1, c_out)  # [N * OH * OW, c_out]
        g_w = spike_accumulate_rows_t(cols.t(), dy.contiguous(), out_dtype,
                                      _unfold_gemm_kernel(cols))  # [c_out, kh * kw * C/groups]
        grads.append(g_w.view(c_out, kh, kw, -1).permute(0, 3, 1, 2))
    return (grads[0] if groups == 1 else torch.cat(grads)).contiguous()


@spike_conv2d_weight_grad.register_fake
def _(spikes, grad_out, weight_shape, stride, padding, dilation, groups, out_dtype, kernel="auto"):
    check_conv_kernel(kernel, "spike_conv2d_weight_grad")
    return grad_out.new_empty(weight_shape, dtype=out_dtype)


def _spike_conv2d_setup_context(ctx, inputs, output):
    spikes, weight, bias, stride, padding, dilation, groups, ctx.kernel = inputs
    ctx.conv = (list(stride), list(padding), list(dilation), groups)
    ctx.spikes_dtype = spikes.dtype
    ctx.spikes_shape = list(spikes.shape)
    ctx.weight_shape = list(weight.shape)
    ctx.weight_dtype = weight.dtype
    ctx.has_bias = bias is not None
    if isinstance(spikes, SpikeTensor):
        spikes = spikes.spikes
    # 1 byte per spike whatever the spikes' dtype; the weight only for the gradient of the spikes.
    spikes_u8 = _as_bytes(spikes)
    ctx.save_for_backward(spikes_u8 if ctx.needs_input_grad[1] else None,
                          weight if ctx.needs_input_grad[0] else None)


def _spike_conv2d_backward(ctx, grad_out):
    spikes_u8, weight = ctx.saved_tensors
    stride, padding, dilation, groups = ctx.conv
    grad_spikes = grad_weight = grad_bias = None
    if ctx.needs_input_grad[0]:  # dense: the gradient of the spikes is not sparse
        grad_spikes = torch.nn.grad.conv2d_input(ctx.spikes_shape, weight.to(grad_out.dtype), grad_out, stride,
                                                 padding, dilation, groups).to(ctx.spikes_dtype)
    if ctx.needs_input_grad[1]:
        grad_weight = spike_conv2d_weight_grad(spikes_u8, grad_out, ctx.weight_shape, stride, padding, dilation,
                                               groups, ctx.weight_dtype, ctx.kernel)
    if ctx.has_bias and ctx.needs_input_grad[2]:
        grad_bias = grad_out.sum((0, 2, 3))
    return grad_spikes, grad_weight, grad_bias, None, None, None, None, None


torch.library.register_autograd("spikeops::spike_conv2d", _spike_conv2d_backward,
                                setup_context=_spike_conv2d_setup_context)
