"""Surrogate spike functions with SpikingJelly's names, defaults and formulas (plus snnTorch's FastSigmoid).

Calling a surrogate on a tensor returns the Heaviside step ``(x >= 0)`` in x's dtype; its gradient is the
surrogate derivative, computed by the C++/CUDA kernels. With ``spiking=False`` the smooth primitive function
(whose derivative the surrogate is) is returned instead, as in SpikingJelly; SuperSpike and FastSigmoid have
no primitive there and raise.

Example::

    sg = surrogate.ATan(alpha=2.0)
    spikes = sg(h - v_threshold)   # 0/1 forward, (α/2)/(1 + (π/2 α x)^2) backward
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn

from . import _C
from ._ops import spike_fn
from ._ops import _checks
from ._ops._common import _flag, _float32

__all__ = ["SurrogateFunctionBase", "Sigmoid", "ATan", "PiecewiseQuadratic", "PiecewiseExp", "SoftSign",
           "SuperSpike", "Erf", "Rect", "PiecewiseLeakyReLU", "FastSigmoid", "heaviside"]


def heaviside(x: Tensor) -> Tensor:
    """Θ(x) = 1 where x >= 0 else 0, in x's dtype (no gradient)."""
    return (x >= 0).to(x)


def _check_positive(name: str, value: float, cls: str) -> float:
    # The kernels take the parameters in float32 and divide by them (1/α, 1/(2w)): α must be a normal float32 > 0,
    # checked here rather than at the first forward.
    return _float32(value, f"{cls}: {name}", positive=True)


class SurrogateFunctionBase(nn.Module):
    """A spike function with a surrogate gradient. Subclasses set ``kind`` and their parameters.

    Args:
        alpha (float): the sharpness parameter (its meaning depends on the surrogate).
        spiking (bool): True (default): Heaviside forward, surrogate backward. False: the smooth primitive.
    """

    # The kernels' formula; None for a user's subclass, which defines forward (neurons then call it in a step loop).
    kind: "Optional[_C.SurrogateKind]" = None
    _alpha_name = "alpha"  # what the subclass's constructor calls its sharpness parameter

    def __init__(self, alpha: float, spiking: bool = True):
        super().__init__()
        self.alpha = _check_positive(self._alpha_name, alpha, type(self).__name__)
        self.spiking = _flag(spiking, f"{type(self).__name__}: spiking")
        # A plain int for the ops: torch.compile (Dynamo) cannot trace int() of a pybind11 enum.
        self.kind_id = -1 if self.kind is None else int(self.kind)

    @property
    def beta(self) -> float:
        """Second parameter passed to the kernels (only PiecewiseLeakyReLU uses it)."""
        return 0.0

    def set_spiking_mode(self, spiking: bool) -> None:
        self.spiking = _flag(spiking, f"{type(self).__name__}: spiking")

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, spiking={self.spiking}"

    def forward(self, x: Tensor) -> Tensor:
        if not self.spiking:
            return self.primitive_function(x, self.alpha)
        if self.kind is None:
            raise NotImplementedError(f"{type(self).__name__} must define forward(x) (a surrogate without a "
                                      "kernel kind computes its spike function itself)")
        _checks.tensor(x, "x", type(self).__name__, _checks.FLOAT_DTYPES)
        return spike_fn(x.contiguous(), self.kind_id, self.alpha, self.beta)

    @staticmethod
    def primitive_function(x: Tensor, alpha: float) -> Tensor:
        raise NotImplementedError


class Sigmoid(SurrogateFunctionBase):
    """σ'(x) = α sigmoid(αx)(1 - sigmoid(αx)); primitive sigmoid(αx). Default α = 4."""

    kind = _C.SurrogateKind.Sigmoid

    def __init__(self, alpha: float = 4.0, spiking: bool = True):
        super().__init__(alpha, spiking)

    @staticmethod
    def primitive_function(x: Tensor, alpha: float) -> Tensor:
        return (x * alpha).sigmoid()


class ATan(SurrogateFunctionBase):
    """σ'(x) = (α/2) / (1 + (π/2 α x)^2); primitive arctan(π/2 α x)/π + 1/2. Default α = 2."""

    kind = _C.SurrogateKind.ATan

    def __init__(self, alpha: float = 2.0, spiking: bool = True):
        super().__init__(alpha, spiking)

    @staticmethod
    def primitive_function(x: Tensor, alpha: float) -> Tensor:
        return (math.pi / 2 * alpha * x).atan() / math.pi + 0.5


class PiecewiseQuadratic(SurrogateFunctionBase):
    """σ'(x) = α - α^2|x| for |x| <= 1/α, else 0. Default α = 1."""

    kind = _C.SurrogateKind.PiecewiseQuadratic

    def __init__(self, alpha: float = 1.0, spiking: bool = True):
        super().__init__(alpha, spiking)

    @staticmethod
    def primitive_function(x: Tensor, alpha: float) -> Tensor:
        mask0 = (x > 1.0 / alpha).to(x)
        mask1 = (x.abs() <= 1.0 / alpha).to(x)
        return mask0 + mask1 * (-(alpha ** 2) / 2 * x.square() * x.sign() + alpha * x + 0.5)


class PiecewiseExp(SurrogateFunctionBase):
    """σ'(x) = (α/2) exp(-α|x|). Default α = 1."""

    kind = _C.SurrogateKind.PiecewiseExp

    def __init__(self, alpha: float = 1.0, spiking: bool = True):
        super().__init__(alpha, spiking)

    @staticmethod
    def primitive_function(x: Tensor, alpha: float) -> Tensor:
        mask_nonnegative = heaviside(x)
        mask_sign = mask_nonnegative * 2.0 - 1.0
        return mask_nonnegative - (mask_sign * x * -alpha).exp() / 2.0 * mask_sign


class SoftSign(SurrogateFunctionBase):
    """σ'(x) = 1 / (2α (1/α + |x|)^2); primitive (softsign(αx) + 1)/2. Default α = 2."""

    kind = _C.SurrogateKind.SoftSign

    def __init__(self, alpha: float = 2.0, spiking: bool = True):
        super().__init__(alpha, spiking)

    @staticmethod
    def primitive_function(x: Tensor, alpha: float) -> Tensor:
        return (torch.nn.functional.softsign(x * alpha) + 1.0) / 2.0


class SuperSpike(SurrogateFunctionBase):
    """σ'(x) = α / (|x| + 1)^2 (SpikingJelly's form). Default α = 1. No primitive function."""

    kind = _C.SurrogateKind.SuperSpike

    def __init__(self, alpha: float = 1.0, spiking: bool = True):
        super().__init__(alpha, spiking)

    @staticmethod
    def primitive_function(x: Tensor, alpha: float) -> Tensor:
        raise NotImplementedError("SuperSpike has no primitive function (as in SpikingJelly); use spiking=True")


class Erf(SurrogateFunctionBase):
    """σ'(x) = (α/√π) exp(-(αx)^2); primitive erfc(-αx)/2. Default α = 2."""

    kind = _C.SurrogateKind.Erf

    def __init__(self, alpha: float = 2.0, spiking: bool = True):
        super().__init__(alpha, spiking)

    @staticmethod
    def primitive_function(x: Tensor, alpha: float) -> Tensor:
        return torch.erfc(-alpha * x) / 2.0


class Rect(SurrogateFunctionBase):
    """σ'(x) = α where |x| < 1/(2α), else 0; primitive clamp(αx + 1/2, 0, 1). Default α = 1."""

    kind = _C.SurrogateKind.Rect

    def __init__(self, alpha: float = 1.0, spiking: bool = True):
        super().__init__(alpha, spiking)

    @staticmethod
    def primitive_function(x: Tensor, alpha: float) -> Tensor:
        return torch.clamp(alpha * x + 0.5, 0.0, 1.0)


class PiecewiseLeakyReLU(SurrogateFunctionBase):
    """σ'(x) = 1/(2w) where |x| < w, else c. Defaults w = 1, c = 0.01 (SpikingJelly's names)."""

    kind = _C.SurrogateKind.PiecewiseLeakyReLU
    _alpha_name = "w"

    def __init__(self, w: float = 1.0, c: float = 0.01, spiking: bool = True):
        super().__init__(w, spiking)
        c = _float32(c, "PiecewiseLeakyReLU: c")
        self.w = self.alpha
        self.c = c

    @property
    def beta(self) -> float:
        return self.c

    def extra_repr(self) -> str:
        return f"w={self.w}, c={self.c}, spiking={self.spiking}"

    def forward(self, x: Tensor) -> Tensor:
        if not self.spiking:
            return self.primitive_function(x, self.w, self.c)
        return super().forward(x)

    @staticmethod
    def primitive_function(x: Tensor, w: float, c: float = 0.01) -> Tensor:
        mask0 = (x < -w).to(x)
        mask1 = (x > w).to(x)
        mask2 = 1.0 - mask0 - mask1
        cw = c * w
        return mask0 * (c * x + cw) + mask1 * (c * x + (-cw + 1.0)) + mask2 * (x / (2.0 * w) + 0.5)


class FastSigmoid(SurrogateFunctionBase):
    """snnTorch's fast sigmoid: σ'(x) = 1 / (slope |x| + 1)^2. Default slope = 25. No primitive function."""

    kind = _C.SurrogateKind.FastSigmoid
    _alpha_name = "slope"

    def __init__(self, slope: float = 25.0, spiking: bool = True):
        super().__init__(slope, spiking)
        self.slope = self.alpha

    def extra_repr(self) -> str:
        return f"slope={self.slope}, spiking={self.spiking}"

    @staticmethod
    def primitive_function(x: Tensor, alpha: float) -> Tensor:
        raise NotImplementedError("FastSigmoid has no primitive function; use spiking=True")
