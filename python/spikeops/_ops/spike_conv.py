"""The accumulate-only spike convolution: spikeops::spike_conv2d and spikeops::spike_conv2d_weight_grad."""

from __future__ import annotations

from typing import List, Optional

import torch
from torch import Tensor

from .. import _C
from ..spike_tensor import SpikeTensor
from ._common import _DEVICE_TYPES, _view
from .spike_linear import (_accumulate, _as_bytes, _dispatch_rate, _nonzero_as, firing_rate_estimate, pack_weight,
                           spike_accumulate_rows_t)

# Firing rates above which torch's dense convolution on the spikes as floats beats the CPU's event-driven
# kernels (same result up to float32 summation order): the forward, and the weight gradient. Measured with
# bench/spike_gemm.py's convolution shape, where oneDNN runs near the FMA peak (see the README), each op alone
# on host A: the forward is 2.0x at 10%, 1.25x at 20%, 1.04x at 25%; the weight gradient 1.5x at 10%, 1.24x
# at 15%, 1.04x at 20%. The thresholds sit below those crossovers because that host, in its slower state
# (see the README), runs the event-driven kernels up to 1.5x slower and the dense convolution no slower.
CONV_DENSE_RATE_THRESHOLD_CPU = 0.2
CONV_DENSE_RATE_THRESHOLD_GRAD_CPU = 0.15
# On CUDA the convolution is the spike GEMM over the unfolded input (im2col in bytes). True runs that path on
# the CPU too (tests).
CONV_UNFOLD_ON_CPU = False


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


def _use_conv_events(spikes_u8: Tensor) -> bool:
    return spikes_u8.device.type == "cpu" and not CONV_UNFOLD_ON_CPU


def _conv_rate(spikes_u8: Tensor) -> float:
    """The firing rate estimate that picks the CPU's kernel, from about 8 of the images (counting all 64 of the
    benchmark's took 8% of the kernel's time at 1%); -1.0 (unknown) for empty spikes."""
    return firing_rate_estimate(spikes_u8, slices=8) if spikes_u8.numel() else -1.0


@torch.library.custom_op("spikeops::spike_conv2d", mutates_args=(), device_types=_DEVICE_TYPES)
def spike_conv2d(spikes: Tensor, weight: Tensor, bias: Optional[Tensor], stride: List[int], padding: List[int],
                 dilation: List[int], groups: int) -> Tensor:
    """conv2d(spikes, weight) + bias with 1-byte spikes, adding the weights that spikes select (no multiplies).

    On the CPU, event-driven (cpp: spikeops::spike_conv2d), or torch's dense convolution above
    CONV_DENSE_RATE_THRESHOLD_CPU; on CUDA, the spike GEMM over the unfolded input.

    Args:
        spikes (Tensor): [N, C, H, W] uint8 (or float 0/1; any nonzero value counts as one spike).
        weight (Tensor): [C_out, C / groups, kh, kw] float32/float16/bfloat16.
        bias (Tensor, optional): [C_out].
        stride, padding, dilation (list of 2 ints), groups (int): as F.conv2d (zero padding).

    Returns:
        Tensor: [N, C_out, OH, OW] in the weight's dtype, accumulated in float32.
    """
    layout = _conv_memory_format(spikes)
    spikes_u8 = _as_bytes(spikes).contiguous(memory_format=layout)
    kernel = (weight.shape[2], weight.shape[3])
    oh, ow = _conv_output_size(spikes_u8.shape, kernel, stride, padding, dilation)
    if weight.shape[0] == 0:  # no output channels (which torch's convolution would refuse)
        return weight.new_empty((spikes_u8.shape[0], 0, oh, ow)).contiguous(memory_format=layout)
    if _use_conv_events(spikes_u8):
        if _conv_rate(spikes_u8) > CONV_DENSE_RATE_THRESHOLD_CPU:  # any nonzero byte is one spike
            return torch.nn.functional.conv2d(_nonzero_as(spikes_u8, weight.dtype), weight, bias, stride, padding,
                                              dilation, groups).contiguous(memory_format=layout)
        out = torch.empty((spikes_u8.shape[0], weight.shape[0], oh, ow), dtype=weight.dtype, memory_format=layout)
        # (views hold raw pointers: the tensors they describe are kept in variables until the call returns)
        weight, bias = weight.contiguous(), None if bias is None else bias.contiguous()
        _C.spike_conv2d(_view(spikes_u8, "spikes"), _view(weight, "weight"), _view(bias, "bias"),
                        _view(out, "out"), stride, padding, dilation, groups)
        return out
    n, c_out = spikes_u8.shape[0], weight.shape[0] // groups
    outs = []
    for g, cols in _conv_groups(spikes_u8, kernel, stride, padding, dilation, groups):
        w_g = weight[g * c_out:(g + 1) * c_out].permute(0, 2, 3, 1).reshape(c_out, -1)  # (kh, kw, C) order
        b_g = None if bias is None else bias[g * c_out:(g + 1) * c_out].float().contiguous()
        outs.append(_accumulate(cols, pack_weight(w_g), True, b_g, c_out, weight.dtype,
                                _dispatch_rate(cols, c_out)))  # [N * OH * OW, c_out]
    out = outs[0] if groups == 1 else torch.cat(outs, dim=1)
    return out.view(n, oh, ow, weight.shape[0]).permute(0, 3, 1, 2).contiguous(memory_format=layout)


@spike_conv2d.register_fake
def _(spikes, weight, bias, stride, padding, dilation, groups):
    oh, ow = _conv_output_size(spikes.shape, (weight.shape[2], weight.shape[3]), stride, padding, dilation)
    return torch.empty((spikes.shape[0], weight.shape[0], oh, ow), dtype=weight.dtype, device=spikes.device,
                       memory_format=_conv_memory_format(spikes))


@torch.library.custom_op("spikeops::spike_conv2d_weight_grad", mutates_args=(), device_types=_DEVICE_TYPES)
def spike_conv2d_weight_grad(spikes: Tensor, grad_out: Tensor, weight_shape: List[int], stride: List[int],
                             padding: List[int], dilation: List[int], groups: int, out_dtype: torch.dtype) -> Tensor:
    """The weight gradient of spike_conv2d: for each spike and kernel tap, the output gradient at the pixel the
    tap reaches is added (no multiplies); torch's dense one above CONV_DENSE_RATE_THRESHOLD_GRAD_CPU.

    Args:
        spikes (Tensor): [N, C, H, W] uint8 (or float 0/1; any nonzero value counts as one spike).
        grad_out (Tensor): [N, C_out, OH, OW] float32/float16/bfloat16.
        weight_shape (list of 4 ints): [C_out, C / groups, kh, kw].
        stride, padding, dilation, groups: the convolution's.
        out_dtype (torch.dtype): float32, float16 or bfloat16.

    Returns:
        Tensor: weight_shape in out_dtype.
    """
    layout = _conv_memory_format(spikes)
    spikes = _as_bytes(spikes).contiguous(memory_format=layout)
    if weight_shape[0] == 0 or spikes.shape[0] == 0:
        return grad_out.new_zeros(weight_shape, dtype=out_dtype)
    if _use_conv_events(spikes):
        if _conv_rate(spikes) > CONV_DENSE_RATE_THRESHOLD_GRAD_CPU:  # any nonzero byte is one spike
            return torch.nn.grad.conv2d_weight(_nonzero_as(spikes, grad_out.dtype), weight_shape, grad_out, stride,
                                               padding, dilation, groups).to(out_dtype).contiguous()
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
        g_w = spike_accumulate_rows_t(cols.t(), dy.contiguous(), out_dtype)  # [c_out, kh * kw * C/groups]
        grads.append(g_w.view(c_out, kh, kw, -1).permute(0, 3, 1, 2))
    return (grads[0] if groups == 1 else torch.cat(grads)).contiguous()


@spike_conv2d_weight_grad.register_fake
def _(spikes, grad_out, weight_shape, stride, padding, dilation, groups, out_dtype):
    return grad_out.new_empty(weight_shape, dtype=out_dtype)


def _spike_conv2d_setup_context(ctx, inputs, output):
    spikes, weight, bias, stride, padding, dilation, groups = inputs
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
                                               groups, ctx.weight_dtype)
    if ctx.has_bias and ctx.needs_input_grad[2]:
        grad_bias = grad_out.sum((0, 2, 3))
    return grad_spikes, grad_weight, grad_bias, None, None, None, None


torch.library.register_autograd("spikeops::spike_conv2d", _spike_conv2d_backward,
                                setup_context=_spike_conv2d_setup_context)
