"""Step-mode and memory mix-ins shared by neurons and layers (SpikingJelly's StepModule / MemoryModule)."""

from __future__ import annotations

from torch import nn

__all__ = ["StepModule", "MemoryModule", "check_step_mode"]


def check_step_mode(step_mode: str, owner: str) -> str:
    if step_mode not in ("s", "m"):
        raise ValueError(f"{owner}: step_mode must be 's' (one step per call, input [N, *]) or "
                         f"'m' (a whole sequence per call, input [T, N, *]), got {step_mode!r}")
    return step_mode


class StepModule:
    """A module that runs one step per call (``step_mode='s'``) or a whole sequence (``'m'``)."""

    @property
    def step_mode(self) -> str:
        return self._step_mode

    @step_mode.setter
    def step_mode(self, value: str) -> None:
        self._step_mode = check_step_mode(value, type(self).__name__)


class MemoryModule(nn.Module, StepModule):
    """A stateful module: ``reset()`` clears its state, ``detach()`` cuts the state's autograd graph.

    ``_memories`` names the attributes that hold the state (SpikingJelly's ``register_memory``);
    :meth:`memory_state` and :meth:`load_memory_state` read and set them, e.g. for ``layer.GCContainer``,
    which runs a block again in the backward from the state it started with.
    """

    _memories: tuple = ()

    def memory_state(self) -> dict:
        """The state: ``{name: value}`` of the attributes in ``_memories`` (the values, not copies)."""
        return {name: getattr(self, name) for name in self._memories}

    def load_memory_state(self, state: dict) -> None:
        """Set the state from a :meth:`memory_state` result."""
        for name, value in state.items():
            setattr(self, name, value)

    def reset(self) -> None:
        raise NotImplementedError

    def detach(self) -> None:
        raise NotImplementedError
