"""``SpikeTensor``: 0/1 spikes stored in 1 byte each that autograd treats as a float tensor.

A ``uint8`` tensor cannot carry a gradient, and a float32 spike tensor spends 4 bytes on one bit of
information. A ``SpikeTensor`` is a wrapper tensor (the design of torchao's float8 and NF4 tensors): to autograd,
``torch.compile`` and the modules it passes through it is a float tensor (``dtype`` float32, float16 or
bfloat16), while its storage is a ``uint8`` tensor of 0/1 (``.spikes``). So:

- a neuron built with ``spike_tensor=True`` writes its spikes in 1 byte and still receives the gradient of
  its spikes (the surrogate gradient path is unchanged);
- ``layer.Linear`` and ``functional.spike_linear`` read the bytes directly (accumulate-only spike GEMM) and
  keep them, 1 byte each, for the weight gradient; ``layer.Conv2d`` keeps 1 byte for its backward too;
- shape operations (view, reshape, flatten, permute, transpose, (un)squeeze, indexing, slicing, cat/stack,
  unbind/split/chunk, expand, clone, contiguous, detach, device moves, conversion to another float dtype) and
  ``max_pool2d`` (a logical OR of spikes) act on the bytes and return a ``SpikeTensor``;
- any other operation computes on a float copy and returns a plain tensor. That is visible: it emits a
  :class:`SpikeTensorDensifyWarning` once per operation (turn it into an error with
  ``warnings.simplefilter("error", spikeops.SpikeTensorDensifyWarning)``); :meth:`SpikeTensor.dense` converts
  explicitly and silently.

Gradients flowing back to a SpikeTensor are plain float tensors. Under ``torch.compile``, compile the network
up to a dense tensor (its output scores or the loss); a compiled region whose *output* is a SpikeTensor that
needs a gradient cannot be differentiated (torch's AOTAutograd expects the incoming gradient to be a
SpikeTensor too, and gradients are not 0/1).
"""

from __future__ import annotations

import threading
import warnings
from typing import Optional

import torch
from torch import Tensor
from torch.utils._pytree import tree_leaves, tree_map

__all__ = ["SpikeTensor", "SpikeTensorDensifyWarning", "to_spike_tensor"]

_FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)

aten = torch.ops.aten


class SpikeTensorDensifyWarning(UserWarning):
    """An operation without a spike kernel ran on a float copy of a SpikeTensor."""


# Operations that only move, select or copy elements: applied to the bytes, their result is still spikes.
_SHAPE_OPS = {
    aten.view.default, aten._unsafe_view.default, aten.reshape.default, aten.t.default, aten.transpose.int,
    aten.permute.default, aten.unsqueeze.default, aten.squeeze.default, aten.squeeze.dim, aten.squeeze.dims,
    aten.select.int, aten.slice.Tensor, aten.narrow.default, aten.expand.default, aten.clone.default,
    aten.detach.default, aten.alias.default, aten.cat.default, aten.stack.default, aten.unbind.int,
    aten.split.Tensor, aten.split_with_sizes.default, aten.index.Tensor, aten.index_select.default,
    aten.as_strided.default, aten.flip.default, aten.roll.default, aten.repeat.default, aten.unfold.default,
}

# Operations that get a float copy without a warning: copying spikes into a plain tensor (``buf.copy_(s)``,
# ``buf[i] = s``) is the conversion the caller asked for; max pooling's backward reads only the shape of its
# SpikeTensor input; the neuron's backward sees a SpikeTensor gradient only while torch.compile (dynamo)
# traces it with placeholder gradients typed like the forward's outputs (real gradients are plain tensors).
_QUIET_DENSE_OPS = {aten.copy_.default, aten.max_pool2d_with_indices_backward.default}
_QUIET_SPIKEOPS = ("neuron_backward",)

_warned: set = set()


class SpikeTensor(Tensor):
    """0/1 spikes stored as ``uint8`` that autograd and torch see as a float tensor of the same shape.

    Args:
        spikes (Tensor): ``uint8`` tensor whose every byte is 0 or 1. The constructor reads the bytes once (one
            pass, and on CUDA a wait for the stream) and raises ValueError for a byte above 1: the spike kernels
            then trust them. SpikeTensors that spikeops makes (neurons with ``spike_tensor=True``,
            :func:`to_spike_tensor`, shape operations on SpikeTensors) skip that check. Use
            :func:`to_spike_tensor` to turn other values into spikes.
        dtype (torch.dtype): the float dtype the tensor presents (float32, float16 or bfloat16): the dtype of
            its dense form and of the gradients that reach it. Default float32.

    Attributes:
        spikes (Tensor): the ``uint8`` storage (no gradient).
    """

    spikes: Tensor
    __torch_function__ = torch._C._disabled_torch_function_impl

    @staticmethod
    def __new__(cls, spikes: Tensor, dtype: torch.dtype = torch.float32, requires_grad: bool = False, *,
                _trusted: bool = False):
        if isinstance(spikes, SpikeTensor):
            raise TypeError("SpikeTensor: spikes must be a plain uint8 tensor, got a SpikeTensor")
        if not isinstance(spikes, Tensor) or spikes.dtype != torch.uint8:
            got = spikes.dtype if isinstance(spikes, Tensor) else type(spikes).__name__
            raise TypeError(f"SpikeTensor: spikes must be a uint8 tensor of 0/1, got {got}")
        if dtype not in _FLOAT_DTYPES:
            raise TypeError(f"SpikeTensor: dtype must be float32, float16 or bfloat16, got {dtype}")
        if not _trusted and spikes.numel() > 0:
            largest = int(spikes.max())
            if largest > 1:
                raise ValueError(f"SpikeTensor: spikes must be bytes of 0 or 1, found a byte of {largest}; bytes "
                                 "that are values (pixels, counts) are no spikes: encode them first, or convert "
                                 "with spikeops.to_spike_tensor(x) (every nonzero value a spike)")
        return Tensor._make_wrapper_subclass(cls, spikes.shape, strides=spikes.stride(),
                                             storage_offset=spikes.storage_offset(), dtype=dtype,
                                             device=spikes.device, requires_grad=requires_grad)

    def __init__(self, spikes: Tensor, dtype: torch.dtype = torch.float32, requires_grad: bool = False, *,
                 _trusted: bool = False):
        self.spikes = spikes

    def __repr__(self, *, tensor_contents=None) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"SpikeTensor({self.spikes}, dtype={self.dtype}{grad})"

    def __reduce_ex__(self, protocol):
        return (SpikeTensor, (self.spikes, self.dtype))

    def dense(self) -> Tensor:
        """The spikes as a plain tensor of ``self.dtype`` (0.0/1.0), differentiable: the gradient passes through."""
        return _Dense.apply(self)

    def count(self) -> Tensor:
        """The number of spikes (int64 scalar tensor), read from the bytes."""
        return torch.count_nonzero(self.spikes)

    # torch.compile: a traceable wrapper subclass with one inner tensor.
    def __tensor_flatten__(self):
        return ["spikes"], self.dtype

    @staticmethod
    def __tensor_unflatten__(inner, dtype, outer_size, outer_stride):
        return SpikeTensor(inner["spikes"], dtype, _trusted=True)

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}

        def raw(x):
            return x.spikes if isinstance(x, SpikeTensor) else x

        if func in _SHAPE_OPS:
            return _rewrap(func(*tree_map(raw, args), **tree_map(raw, kwargs)), args, kwargs)
        if func is aten._to_copy.default:
            return _to_copy(args[0], kwargs)
        if func in (aten.max_pool2d_with_indices.default, aten.max_pool2d.default):
            return _rewrap(_max_pool_bytes(func, args, kwargs), args, kwargs)
        if func.namespace == "spikeops" and func in _raw_spike_ops():
            # These kernels read 1-byte spikes; a SpikeTensor's were checked when it was made.
            with _trusting([a.spikes for a in tree_leaves((args, kwargs)) if isinstance(a, SpikeTensor)]):
                return func(*tree_map(raw, args), **tree_map(raw, kwargs))
        if _writes_into_spikes(func, args, kwargs):
            raise TypeError(f"SpikeTensor: {func} would write into spikes stored as 0/1 bytes; "
                            "call .dense() first for a float copy you can modify")
        quiet = func in _QUIET_DENSE_OPS or (func.namespace == "spikeops" and func._opname in _QUIET_SPIKEOPS)
        if not quiet and func not in _warned:
            _warned.add(func)
            warnings.warn(f"SpikeTensor: {func} has no spike kernel, it runs on a float copy of the spikes and "
                          "returns a plain tensor (call .dense() to make the conversion explicit)",
                          SpikeTensorDensifyWarning, stacklevel=3)

        def dense(x):
            return x.spikes.to(x.dtype) if isinstance(x, SpikeTensor) else x

        return func(*tree_map(dense, args), **tree_map(dense, kwargs))


def _writes_into_spikes(func, args, kwargs) -> bool:
    """Whether func writes into one of its SpikeTensor arguments (an in-place or out= operation on spikes)."""
    for i, arg in enumerate(func._schema.arguments):
        if arg.alias_info is not None and arg.alias_info.is_write:
            value = args[i] if i < len(args) else kwargs.get(arg.name)
            if isinstance(value, SpikeTensor):
                return True
    return False


def _rewrap(out, args, kwargs):
    """The uint8 results of an operation on spikes as SpikeTensors presenting the dtype its SpikeTensor arguments
    promote to (cat/stack of bfloat16 and float32 spikes present float32, as dense tensors would)."""
    dtypes = [a.dtype for a in tree_leaves((args, kwargs)) if isinstance(a, SpikeTensor)]
    dtype = dtypes[0]
    for d in dtypes[1:]:
        dtype = torch.promote_types(dtype, d)
    return tree_map(lambda t: SpikeTensor(t, dtype, _trusted=True) if isinstance(t, Tensor) and t.dtype == torch.uint8
                    else t, out)


def _to_copy(x: SpikeTensor, kwargs: dict):
    """``.to(...)``: device and layout moves and float dtypes keep the spikes; other dtypes give plain values."""
    dtype = kwargs.get("dtype", None) or x.dtype
    moved = aten._to_copy.default(x.spikes, **{k: v for k, v in kwargs.items() if k != "dtype"})
    if dtype in _FLOAT_DTYPES:
        return SpikeTensor(moved, dtype, _trusted=True)
    return moved if dtype == torch.uint8 else moved.to(dtype)


def _max_pool_bytes(func, args, kwargs):
    """Max pooling of 0/1 spikes is their logical OR over each window: pooled on the bytes (CPU) or on a half
    copy where the device has no byte kernel; indices, when returned, are torch's."""
    x = args[0]
    rest = args[1:]
    if x.device.type == "cpu":
        return func(x.spikes, *rest, **kwargs)
    out = func(x.spikes.to(torch.float16), *rest, **kwargs)
    if isinstance(out, tuple):
        return (out[0].to(torch.uint8),) + tuple(out[1:])
    return out.to(torch.uint8)


_RAW_OPS: Optional[set] = None

# The byte tensors of the SpikeTensors a spike op was called with, while it runs (per thread): the op's
# check of uint8 spikes skips them (trusted_spike_bytes).
_trusted = threading.local()


class _trusting:
    def __init__(self, tensors):
        self.tensors = tensors

    def __enter__(self):
        self.previous = getattr(_trusted, "tensors", ())
        _trusted.tensors = self.previous + tuple(self.tensors)

    def __exit__(self, *exc):
        _trusted.tensors = self.previous


def trusted_spike_bytes(t: Tensor) -> bool:
    """Whether the uint8 tensor t is the storage of a SpikeTensor that the running spike op was called with
    (its bytes were checked when it was made)."""
    return any(t is u for u in getattr(_trusted, "tensors", ()))


def _raw_spike_ops() -> set:
    """spikeops ops whose kernels take 1-byte spikes as they are (looked up once, after registration)."""
    global _RAW_OPS
    if _RAW_OPS is None:
        ops = torch.ops.spikeops
        _RAW_OPS = {ops.spike_linear.default, ops.spike_accumulate_rows_t.default, ops.spike_conv2d.default,
                    ops.spike_conv2d_weight_grad.default}
    return _RAW_OPS


class _StraightThrough(torch.autograd.Function):
    """A conversion between float spikes and a SpikeTensor: the gradient passes through unchanged."""

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, grad):
        return grad


class _Dense(_StraightThrough):
    @staticmethod
    def forward(spikes: SpikeTensor) -> Tensor:
        return spikes.spikes.to(spikes.dtype)


class _ToSpikes(_StraightThrough):
    @staticmethod
    def forward(x: Tensor) -> SpikeTensor:
        return SpikeTensor((x != 0).to(torch.uint8), x.dtype, _trusted=True)


def to_spike_tensor(x: Tensor, dtype: Optional[torch.dtype] = None) -> SpikeTensor:
    """Spikes as a :class:`SpikeTensor`: any nonzero value becomes a spike.

    Args:
        x (Tensor): float spikes (the gradient passes straight through to them), a ``uint8``/``bool`` tensor (no
            gradient), or a SpikeTensor (returned as it is when ``dtype`` is None or its own).
        dtype (torch.dtype, optional): the float dtype it presents; default: ``x``'s dtype for float inputs,
            float32 otherwise.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"to_spike_tensor: x must be a torch.Tensor, got {type(x).__name__}")
    if dtype is not None and dtype not in _FLOAT_DTYPES:
        raise TypeError(f"to_spike_tensor: dtype must be float32, float16 or bfloat16, got {dtype}")
    if isinstance(x, SpikeTensor):
        return x if dtype is None or dtype == x.dtype else x.to(dtype)
    if x.dtype in _FLOAT_DTYPES:
        out = _ToSpikes.apply(x)
        return out if dtype is None or dtype == x.dtype else out.to(dtype)
    if x.dtype in (torch.uint8, torch.bool):
        return SpikeTensor((x != 0).to(torch.uint8) if x.dtype == torch.bool or bool((x > 1).any()) else x,
                           dtype or torch.float32, _trusted=True)
    raise TypeError(f"to_spike_tensor: x must be float32/float16/bfloat16, uint8 or bool, got {x.dtype}")
