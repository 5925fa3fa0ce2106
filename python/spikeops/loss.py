"""Losses and metrics on output spike trains: snnTorch's names and semantics, and SpikingJelly's firing-rate MSE.

snnTorch (``snntorch.functional``): the losses are classes; build one, then call it on the output
spikes (or membrane potentials) ``[T, N, C]`` and the class indices ``[N]``::

    loss_fn = loss.ce_rate_loss()
    l = loss_fn(spk_out, targets)
    acc = loss.accuracy_rate(spk_out, targets)

SpikingJelly's tutorials train on the mean squared error between the firing rate and the one-hot label::

    l = loss.firing_rate_mse(spk_out, targets, num_classes=10)

Spikes may be float or 1-byte (uint8/bool) tensors; 1-byte ones are converted to float32 (they carry no
gradient). Where snnTorch returns a one-element tensor of shape [1] (``ce_rate_loss``, ``mse_membrane_loss``)
these return a 0-d scalar; ``accuracy_rate`` returns a Python float where snnTorch returns a numpy float64.
Values are the same.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from ._ops._common import _flag

__all__ = ["ce_rate_loss", "ce_count_loss", "mse_count_loss", "mse_membrane_loss", "accuracy_rate",
           "firing_rate_mse", "population_count"]

_REDUCTIONS = ("mean", "sum", "none")


def _as_float(x: Tensor, name: str, owner: str) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{owner}: {name} must be a torch.Tensor, got {type(x).__name__}")
    return x if x.is_floating_point() else x.float()


def _check_output(out: Tensor, name: str, owner: str) -> Tensor:
    out = _as_float(out, name, owner)
    if out.dim() != 3:
        raise ValueError(f"{owner}: {name} must be [T, N, C] (time, batch, outputs), got shape {tuple(out.shape)}")
    return out


def _check_targets(targets: Tensor, n: int, num_classes: int, owner: str) -> Tensor:
    if not isinstance(targets, Tensor):
        raise TypeError(f"{owner}: targets must be a tensor of class indices, got {type(targets).__name__}")
    if targets.dim() != 1 or targets.shape[0] != n:
        raise ValueError(f"{owner}: targets must be [N] = [{n}] class indices, got shape {tuple(targets.shape)}")
    if targets.is_floating_point():
        raise TypeError(f"{owner}: targets must hold integer class indices, got {targets.dtype}")
    targets = targets.long()
    if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= num_classes):
        raise ValueError(f"{owner}: targets must lie in [0, {num_classes - 1}], got "
                         f"[{int(targets.min())}, {int(targets.max())}]")
    return targets


def population_count(spk_out: Tensor, num_classes: int) -> Tensor:
    """Spike counts of a population code: outputs [T, N, C*k] -> [N, C], class i summing outputs [i*k, (i+1)*k).

    As snnTorch's ``_population_code``.
    """
    spk_out = _check_output(spk_out, "spk_out", "population_count")
    num_outputs = spk_out.shape[-1]
    if not num_classes or num_classes < 1:
        raise ValueError("population_count: num_classes must be given (>= 1) with population_code=True")
    if num_outputs % num_classes:
        raise ValueError(f"population_count: the number of outputs ({num_outputs}) must be a multiple of "
                         f"num_classes ({num_classes})")
    counts = spk_out.sum(0)
    return counts.view(counts.shape[0], num_classes, num_outputs // num_classes).sum(-1)


class _SpikeLoss:
    """Common argument handling; subclasses implement ``_loss(out, targets) -> per-sample or reduced``."""

    def __init__(self, reduction: str = "mean", weight: Optional[Union[Tensor, Sequence[float]]] = None):
        if reduction not in _REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction
        self.weight = None if weight is None else torch.as_tensor(weight, dtype=torch.float32)
        self.__name__ = type(self).__name__

    def _weight(self, like: Tensor, num_classes: int) -> Optional[Tensor]:
        if self.weight is None:
            return None
        if tuple(self.weight.shape) != (num_classes,):
            # Indexed by the targets: a shorter weight raised IndexError, a [C, 1] one broadcast silently.
            raise ValueError(f"{type(self).__name__}: weight must be [C] = [{num_classes}] per-class weights, got "
                             f"shape {tuple(self.weight.shape)}")
        return self.weight.to(device=like.device, dtype=like.dtype)

    def _reduce(self, per_sample: Tensor) -> Tensor:
        if self.reduction == "mean":
            return per_sample.mean()
        if self.reduction == "sum":
            return per_sample.sum()
        return per_sample

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reduction={self.reduction!r})"


class ce_rate_loss(_SpikeLoss):  # noqa: N801  (snnTorch's name)
    """Cross-entropy applied at every time step, averaged over the steps (snnTorch's ``ce_rate_loss``).

    ``loss = (1/T) sum_t CE(spk_out[t], targets)``: the correct class is pushed to fire at every step, the
    others to stay silent.

    Args:
        reduction (str): 'mean' (default), 'sum' or 'none' (a loss per sample, [N]).
        weight (Tensor or sequence, optional): [C] per-class weights; each sample's loss is multiplied by its
            class weight, then 'mean' is the plain mean over samples (snnTorch's convention, not the
            weight-normalised mean of ``nn.CrossEntropyLoss``).

    Call:
        spk_out [T, N, C] (float or uint8), targets [N] int -> loss (scalar, or [N] with reduction='none').
    """

    def __call__(self, spk_out: Tensor, targets: Tensor) -> Tensor:
        out = _check_output(spk_out, "spk_out", "ce_rate_loss")
        T, N, C = out.shape
        targets = _check_targets(targets, N, C, "ce_rate_loss")
        log_p = F.log_softmax(out, dim=-1)                                   # [T, N, C]
        nll = -log_p.gather(-1, targets.view(1, N, 1).expand(T, N, 1)).squeeze(-1).mean(0)  # [N]
        if self.weight is not None:
            nll = nll * self._weight(nll, C)[targets]
        return self._reduce(nll)


class ce_count_loss(_SpikeLoss):  # noqa: N801
    """Cross-entropy on the spike counts (snnTorch's ``ce_count_loss``): ``CE(sum_t spk_out[t], targets)``.

    Args:
        population_code (bool): the outputs are C groups of k neurons; counts are summed per group.
        num_classes (int): C, needed with ``population_code``.
        reduction (str), weight: as :class:`ce_rate_loss`.

    Call:
        spk_out [T, N, C or C*k], targets [N] -> loss.
    """

    def __init__(self, population_code: bool = False, num_classes: Optional[int] = None, reduction: str = "mean",
                 weight=None):
        super().__init__(reduction, weight)
        self.population_code = _flag(population_code, f"{type(self).__name__}: population_code")
        self.num_classes = num_classes

    def __call__(self, spk_out: Tensor, targets: Tensor) -> Tensor:
        out = _check_output(spk_out, "spk_out", "ce_count_loss")
        counts = population_count(out, self.num_classes) if self.population_code else out.sum(0)
        targets = _check_targets(targets, counts.shape[0], counts.shape[1], "ce_count_loss")
        nll = F.cross_entropy(counts, targets, reduction="none")            # [N]
        if self.weight is not None:
            nll = nll * self._weight(nll, counts.shape[1])[targets]
        return self._reduce(nll)


class mse_count_loss(_SpikeLoss):  # noqa: N801
    """MSE between spike counts and target counts (snnTorch's ``mse_count_loss``), divided by T.

    The target count is ``int(T * correct_rate)`` for the correct class and ``int(T * incorrect_rate)`` for the
    others (``int`` truncates, as snnTorch); ``loss = MSE(sum_t spk_out[t], target) / T``.

    Args:
        correct_rate (float), incorrect_rate (float): firing rates in [0, 1] to aim for. Defaults 1 and 0.
        population_code (bool), num_classes (int): as :class:`ce_count_loss` (target counts scale with k).
        reduction (str): 'mean' (default, over all N*C elements), 'sum', or 'none' ([N, C], as snnTorch).
        weight: [C] per-class weights multiplying the squared errors of each sample (by its target class).

    Call:
        spk_out [T, N, C or C*k], targets [N] -> loss.
    """

    def __init__(self, correct_rate: float = 1, incorrect_rate: float = 0, population_code: bool = False,
                 num_classes: Optional[int] = None, reduction: str = "mean", weight=None):
        super().__init__(reduction, weight)
        if not (0 <= incorrect_rate <= 1 and 0 <= correct_rate <= 1):
            raise ValueError(f"mse_count_loss: correct_rate and incorrect_rate must lie in [0, 1], got "
                             f"{correct_rate} and {incorrect_rate}")
        self.correct_rate = correct_rate
        self.incorrect_rate = incorrect_rate
        self.population_code = _flag(population_code, f"{type(self).__name__}: population_code")
        self.num_classes = num_classes

    def __call__(self, spk_out: Tensor, targets: Tensor) -> Tensor:
        out = _check_output(spk_out, "spk_out", "mse_count_loss")
        T, _, num_outputs = out.shape
        if self.population_code:
            counts = population_count(out, self.num_classes)
            scale = num_outputs / self.num_classes
        else:
            counts = out.sum(0)
            scale = 1
        targets = _check_targets(targets, counts.shape[0], counts.shape[1], "mse_count_loss")
        on = int(T * self.correct_rate * scale)
        off = int(T * self.incorrect_rate * scale)
        one_hot = F.one_hot(targets, counts.shape[1]).to(counts.dtype)
        target_counts = _on_off_targets(one_hot, on, off)
        sq = (counts - target_counts).square()                              # [N, C]
        if self.weight is not None:
            sq = sq * self._weight(sq, counts.shape[1])[targets].unsqueeze(-1)
        return self._reduce(sq) / T


class mse_membrane_loss(_SpikeLoss):  # noqa: N801
    """MSE between the output membrane potential and a target, averaged over time (snnTorch's
    ``mse_membrane_loss``).

    ``loss = (1/T) sum_t MSE(mem_out[t], target)`` with ``target = on_target`` for the correct class and
    ``off_target`` for the others (snnTorch computes it as ``max(one_hot * on_target, off_target)`` when
    ``on_target > off_target``; that formula is kept, so a negative ``off_target`` gives 0 there).
    With ``time_var_targets=True`` the targets are given directly as membrane targets [T, N, C].

    Args:
        time_var_targets (bool): targets are a [T, N, C] float tensor. Default False.
        on_target (float), off_target (float): Defaults 1 and 0.
        reduction (str): 'mean' (default, over N*C each step), 'sum', or 'none' ([N, C], as snnTorch).
        weight: [C] per-class weights multiplying the squared errors of each sample (by its target class).

    Call:
        mem_out [T, N, C] float, targets [N] int (or [T, N, C] float) -> loss.
    """

    def __init__(self, time_var_targets: bool = False, on_target: float = 1, off_target: float = 0,
                 reduction: str = "mean", weight=None):
        super().__init__(reduction, weight)
        self.time_var_targets = _flag(time_var_targets, "mse_membrane_loss: time_var_targets")
        self.on_target = on_target
        self.off_target = off_target

    def __call__(self, mem_out: Tensor, targets: Tensor) -> Tensor:
        mem = _check_output(mem_out, "mem_out", "mse_membrane_loss")
        T, N, C = mem.shape
        if self.time_var_targets:
            target = _as_float(targets, "targets", "mse_membrane_loss")
            if tuple(target.shape) != (T, N, C):
                raise ValueError(f"mse_membrane_loss: with time_var_targets=True targets must be [T, N, C] = "
                                 f"{[T, N, C]}, got {tuple(target.shape)}")
            labels = None
        else:
            labels = _check_targets(targets, N, C, "mse_membrane_loss")
            one_hot = F.one_hot(labels, C).to(mem.dtype)
            target = _on_off_targets(one_hot, self.on_target, self.off_target).unsqueeze(0)
        sq = (mem - target).square().mean(0)                                 # [N, C], averaged over time
        if self.weight is not None:
            if labels is None:
                raise ValueError("mse_membrane_loss: weight needs class-index targets (time_var_targets=False)")
            sq = sq * self._weight(sq, C)[labels].unsqueeze(-1)
        return self._reduce(sq)


def _on_off_targets(one_hot: Tensor, on: float, off: float) -> Tensor:
    """snnTorch's ``targets_rate`` without time: max(one_hot*on, off) if on > off, else on/off per class."""
    if on > off:
        return torch.clamp(one_hot * on, min=off)
    return one_hot * on + (1 - one_hot) * off


def accuracy_rate(spk_out: Tensor, targets: Tensor, population_code: bool = False,
                  num_classes: Optional[int] = None) -> float:
    """Fraction of samples whose most-spiking output (summed over time) is the target (snnTorch's
    ``accuracy_rate``; ties go to the lowest index, as ``max``).

    Args:
        spk_out (Tensor): [T, N, C] (or [T, N, C*k] with ``population_code``), float or uint8.
        targets (Tensor): [N] class indices.

    Returns:
        float: the accuracy in [0, 1] (snnTorch returns a numpy float64; a Python float compares the same).
    """
    out = _check_output(spk_out, "spk_out", "accuracy_rate")
    counts = population_count(out, num_classes) if population_code else out.sum(0)
    # float or out-of-range targets used to be compared as they were (a silent accuracy of 0)
    targets = _check_targets(targets, counts.shape[0], counts.shape[1], "accuracy_rate")
    if counts.shape[0] == 0:
        return float("nan")
    return (counts.argmax(1) == targets.to(counts.device)).float().mean().item()


def firing_rate_mse(spk_out: Tensor, targets: Tensor, num_classes: int) -> Tensor:
    """MSE between the firing rate and the one-hot label, as in SpikingJelly's tutorials.

    ``F.mse_loss(spk_out.mean(0), one_hot(targets, num_classes))``, the mean over N * C.

    Args:
        spk_out (Tensor): [T, N, C] output spikes (float for training; uint8 accepted, no gradient).
        targets (Tensor): [N] class indices.
        num_classes (int): C.

    Returns:
        Tensor: scalar.
    """
    out = _check_output(spk_out, "spk_out", "firing_rate_mse")
    if out.shape[-1] != num_classes:
        raise ValueError(f"firing_rate_mse: spk_out has {out.shape[-1]} outputs but num_classes={num_classes}")
    targets = _check_targets(targets, out.shape[1], num_classes, "firing_rate_mse")
    return F.mse_loss(out.mean(0), F.one_hot(targets, num_classes).to(out.dtype))
