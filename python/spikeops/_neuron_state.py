"""State beyond ``v`` for step-loop neurons (Izhikevich's ``w``, ALIF's ``a``): made a float32 tensor of the
input's per-step shape at the first step, reset to its initial value and detached with ``v``."""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor

from .neuron import BaseNode


class ExtraStateNode(BaseNode):
    """A :class:`BaseNode` with more state variables than ``v``.

    Subclasses name them in ``_extra_states`` and give each initial value by ``_extra_init(name)``; the step
    loop's ``v_float_to_tensor`` materializes them with ``v``, ``reset()`` restores them and ``detach()`` cuts
    their graph, as for ``v``.
    """

    _extra_states: Tuple[str, ...] = ()

    def _extra_init(self, name: str) -> float:
        raise NotImplementedError

    def _init_extra_states(self) -> None:
        for name in self._extra_states:
            setattr(self, name, self._extra_init(name))

    def v_float_to_tensor(self, x: Tensor) -> None:
        super().v_float_to_tensor(x)
        for name in self._extra_states:
            setattr(self, name, self._extra_state(name, x))

    def _extra_state(self, name: str, like: Tensor) -> Tensor:
        value = getattr(self, name)
        if isinstance(value, float):
            return torch.full(like.shape, value, dtype=torch.float32, device=like.device)
        if value.shape != like.shape or value.device != like.device:
            raise ValueError(f"{type(self).__name__}: the stored state {name} has shape {tuple(value.shape)} on "
                             f"{value.device} but this input needs {tuple(like.shape)} on {like.device}; call "
                             "spikeops.functional.reset_net(net) (or node.reset()) between inputs of different "
                             "shapes or after moving the network")
        return value

    def _loop(self, x_seq: Tensor) -> Tensor:
        if x_seq.shape[0] == 0:  # no step runs v_float_to_tensor: the state still takes the input's shape
            like = x_seq.new_empty(x_seq.shape[1:])
            for name in self._extra_states:
                setattr(self, name, self._extra_state(name, like))
        return super()._loop(x_seq)

    def reset(self) -> None:
        super().reset()
        self._init_extra_states()

    def detach(self) -> None:
        super().detach()
        for name in self._extra_states:
            value = getattr(self, name)
            if isinstance(value, Tensor):
                setattr(self, name, value.detach())
