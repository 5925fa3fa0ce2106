"""Surrogate spike functions with SpikingJelly's names, defaults and formulas (plus snnTorch's FastSigmoid).

Calling a surrogate on a tensor returns the Heaviside step ``(x >= 0)`` in x's dtype; its gradient is the
surrogate derivative, computed by the C++/CUDA kernels. With ``spiking=False`` the smooth primitive function
(whose derivative the surrogate is) is returned instead, as in SpikingJelly; SuperSpike, FastSigmoid and
FakeNumericalGradient have no primitive there and raise.

Every surrogate class of SpikingJelly 2.0 is here. Those whose forward is the Heaviside step and whose derivative
is closed-form have a ``kind`` the fused neuron kernels compute (``has_kernel_formula`` True). PoissonPass and
MultiLevelSpikeCount do not (their forward is not the Heaviside step): ``has_kernel_formula`` is False and they
are plain PyTorch autograd functions.

Example::

    sg = surrogate.ATan(alpha=2.0)
    spikes = sg(h - v_threshold)   # 0/1 forward, (α/2)/(1 + (π/2 α x)^2) backward
"""

from __future__ import annotations

import math
import numbers
from typing import Optional

import torch
from torch import Tensor, nn

from . import _C
from ._ops import spike_fn
from ._ops import _checks
from ._ops._common import _flag, _float32, _number, _round_float32

__all__ = ["SurrogateFunctionBase", "Sigmoid", "ATan", "PiecewiseQuadratic", "PiecewiseExp", "SoftSign",
           "SuperSpike", "Erf", "Rect", "PiecewiseLeakyReLU", "FastSigmoid", "NonzeroSignLogAbs",
           "SquarewaveFourierSeries", "S2NN", "QPseudoSpike", "LeakyKReLU", "FakeNumericalGradient",
           "LogTailedReLU", "DeterministicPass", "MultiLevelSpikeCount", "PoissonPass", "heaviside"]


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

    ``has_kernel_formula`` says whether the kernels know this surrogate's derivative (``kind``, ``alpha``,
    ``beta``); a neuron must not hand a surrogate without one to the fused kernels.
    """

    # The kernels' formula; None for a user's subclass, which defines forward (neurons then call it in a step loop).
    kind: "Optional[_C.SurrogateKind]" = None
    has_kernel_formula = True
    beta = 0.0  # second parameter passed to the kernels (see spikeops/surrogate.hpp); most surrogates ignore it
    _alpha_name = "alpha"  # what the subclass's constructor calls its sharpness parameter
    _alpha_positive = True  # False where the formula does not divide by alpha: any finite value is accepted

    def __init__(self, alpha: float, spiking: bool = True):
        super().__init__()
        what = f"{type(self).__name__}: {self._alpha_name}"
        self.alpha = _check_positive(self._alpha_name, alpha, type(self).__name__) if self._alpha_positive \
            else _float32(alpha, what)
        self.spiking = _flag(spiking, f"{type(self).__name__}: spiking")
        # A plain int for the ops: torch.compile (Dynamo) cannot trace int() of a pybind11 enum.
        self.kind_id = -1 if self.kind is None else int(self.kind)

    def set_spiking_mode(self, spiking: bool) -> None:
        self.spiking = _flag(spiking, f"{type(self).__name__}: spiking")

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, spiking={self.spiking}"

    def forward(self, x: Tensor) -> Tensor:
        if not self.spiking:
            return self._primitive(x)
        if self.kind is None:
            raise NotImplementedError(f"{type(self).__name__} must define forward(x) (a surrogate without a "
                                      "kernel kind computes its spike function itself)")
        _checks.tensor(x, "x", type(self).__name__, _checks.FLOAT_DTYPES)
        return spike_fn(x.contiguous(), self.kind_id, self.alpha, self.beta)

    def _primitive(self, x: Tensor) -> Tensor:
        """The primitive function with this object's parameters (subclasses with other parameters override)."""
        return self.primitive_function(x, self.alpha)

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

    def _primitive(self, x: Tensor) -> Tensor:
        return self.primitive_function(x, self.w, self.c)

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


class NonzeroSignLogAbs(SurrogateFunctionBase):
    """σ'(x) = 1 / (1/α + |x|); primitive sign(x) log(α|x| + 1), sign(0) = 1. Default α = 1."""

    kind = _C.SurrogateKind.NonzeroSignLogAbs

    def __init__(self, alpha: float = 1.0, spiking: bool = True):
        super().__init__(alpha, spiking)

    @staticmethod
    def primitive_function(x: Tensor, alpha: float) -> Tensor:
        mask_p = heaviside(x) * 2.0 - 1.0
        return mask_p * (alpha * mask_p * x + 1).log()


class SquarewaveFourierSeries(SurrogateFunctionBase):
    """The square wave's Fourier series up to its (n-1)-th odd harmonic: σ'(x) = (4/T) Σ_{i=1}^{n-1}
    cos((2i - 1) 2π x / T) with T = T_period; primitive 1/2 + (2/π) Σ sin((2i - 1) 2π x / T) / (2i - 1).
    Defaults n = 2, T_period = 8. n = 1 gives a zero gradient (as in SpikingJelly)."""

    kind = _C.SurrogateKind.SquarewaveFourierSeries
    _alpha_name = "T_period"

    def __init__(self, n: int = 2, T_period: float = 8, spiking: bool = True):
        # The kernels loop n - 1 times and take n as a float32 (SpikingJelly asserts an int).
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 2 ** 24:
            raise ValueError(f"SquarewaveFourierSeries: n must be an int in [1, 2^24], got {n!r}")
        super().__init__(T_period, spiking)
        self.n = n
        self.T_period = self.alpha

    @property
    def beta(self) -> float:
        return float(self.n)

    def extra_repr(self) -> str:
        return f"n={self.n}, T_period={self.T_period}, spiking={self.spiking}"

    def _primitive(self, x: Tensor) -> Tensor:
        return self.primitive_function(x, self.n, self.T_period)

    @staticmethod
    def primitive_function(x: Tensor, n: int, T_period: float) -> Tensor:
        w = math.pi * 2.0 / T_period
        ret = torch.zeros_like(x)
        for i in range(1, n):
            c = 2 * i - 1.0
            ret = ret + torch.sin(c * w * x) / c
        return 0.5 + 2.0 / math.pi * ret


class S2NN(SurrogateFunctionBase):
    """S2NN (Suetake et al.): σ'(x) = α sigmoid(αx)(1 - sigmoid(αx)) for x < 0, β / (x + 1) for x >= 0; primitive
    sigmoid(αx) for x < 0, β log(|x + 1| + 1e-5) + 1/2 for x >= 0. Defaults α = 4, β = 1."""

    kind = _C.SurrogateKind.S2NN

    def __init__(self, alpha: float = 4.0, beta: float = 1.0, spiking: bool = True):
        super().__init__(alpha, spiking)
        self.beta = _float32(beta, "S2NN: beta")

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, beta={self.beta}, spiking={self.spiking}"

    def _primitive(self, x: Tensor) -> Tensor:
        return self.primitive_function(x, self.alpha, self.beta)

    @staticmethod
    def primitive_function(x: Tensor, alpha: float, beta: float) -> Tensor:
        return torch.where(x < 0.0, torch.sigmoid(x * alpha), beta * torch.log((x + 1.0).abs() + 1e-5) + 0.5)


class QPseudoSpike(SurrogateFunctionBase):
    """q-PseudoSpike (Herranz-Celotti and Rouat): σ'(x) = (1 + 2|x| / (α - 1))^(-α); primitive
    Θ(x) - sign(x) (1 + 2|x| / (α - 1))^(1 - α) / 2. Default α = 2; α must be > 1 (the tail index)."""

    kind = _C.SurrogateKind.QPseudoSpike

    def __init__(self, alpha: float = 2.0, spiking: bool = True):
        super().__init__(alpha, spiking)
        if not _round_float32(self.alpha) > 1.0:  # what the kernels see; 2/(α-1) needs α > 1
            raise ValueError(f"QPseudoSpike: alpha must be > 1 in float32, got {alpha}")

    @staticmethod
    def primitive_function(x: Tensor, alpha: float) -> Tensor:
        mask_nonnegative = heaviside(x)
        mask_sign = mask_nonnegative * 2.0 - 1.0
        return mask_nonnegative - mask_sign * (0.5 * (1.0 + 2.0 / (alpha - 1.0) * x * mask_sign).pow(1.0 - alpha))


class LeakyKReLU(SurrogateFunctionBase):
    """σ'(x) = k for x >= 0, leak for x < 0; primitive the leaky ReLU (leak x for x < 0, k x for x >= 0).
    Defaults leak = 0, k = 1 (any finite values)."""

    kind = _C.SurrogateKind.LeakyKReLU
    _alpha_name = "leak"
    _alpha_positive = False

    def __init__(self, leak: float = 0.0, k: float = 1.0, spiking: bool = True):
        super().__init__(leak, spiking)
        self.leak = self.alpha
        self.k = _float32(k, "LeakyKReLU: k")

    @property
    def beta(self) -> float:
        return self.k

    def extra_repr(self) -> str:
        return f"leak={self.leak}, k={self.k}, spiking={self.spiking}"

    def _primitive(self, x: Tensor) -> Tensor:
        return self.primitive_function(x, self.leak, self.k)

    @staticmethod
    def primitive_function(x: Tensor, leak: float, k: float) -> Tensor:
        mask1 = (x >= 0.0).to(x)
        return (leak * (1.0 - mask1) + k * mask1) * x


class FakeNumericalGradient(SurrogateFunctionBase):
    """σ'(x) = min(sign(x) / x, α) with sign(x) = 1 for x >= 0, else -1 (so min(1/|x|, α), and -inf at x = -0 as
    in SpikingJelly). Default α = 0.3 (any finite value). Always spiking: no primitive (SpikingJelly's constructor
    has no ``spiking`` argument)."""

    kind = _C.SurrogateKind.FakeNumericalGradient
    _alpha_positive = False

    def __init__(self, alpha: float = 0.3):
        super().__init__(alpha, True)

    @staticmethod
    def primitive_function(x: Tensor, alpha: float) -> Tensor:
        raise NotImplementedError("FakeNumericalGradient has no primitive function (as in SpikingJelly); "
                                  "use spiking=True")


class LogTailedReLU(SurrogateFunctionBase):
    """σ'(x) = α for x <= 0, 1 for 0 < x <= 1, 1/x for x > 1; primitive leaky_relu(x, α) for x <= 1, log(x) + 1
    above. Default α = 0 (any finite value)."""

    kind = _C.SurrogateKind.LogTailedReLU
    _alpha_positive = False

    def __init__(self, alpha: float = 0.0, spiking: bool = True):
        super().__init__(alpha, spiking)

    @staticmethod
    def primitive_function(x: Tensor, alpha: float) -> Tensor:
        return torch.where(x > 1.0, torch.log(torch.clamp_min(x, 1.0)) + 1.0,
                           torch.nn.functional.leaky_relu(x, alpha))


class DeterministicPass(SurrogateFunctionBase):
    """Straight-through: σ'(x) = 1. With spiking=False it returns x unchanged (as SpikingJelly)."""

    kind = _C.SurrogateKind.DeterministicPass

    def __init__(self, spiking: bool = True):
        super().__init__(1.0, spiking)  # alpha is unused by the formula

    def extra_repr(self) -> str:
        return f"spiking={self.spiking}"

    @staticmethod
    def primitive_function(x: Tensor, alpha: float = 1.0) -> Tensor:
        return x


class _MultiLevelSpikeCount(torch.autograd.Function):
    """SpikingJelly's quantize.multi_level_spike_count: round(clamp(x, 0, max)) forward, the gradient passed
    where grad_min <= x <= grad_max."""

    @staticmethod
    def forward(x, max_spike_count, grad_min, grad_max):
        return torch.round(torch.clamp(x, 0, max_spike_count))

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])
        ctx.grad_min, ctx.grad_max = inputs[2], inputs[3]

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        mask = (x >= ctx.grad_min) & (x <= ctx.grad_max)
        return grad_output * mask.to(grad_output.dtype), None, None, None


class MultiLevelSpikeCount(SurrogateFunctionBase):
    """A spike count (SpikingJelly's ILIF surrogate): round(clamp(x, 0, max_spike_count)) forward, gradient 1 where
    grad_min <= x <= grad_max (default window [0, max_spike_count]) and 0 elsewhere; primitive
    clamp(x, 0, max_spike_count). Not the Heaviside step, so no kernel formula: neurons run it in PyTorch."""

    has_kernel_formula = False

    def __init__(self, max_spike_count: int, spiking: bool = True, grad_window=None):
        nn.Module.__init__(self)
        if isinstance(max_spike_count, bool) or not isinstance(max_spike_count, numbers.Integral):
            raise TypeError(f"MultiLevelSpikeCount: max_spike_count must be an integer, got {max_spike_count!r}")
        if max_spike_count < 1:
            raise ValueError(f"MultiLevelSpikeCount: max_spike_count must be >= 1, got {max_spike_count}")
        if grad_window is None:
            grad_min, grad_max = 0.0, float(max_spike_count)
        else:
            grad_min, grad_max = grad_window
            grad_min = _number(grad_min, "MultiLevelSpikeCount: grad_window[0]")
            grad_max = _number(grad_max, "MultiLevelSpikeCount: grad_window[1]")
            if grad_min > grad_max:
                raise ValueError(f"MultiLevelSpikeCount: grad_window must satisfy grad_min <= grad_max, "
                                 f"got {grad_window!r}")
        self.max_spike_count = int(max_spike_count)
        self.grad_min, self.grad_max = grad_min, grad_max
        self.spiking = _flag(spiking, "MultiLevelSpikeCount: spiking")

    def extra_repr(self) -> str:
        return (f"max_spike_count={self.max_spike_count}, grad_min={self.grad_min}, grad_max={self.grad_max}, "
                f"spiking={self.spiking}")

    def forward(self, x: Tensor) -> Tensor:
        if not self.spiking:
            return self.primitive_function(x, self.max_spike_count, self.grad_min, self.grad_max)
        return _MultiLevelSpikeCount.apply(x, self.max_spike_count, self.grad_min, self.grad_max)

    @staticmethod
    def primitive_function(x: Tensor, max_spike_count: int, grad_min: float = 0.0,
                           grad_max: float = 0.0) -> Tensor:
        return torch.clamp(x, 0, max_spike_count)


class _PoissonPass(torch.autograd.Function):
    @staticmethod
    def forward(x):
        return torch.bernoulli(x).float()

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output


class PoissonPass(SurrogateFunctionBase):
    """A Bernoulli sample forward (x is the firing probability, in [0, 1]), straight-through backward (as in
    SpikingJelly: the output is float32). With spiking=False, x unchanged. Random, not the Heaviside step, so no
    kernel formula: neurons run it in PyTorch."""

    has_kernel_formula = False

    def __init__(self, spiking: bool = True):
        nn.Module.__init__(self)
        self.spiking = _flag(spiking, "PoissonPass: spiking")

    def extra_repr(self) -> str:
        return f"spiking={self.spiking}"

    def forward(self, x: Tensor) -> Tensor:
        if not self.spiking:
            return x
        if x.numel() and not torch.compiler.is_compiling():
            lo, hi = (float(v) for v in torch.aminmax(x.detach()))
            if not (lo >= 0.0 and hi <= 1.0):  # NaN fails too
                raise ValueError(f"PoissonPass: x must be firing probabilities in [0, 1], got values from {lo} to "
                                 f"{hi}")
        return _PoissonPass.apply(x)

    @staticmethod
    def primitive_function(x: Tensor) -> Tensor:
        return x
