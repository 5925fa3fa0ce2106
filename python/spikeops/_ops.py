"""torch.library custom ops over the C++/CUDA core.

Every kernel is an op in the ``spikeops`` namespace with a fake implementation (shapes and dtypes only, so
``torch.compile(fullgraph=True)`` traces through it) and, where it is differentiable, an autograd formula
whose backward is itself a custom op. The ops take flat ``[T, N]`` tensors; the modules in
:mod:`spikeops.neuron` and :mod:`spikeops.surrogate` do the reshaping and the friendly argument checks.
"""

from __future__ import annotations

from typing import List, Optional

import torch
from torch import Tensor

from . import _C
from .spike_tensor import SpikeTensor

__all__ = ["neuron_forward", "neuron_backward", "spike_fn", "surrogate_backward", "CUDA_BUILT"]

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


def _neuron_params(neuron_kind: int, v_threshold: float, v_reset: Optional[float], tau: float,
                   decay_input: bool, detach_reset: bool, surrogate_kind: int, alpha: float,
                   beta: float) -> "_C.NeuronParams":
    p = _C.NeuronParams()
    p.kind = _C.NeuronKind(neuron_kind)
    p.v_threshold = v_threshold
    p.hard_reset = v_reset is not None
    p.v_reset = 0.0 if v_reset is None else v_reset
    p.tau = tau
    p.decay_input = decay_input
    p.detach_reset = detach_reset
    p.surrogate = _surrogate(surrogate_kind, alpha, beta)
    return p


# ---------------------------------------------------------------------------------------------------------
# Multi-step neuron
# ---------------------------------------------------------------------------------------------------------

@torch.library.custom_op("spikeops::neuron_forward", mutates_args=(), device_types=_DEVICE_TYPES)
def neuron_forward(x_seq: Tensor, v_init: Tensor, decay: Optional[Tensor], neuron_kind: int,
                   v_threshold: float, v_reset: Optional[float], tau: float, decay_input: bool,
                   detach_reset: bool, surrogate_kind: int, alpha: float, beta: float,
                   spike_dtype: torch.dtype, store_h_seq: bool,
                   store_v_seq: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Fused multi-step neuron forward.

    Args:
        x_seq (Tensor): [T, N] input current, float32/float16/bfloat16, contiguous, or strides (0, 1): the same
            row at every step (``x.expand(T, N)``), read in place.
        v_init (Tensor): [N] float32 membrane potential before step 0.
        decay (Tensor, optional): [1] float32 k = sigmoid(w), ParametricLIF only.
        neuron_kind (int): 0 IF, 1 LIF, 2 ParametricLIF.
        v_reset (float, optional): hard-reset potential; None for the soft reset.
        spike_dtype (torch.dtype): dtype of the spikes: float32/float16/bfloat16/uint8.
        store_h_seq (bool): also return H (what the backward needs); False for inference.
        store_v_seq (bool): also return V after every step.

    Returns:
        spike_seq [T, N] (spike_dtype), v_final [N] float32, h_seq [T, N] float32 (or [0] when not stored),
        v_seq [T, N] float32 (or [0] when not stored).
    """
    T, N = _shape_2d(x_seq, "x_seq")
    _check_spike_dtype(spike_dtype)
    spike_seq = torch.empty((T, N), dtype=spike_dtype, device=x_seq.device)
    v_final = torch.empty((N,), dtype=torch.float32, device=x_seq.device)
    h_seq = torch.empty((T, N) if store_h_seq else (0,), dtype=torch.float32, device=x_seq.device)
    v_seq = torch.empty((T, N) if store_v_seq else (0,), dtype=torch.float32, device=x_seq.device)
    args = _C.NeuronForwardArgs()
    args.x_seq = _view(x_seq, "x_seq")
    args.v_init = _view(v_init, "v_init")
    args.decay = _view(decay if neuron_kind == 2 else None, "decay")
    args.spike_seq = _view(spike_seq, "spike_seq")
    args.v_final = _view(v_final, "v_final")
    args.h_seq = _view(h_seq if store_h_seq else None, "h_seq")
    args.v_seq = _view(v_seq if store_v_seq else None, "v_seq")
    args.stream = _stream(x_seq)
    params = _neuron_params(neuron_kind, v_threshold, v_reset, tau, decay_input, detach_reset,
                            surrogate_kind, alpha, beta)
    _C.neuron_multistep_forward(params, args)
    return spike_seq, v_final, h_seq, v_seq


@neuron_forward.register_fake
def _(x_seq, v_init, decay, neuron_kind, v_threshold, v_reset, tau, decay_input, detach_reset,
      surrogate_kind, alpha, beta, spike_dtype, store_h_seq, store_v_seq):
    T, N = _shape_2d(x_seq, "x_seq")
    new = x_seq.new_empty
    return (new((T, N), dtype=spike_dtype), new((N,), dtype=torch.float32),
            new((T, N) if store_h_seq else (0,), dtype=torch.float32),
            new((T, N) if store_v_seq else (0,), dtype=torch.float32))


@torch.library.custom_op("spikeops::neuron_backward", mutates_args=(), device_types=_DEVICE_TYPES)
def neuron_backward(grad_spike_seq: Tensor, grad_v_seq: Optional[Tensor], grad_v_final: Optional[Tensor],
                    h_seq: Tensor, v_init: Tensor, decay: Optional[Tensor], neuron_kind: int,
                    v_threshold: float, v_reset: Optional[float], tau: float, decay_input: bool,
                    detach_reset: bool, surrogate_kind: int, alpha: float, beta: float,
                    grad_x_dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
    """Fused multi-step neuron backward (surrogate gradient through T steps).

    Args:
        grad_spike_seq (Tensor): [T, N] float32/float16/bfloat16 gradient of the spikes.
        grad_v_seq (Tensor, optional): [T, N] float32 gradient of v_seq.
        grad_v_final (Tensor, optional): [N] float32 gradient of the final membrane potential.
        h_seq (Tensor): [T, N] float32 charged potential saved by the forward.
        v_init (Tensor): [N] float32 initial potential (read by ParametricLIF only).
        grad_x_dtype (torch.dtype): dtype of grad_x_seq (the input's dtype).

    Returns:
        grad_x_seq [T, N] (grad_x_dtype), grad_v_init [N] float32, grad_decay [N] float32 per-neuron
        dL/dk summed over time (ParametricLIF; [0] otherwise).
    """
    T, N = _shape_2d(h_seq, "h_seq")
    device = h_seq.device
    grad_x_seq = torch.empty((T, N), dtype=grad_x_dtype, device=device)
    grad_v_init = torch.empty((N,), dtype=torch.float32, device=device)
    grad_decay = torch.empty((N,) if neuron_kind == 2 else (0,), dtype=torch.float32, device=device)
    args = _C.NeuronBackwardArgs()
    args.grad_spike_seq = _view(grad_spike_seq, "grad_spike_seq")
    args.grad_v_seq = _view(grad_v_seq, "grad_v_seq")
    args.grad_v_final = _view(grad_v_final, "grad_v_final")
    args.h_seq = _view(h_seq, "h_seq")
    args.v_init = _view(v_init if neuron_kind == 2 else None, "v_init")
    args.decay = _view(decay if neuron_kind == 2 else None, "decay")
    args.grad_x_seq = _view(grad_x_seq, "grad_x_seq")
    args.grad_v_init = _view(grad_v_init, "grad_v_init")
    args.grad_decay = _view(grad_decay if neuron_kind == 2 else None, "grad_decay")
    args.stream = _stream(h_seq)
    params = _neuron_params(neuron_kind, v_threshold, v_reset, tau, decay_input, detach_reset,
                            surrogate_kind, alpha, beta)
    _C.neuron_multistep_backward(params, args)
    return grad_x_seq, grad_v_init, grad_decay


@neuron_backward.register_fake
def _(grad_spike_seq, grad_v_seq, grad_v_final, h_seq, v_init, decay, neuron_kind, v_threshold, v_reset,
      tau, decay_input, detach_reset, surrogate_kind, alpha, beta, grad_x_dtype):
    T, N = _shape_2d(h_seq, "h_seq")
    new = h_seq.new_empty
    return (new((T, N), dtype=grad_x_dtype), new((N,), dtype=torch.float32),
            new((N,) if neuron_kind == 2 else (0,), dtype=torch.float32))


_NEURON_FLAGS = ("neuron_kind", "v_threshold", "v_reset", "tau", "decay_input", "detach_reset",
                 "surrogate_kind", "alpha", "beta")


def _neuron_setup_context(ctx, inputs, output):
    x_seq, v_init, decay = inputs[0], inputs[1], inputs[2]
    # Unused outputs (H always, often v_final and v_seq) then reach the backward as None instead of zero
    # tensors that would cost an allocation and a pass over memory.
    ctx.set_materialize_grads(False)
    ctx.flags = dict(zip(_NEURON_FLAGS, inputs[3:12]))
    ctx.x_dtype = x_seq.dtype
    if not inputs[13]:
        # Without H the backward cannot run; the module asks for H whenever a gradient may be needed.
        ctx.has_h = False
        ctx.save_for_backward(v_init, decay)
        return
    ctx.has_h = True
    ctx.save_for_backward(output[2], v_init, decay)


def _neuron_backward(ctx, grad_spike_seq, grad_v_final, grad_h_seq, grad_v_seq):
    if not ctx.has_h:
        raise RuntimeError("spikeops.neuron_forward was called with store_h_seq=False, so it cannot be "
                           "differentiated; pass store_h_seq=True when gradients are needed")
    h_seq, v_init, decay = ctx.saved_tensors
    if grad_spike_seq is None or not grad_spike_seq.is_floating_point():
        grad_spike_seq = torch.zeros_like(h_seq, dtype=ctx.x_dtype)
    grad_x, grad_v_init, grad_decay = neuron_backward(
        grad_spike_seq.contiguous(),
        grad_v_seq.contiguous() if grad_v_seq is not None and grad_v_seq.numel() > 0 else None,
        grad_v_final.contiguous() if grad_v_final is not None else None,
        h_seq, v_init, decay, grad_x_dtype=ctx.x_dtype, **ctx.flags)
    grad_k = grad_decay.sum().reshape(1).to(decay.dtype) if ctx.flags["neuron_kind"] == 2 else None
    return (grad_x, grad_v_init, grad_k) + (None,) * 12


torch.library.register_autograd("spikeops::neuron_forward", _neuron_backward,
                                setup_context=_neuron_setup_context)


class _NeuronSpikeTensor(torch.autograd.Function):
    """neuron_forward with its spikes written in 1 byte and returned as a SpikeTensor presenting ``spike_dtype``:
    the same kernel, setup and backward as the op (the gradient of the spikes arrives as a float tensor)."""

    @staticmethod
    def forward(*inputs):
        outs = neuron_forward(*inputs[:12], torch.uint8, *inputs[13:])
        return (SpikeTensor(outs[0], inputs[12]),) + tuple(outs[1:])

    @staticmethod
    def setup_context(ctx, inputs, output):
        _neuron_setup_context(ctx, inputs, output)

    @staticmethod
    def backward(ctx, *grads):
        return _neuron_backward(ctx, *grads)


def neuron_forward_spike_tensor(*inputs) -> tuple:
    """neuron_forward's arguments and outputs, with the spikes a :class:`SpikeTensor` of dtype ``spike_dtype``
    (float32/float16/bfloat16) stored in 1 byte per spike."""
    return _NeuronSpikeTensor.apply(*inputs)


# ---------------------------------------------------------------------------------------------------------
# Standalone spike function (what a surrogate object computes when called on a tensor)
# ---------------------------------------------------------------------------------------------------------

@torch.library.custom_op("spikeops::spike_fn", mutates_args=(), device_types=_DEVICE_TYPES)
def spike_fn(x: Tensor, surrogate_kind: int, alpha: float, beta: float) -> Tensor:
    """Heaviside step Θ(x) = (x >= 0) in x's dtype; its gradient is the surrogate σ'(x).

    Args:
        x (Tensor): any shape, float32/float16/bfloat16, contiguous.
        surrogate_kind (int): a ``spikeops._C.SurrogateKind`` value; alpha and beta its parameters.

    Returns:
        Tensor: spikes of x's shape and dtype, exactly 0 or 1.
    """
    # The forward does not use the surrogate, but a bad one must fail here, not later in the backward.
    _C.validate_surrogate(_surrogate(surrogate_kind, alpha, beta), "spike_fn: surrogate")
    spike = torch.empty_like(x)
    _C.heaviside_forward(_view(x, "x"), _view(spike, "spike"), _stream(x))
    return spike


@spike_fn.register_fake
def _(x, surrogate_kind, alpha, beta):
    return torch.empty_like(x)


@torch.library.custom_op("spikeops::surrogate_backward", mutates_args=(), device_types=_DEVICE_TYPES)
def surrogate_backward(grad_spike: Tensor, x: Tensor, surrogate_kind: int, alpha: float,
                       beta: float) -> Tensor:
    """grad_x = grad_spike * σ'(x), elementwise, in x's dtype (computed in float32)."""
    grad_x = torch.empty_like(x)
    _C.surrogate_backward(_surrogate(surrogate_kind, alpha, beta), _view(grad_spike, "grad_spike"),
                          _view(x, "x"), _view(grad_x, "grad_x"), _stream(x))
    return grad_x


@surrogate_backward.register_fake
def _(grad_spike, x, surrogate_kind, alpha, beta):
    return torch.empty_like(x)


def _spike_fn_setup_context(ctx, inputs, output):
    x, ctx.surrogate_kind, ctx.alpha, ctx.beta = inputs
    ctx.save_for_backward(x)


def _spike_fn_backward(ctx, grad_spike):
    (x,) = ctx.saved_tensors
    if grad_spike is None:
        return None, None, None, None
    grad_x = surrogate_backward(grad_spike.contiguous(), x, ctx.surrogate_kind, ctx.alpha, ctx.beta)
    return grad_x, None, None, None


torch.library.register_autograd("spikeops::spike_fn", _spike_fn_backward, setup_context=_spike_fn_setup_context)


# ---------------------------------------------------------------------------------------------------------
# Accumulate-only spike GEMM
# ---------------------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------------------
# Accumulate-only spike convolution
# ---------------------------------------------------------------------------------------------------------

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
