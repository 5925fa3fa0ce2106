"""The surrogates SpikingJelly 2.0 has beyond the first ten: their validation, their values at 0, ±inf and NaN,
the ops with their kinds (opcheck), and the two without a kernel formula (MultiLevelSpikeCount, PoissonPass)."""

import math

import pytest
import torch

import reference as ref
from spikeops import _C, _ops, neuron, surrogate  # noqa: F401  (_ops registers torch.ops.spikeops)

ops = torch.ops.spikeops
NEW = ("NonzeroSignLogAbs", "S2NN", "QPseudoSpike", "LeakyKReLU", "FakeNumericalGradient", "LogTailedReLU",
       "SquarewaveFourierSeries", "DeterministicPass")
# spikingjelly.activation_based.surrogate 2.0.0: every SurrogateFunctionBase subclass.
SPIKINGJELLY_CLASSES = ("PiecewiseQuadratic", "PiecewiseExp", "Sigmoid", "SoftSign", "SuperSpike", "ATan",
                        "NonzeroSignLogAbs", "Erf", "PiecewiseLeakyReLU", "SquarewaveFourierSeries", "S2NN",
                        "QPseudoSpike", "LeakyKReLU", "FakeNumericalGradient", "LogTailedReLU", "DeterministicPass",
                        "MultiLevelSpikeCount", "PoissonPass", "Rect")
SPECIAL = torch.tensor([0.0, -0.0, math.inf, -math.inf, math.nan, 1e30, -1e30, 1.0, -1.0, 1e-30, -1e-30, 3.0])


def test_every_spikingjelly_surrogate_exists():
    for name in SPIKINGJELLY_CLASSES:
        cls = getattr(surrogate, name)
        assert issubclass(cls, surrogate.SurrogateFunctionBase) and name in surrogate.__all__


@pytest.mark.parametrize("name", list(ref.SURROGATES))
def test_kernel_matches_reference_at_zero_infinity_and_nan(name):
    params = ref.SURROGATES[name][0]
    x = SPECIAL.clone()
    if name == "SquarewaveFourierSeries":  # cos(1e30 ω) is float32 rounding noise (as in SpikingJelly)
        x = x[~(x.abs() == 1e30)]
    x.requires_grad_(True)
    y = getattr(surrogate, name)(**params)(x)
    assert torch.equal(y, (x.detach() >= 0).float())
    y.backward(torch.ones_like(y))
    expected = ref.surrogate_grad(name, x.detach(), **params).float()
    atol = 1e-7 + ref.float32_phase_atol(name, x.detach(), **params)
    torch.testing.assert_close(x.grad, expected, rtol=2e-6, atol=atol, equal_nan=True)


def test_fake_numerical_gradient_keeps_spikingjelly_signed_zero():
    # clamp_max(-1 / -0.0 ...): (x >= 0) holds at -0, so SpikingJelly's 1/x gives -inf there, +0.3 at +0.
    x = torch.tensor([0.0, -0.0], requires_grad=True)
    surrogate.FakeNumericalGradient()(x).sum().backward()
    assert x.grad[0] == pytest.approx(0.3) and x.grad[1] == -math.inf


@pytest.mark.parametrize("name", NEW)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_opcheck_spike_fn_and_surrogate_backward(name, dtype):
    sg = getattr(surrogate, name)(**ref.SURROGATES[name][0])
    x = torch.randn(7, 13).to(dtype).requires_grad_(True)
    torch.library.opcheck(ops.spike_fn, (x, sg.kind_id, sg.alpha, sg.beta))
    g = torch.randn(7, 13).to(dtype)
    torch.library.opcheck(ops.surrogate_backward, (g, x.detach(), sg.kind_id, sg.alpha, sg.beta))


@pytest.mark.parametrize("name", NEW)
def test_opcheck_neuron_ops(name):
    sg = getattr(surrogate, name)(**ref.SURROGATES[name][0])
    x = (torch.randn(5, 19) * 1.5 + 0.6).requires_grad_(True)
    v = (torch.randn(19) * 0.3).requires_grad_(True)
    flags = (1, 1.0, 0.0, 2.0, True, [], False, sg.kind_id, sg.alpha, sg.beta)
    torch.library.opcheck(ops.neuron_forward, (x, v, None, *flags, torch.float32, True, False))
    _, _, saved, _ = ops.neuron_forward(x.detach(), v.detach(), None, *flags, torch.float32, True, False)
    torch.library.opcheck(ops.neuron_backward, (torch.randn(5, 19), None, None, saved, v.detach(), None, None,
                                                *flags, torch.float32))


@pytest.mark.parametrize("make, message", [
    (lambda: surrogate.QPseudoSpike(alpha=1.0), "QPseudoSpike: alpha must be > 1"),
    (lambda: surrogate.QPseudoSpike(alpha=0.5), "QPseudoSpike: alpha must be > 1"),
    (lambda: surrogate.S2NN(alpha=0.0), "S2NN: alpha must be a finite number > 0"),
    (lambda: surrogate.S2NN(beta=math.inf), "S2NN: beta must be finite"),
    (lambda: surrogate.NonzeroSignLogAbs(alpha=-1.0), "NonzeroSignLogAbs: alpha must be a finite number > 0"),
    (lambda: surrogate.LeakyKReLU(leak=math.nan), "LeakyKReLU: leak must be finite"),
    (lambda: surrogate.LeakyKReLU(k=1e39), "LeakyKReLU: k must be finite"),
    (lambda: surrogate.FakeNumericalGradient(alpha=math.inf), "FakeNumericalGradient: alpha must be finite"),
    (lambda: surrogate.LogTailedReLU(alpha=math.nan), "LogTailedReLU: alpha must be finite"),
    (lambda: surrogate.SquarewaveFourierSeries(n=0), "SquarewaveFourierSeries: n must be an int"),
    (lambda: surrogate.SquarewaveFourierSeries(n=2.0), "SquarewaveFourierSeries: n must be an int"),
    (lambda: surrogate.SquarewaveFourierSeries(T_period=0.0), "SquarewaveFourierSeries: T_period must be a finite"),
    (lambda: surrogate.MultiLevelSpikeCount(0), "MultiLevelSpikeCount: max_spike_count must be >= 1"),
    (lambda: surrogate.MultiLevelSpikeCount(2, grad_window=(1.0, 0.0)), "grad_min <= grad_max"),
])
def test_parameters_are_validated_with_their_names(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_negative_and_zero_parameters_are_accepted_where_spikingjelly_allows_them():
    # LogTailedReLU's default alpha and LeakyKReLU's default leak are 0 (no division by them).
    assert surrogate.LogTailedReLU().alpha == 0.0 and surrogate.LeakyKReLU().leak == 0.0
    x = torch.tensor([-1.0, 0.5], requires_grad=True)
    surrogate.LeakyKReLU(leak=-0.5, k=0.0)(x).sum().backward()
    assert x.grad.tolist() == [-0.5, 0.0]


@pytest.mark.parametrize("kind, alpha, beta, name", [
    ("QPseudoSpike", 1.0, 0.0, "alpha"), ("SquarewaveFourierSeries", 8.0, 2.5, "beta"),
    ("S2NN", -1.0, 1.0, "alpha"), ("LeakyKReLU", 0.0, math.nan, "beta")])
def test_ops_reject_each_kinds_bad_parameters(kind, alpha, beta, name):
    k = int(getattr(_C.SurrogateKind, kind))
    x = torch.randn(4)
    with pytest.raises(ValueError, match=rf"spikeops::spike_fn: .*{name}"):
        ops.spike_fn(x, k, alpha, beta)
    with pytest.raises(ValueError, match=rf"spikeops::surrogate_backward: .*{name}"):
        ops.surrogate_backward(torch.ones(4), x, k, alpha, beta)


def test_deterministic_pass_is_straight_through():
    x = torch.tensor([-2.0, 0.0, 3.0], requires_grad=True)
    sg = surrogate.DeterministicPass()
    assert sg(x).tolist() == [0.0, 1.0, 1.0]
    sg(x).backward(torch.tensor([1.0, 2.0, 3.0]))
    assert x.grad.tolist() == [1.0, 2.0, 3.0]
    assert surrogate.DeterministicPass(spiking=False)(x) is x


def test_fake_numerical_gradient_has_no_spiking_argument():
    with pytest.raises(TypeError):
        surrogate.FakeNumericalGradient(spiking=False)  # pylint: disable=unexpected-keyword-arg
    sg = surrogate.FakeNumericalGradient()
    sg.set_spiking_mode(False)
    with pytest.raises(NotImplementedError, match="FakeNumericalGradient has no primitive"):
        sg(torch.zeros(2))


def test_kernel_formula_flag():
    for name in SPIKINGJELLY_CLASSES:
        cls = getattr(surrogate, name)
        assert cls.has_kernel_formula == (name not in ("MultiLevelSpikeCount", "PoissonPass")), name
        if cls.has_kernel_formula:
            assert isinstance(int(cls.kind), int)


def test_multi_level_spike_count_forward_and_backward():
    x = torch.tensor([-1.0, 0.0, 0.4, 0.6, 1.5, 2.5, 3.0, 7.0], requires_grad=True)
    sg = surrogate.MultiLevelSpikeCount(3)
    y = sg(x)
    assert y.tolist() == torch.round(torch.clamp(x.detach(), 0, 3)).tolist()
    y.backward(torch.full_like(x, 2.0))
    assert x.grad.tolist() == [0.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 0.0]  # the window [0, 3], both ends in
    x.grad = None
    surrogate.MultiLevelSpikeCount(3, grad_window=(0.5, 1.5))(x).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0]
    assert torch.equal(surrogate.MultiLevelSpikeCount(3, spiking=False)(x), torch.clamp(x, 0, 3))


def test_poisson_pass_samples_and_passes_the_gradient_through():
    torch.manual_seed(0)
    p = torch.tensor([0.0, 1.0, 0.0, 1.0], requires_grad=True)
    y = surrogate.PoissonPass()(p)
    assert y.tolist() == [0.0, 1.0, 0.0, 1.0] and y.dtype == torch.float32
    y.backward(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert p.grad.tolist() == [1.0, 2.0, 3.0, 4.0]
    rate = surrogate.PoissonPass()(torch.full((20000,), 0.25)).mean().item()
    assert abs(rate - 0.25) < 0.02
    assert surrogate.PoissonPass(spiking=False)(p) is p


@pytest.mark.parametrize("make, scale, offset", [(surrogate.PoissonPass, 0.5, 1.0),
                                                 (lambda: surrogate.MultiLevelSpikeCount(2), 2.0, 2.0)],
                         ids=["PoissonPass", "MultiLevelSpikeCount"])
def test_neuron_runs_a_surrogate_without_kernel_formula_in_its_step_loop(make, scale, offset):
    """Not a silently wrong (Heaviside) spike: the neuron calls the surrogate itself, as the same neuron written in
    plain PyTorch does (SpikingJelly's LIF charge, fire, hard reset)."""
    x = torch.rand(6, 3, 5) * scale + offset  # PoissonPass: v - v_threshold stays a probability in [0, 1]
    torch.manual_seed(7)
    node = neuron.LIFNode(surrogate_function=make(), step_mode="m", v_threshold=0.5 if scale < 1 else 1.0)
    spikes = node(x)
    torch.manual_seed(7)
    sg, v, expected = make(), torch.zeros(3, 5), []
    for t in range(x.shape[0]):
        v = v + (x[t] - v) * 0.5
        s = sg(v - node.v_threshold)
        v = (1.0 - s) * v
        expected.append(s)
    assert torch.equal(spikes, torch.stack(expected))
    assert torch.equal(node.v, v)




def test_poisson_pass_names_inputs_that_are_not_probabilities():
    with pytest.raises(ValueError, match=r"PoissonPass: x must be firing probabilities in \[0, 1\]"):
        surrogate.PoissonPass()(torch.tensor([0.5, 1.5]))
