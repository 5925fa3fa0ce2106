"""Network-level helpers (SpikingJelly's ``functional``): reset, detach, step-mode switching, and the
accumulate-only spike GEMM ``spike_linear``."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn

from . import _ops
from .base import MemoryModule, StepModule, check_step_mode
from .spike_tensor import SpikeTensor

__all__ = ["reset_net", "detach_net", "set_step_mode", "spike_linear", "spike_conv2d"]


def reset_net(net: nn.Module) -> None:
    """Reset the state of every stateful module in ``net`` (call it between samples or batches)."""
    if not isinstance(net, nn.Module):
        raise TypeError(f"reset_net: net must be a torch.nn.Module, got {type(net).__name__}")
    for m in net.modules():
        if isinstance(m, MemoryModule):
            m.reset()


def detach_net(net: nn.Module) -> None:
    """Cut the autograd graph through every stateful module's state (truncated BPTT)."""
    if not isinstance(net, nn.Module):
        raise TypeError(f"detach_net: net must be a torch.nn.Module, got {type(net).__name__}")
    for m in net.modules():
        if isinstance(m, MemoryModule):
            m.detach()


def set_step_mode(net: nn.Module, step_mode: str) -> None:
    """Set ``step_mode`` ('s' or 'm') on every step-mode-aware module in ``net``."""
    if not isinstance(net, nn.Module):
        raise TypeError(f"set_step_mode: net must be a torch.nn.Module, got {type(net).__name__}")
    check_step_mode(step_mode, "set_step_mode")
    for m in net.modules():
        if isinstance(m, StepModule):
            m.step_mode = step_mode


# ---------------------------------------------------------------------------------------------------------
# Spike GEMM
# ---------------------------------------------------------------------------------------------------------

_FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def spike_linear(spikes: Tensor, weight: Tensor, bias: Optional[Tensor] = None,
                 check_spikes: bool = False) -> Tensor:
    """``F.linear(spikes.float(), weight, bias)`` by adding the weight columns the spikes select: no multiplies.

    Args:
        spikes (Tensor): [*, K] spikes: a :class:`spikeops.SpikeTensor` (1 byte per spike, read as it is, and
            the gradient ``grad_out . weight`` flows back to it, e.g. into the neuron that fired it), ``uint8``
            (1 byte per spike; no gradient flows to an integer tensor) or float32/float16/bfloat16 0/1 (the
            gradient flows back to them). Any nonzero value counts as one spike; its value is not a multiplier.
        weight (Tensor): [N, K] float32, float16 or bfloat16, on the spikes' device.
        bias (Tensor, optional): [N].
        check_spikes (bool): verify that every value is 0 or 1 and raise ValueError otherwise (one extra pass).

    Returns:
        Tensor: [*, N] in the weight's dtype, accumulated in float32. For the backward only the spikes are
        kept, in 1 byte each; the weight gradient is itself computed by the accumulate-only kernel.
    """
    if not isinstance(spikes, Tensor) or (spikes.dtype != torch.uint8 and spikes.dtype not in _FLOAT_DTYPES):
        got = spikes.dtype if isinstance(spikes, Tensor) else type(spikes).__name__
        raise TypeError(f"spike_linear: spikes must be a uint8 or float32/float16/bfloat16 tensor of 0/1, got {got}")
    if not isinstance(weight, Tensor) or weight.dtype not in _FLOAT_DTYPES:
        got = weight.dtype if isinstance(weight, Tensor) else type(weight).__name__
        raise TypeError(f"spike_linear: weight must be a float32/float16/bfloat16 tensor, got {got}")
    if weight.dim() != 2:
        raise ValueError(f"spike_linear: weight must be [N, K], got shape {tuple(weight.shape)}")
    if spikes.dim() < 1 or spikes.shape[-1] != weight.shape[1]:
        raise ValueError(f"spike_linear: spikes must be [*, K] with K = weight.shape[1] = {weight.shape[1]}, "
                         f"got shape {tuple(spikes.shape)}")
    if spikes.device != weight.device:
        raise ValueError(f"spike_linear: weight is on {weight.device} but spikes are on {spikes.device}")
    if bias is not None:
        if not isinstance(bias, Tensor) or bias.shape != (weight.shape[0],):
            got = tuple(bias.shape) if isinstance(bias, Tensor) else type(bias).__name__
            raise ValueError(f"spike_linear: bias must be [N] = [{weight.shape[0]}], got {got}")
        if bias.device != weight.device:
            raise ValueError(f"spike_linear: bias is on {bias.device} but weight is on {weight.device}")
    if check_spikes and spikes.numel() > 0:
        values = spikes.spikes if isinstance(spikes, SpikeTensor) else spikes
        bad = (values != 0) & (values != 1)
        if bool(bad.any()):
            raise ValueError(f"spike_linear: spikes must be 0 or 1, found {int(bad.sum())} other values "
                             f"(e.g. {values[bad][0].item()})")
    lead = spikes.shape[:-1]
    spikes_2d = spikes.reshape(math.prod(lead), spikes.shape[-1])  # explicit: -1 is ambiguous when K = 0
    if spikes_2d.dtype == torch.uint8 or isinstance(spikes_2d, SpikeTensor):
        spikes_2d = spikes_2d.contiguous()  # 1 byte per element: the kernel reads rows of bytes
    out = torch.ops.spikeops.spike_linear(spikes_2d, weight, bias)
    return out.view(*lead, weight.shape[0])


# Firing rates above which spike_conv2d hands the work to torch's dense convolution on the CPU (the result is
# the same up to float32 summation order). Measured with bench/spike_gemm.py's conv rows, where oneDNN's float
# convolution runs near the FMA peak: the accumulate path wins in inference below about 4% firing, and in
# training (weight gradient too, since it reads the unfolded bytes as a transposed view without a copy) below
# about 3% (1.5-1.7x at 0.5-1%, 1.0x at 5% on the second host).
CONV_DENSE_RATE_THRESHOLD_CPU = 0.04
CONV_DENSE_RATE_THRESHOLD_TRAINING_CPU = 0.02


def _pair(value, name: str) -> tuple:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) for v in pair):
        raise ValueError(f"spike_conv2d: {name} must be an int or a pair of ints, got {value!r}")
    return pair


def _unfold_bytes(spikes: Tensor, kernel: tuple, stride: tuple, padding: tuple, dilation: tuple) -> Tensor:
    """im2col of a uint8 [N, C, H, W] tensor: [N * OH * OW, kh * kw * C] (channels last), 1 byte per element.

    torch's unfold has no uint8 kernel; a strided view of the padded bytes in NHWC order and one copy do the
    same, and with channels innermost the copy moves runs of C contiguous bytes.
    """
    n, c, h, w = spikes.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    x = torch.nn.functional.pad(spikes, (pw, pw, ph, ph)) if ph or pw else spikes
    x = x.permute(0, 2, 3, 1).contiguous()  # [N, H + 2ph, W + 2pw, C]
    hp, wp = h + 2 * ph, w + 2 * pw
    oh = (hp - dh * (kh - 1) - 1) // sh + 1
    ow = (wp - dw * (kw - 1) - 1) // sw + 1
    if oh <= 0 or ow <= 0:
        raise ValueError(f"spike_conv2d: the kernel {kernel} with dilation {dilation} does not fit the padded "
                         f"input of {hp}x{wp}")
    sn, sy, sx, sc = x.stride()
    windows = x.as_strided((n, oh, ow, kh, kw, c), (sn, sy * sh, sx * sw, sy * dh, sx * dw, sc))
    return windows.reshape(n * oh * ow, kh * kw * c), oh, ow


def spike_conv2d(spikes: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride=1, padding=0,
                 dilation=1, groups: int = 1) -> Tensor:
    """``F.conv2d(spikes.float(), weight, bias, ...)`` on 1-byte spikes, as a spike GEMM over the unfolded input.

    The input is unfolded in bytes (im2col at 1 byte per element), then each output pixel adds the weights
    that its receptive field's spikes select (:func:`spike_linear`): no multiplies. On the CPU, above a
    firing rate of ``CONV_DENSE_RATE_THRESHOLD_CPU`` (``CONV_DENSE_RATE_THRESHOLD_TRAINING_CPU`` when the
    weight needs a gradient), torch's dense convolution is faster and is used instead (same result up to
    float32 summation order).

    A :class:`spikeops.SpikeTensor` input is read the same way; when a gradient is needed (of the spikes or of
    the weight) it runs torch's dense convolution on a temporary float copy and keeps the spikes for the
    backward in 1 byte, not the float copy.

    Args:
        spikes (Tensor): [N, C, H, W] uint8 spikes (any nonzero byte is a spike; no gradient flows to them) or a
            SpikeTensor (the gradient flows back to it).
        weight (Tensor): [C_out, C / groups, kh, kw] float32/float16/bfloat16.
        bias (Tensor, optional): [C_out].
        stride, padding, dilation: ints or pairs, as ``F.conv2d`` (zero padding).
        groups (int): as ``F.conv2d``.

    Returns:
        Tensor: [N, C_out, OH, OW] in the weight's dtype.
    """
    if not isinstance(spikes, Tensor) or (spikes.dtype != torch.uint8 and not isinstance(spikes, SpikeTensor)):
        got = spikes.dtype if isinstance(spikes, Tensor) else type(spikes).__name__
        raise TypeError(f"spike_conv2d: spikes must be a uint8 tensor or a SpikeTensor, got {got}")
    if spikes.dim() != 4:
        raise ValueError(f"spike_conv2d: spikes must be [N, C, H, W], got shape {tuple(spikes.shape)}")
    if not isinstance(weight, Tensor) or weight.dim() != 4:
        raise ValueError("spike_conv2d: weight must be a [C_out, C / groups, kh, kw] tensor")
    if not isinstance(groups, int) or groups < 1 or spikes.shape[1] % groups or weight.shape[0] % groups:
        raise ValueError(f"spike_conv2d: groups must be a positive int dividing C={spikes.shape[1]} and "
                         f"C_out={weight.shape[0]}, got {groups}")
    if weight.shape[1] * groups != spikes.shape[1]:
        raise ValueError(f"spike_conv2d: weight expects {weight.shape[1] * groups} input channels "
                         f"({weight.shape[1]} per group x {groups} groups), spikes have {spikes.shape[1]}")
    kernel = (weight.shape[2], weight.shape[3])
    stride, padding, dilation = _pair(stride, "stride"), _pair(padding, "padding"), _pair(dilation, "dilation")
    if min(stride) < 1 or min(dilation) < 1 or min(padding) < 0:
        raise ValueError(f"spike_conv2d: stride and dilation must be >= 1 and padding >= 0, got {stride}, "
                         f"{dilation}, {padding}")
    if isinstance(spikes, SpikeTensor):
        if torch.is_grad_enabled() and (spikes.requires_grad or weight.requires_grad or
                                        (bias is not None and bias.requires_grad)):
            return _SpikeTensorConv2d.apply(spikes, weight, bias, stride, padding, dilation, groups)
        spikes = spikes.spikes
    if spikes.device.type == "cpu" and spikes.numel() > 0:
        training = torch.is_grad_enabled() and (weight.requires_grad or (bias is not None and bias.requires_grad))
        rate = _ops.firing_rate_estimate(spikes)
        if rate > (CONV_DENSE_RATE_THRESHOLD_TRAINING_CPU if training else CONV_DENSE_RATE_THRESHOLD_CPU):
            return torch.nn.functional.conv2d((spikes != 0).to(weight.dtype), weight, bias, stride, padding,
                                              dilation, groups)
    n = spikes.shape[0]
    c_in, c_out = spikes.shape[1] // groups, weight.shape[0] // groups
    outs = []
    for g in range(groups):
        cols, oh, ow = _unfold_bytes(spikes[:, g * c_in:(g + 1) * c_in], kernel, stride, padding, dilation)
        w_g = weight[g * c_out:(g + 1) * c_out].permute(0, 2, 3, 1).reshape(c_out, -1)  # (kh, kw, C) order
        b_g = None if bias is None else bias[g * c_out:(g + 1) * c_out]
        outs.append(spike_linear(cols, w_g, b_g))  # [N * OH * OW, c_out]
    out = outs[0] if groups == 1 else torch.cat(outs, dim=1)
    return out.view(n, oh, ow, weight.shape[0]).permute(0, 3, 1, 2).contiguous()


class _SpikeTensorConv2d(torch.autograd.Function):
    """conv2d of a SpikeTensor by torch's dense convolution, with the spikes kept in 1 byte for the backward."""

    @staticmethod
    def forward(spikes, weight, bias, stride, padding, dilation, groups):
        return torch.nn.functional.conv2d(spikes.spikes.to(weight.dtype), weight, bias, stride, padding, dilation,
                                          groups)

    @staticmethod
    def setup_context(ctx, inputs, output):
        spikes, weight, bias, stride, padding, dilation, groups = inputs
        ctx.conv = (stride, padding, dilation, groups)
        ctx.spikes_dtype = spikes.dtype
        ctx.bias_shape = None if bias is None else list(bias.shape)
        ctx.save_for_backward(spikes.spikes, weight)

    @staticmethod
    def backward(ctx, grad_out):
        spikes_u8, weight = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conv
        mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1],
                ctx.bias_shape is not None and ctx.needs_input_grad[2]]
        grad_in, grad_w, grad_b = torch.ops.aten.convolution_backward(
            grad_out, spikes_u8.to(weight.dtype), weight, ctx.bias_shape, list(stride),
            list(padding), list(dilation), False, [0, 0], groups, mask)
        if grad_in is not None:
            grad_in = grad_in.to(ctx.spikes_dtype)
        return grad_in, grad_w, grad_b, None, None, None, None
