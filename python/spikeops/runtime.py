"""The C++ inference runtime (``spikeops::Model``) from Python: run an exported model file as a C++ program would.

    net = ...                                          # a trained spikeops network
    spikeops.export(net, "mnist.spikeops", x[:1], T=25)
    model = spikeops.runtime.load("mnist.spikeops")  # device="cuda" to run it on a GPU
    scores, predictions = model(x)                     # [N, num_outputs] float32, [N] int64
    model.reports()                                    # per layer: firing rate, synaptic operations

Useful to check an export before shipping it: the runtime is the same C++ code an embedding application links.

Threads: one :class:`RuntimeModel` may be called from several threads. A call releases the GIL while the
network runs, and the calls of one model (``__call__``, :meth:`~RuntimeModel.to`, :meth:`~RuntimeModel.reports`,
:meth:`~RuntimeModel.reset_reports`) take the model's lock, so they take turns and give the results they
would give one after another (the CPU kernels use all of spikeops' CPU threads in each call). For calls that
run in parallel, load one model per thread.
"""

from __future__ import annotations

import numbers
import os
from typing import List, Optional, Tuple, Union

import torch
from torch import Tensor

from . import _C
from .spike_tensor import SpikeTensor

__all__ = ["RuntimeModel", "load"]


class RuntimeModel:
    """A model file loaded by the C++ runtime. Create with :func:`load`; it computes on the CPU or, after
    :meth:`to`, on a GPU (inputs and results stay CPU tensors either way). Safe to share between threads:
    their calls take turns (see the module's docstring)."""

    def __init__(self, model: "_C.Model"):
        self._model = model

    @property
    def time_steps(self) -> int:
        return self._model.time_steps

    @property
    def encoding(self) -> str:
        return self._model.encoding

    @property
    def input_shape(self) -> Tuple[int, ...]:
        return tuple(self._model.input_shape)

    @property
    def num_outputs(self) -> int:
        return self._model.num_outputs

    @property
    def device(self) -> torch.device:
        """Where the network computes."""
        return torch.device(self._model.device)

    def to(self, device: Union[str, torch.device]) -> "RuntimeModel":
        """Compute on ``device`` ("cpu", "cuda" or "cuda:N") from now on; moving to a GPU copies the weights
        there once. Returns self.

        Raises:
            TypeError: device is neither a str nor a torch.device.
            ValueError: not a device name, not a CPU or CUDA device, or this spikeops was built without CUDA.
            RuntimeError: that GPU does not exist.
        """
        if not isinstance(device, (str, torch.device)):
            raise TypeError(f"RuntimeModel.to: device must be a str or torch.device (\"cpu\", \"cuda\", \"cuda:1\"), "
                            f"got {type(device).__name__}")
        try:
            device = torch.device(device)
        except RuntimeError as e:  # torch's message lists the device types it knows
            raise ValueError(f"RuntimeModel.to: device {device!r} is not a device name: {e}") from None
        if device.type not in ("cpu", "cuda"):
            raise ValueError(f"RuntimeModel.to: device must be cpu or cuda, got {device}")
        if device.index is not None:
            index = device.index
        elif device.type == "cuda" and torch.cuda.is_available():
            index = torch.cuda.current_device()  # "cuda" means the current device, as in torch
        else:
            index = 0
        self._model.to(device.type, index)
        return self

    def __call__(self, x: Tensor, seed: int = 0) -> Tuple[Tensor, Tensor]:
        """Run the network on a batch.

        Args:
            x (Tensor): [N, *input_shape] (or one sample, [*input_shape]), float32 on the CPU (the runtime
                copies it to its GPU when it runs on one), or a :class:`~spikeops.SpikeTensor` on the CPU (its
                values, the spikes, as float32).
            seed (int): seed of the Poisson encoder, in [0, 2**64) (unused with direct encoding).

        Returns:
            (Tensor, Tensor): scores [N, num_outputs] float32 (the last layer's output summed over T: spike
            counts when it is a neuron) and predictions [N] int64 (argmax of the scores).
        """
        if not isinstance(x, Tensor):
            raise TypeError(f"RuntimeModel: x must be a torch.Tensor, got {type(x).__name__}")
        if isinstance(x, SpikeTensor):
            x = x.spikes.to(torch.float32)  # a wrapper without memory of its own: its values are its spikes
        if x.device.type != "cpu":
            raise ValueError(f"RuntimeModel: x must be a CPU tensor (the runtime takes host memory and copies it to "
                             f"its device), got {x.device}")
        if x.dtype != torch.float32:
            raise ValueError(f"RuntimeModel: x must be float32, got {x.dtype}")
        if tuple(x.shape) == self.input_shape:
            x = x.unsqueeze(0)
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"RuntimeModel: x must have shape [N, {', '.join(map(str, self.input_shape))}], "
                             f"got {list(x.shape)}")
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise TypeError(f"RuntimeModel: seed must be an int in [0, 2**64), got {seed!r}")
        if not (0 <= int(seed) < 2 ** 64):
            raise ValueError(f"RuntimeModel: seed must be in [0, 2**64), got {seed}")
        x = x.contiguous()
        if x.numel() > 0 and x.data_ptr() == 0:  # another tensor subclass whose values are not in its memory
            raise TypeError(f"RuntimeModel: x must be a torch.Tensor holding its values in memory, got a "
                            f"{type(x).__name__} without storage (convert it to a plain tensor first)")
        n = x.shape[0]
        scores = torch.empty(n, self.num_outputs, dtype=torch.float32)
        predictions = torch.empty(n, dtype=torch.int64)
        self._model.run_into(x.data_ptr(), n, int(seed), scores.data_ptr(), predictions.data_ptr())
        return scores, predictions

    def reports(self) -> List[dict]:
        """Per layer, summed over the calls since :meth:`reset_reports`: name, type, output_shape, spike_input,
        synaptic_ops (accumulates on spikes), dense_macs, spikes, neuron_steps, firing_rate, seconds. A
        snapshot: later calls do not change the returned list."""
        keys = ("name", "type", "output_shape", "spike_input", "synaptic_ops", "dense_macs", "spikes",
                "neuron_steps", "firing_rate", "seconds")
        return [{k: getattr(r, k) for k in keys} for r in self._model.reports]

    def reset_reports(self) -> None:
        self._model.reset_reports()

    def __repr__(self) -> str:
        return self._model.summary().rstrip()


def load(path: Union[str, os.PathLike], device: Optional[Union[str, torch.device]] = None) -> RuntimeModel:
    """Load a file written by :func:`spikeops.export` with the C++ runtime (which validates it), on the CPU
    or on ``device`` (see :meth:`RuntimeModel.to`).

    Raises:
        ValueError: the path is a directory, or the file is unreadable, damaged, of another format version, or
            describes a network the runtime cannot run; the message names the file and the field.
    """
    model = RuntimeModel(_C.Model.load(os.fspath(path)))
    return model if device is None else model.to(device)
