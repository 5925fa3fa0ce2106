"""The accumulate-only spike GEMM: weight packing, the dense-or-accumulate dispatch, spikeops::spike_linear
and spikeops::spike_accumulate_rows_t (the weight gradient's product)."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .. import _C
from ..spike_tensor import SpikeTensor, _trusting
from . import _checks
from ._checks import SPIKE_GEMM_KERNELS
from ._common import _DEVICE_TYPES, _stream, _view
from .spike_values import _in_memory_order, has_nan, spike_operand

# The kernel argument of the spike GEMM ops: "auto" asks the core's policy (kernel_policy.hpp); the others
# force a kernel (tests, benchmarks, users who know their firing rates). "dense" is torch's GEMM on the spikes as
# floats on the CPU and the core's tensor-core kernel on CUDA.
_CORE_KERNEL = {
    "auto": _C.SpikeGemmKernel.auto,
    "events": _C.SpikeGemmKernel.events,
    "tiled": _C.SpikeGemmKernel.tiled_events,
    "tensor_core": _C.SpikeGemmKernel.tensor_core,
    "dense": _C.SpikeGemmKernel.dense,
}


PACKED_TILE_N: int = _C.PACKED_TILE_N


def pack_weight(weight: Tensor) -> Tensor:
    """A linear layer's weight [N, K] in the kernels' packed layout [ceil(N/64), K, 64] float32 (zero padded):
    W^T cut into 64-column tiles, each contiguous. Differentiable (plain torch ops)."""
    N, K = weight.shape
    tiles = (N + PACKED_TILE_N - 1) // PACKED_TILE_N
    w = torch.nn.functional.pad(weight.float(), (0, 0, 0, tiles * PACKED_TILE_N - N))
    return w.view(tiles, PACKED_TILE_N, K).transpose(1, 2).contiguous()


def _pack_rows(rows: Tensor) -> Tensor:
    """rows [K, N] (contiguous) in the packed layout [ceil(N/64), K, 64] float32: pack_weight(rows.t()) in one copy
    of 256-byte pieces instead of two transposing copies."""
    K, N = rows.shape
    tiles = (N + PACKED_TILE_N - 1) // PACKED_TILE_N
    r = torch.nn.functional.pad(rows.float(), (0, tiles * PACKED_TILE_N - N)) if N % PACKED_TILE_N else rows.float()
    return r.reshape(K, tiles, PACKED_TILE_N).transpose(0, 1).contiguous()


def firing_rate_estimate(spikes: Tensor, slices: int = 64) -> float:
    """The fraction of nonzero elements of a non-empty spike tensor, read from about ``slices`` slices of its
    first dimension spread over it (all of them when it has fewer than twice as many). For the kernel choice:
    counting every byte would cost a sizeable part of a sparse product's time, and only the side of a
    threshold matters."""
    step = max(1, spikes.shape[0] // slices)
    sample = spikes[::step]
    return torch.count_nonzero(sample).item() / sample.numel()


# ValueError naming ``kernel`` for a value that is not one of SPIKE_GEMM_KERNELS, or a CUDA-only kernel for tensors
# on another device (not checked when device is None): check_kernel(kernel, device, op).
check_kernel = _checks.gemm_kernel


def _core_device(t: Tensor) -> "_C.Device":
    return _C.Device.cuda if t.device.type == "cuda" else _C.Device.cpu


def _plan(spikes_u8: Tensor, n: int, weight_gradient: bool, kernel: str, op: str, rate: float = -1.0) -> tuple:
    """(the kernel to run, the firing-rate estimate to pass to the core) for the product of spikes_u8 [M, K] (any
    strides) with rows of n columns: the forced kernel, or for "auto" the policy's choice. ``rate``: the firing
    rate where the spikes' check counted it (float spikes), so that no second read-back is needed; else it is
    estimated only where the policy needs it, and never during CUDA graph capture (the estimate reads a count
    back to the host, which capture forbids); -1.0 means unknown. On CUDA "auto" stays "auto": the core resolves
    it with the same policy, knowing whether the GPU has tensor cores."""
    check_kernel(kernel, spikes_u8.device, op)
    if kernel != "auto":
        return kernel, -1.0
    problem = _C.SpikeGemmProblem(spikes_u8.shape[0], spikes_u8.shape[1], n, weight_gradient,
                                  _core_device(spikes_u8))
    capturing = spikes_u8.device.type == "cuda" and torch.cuda.is_current_stream_capturing()
    if rate < 0 and _C.spike_gemm_needs_firing_rate(problem) and not capturing:
        rate = firing_rate_estimate(spikes_u8)
    if spikes_u8.device.type == "cuda":
        return "auto", rate
    choice = _C.choose_spike_gemm_kernel(problem, rate)
    return ("dense" if choice == _C.SpikeGemmKernel.dense else "events"), rate


def _nonzero_as(t: Tensor, dtype: torch.dtype) -> Tensor:
    """``(t != 0).to(dtype)`` in one pass (the comparison written straight into ``dtype``; the two-step form
    makes a bool copy and converts it in a second pass): bytes from float spikes, or 0/1 floats from bytes of
    any value. The result has t's strides where t is dense in memory (a transposed view too), else is
    contiguous."""
    # Compared in memory order and viewed back: torch's comparison into `out` is far slower on a transposed 2-D
    # view (the weight gradient's S^T) than on the same memory seen as a contiguous tensor.
    viewed, back = _in_memory_order(t)
    if viewed is None:
        return torch.ne(t, 0, out=torch.empty(t.shape, dtype=dtype, device=t.device))
    return torch.ne(viewed, 0, out=torch.empty_like(viewed, dtype=dtype)).permute(back)


def _saved_spikes(spikes: Tensor) -> Tensor:
    """The spikes the backward keeps, 1 byte each: a SpikeTensor's bytes, uint8 spikes as they are, float
    spikes (0/1 or -1/0/1, checked by the forward) as int8."""
    if isinstance(spikes, SpikeTensor):
        return spikes.spikes
    return spikes if spikes.dtype == torch.uint8 else spikes.to(torch.int8)


def _dense(spikes_u8: Tensor, rows: Tensor, bias: Optional[Tensor], out_dtype: torch.dtype,
           out_transposed: bool = False, negative: Optional[Tensor] = None) -> Tensor:
    """The same product as _accumulate on the spikes as float32, by torch's GEMM: rows [K, N] (any strides);
    ``negative``: the bytes of -1 spikes, subtracted."""
    spikes_f = _nonzero_as(spikes_u8, torch.float32)
    if negative is not None:
        spikes_f -= negative
    rows = rows.float()
    a, b = (rows.t(), spikes_f.t()) if out_transposed else (spikes_f, rows)
    if bias is None:
        out = a @ b
    else:
        out = torch.addmm(bias[:, None] if out_transposed else bias, a, b)
    return out.to(out_dtype)


def _accumulate(spikes_u8: Tensor, rows: Tensor, rows_layout: "_C.RowsLayout", bias: Optional[Tensor],
                out_features: int, out_dtype: torch.dtype, kernel: str, rate: float,
                out_transposed: bool = False) -> Tensor:
    """out = bias + spikes_u8 . rows ([M, N], or its transpose [N, M]) with the core's kernel named by
    ``kernel`` (one of SPIKE_GEMM_KERNELS; "auto": the core's choice for this firing rate); rows laid out as
    ``rows_layout`` says (a _C.RowsLayout)."""
    M = spikes_u8.shape[0]
    shape = (out_features, M) if out_transposed else (M, out_features)
    out = torch.empty(shape, dtype=out_dtype, device=rows.device)
    _C.spike_accumulate(_view(spikes_u8, "spikes"), _view(rows, "rows"), rows_layout, _view(bias, "bias"),
                        _view(out, "out"), out_transposed, _CORE_KERNEL[kernel], rate, _stream(rows))
    return out


def _weight_rows(weight: Tensor) -> tuple:
    """(rows, layout) for the forward's product with ``weight`` [N, K], read at this call: nothing is cached, so
    no write to the weight (``w.data``, a numpy view, a hand-written update rule: writes that autograd's version
    counter does not see) can leave the product computing with old values. On the CPU the kernel reads the
    weight where it lies (RowsLayout.transposed packs a tile at a time into scratch); CUDA takes a packed copy
    made per call (a device copy). Not part of the autograd graph: the backward returns the weight gradient
    directly."""
    w = weight.detach()
    if w.device.type == "cpu":
        return w.float().contiguous(), _C.RowsLayout.transposed
    return pack_weight(w), _C.RowsLayout.packed


@torch.library.custom_op("spikeops::spike_linear", mutates_args=(), device_types=_DEVICE_TYPES)
def spike_linear(spikes: Tensor, weight: Tensor, bias: Optional[Tensor], kernel: str = "auto") -> Tensor:
    """y = bias + spikes . W^T, adding the weight columns that the spikes select (no multiplies).

    Computes what ``F.linear(spikes.float(), weight, bias)`` computes, on every kernel, up to float32 summation
    order, inf and NaN included (0 x inf = 0 x NaN = NaN: an inf or NaN in weight row n makes output column n
    NaN for every sample, whatever the firing rate; see spikeops/_ops/spike_values.py for the values taken).

    Args:
        spikes (Tensor): [M, K] spikes: uint8 bytes 0/1 (checked in one pass, unless a SpikeTensor's), or
            float32/float16/bfloat16 0/1 or signed -1/0/1 (checked as they are converted to bytes). Any other
            value raises ValueError; -1 spikes are subtracted (a second accumulate-only product).
        weight (Tensor): [N, K] float32/float16/bfloat16, read at every call (see _weight_rows).
        bias (Tensor, optional): [N], the weight's dtype.
        kernel (str): one of SPIKE_GEMM_KERNELS: "auto" (the core's policy from the shape and a firing-rate
            estimate), "events", "tiled" or "tensor_core" (CUDA only), "dense" (torch's GEMM on the CPU, tensor
            cores on CUDA). The backward's weight gradient uses the same kernel.

    Returns:
        Tensor: [M, N] in the weight's dtype, accumulated in float32.
    """
    _checks.spike_linear("spikeops::spike_linear", spikes, weight, bias, kernel)
    operand = spike_operand(spikes, "spike_linear")
    spikes_u8 = operand.positive.contiguous()
    bias_f = None if bias is None else bias.float().contiguous()
    chosen, rate = _plan(spikes_u8, weight.shape[0], False, kernel, "spike_linear", operand.rate)
    if operand.negative is not None:
        return _signed_linear(spikes_u8, operand.negative.contiguous(), weight, bias_f, chosen, rate)
    if chosen == "dense" and spikes_u8.device.type == "cpu":
        return _dense(spikes_u8, weight.t(), bias_f, weight.dtype)  # the weight as it is: no packing, no copy
    rows, layout = _weight_rows(weight)
    return _accumulate(spikes_u8, rows, layout, bias_f, weight.shape[0], weight.dtype, chosen, rate)


def _signed_linear(pos: Tensor, neg: Tensor, weight: Tensor, bias_f: Optional[Tensor], chosen: str,
                   rate: float) -> Tensor:
    """bias + acc(+1 spikes) - acc(-1 spikes) in float32. Where that holds a NaN (an inf or NaN weight, or sums
    that overflow), the dense product on the signed spikes instead, which gives -1 x inf = -inf as IEEE does."""
    if chosen == "dense" and pos.device.type == "cpu":
        return _dense(pos, weight.t(), bias_f, weight.dtype, negative=neg)
    rows, layout = _weight_rows(weight)
    n = weight.shape[0]
    out = _accumulate(pos, rows, layout, bias_f, n, torch.float32, chosen, rate)
    out -= _accumulate(neg, rows, layout, None, n, torch.float32, chosen, rate)
    if has_nan(out):
        out = _dense(pos, weight.t(), bias_f, torch.float32, negative=neg)
    return out.to(weight.dtype)


@spike_linear.register_fake
def _(spikes, weight, bias, kernel="auto"):
    _checks.spike_linear("spikeops::spike_linear", spikes, weight, bias, kernel)
    return spikes.new_empty((spikes.shape[0], weight.shape[0]), dtype=weight.dtype)


def _spike_linear_setup_context(ctx, inputs, output):
    spikes, weight, bias, ctx.kernel = inputs
    ctx.spikes_dtype = spikes.dtype
    ctx.weight_dtype = weight.dtype
    ctx.has_bias = bias is not None
    # The weight gradient reads the spikes transposed; they are kept as they are, in 1 byte whatever their dtype.
    ctx.save_for_backward(_saved_spikes(spikes), weight if ctx.needs_input_grad[0] else None)


def _spike_linear_backward(ctx, grad_out):
    saved, weight = ctx.saved_tensors
    grad_spikes = grad_weight = grad_bias = None
    if ctx.needs_input_grad[0]:
        # dense: the gradient of the spikes is not sparse
        grad_spikes = (grad_out @ weight.to(grad_out.dtype)).to(ctx.spikes_dtype)
    if ctx.needs_input_grad[1]:
        # dW^T = S^T . dY: rows of dY are added where a spike occurred, the same accumulate-only kernel.
        spikes_t = saved.t()
        with _trusting([spikes_t] if saved.dtype == torch.uint8 else []):  # checked by the forward
            grad_weight = spike_accumulate_rows_t(spikes_t, grad_out.contiguous(), ctx.weight_dtype, ctx.kernel)
    if ctx.has_bias and ctx.needs_input_grad[2]:
        grad_bias = grad_out.sum(0)
    return grad_spikes, grad_weight, grad_bias, None


torch.library.register_autograd("spikeops::spike_linear", _spike_linear_backward,
                                setup_context=_spike_linear_setup_context)


@torch.library.custom_op("spikeops::spike_accumulate_rows_t", mutates_args=(), device_types=_DEVICE_TYPES)
def spike_accumulate_rows_t(spikes: Tensor, rows: Tensor, out_dtype: torch.dtype, kernel: str = "auto") -> Tensor:
    """(spikes . rows)^T: out[n, m] = sum of rows[k, n] over the spikes of row m, no multiplies.

    As the dense ``(spikes.float() @ rows.float()).t()`` up to float32 summation order, inf and NaN included
    (an inf or NaN in rows[:, n] reaches all of out[n]).

    Args:
        spikes (Tensor): [M, K] uint8 0/1 (on the CPU a transposed view, ``S.t()``, is read as it is), int8 or
            float -1/0/1 (signed spikes: two products); other values raise ValueError.
        rows (Tensor): [K, N] float32/float16/bfloat16 (converted to float32).
        out_dtype (torch.dtype): float32, float16 or bfloat16.
        kernel (str): as spike_linear's (the policy's weight-gradient thresholds for "auto").

    Returns:
        Tensor: [N, M] in out_dtype: for spikes = S^T and rows = dY, the weight gradient of a linear layer.
    """
    _checks.spike_accumulate_rows_t("spikeops::spike_accumulate_rows_t", spikes, rows, out_dtype, kernel)
    operand = spike_operand(spikes, "spike_accumulate_rows_t")
    spikes = operand.positive
    chosen, rate = _plan(spikes, rows.shape[1], True, kernel, "spike_accumulate_rows_t", operand.rate)
    if operand.negative is None:
        return _rows_t_product(spikes, rows, out_dtype, chosen, rate)
    out = _rows_t_product(spikes, rows, torch.float32, chosen, rate)
    out -= _rows_t_product(operand.negative, rows, torch.float32, chosen, rate)
    if has_nan(out):  # as in _signed_linear
        out = _dense(spikes, rows, None, torch.float32, out_transposed=True, negative=operand.negative)
    return out.to(out_dtype)


def _rows_t_product(spikes: Tensor, rows: Tensor, out_dtype: torch.dtype, chosen: str, rate: float) -> Tensor:
    """(spikes . rows)^T for 0/1 bytes by the chosen kernel."""
    if chosen == "dense" and spikes.device.type == "cpu":
        return _dense(spikes, rows, None, out_dtype, out_transposed=True)
    # The CPU kernel lists the spikes of a transposed view without copying it (a counting sort of the spikes);
    # the CUDA kernel and other layouts take a contiguous copy.
    if spikes.device.type != "cpu" or not spikes.t().is_contiguous():
        spikes = spikes.contiguous()
    # Packed, rows' column tiles are contiguous: worth the copy (rows is the small operand, dY) because the
    # kernel otherwise touches one page per spike (see RowsLayout::kPacked).
    return _accumulate(spikes, _pack_rows(rows), _C.RowsLayout.packed, None, rows.shape[1], out_dtype, chosen, rate,
                       out_transposed=True)


@spike_accumulate_rows_t.register_fake
def _(spikes, rows, out_dtype, kernel="auto"):
    _checks.spike_accumulate_rows_t("spikeops::spike_accumulate_rows_t", spikes, rows, out_dtype, kernel)
    return rows.new_empty((rows.shape[1], spikes.shape[0]), dtype=out_dtype)
