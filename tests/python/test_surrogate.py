"""Surrogate spike functions (C++ kernels) against the formulas in reference.py."""

import pytest
import torch

import reference as ref
from spikeops import surrogate

NAMES = list(ref.SURROGATES)
TOL = {torch.float32: dict(rtol=2e-6, atol=1e-7),  # the vectorized exp is within 4e-7 relative
       torch.float16: dict(rtol=1e-3, atol=1e-5),
       torch.bfloat16: dict(rtol=8e-3, atol=1e-4)}


def grid(dtype):
    # Dense around 0 (where the surrogates live), the piecewise edges of every default parameter, far tails,
    # exact zeros of both signs, and a size that is not a multiple of any vector width.
    x = torch.cat([torch.linspace(-3, 3, 1001), torch.tensor([0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 0.04, -0.04,
                                                             0.02, -0.02, 30.0, -30.0, 1e-30, -1e-30]),
                   torch.randn(517) * 2])
    return x.to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name", NAMES)
def test_forward_is_heaviside_and_backward_is_the_surrogate(name, dtype):
    params = ref.SURROGATES[name][0]
    sg = getattr(surrogate, name)(**params)
    x = grid(dtype).requires_grad_(True)
    y = sg(x)
    assert y.dtype == dtype
    assert torch.equal(y, (x.detach() >= 0).to(dtype)), "forward must be Θ(x) = (x >= 0), with Θ(-0) = 1"
    g = torch.randn(x.shape).to(dtype)
    y.backward(g)
    expected = (g.double() * ref.surrogate_grad(name, x.detach(), **params)).to(dtype)
    assert x.grad.dtype == dtype
    tol = dict(TOL[dtype])
    tol["atol"] += ref.float32_phase_atol(name, x.detach(), **params) * float(g.abs().max())
    torch.testing.assert_close(x.grad, expected, **tol)


@pytest.mark.parametrize("name,params", [("Sigmoid", {"alpha": 0.5}), ("Sigmoid", {"alpha": 16.0}),
                                         ("ATan", {"alpha": 0.3}), ("PiecewiseQuadratic", {"alpha": 2.5}),
                                         ("PiecewiseExp", {"alpha": 3.0}), ("SoftSign", {"alpha": 0.7}),
                                         ("SuperSpike", {"alpha": 4.0}), ("Erf", {"alpha": 0.5}),
                                         ("Rect", {"alpha": 2.0}), ("PiecewiseLeakyReLU", {"w": 0.25, "c": 0.2}),
                                         ("PiecewiseLeakyReLU", {"w": 2.0, "c": -0.1}),
                                         ("FastSigmoid", {"slope": 1.0}),
                                         ("NonzeroSignLogAbs", {"alpha": 3.0}),
                                         ("S2NN", {"alpha": 1.5, "beta": 0.3}), ("QPseudoSpike", {"alpha": 4.5}),
                                         ("QPseudoSpike", {"alpha": 1.1}), ("LeakyKReLU", {"leak": 0.1, "k": 2.0}),
                                         ("LeakyKReLU", {"leak": -0.5, "k": 0.0}),
                                         ("FakeNumericalGradient", {"alpha": 2.0}),
                                         ("LogTailedReLU", {"alpha": 0.05}),
                                         ("SquarewaveFourierSeries", {"n": 5, "T_period": 3.0}),
                                         ("SquarewaveFourierSeries", {"n": 1, "T_period": 8.0})])
def test_parameters(name, params):
    sg = getattr(surrogate, name)(**params)
    x = grid(torch.float32).requires_grad_(True)
    sg(x).sum().backward()
    expected = ref.surrogate_grad(name, x.detach(), **params).float()
    tol = dict(TOL[torch.float32])
    tol["atol"] += ref.float32_phase_atol(name, x.detach(), **params)
    torch.testing.assert_close(x.grad, expected, **tol)


@pytest.mark.parametrize("name", NAMES)
def test_defaults_are_spikingjelly_defaults(name):
    sg = getattr(surrogate, name)()
    for key, value in ref.SURROGATES[name][0].items():
        assert getattr(sg, key) == value
    assert sg.spiking


# The primitives bounded to [0, 1]; the others grow without bound by design (a leaky slope, a log tail, ...).
BOUNDED_PRIMITIVES = ("Sigmoid", "ATan", "PiecewiseQuadratic", "PiecewiseExp", "SoftSign", "Erf", "Rect",
                      "QPseudoSpike")
# SpikingJelly's S2NN primitive is β log(|x + 1| + 1e-5) + 1/2 on x >= 0: its derivative is β/(x + 1 + 1e-5).
PRIMITIVE_RTOL = {"S2NN": 2e-5}


@pytest.mark.parametrize("name", [n for n in NAMES if n not in ("SuperSpike", "FastSigmoid",
                                                                 "FakeNumericalGradient")])
def test_primitive_derivative_is_the_surrogate(name):
    # spiking=False returns SpikingJelly's smooth primitive; its autograd derivative is the surrogate.
    params = ref.SURROGATES[name][0]
    sg = getattr(surrogate, name)(**params, spiking=False)
    # Avoid the kinks of the piecewise surrogates, where the derivative is one-sided.
    x = torch.linspace(-2.9, 2.9, 777, dtype=torch.float64)
    edges = torch.tensor([0.0, 0.5, 1.0])
    x = x[((x.abs().unsqueeze(1) - edges).abs() > 1e-3).all(1)].requires_grad_(True)
    y = sg(x)
    if name in BOUNDED_PRIMITIVES:
        assert 0 <= y.min() and y.max() <= 1
    y.sum().backward()
    torch.testing.assert_close(x.grad, ref.surrogate_grad(name, x.detach(), **params),
                               rtol=PRIMITIVE_RTOL.get(name, 1e-6), atol=1e-9)


def test_non_contiguous_input_is_handled():
    x = torch.randn(6, 5).t().requires_grad_(True)
    y = surrogate.ATan()(x)
    assert torch.equal(y, (x.detach() >= 0).float())
    y.sum().backward()
    torch.testing.assert_close(x.grad, ref.atan_grad(x.detach().double(), 2.0).float())


def test_empty_input():
    x = torch.empty(0, 3, requires_grad=True)
    y = surrogate.Sigmoid()(x)
    y.sum().backward()
    assert y.shape == (0, 3) and x.grad.shape == (0, 3)
