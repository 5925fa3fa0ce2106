"""The accumulate-only spike GEMM: weight packing, the dense-or-accumulate dispatch, spikeops::spike_linear
and spikeops::spike_accumulate_rows_t (the weight gradient's product)."""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .. import _C
from ..spike_tensor import SpikeTensor
from ._common import _DEVICE_TYPES, _stream, _view

# Above this firing rate a dense GEMM on the spikes as floats beats adding selected rows on the CPU (the
# crossover measured by bench/spike_gemm.py on AVX-512 with torch's BLAS; see the README). It depends on the
# host: about 0.75 on the first machine measured, about 0.36 on a later one whose BLAS was 1.5x faster; 0.4
# keeps every rate at or above the dense speed on both. The result is the same either way, up to float32
# summation order.
DENSE_RATE_THRESHOLD_CPU = 0.4
# The weight gradient's product (S^T . dY, transposed output) crosses over earlier.
DENSE_RATE_THRESHOLD_GRAD_CPU = 0.35
# Products smaller than this many multiply-adds (M * K * N) skip the firing-rate estimate and take the event-driven
# kernel at every rate: on the CPU the fixed costs of the dense path (counting, converting the spikes) outweigh its
# GEMM there (measured at 32 x 1024 x 1024); on a GPU the estimate's read-back would cost more than a kernel choice.
DISPATCH_MIN_MACS = 1 << 28
# On CUDA the core picks among its kernels from the estimate (event-driven, tiled event-driven, tensor cores):
# thresholds _C.CUDA_TILED_ABOVE_RATE and _C.CUDA_TENSOR_CORE_ABOVE_RATE (spike_gemm.hpp). None forces one of
# _C.SpikeGemmKernel for tests and benchmarks.
CUDA_KERNEL: Optional["_C.SpikeGemmKernel"] = None


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
    first dimension spread over it (all of them when it has fewer than twice as many). For the
    dense-or-accumulate dispatch: counting every byte would cost as much as 15% of the kernel at 1% firing
    (measured at 1024 x 4096), and only the side of the crossover matters."""
    step = max(1, spikes.shape[0] // slices)
    sample = spikes[::step]
    return torch.count_nonzero(sample).item() / sample.numel()


def _dispatch_rate(spikes_u8: Tensor, n: int) -> float:
    """firing_rate_estimate(spikes_u8) ([M, K], any strides) where it picks the kernel of a product to n outputs;
    -1.0 (unknown) where it does not: empty spikes, products under DISPATCH_MIN_MACS, and CUDA graph capture (the
    estimate reads a count back to the host, which capture forbids)."""
    if spikes_u8.numel() == 0 or spikes_u8.numel() * n < DISPATCH_MIN_MACS:
        return -1.0
    if spikes_u8.device.type == "cuda" and torch.cuda.is_current_stream_capturing():
        return -1.0
    return firing_rate_estimate(spikes_u8)


def _dense_is_faster(spikes_u8: Tensor, rate: float, cpu_threshold: float) -> bool:
    """Whether torch's dense GEMM on the spikes as floats beats the CPU kernel at this firing rate (from
    _dispatch_rate). On CUDA the core's tensor-core kernel is the dense path."""
    return spikes_u8.device.type == "cpu" and rate > cpu_threshold


def _nonzero_as(t: Tensor, dtype: torch.dtype) -> Tensor:
    """``(t != 0).to(dtype)`` in one pass (the comparison written straight into ``dtype``; the two-step form
    costs 9x more on 1 MB of bytes): bytes from float spikes, or 0/1 floats from bytes of any value. The result
    has t's strides where t is dense in memory (a transposed view too), else is contiguous."""
    # Compared in memory order and viewed back: torch's comparison into `out` runs 20-30x slower on a transposed
    # 2-D view (the weight gradient's S^T) than on the same memory as a contiguous tensor (1.6 ms vs 0.07 ms for
    # 1.6 MB of bytes).
    order = sorted(range(t.dim()), key=lambda d: t.stride(d), reverse=True)
    in_memory_order = t.permute(order)
    if not in_memory_order.is_contiguous():
        return torch.ne(t, 0, out=torch.empty(t.shape, dtype=dtype, device=t.device))
    out = torch.ne(in_memory_order, 0, out=torch.empty_like(in_memory_order, dtype=dtype))
    return out.permute(sorted(range(t.dim()), key=lambda d: order[d]))


def _as_bytes(spikes: Tensor) -> Tensor:
    """Spikes as 1-byte 0/1: uint8 spikes as they are, float spikes converted (any nonzero value is a spike)."""
    return spikes if spikes.dtype == torch.uint8 else _nonzero_as(spikes, torch.uint8)


def _dense(spikes_u8: Tensor, rows: Tensor, bias: Optional[Tensor], out_dtype: torch.dtype,
           out_transposed: bool = False) -> Tensor:
    """The same product as _accumulate on the spikes as float32, by torch's GEMM: rows [K, N] (any strides)."""
    spikes_f = _nonzero_as(spikes_u8, torch.float32)
    rows = rows.float()
    a, b = (rows.t(), spikes_f.t()) if out_transposed else (spikes_f, rows)
    if bias is None:
        out = a @ b
    else:
        out = torch.addmm(bias[:, None] if out_transposed else bias, a, b)
    return out.to(out_dtype)


def _accumulate(spikes_u8: Tensor, rows: Tensor, rows_packed: bool, bias: Optional[Tensor], out_features: int,
                out_dtype: torch.dtype, rate: float, out_transposed: bool = False) -> Tensor:
    """out = bias + spikes_u8 . rows ([M, N], or its transpose [N, M]) with the core's kernels (on CUDA the one
    for this firing rate, or CUDA_KERNEL)."""
    M = spikes_u8.shape[0]
    shape = (out_features, M) if out_transposed else (M, out_features)
    kernel = CUDA_KERNEL if CUDA_KERNEL is not None and rows.device.type == "cuda" else _C.SpikeGemmKernel.auto
    out = torch.empty(shape, dtype=out_dtype, device=rows.device)
    _C.spike_accumulate(_view(spikes_u8, "spikes"), _view(rows, "rows"), rows_packed, _view(bias, "bias"),
                        _view(out, "out"), out_transposed, kernel, rate, _stream(rows))
    return out


def packed_weight(weight: Tensor) -> Tensor:
    """pack_weight(weight), computed once per version of the weight and kept on it.

    ``Tensor._version`` increases on every in-place update (an optimizer step), so a stale copy is never used;
    a training step packs once, inference once in all. The copy is not part of the autograd graph: the
    backward returns the weight gradient directly.
    """
    key = (weight._version, weight.data_ptr(), weight.dtype, weight.device, tuple(weight.shape))
    cached = getattr(weight, "_spikeops_packed", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    packed = pack_weight(weight.detach())
    try:
        weight._spikeops_packed = (key, packed)
    except (AttributeError, RuntimeError):  # e.g. a tensor subclass without __dict__: no cache
        pass
    return packed


@torch.library.custom_op("spikeops::spike_linear", mutates_args=(), device_types=_DEVICE_TYPES)
def spike_linear(spikes: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
    """y = bias + spikes . W^T, adding the weight columns that the spikes select (no multiplies).

    Args:
        spikes (Tensor): [M, K] spikes, uint8 (1 byte each) or float32/float16/bfloat16 0/1; any nonzero value
            counts as one spike.
        weight (Tensor): [N, K] float32/float16/bfloat16; packed once per version (see packed_weight).
        bias (Tensor, optional): [N], the weight's dtype.

    Returns:
        Tensor: [M, N] in the weight's dtype, accumulated in float32.
    """
    spikes_u8 = _as_bytes(spikes).contiguous()
    bias_f = None if bias is None else bias.float().contiguous()
    rate = _dispatch_rate(spikes_u8, weight.shape[0])
    if _dense_is_faster(spikes_u8, rate, DENSE_RATE_THRESHOLD_CPU):
        return _dense(spikes_u8, weight.t(), bias_f, weight.dtype)  # the weight as it is: no packing, no copy
    return _accumulate(spikes_u8, packed_weight(weight), True, bias_f, weight.shape[0], weight.dtype, rate)


@spike_linear.register_fake
def _(spikes, weight, bias):
    return spikes.new_empty((spikes.shape[0], weight.shape[0]), dtype=weight.dtype)


def _spike_linear_setup_context(ctx, inputs, output):
    spikes, weight, bias = inputs
    ctx.spikes_dtype = spikes.dtype
    ctx.weight_dtype = weight.dtype
    ctx.has_bias = bias is not None
    # The weight gradient reads the spikes transposed; they are kept as they are, in 1 byte whatever their dtype.
    if isinstance(spikes, SpikeTensor):
        spikes = spikes.spikes
    spikes_u8 = _as_bytes(spikes)
    ctx.save_for_backward(spikes_u8, weight if ctx.needs_input_grad[0] else None)


def _spike_linear_backward(ctx, grad_out):
    spikes_u8, weight = ctx.saved_tensors
    grad_spikes = grad_weight = grad_bias = None
    if ctx.needs_input_grad[0]:
        # dense: the gradient of the spikes is not sparse
        grad_spikes = (grad_out @ weight.to(grad_out.dtype)).to(ctx.spikes_dtype)
    if ctx.needs_input_grad[1]:
        # dW^T = S^T . dY: rows of dY are added where a spike occurred, the same accumulate-only kernel.
        grad_weight = spike_accumulate_rows_t(spikes_u8.t(), grad_out.contiguous(), ctx.weight_dtype)
    if ctx.has_bias and ctx.needs_input_grad[2]:
        grad_bias = grad_out.sum(0)
    return grad_spikes, grad_weight, grad_bias


torch.library.register_autograd("spikeops::spike_linear", _spike_linear_backward,
                                setup_context=_spike_linear_setup_context)


@torch.library.custom_op("spikeops::spike_accumulate_rows_t", mutates_args=(), device_types=_DEVICE_TYPES)
def spike_accumulate_rows_t(spikes: Tensor, rows: Tensor, out_dtype: torch.dtype) -> Tensor:
    """(spikes . rows)^T: out[n, m] = sum of rows[k, n] over the spikes of row m, no multiplies.

    Args:
        spikes (Tensor): [M, K] uint8; on the CPU a transposed view (``S.t()``) is read as it is.
        rows (Tensor): [K, N] float32/float16/bfloat16 (converted to float32).
        out_dtype (torch.dtype): float32, float16 or bfloat16.

    Returns:
        Tensor: [N, M] in out_dtype: for spikes = S^T and rows = dY, the weight gradient of a linear layer.
    """
    # Packed, rows' column tiles are contiguous: worth the copy (rows is the small operand, dY) because the
    # kernel otherwise touches one page per spike (see RowsLayout::kPacked).
    rate = _dispatch_rate(spikes, rows.shape[1])
    if _dense_is_faster(spikes, rate, DENSE_RATE_THRESHOLD_GRAD_CPU):
        return _dense(spikes, rows, None, out_dtype, out_transposed=True)
    # The CPU kernel lists the spikes of a transposed view without copying it (a counting sort of the spikes);
    # the CUDA kernel and other layouts take a contiguous copy.
    if spikes.device.type != "cpu" or not spikes.t().is_contiguous():
        spikes = spikes.contiguous()
    return _accumulate(spikes, _pack_rows(rows), True, None, rows.shape[1], out_dtype, rate, out_transposed=True)


@spike_accumulate_rows_t.register_fake
def _(spikes, rows, out_dtype):
    return rows.new_empty((rows.shape[1], spikes.shape[0]), dtype=out_dtype)
