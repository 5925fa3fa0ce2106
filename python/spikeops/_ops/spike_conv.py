"""The accumulate-only spike convolution: spikeops::spike_conv2d and spikeops::spike_conv2d_weight_grad."""

from __future__ import annotations

from typing import List, Optional

import torch
from torch import Tensor

from .. import _C
from ..spike_tensor import _trusting
from . import _checks
from ._checks import SPIKE_CONV_KERNELS
from ._common import _DEVICE_TYPES, _stream, _view
from .spike_linear import _core_device, _nonzero_as, _saved_spikes, firing_rate_estimate
from .spike_values import has_nan, spike_operand

# The kernel argument of the convolution ops (SPIKE_CONV_KERNELS). "auto" asks the core's policy
# (kernel_policy.hpp); "events" is the core's accumulate-only convolution (spikeops::spike_conv2d, on the CPU and
# CUDA); "dense" is torch's convolution on the spikes as floats.


def _conv_output_size(spikes_shape, kernel, stride, padding, dilation) -> tuple:
    """(OH, OW) for spikes [N, C, H, W] and a kernel (kh, kw) whose geometry _checks.spike_conv2d accepted."""
    return _checks.conv_output_size("spike_conv2d", spikes_shape[2:], kernel, stride, padding, dilation)


def _conv_memory_format(spikes: Tensor) -> torch.memory_format:
    """The layout spike_conv2d keeps: channels-last for spikes stored so (and not also contiguous), which the
    CPU kernels read and write as they lie (torch's convolutions are fastest in it on the CPU); else NCHW."""
    if not spikes.is_contiguous() and spikes.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def _core_memory_format(t: Tensor, layout: torch.memory_format) -> torch.memory_format:
    """The layout the core's kernels take: the spikes' own on the CPU, NCHW on CUDA."""
    return layout if t.device.type == "cpu" else torch.contiguous_format


# ValueError naming ``kernel`` for a value that is not one of SPIKE_CONV_KERNELS: check_conv_kernel(kernel, op).
check_conv_kernel = _checks.conv_kernel


def _conv_plan(spikes_u8: Tensor, out_channels: int, kernel_size, weight_gradient: bool, kernel: str,
               op: str, rate: float = -1.0) -> str:
    """The path that runs: "events" (the core's kernels) or "dense" (torch's): the forced kernel, or for "auto" the
    policy's choice. The firing rate is the spikes' check's count where it made one (float spikes), else
    estimated only where the policy needs it (the CPU), from about 8 of the images: the side of a threshold is
    all it decides."""
    check_conv_kernel(kernel, op)
    if kernel == "auto":
        n, c, h, w = spikes_u8.shape
        problem = _C.SpikeConv2dProblem(n, c, h, w, out_channels, kernel_size[0], kernel_size[1], weight_gradient,
                                        _core_device(spikes_u8))
        if rate < 0 and _C.spike_conv2d_needs_firing_rate(problem):
            rate = firing_rate_estimate(spikes_u8, slices=8)
        kernel = "dense" if _C.choose_spike_conv2d_kernel(problem, rate) == _C.SpikeConvKernel.dense else "events"
    return kernel


@torch.library.custom_op("spikeops::spike_conv2d", mutates_args=(), device_types=_DEVICE_TYPES)
def spike_conv2d(spikes: Tensor, weight: Tensor, bias: Optional[Tensor], stride: List[int], padding: List[int],
                 dilation: List[int], groups: int, kernel: str = "auto") -> Tensor:
    """conv2d(spikes, weight) + bias with 1-byte spikes, adding the weights that spikes select (no multiplies).

    The core's accumulate-only convolution (spikeops::spike_conv2d, CPU and CUDA), or torch's dense convolution
    where the policy (kernel_policy.hpp) says it is faster: on the CPU above a firing rate. Every path computes
    what ``F.conv2d(spikes.float(), weight, bias, ...)`` computes up to float32 summation order, inf and NaN
    included (an inf or NaN in weight[o] makes output channel o NaN, whatever the firing rate).

    Args:
        spikes (Tensor): [N, C, H, W] uint8 0/1 (checked in one pass unless a SpikeTensor's), or float 0/1 or
            signed -1/0/1 (the -1 spikes subtracted: a second product); other values raise ValueError.
        weight (Tensor): [C_out, C / groups, kh, kw] float32/float16/bfloat16.
        bias (Tensor, optional): [C_out].
        stride, padding, dilation (list of 2 ints), groups (int): as F.conv2d (zero padding).
        kernel (str): one of SPIKE_CONV_KERNELS ("auto", "events", "dense"). The backward's weight gradient uses
            the same kernel.

    Returns:
        Tensor: [N, C_out, OH, OW] in the weight's dtype, accumulated in float32.
    """
    _checks.spike_conv2d("spikeops::spike_conv2d", spikes, weight, bias, stride, padding, dilation, groups, kernel)
    layout = _conv_memory_format(spikes)
    operand = spike_operand(spikes, "spike_conv2d")
    spikes_u8 = operand.positive.contiguous(memory_format=layout)
    kernel_size = (weight.shape[2], weight.shape[3])
    oh, ow = _conv_output_size(spikes_u8.shape, kernel_size, stride, padding, dilation)
    if weight.shape[0] == 0:  # no output channels (which torch's convolution would refuse)
        return weight.new_empty((spikes_u8.shape[0], 0, oh, ow)).contiguous(memory_format=layout)
    path = _conv_plan(spikes_u8, weight.shape[0], kernel_size, False, kernel, "spike_conv2d", operand.rate)
    negative = operand.negative
    if negative is not None:
        negative = negative.contiguous(memory_format=layout)
    def dense():
        values = _signed_floats(spikes_u8, negative, weight.dtype)
        values, pad = _padded_if_not_finite(values, padding, weight)
        return torch.nn.functional.conv2d(values, weight, bias, stride, pad, dilation,
                                          groups).contiguous(memory_format=layout)

    if path == "dense":
        return dense()
    if negative is None:
        return _events_conv2d(spikes_u8, weight, bias, stride, padding, dilation, groups, layout, oh, ow,
                              weight.dtype)
    out = _events_conv2d(spikes_u8, weight, bias, stride, padding, dilation, groups, layout, oh, ow, torch.float32)
    out -= _events_conv2d(negative, weight, None, stride, padding, dilation, groups, layout, oh, ow, torch.float32)
    # a NaN there (an inf or NaN weight): the dense convolution, which gives -1 x inf = -inf as IEEE does
    return dense() if has_nan(out) else out.to(weight.dtype)


def _padded_if_not_finite(values: Tensor, padding, operand: Tensor) -> tuple:
    """(values, padding) for torch's convolution, with the padding's zeros written into values when operand
    holds an inf or NaN: some of torch's convolution algorithms skip the padding and others multiply it, and
    the ops promise the dense product on the zero-padded input (0 x inf = 0 x NaN = NaN there too). Finite
    operands, the usual case, keep torch's padding (one read of the operand)."""
    if not any(padding) or bool(torch.isfinite(operand).all()):
        return values, padding
    return torch.nn.functional.pad(values, (padding[1], padding[1], padding[0], padding[0])), [0, 0]


def _signed_floats(spikes_u8: Tensor, negative: Optional[Tensor], dtype: torch.dtype) -> Tensor:
    """The spikes as floats of ``dtype``: 0/1, minus the -1 spikes' bytes where there are some."""
    values = _nonzero_as(spikes_u8, dtype)
    return values if negative is None else values - negative.to(dtype)


def _events_conv2d(spikes_u8: Tensor, weight: Tensor, bias: Optional[Tensor], stride, padding, dilation, groups,
                   layout: torch.memory_format, oh: int, ow: int, out_dtype: torch.dtype) -> Tensor:
    """The core's accumulate-only convolution of 0/1 bytes."""
    core_layout = _core_memory_format(spikes_u8, layout)
    spikes_u8 = spikes_u8.contiguous(memory_format=core_layout)
    out = torch.empty((spikes_u8.shape[0], weight.shape[0], oh, ow), dtype=out_dtype, device=spikes_u8.device,
                      memory_format=core_layout)
    # (views hold raw pointers: the tensors they describe are kept in variables until the call returns)
    weight, bias = weight.contiguous(), None if bias is None else bias.contiguous()
    _C.spike_conv2d(_view(spikes_u8, "spikes"), _view(weight, "weight"), _view(bias, "bias"), _view(out, "out"),
                    stride, padding, dilation, groups, _stream(spikes_u8))
    return out.contiguous(memory_format=layout)


@spike_conv2d.register_fake
def _(spikes, weight, bias, stride, padding, dilation, groups, kernel="auto"):
    _checks.spike_conv2d("spikeops::spike_conv2d", spikes, weight, bias, stride, padding, dilation, groups, kernel)
    oh, ow = _conv_output_size(spikes.shape, (weight.shape[2], weight.shape[3]), stride, padding, dilation)
    return torch.empty((spikes.shape[0], weight.shape[0], oh, ow), dtype=weight.dtype, device=spikes.device,
                       memory_format=_conv_memory_format(spikes))


@torch.library.custom_op("spikeops::spike_conv2d_weight_grad", mutates_args=(), device_types=_DEVICE_TYPES)
def spike_conv2d_weight_grad(spikes: Tensor, grad_out: Tensor, weight_shape: List[int], stride: List[int],
                             padding: List[int], dilation: List[int], groups: int, out_dtype: torch.dtype,
                             kernel: str = "auto") -> Tensor:
    """The weight gradient of spike_conv2d: for each spike and kernel tap, the output gradient at the pixel the
    tap reaches is added (no multiplies); torch's dense one above the policy's firing rate (kernel_policy.hpp).

    As torch's dense weight gradient on the spikes as floats, inf and NaN included (an inf or NaN in grad_out
    channel o reaches all of the result's [o]).

    Args:
        spikes (Tensor): [N, C, H, W] uint8 0/1, or int8/float -1/0/1 (signed spikes: two products); other
            values raise ValueError.
        grad_out (Tensor): [N, C_out, OH, OW] float32/float16/bfloat16.
        weight_shape (list of 4 ints): [C_out, C / groups, kh, kw].
        stride, padding, dilation, groups: the convolution's.
        out_dtype (torch.dtype): float32, float16 or bfloat16.
        kernel (str): as spike_conv2d's (the policy's weight-gradient threshold for "auto").

    Returns:
        Tensor: weight_shape in out_dtype.
    """
    _checks.spike_conv2d_weight_grad("spikeops::spike_conv2d_weight_grad", spikes, grad_out, weight_shape, stride,
                                     padding, dilation, groups, out_dtype, kernel)
    layout = _conv_memory_format(spikes)
    operand = spike_operand(spikes, "spike_conv2d_weight_grad")
    spikes = operand.positive.contiguous(memory_format=layout)
    if weight_shape[0] == 0 or spikes.shape[0] == 0:
        return grad_out.new_zeros(weight_shape, dtype=out_dtype)
    path = _conv_plan(spikes, weight_shape[0], weight_shape[2:], True, kernel, "spike_conv2d_weight_grad",
                      operand.rate)
    negative = operand.negative
    if negative is not None:
        negative = negative.contiguous(memory_format=layout)
    def dense():
        values = _signed_floats(spikes, negative, grad_out.dtype)
        values, pad = _padded_if_not_finite(values, padding, grad_out)
        return torch.nn.grad.conv2d_weight(values, weight_shape, grad_out, stride, pad, dilation,
                                           groups).to(out_dtype).contiguous()

    if path == "dense":
        return dense()
    if negative is None:
        return _events_weight_grad(spikes, grad_out, weight_shape, stride, padding, dilation, groups, layout,
                                   out_dtype)
    grad_w = _events_weight_grad(spikes, grad_out, weight_shape, stride, padding, dilation, groups, layout,
                                 torch.float32)
    grad_w -= _events_weight_grad(negative, grad_out, weight_shape, stride, padding, dilation, groups, layout,
                                  torch.float32)
    return dense() if has_nan(grad_w) else grad_w.to(out_dtype)


def _events_weight_grad(spikes: Tensor, grad_out: Tensor, weight_shape, stride, padding, dilation, groups,
                        layout: torch.memory_format, out_dtype: torch.dtype) -> Tensor:
    """The core's accumulate-only weight gradient for 0/1 bytes."""
    core_layout = _core_memory_format(spikes, layout)
    spikes = spikes.contiguous(memory_format=core_layout)
    grad_w = grad_out.new_empty(weight_shape, dtype=out_dtype)
    grad_out = grad_out.contiguous(memory_format=core_layout)  # kept in a variable: the view holds a raw pointer
    _C.spike_conv2d_weight_grad(_view(spikes, "spikes"), _view(grad_out, "grad_out"), _view(grad_w, "grad_weight"),
                                stride, padding, dilation, groups, _stream(spikes))
    return grad_w


@spike_conv2d_weight_grad.register_fake
def _(spikes, grad_out, weight_shape, stride, padding, dilation, groups, out_dtype, kernel="auto"):
    _checks.spike_conv2d_weight_grad("spikeops::spike_conv2d_weight_grad", spikes, grad_out, weight_shape, stride,
                                     padding, dilation, groups, out_dtype, kernel)
    return grad_out.new_empty(weight_shape, dtype=out_dtype)


def _spike_conv2d_setup_context(ctx, inputs, output):
    spikes, weight, bias, stride, padding, dilation, groups, ctx.kernel = inputs
    ctx.conv = (list(stride), list(padding), list(dilation), groups)
    ctx.spikes_dtype = spikes.dtype
    ctx.spikes_shape = list(spikes.shape)
    ctx.weight_shape = list(weight.shape)
    ctx.weight_dtype = weight.dtype
    ctx.has_bias = bias is not None
    # 1 byte per spike whatever the spikes' dtype; the weight only for the gradient of the spikes.
    ctx.save_for_backward(_saved_spikes(spikes) if ctx.needs_input_grad[1] else None,
                          weight if ctx.needs_input_grad[0] else None)


def _spike_conv2d_backward(ctx, grad_out):
    spikes_u8, weight = ctx.saved_tensors
    stride, padding, dilation, groups = ctx.conv
    grad_spikes = grad_weight = grad_bias = None
    if ctx.needs_input_grad[0]:  # dense: the gradient of the spikes is not sparse
        grad_spikes = torch.nn.grad.conv2d_input(ctx.spikes_shape, weight.to(grad_out.dtype), grad_out, stride,
                                                 padding, dilation, groups).to(ctx.spikes_dtype)
    if ctx.needs_input_grad[1]:
        with _trusting([spikes_u8] if spikes_u8.dtype == torch.uint8 else []):  # checked by the forward
            grad_weight = spike_conv2d_weight_grad(spikes_u8, grad_out, ctx.weight_shape, stride, padding, dilation,
                                                   groups, ctx.weight_dtype, ctx.kernel)
    if ctx.has_bias and ctx.needs_input_grad[2]:
        grad_bias = grad_out.sum((0, 2, 3))
    return grad_spikes, grad_weight, grad_bias, None, None, None, None, None


torch.library.register_autograd("spikeops::spike_conv2d", _spike_conv2d_backward,
                                setup_context=_spike_conv2d_setup_context)
