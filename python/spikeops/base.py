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
    """A stateful module: ``reset()`` clears its state, ``detach()`` cuts the state's autograd graph."""

    def reset(self) -> None:
        raise NotImplementedError

    def detach(self) -> None:
        raise NotImplementedError
