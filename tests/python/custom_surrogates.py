"""Surrogates no spikeops kernel has a formula for, shared by the tests of custom surrogates."""

import torch

from spikeops import surrogate


class SquareSpike(torch.autograd.Function):
    """Heaviside forward, derivative 1 / (1 + x^2)^2."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x >= 0).to(x)

    @staticmethod
    def backward(ctx, grad):
        x, = ctx.saved_tensors
        return grad / (1.0 + x * x) ** 2


class SquareSurrogate(surrogate.SurrogateFunctionBase):
    """A SurrogateFunctionBase subclass with its own derivative (no kernel kind)."""

    def __init__(self, alpha=1.0):
        super().__init__(alpha)

    def forward(self, x):
        return SquareSpike.apply(x * self.alpha)
