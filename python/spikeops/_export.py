"""Export a trained spiking network to the spikeops model file (``docs/model_format.md``, format version 1), which
the C++ runtime (``spikeops::Model``) loads and runs without Python or torch.

The file is the safetensors layout: float32 weights, and the network as a JSON graph in the metadata.
"""

from __future__ import annotations

import copy
import json
import os
import struct
from typing import Dict, List, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from . import neuron
from ._ops.neuron import neuron_info
from ._files import atomic_write
from .functional import reset_net

__all__ = ["export"]

FORMAT_VERSION = "1"
MAX_TIME_STEPS = 65536
ENCODINGS = ("direct", "poisson")
SUPPORTED = ("Linear, Conv2d, BatchNorm2d (directly after a Conv2d, folded into it), Flatten, MaxPool2d, "
             "AvgPool2d, Dropout and Identity (skipped) from torch.nn or spikeops.layer; spikeops.neuron's neurons "
             "with a fused kernel (IFNode, LIFNode, ParametricLIFNode, QIFNode, EIFNode, IzhikevichNode, ALIFNode, "
             "KLIFNode, CUBALIFNode, ComplementaryLIFNode); nn.Sequential containers of these")
# Shapes do not depend on the number of steps, so the shape pass runs this many (T when smaller): a large T
# costs nothing, and two steps still exercise the [T, N, ...] path of multi-step modules.
_SHAPE_PASS_STEPS = 2


def export(model: nn.Module, path: Union[str, os.PathLike], example_input: Tensor, *, T: int,
           encoding: str = "direct") -> dict:
    """Write ``model`` to ``path`` as a spikeops model file for the C++ runtime.

    The model is walked into a flat list of layers (``nn.Sequential`` containers, spikeops' containers and
    wrappers that define ``_spikeops_export_children`` are opened), evaluated in eval mode: ``Dropout`` and
    ``Identity`` are skipped and a ``BatchNorm2d`` directly after a ``Conv2d`` is folded into its weight and
    bias with the running statistics. The layers are run once on the encoded ``example_input`` to record
    every layer's output shape and to check that the shapes chain. The model's state and training/eval mode
    are as before the call; the neurons are reset.

    Args:
        model (nn.Module): the network, mapping the encoded sequence [T, N, *input_shape] to [T, N, num_out]
            (or run one step at a time). Its weights may be float32, float16 or bfloat16 on any device; the
            file holds float32.
        path (str or os.PathLike): the file to write (atomically: through a temporary file in the same directory, then renamed).
        example_input (Tensor): [N, *input_shape] float, a static batch (N >= 1) such as the runtime will
            be given; only its shape matters (and that the model runs on it).
        T (int): time steps per input, in [1, 65536].
        encoding (str): how the runtime turns a static input into the sequence: ``"direct"`` (the input at
            every step) or ``"poisson"`` (spike where ``rand <= x``, fresh each step).

    Returns:
        dict: the graph written into the file's metadata (``time_steps``, ``encoding``, ``input_shape``,
        ``layers``; see ``docs/model_format.md``).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"spikeops.export: model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(T, int) or isinstance(T, bool) or not 1 <= T <= MAX_TIME_STEPS:
        raise ValueError(f"spikeops.export: T must be an int in [1, {MAX_TIME_STEPS}], got {T!r}")
    if encoding not in ENCODINGS:
        raise ValueError(f"spikeops.export: encoding must be one of {ENCODINGS}, got {encoding!r}")
    if not isinstance(example_input, Tensor):
        raise TypeError(f"spikeops.export: example_input must be a torch.Tensor [N, *input_shape], got "
                        f"{type(example_input).__name__}")
    if not example_input.is_floating_point() or example_input.dim() < 2 or example_input.numel() == 0:
        raise ValueError(f"spikeops.export: example_input must be a non-empty float tensor [N, *input_shape] "
                         f"with N >= 1, got {example_input.dtype} of shape {tuple(example_input.shape)}")
    try:
        path = os.fspath(path)
    except TypeError:
        raise TypeError(f"spikeops.export: path must be a str or os.PathLike, got {type(path).__name__}") from None
    if os.path.isdir(path):
        raise ValueError(f"spikeops.export: path {path!r} is a directory; give the name of the file to write")

    leaves = _leaves(model, "")
    if not any(not _skipped(m) for _, m in leaves):
        raise ValueError("spikeops.export: the model has no layer to export")
    device = next((p.device for p in model.parameters()), example_input.device)
    x = example_input.detach().to(device)
    steps = min(T, _SHAPE_PASS_STEPS)
    if encoding == "direct":
        x_seq = x.unsqueeze(0).expand((steps,) + tuple(x.shape))
    else:  # a private generator: exporting leaves the global random stream alone
        u = torch.rand((steps,) + tuple(x.shape), generator=torch.Generator().manual_seed(0))
        x_seq = (u.to(device=device, dtype=x.dtype) <= x).to(x.dtype)

    modes = [(m, m.training) for m in model.modules()]
    reset_net(model)
    model.eval()
    try:
        with torch.no_grad():
            layers, tensors = _describe(leaves, x_seq, spikes_in=encoding == "poisson")
    finally:
        reset_net(model)
        for m, training in modes:
            m.training = training

    graph = {"time_steps": T, "encoding": encoding, "input_shape": list(example_input.shape[1:]),
             "layers": layers}
    _write(path, graph, tensors)
    return graph


# ---------------------------------------------------------------------------------------------------------
# Walking the model
# ---------------------------------------------------------------------------------------------------------

def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _type_name(m: nn.Module) -> str:
    cls = type(m)
    module = "torch.nn" if cls.__module__.startswith("torch.nn.modules") else cls.__module__
    return f"{module}.{cls.__qualname__}"


def _leaves(module: nn.Module, path: str) -> List[Tuple[str, nn.Module]]:
    """The modules the network applies in order, as (path as in named_modules(), module), containers opened."""
    children = getattr(module, "_spikeops_export_children", None)
    if callable(children):
        # a wrapper that only changes how memory is laid out: its children are the computation
        names = {id(m): n for n, m in module.named_modules() if n}
        out = []
        for i, child in enumerate(children()):
            out += _leaves(child, _join(path, names.get(id(child), str(i))))
        return out
    if isinstance(module, nn.Sequential):
        out = []
        for name, child in module.named_children():
            out += _leaves(child, _join(path, name))
        return out
    return [(path, module)]


def _skipped(m: nn.Module) -> bool:
    return isinstance(m, (nn.Dropout, nn.Identity))


def _apply(m: nn.Module, x_seq: Tensor) -> Tensor:
    """Run one layer on the sequence [T, N, ...] the way the model does: whole in multi-step mode, else step by step."""
    if getattr(m, "step_mode", "s") == "m":
        return m(x_seq)
    return torch.stack([m(x) for x in x_seq.unbind(0)])


def _unsupported(path: str, m: nn.Module, why: str) -> ValueError:
    return ValueError(f"spikeops.export: layer '{path}' ({_type_name(m)}) {why}")


def _pair(value, path: str, m: nn.Module, field: str) -> List[int]:
    pair = [value, value] if isinstance(value, int) else list(value)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
        raise _unsupported(path, m, f"has {field}={value!r}; expected an int or a pair of ints")
    return pair


def _f32(t: Tensor) -> Tensor:
    """A CPU float32 C-order copy (channels-last and half-precision weights included)."""
    return t.detach().to(device="cpu", dtype=torch.float32).contiguous()


def _describe(leaves: List[Tuple[str, nn.Module]], x_seq: Tensor, spikes_in: bool
              ) -> Tuple[List[dict], Dict[str, Tensor]]:
    """The graph's layers and their tensors, running each layer on x_seq [steps, N, ...] to follow the shapes.

    ``spikes`` tracks whether the values flowing are 0/1 spikes, so that a Linear reading its input as spikes
    (``spike_input=True``: it takes only spikes) is exported only where its input is spikes.
    """
    layers: List[dict] = []
    tensors: Dict[str, Tensor] = {}
    spikes = spikes_in
    foldable: Optional[Tuple[str, nn.Conv2d]] = None  # the conv just written, into which a BatchNorm2d may fold
    for path, m in leaves:
        if _skipped(m):
            continue
        shape = tuple(x_seq.shape[2:])
        if isinstance(m, nn.BatchNorm2d):
            _fold_batch_norm(path, m, foldable, shape, layers[-1] if layers else None, tensors)
            foldable = None
            x_seq = _apply(m, x_seq)
            layers[-1]["output_shape"] = list(x_seq.shape[2:])
            continue
        foldable = None
        if isinstance(m, nn.Linear):
            if len(shape) != 1 or shape[0] != m.in_features:
                raise _unsupported(path, m, f"expects in_features={m.in_features}, but its input is one sample "
                                            f"of shape {list(shape)} (a Linear takes 1-D samples: add a Flatten)")
            if getattr(m, "spike_input", False) and not spikes:
                raise _unsupported(path, m, "has spike_input=True but its input is not spikes (it takes only "
                                            "spikes; the file's layer computes y = W x + b on values)")
            fields = {"type": "linear", **_weights(path, m, tensors), "in_features": m.in_features,
                      "out_features": m.out_features}
            spikes = False
        elif isinstance(m, nn.Conv2d):
            fields = _conv2d(path, m, shape, tensors)
            foldable = (path, m)
            spikes = False
        elif isinstance(m, nn.Flatten):
            ndim = len(shape) + 1  # with the batch dimension
            start = m.start_dim + ndim if m.start_dim < 0 else m.start_dim
            end = m.end_dim + ndim if m.end_dim < 0 else m.end_dim
            if start != 1 or end != ndim - 1:
                raise _unsupported(path, m, f"has start_dim={m.start_dim}, end_dim={m.end_dim}; only the whole "
                                            f"sample can be flattened (start_dim=1, end_dim=-1)")
            fields = {"type": "flatten"}
        elif isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)):
            fields = _pool2d(path, m, shape)
            spikes = spikes and isinstance(m, nn.MaxPool2d)  # the max of spikes is a spike, their mean is not
        elif isinstance(m, neuron.BaseNode):
            fields = _neuron(path, m, tensors, x_seq.device)
            spikes = True
        else:
            raise _unsupported(path, m, f"is not supported; supported: {SUPPORTED}")
        x_seq = _apply(m, x_seq)
        layers.append({"name": path, **fields, "output_shape": list(x_seq.shape[2:])})
    if len(layers[-1]["output_shape"]) != 1:
        raise ValueError(f"spikeops.export: the last layer '{layers[-1]['name']}' gives samples of shape "
                         f"{layers[-1]['output_shape']}; the scores must be 1-D per sample (end with a Flatten "
                         f"or a Linear)")
    return layers, tensors


def _weights(path: str, m: nn.Module, tensors: Dict[str, Tensor]) -> dict:
    weight_name = _join(path, "weight")
    tensors[weight_name] = _f32(m.weight)
    bias_name = None
    if m.bias is not None:
        bias_name = _join(path, "bias")
        tensors[bias_name] = _f32(m.bias)
    return {"weight": weight_name, "bias": bias_name}


def _conv2d(path: str, m: nn.Conv2d, shape: tuple, tensors: Dict[str, Tensor]) -> dict:
    if m.groups != 1:
        raise _unsupported(path, m, f"has groups={m.groups}; only groups=1 is supported")
    if m.padding_mode != "zeros":
        raise _unsupported(path, m, f"has padding_mode={m.padding_mode!r}; only 'zeros' is supported")
    if len(shape) != 3 or shape[0] != m.in_channels:
        raise _unsupported(path, m, f"expects in_channels={m.in_channels}, but its input is one sample of shape "
                                    f"{list(shape)} (a Conv2d takes [C, H, W])")
    kernel = _pair(m.kernel_size, path, m, "kernel_size")
    stride = _pair(m.stride, path, m, "stride")
    dilation = _pair(m.dilation, path, m, "dilation")
    if m.padding == "valid":
        padding = [0, 0]
    elif m.padding == "same":
        # torch pads dilation*(k-1) in total, the odd one on the right: symmetric (expressible) only when even
        total = [d * (k - 1) for d, k in zip(dilation, kernel)]
        if any(t % 2 for t in total):
            raise _unsupported(path, m, f"has padding='same' with kernel_size={kernel} and dilation={dilation}, "
                                        f"which pads unevenly; only symmetric zero padding is supported")
        padding = [t // 2 for t in total]
    else:
        padding = _pair(m.padding, path, m, "padding")
    return {"type": "conv2d", **_weights(path, m, tensors), "in_channels": m.in_channels,
            "out_channels": m.out_channels, "kernel_size": kernel, "stride": stride, "padding": padding,
            "dilation": dilation, "groups": 1}


def _fold_batch_norm(path: str, bn: nn.BatchNorm2d, foldable: Optional[Tuple[str, nn.Conv2d]], shape: tuple,
                     conv_layer: Optional[dict], tensors: Dict[str, Tensor]) -> None:
    """Fold eval-mode BatchNorm into the conv before it: W' = W * s, b' = (b - mean) * s + beta, s = gamma /
    sqrt(var + eps), computed in float64 and rounded once to float32."""
    if foldable is None:
        raise _unsupported(path, bn, "is supported only directly after a Conv2d (it is folded into the "
                                     "convolution's weight and bias)")
    if not bn.track_running_stats or bn.running_mean is None or bn.running_var is None:
        raise _unsupported(path, bn, "has no running statistics (track_running_stats=False); only eval-mode "
                                     "batch norm with running statistics can be folded")
    if len(shape) != 3 or shape[0] != bn.num_features:
        raise _unsupported(path, bn, f"expects num_features={bn.num_features}, but its input is one sample of "
                                     f"shape {list(shape)}")
    conv_path, conv = foldable
    scale = 1.0 / torch.sqrt(bn.running_var.detach().double() + bn.eps)
    shift = -bn.running_mean.detach().double() * scale
    if bn.affine:
        gamma, beta = bn.weight.detach().double(), bn.bias.detach().double()
        scale, shift = scale * gamma, shift * gamma + beta
    weight = conv.weight.detach().double() * scale.view(-1, 1, 1, 1)
    bias = shift if conv.bias is None else conv.bias.detach().double() * scale + shift
    conv_layer["weight"], conv_layer["bias"] = _join(conv_path, "weight"), _join(conv_path, "bias")
    tensors[conv_layer["weight"]] = _f32(weight)
    tensors[conv_layer["bias"]] = _f32(bias)


def _pool2d(path: str, m: nn.Module, shape: tuple) -> dict:
    max_pool = isinstance(m, nn.MaxPool2d)
    if m.ceil_mode:
        raise _unsupported(path, m, "has ceil_mode=True; only floor mode is supported")
    if max_pool:
        if _pair(m.dilation, path, m, "dilation") != [1, 1]:
            raise _unsupported(path, m, f"has dilation={m.dilation!r}; only dilation 1 is supported")
        if m.return_indices:
            raise _unsupported(path, m, "has return_indices=True; it must return the pooled values only")
    elif m.divisor_override is not None:
        raise _unsupported(path, m, f"has divisor_override={m.divisor_override}; only None is supported")
    if len(shape) != 3:
        raise _unsupported(path, m, f"takes [C, H, W] samples, but its input is one sample of shape {list(shape)}")
    kernel = _pair(m.kernel_size, path, m, "kernel_size")
    stride = kernel if m.stride is None or (not isinstance(m.stride, int) and len(m.stride) == 0) else \
        _pair(m.stride, path, m, "stride")
    fields = {"type": "max_pool2d" if max_pool else "avg_pool2d", "kernel_size": kernel, "stride": stride,
              "padding": _pair(m.padding, path, m, "padding")}
    if not max_pool:
        fields["count_include_pad"] = bool(m.count_include_pad)
    return fields


def _neuron(path: str, m: neuron.BaseNode, tensors: Dict[str, Tensor], device: torch.device) -> dict:
    """The generic neuron layer: the model (its NeuronKind name) with the parameters its fused kernel takes, so
    every model with a kernel exports the same way."""
    if not (m._fused() and neuron._kernel_surrogate(m.surrogate_function)):
        # The runtime has the built-in equations and surrogate formulas only; anything else would export wrong.
        raise _unsupported(path, m, "runs its own neuronal_charge/fire/reset (a PyTorch step loop) or a "
                                    "surrogate_function without a kernel formula, which the model file cannot "
                                    "describe")
    if m._saved_output:
        # The runtime's neuron layer outputs spikes; this model outputs a function of its potential (LIAF's act).
        raise _unsupported(path, m, "outputs a function of its membrane potential, not spikes; the model file's "
                                    "neuron layer outputs spikes")
    info = neuron_info(m._neuron_kind)
    extra = [float(v) for v in m._extra()]
    fields = {"type": "neuron", "model": info["name"], "v_threshold": m.v_threshold, "v_reset": m.v_reset,
              "tau": float(m._tau()), "decay_input": bool(m._decay_input()), "detach_reset": m.detach_reset,
              "surrogate": type(m.surrogate_function).__name__,
              "extra": dict(zip(info["extra_names"], extra)), "state_init": _initial_states(path, m)}
    learnable = m._learnable_tensor(device) if info["learnable"] else None
    if learnable is not None:
        name = _join(path, "learnable")
        tensors[name] = _f32(learnable.reshape(info["learnable"]))  # as the module gives it to the kernel
        fields["learnable"] = name
    return fields


def _initial_states(path: str, m: neuron.BaseNode) -> List[float]:
    """Each of the kernel's states (``_state_names``, V first) as ``reset()`` leaves it: where the runtime
    starts every input."""
    fresh = copy.deepcopy(m)
    fresh.reset()
    values = []
    for name in m._state_names:
        value = getattr(fresh, name)
        if isinstance(value, Tensor) and value.numel() == 1:
            value = value.item()
        if not isinstance(value, float):
            raise _unsupported(path, m, f"starts its state {name!r} at {value!r} after reset(); the model file "
                                        f"holds one number per state")
        values.append(value)
    return values


# ---------------------------------------------------------------------------------------------------------
# The file
# ---------------------------------------------------------------------------------------------------------

def _write(path: str, graph: dict, tensors: Dict[str, Tensor]) -> None:
    """safetensors layout: u64 little-endian header length, JSON header padded with spaces to a multiple of 8,
    then the float32 little-endian data of each tensor in the order the layers name them."""
    from . import __version__

    order = [layer[key] for layer in graph["layers"] for key in ("weight", "bias", "learnable") if layer.get(key)]
    header = {"__metadata__": {"format": "spikeops", "format_version": FORMAT_VERSION,
                               "producer": f"spikeops {__version__}",
                               "graph": json.dumps(graph, allow_nan=False)}}
    blobs = []
    offset = 0
    for name in order:
        t = tensors[name]
        data = t.numpy().astype("<f4", copy=False).tobytes(order="C")
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, allow_nan=False).encode("utf-8")
    text += b" " * (-len(text) % 8)

    def write(f) -> None:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for data in blobs:
            f.write(data)

    atomic_write(path, write)
