"""PSN, MaskedPSN and SlidingPSN against the plain-PyTorch references of tests/python/reference.py (written from the
equations, float64): spikes exactly (away from the threshold, where float32 and float64 rounding may disagree),
gradients of the input, weight and bias within tolerance; step modes, state, spike forms, errors, torch.compile."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import spikeops
from spikeops import _ops, functional, neuron, surrogate

from reference import masked_psn_weight, psn_charge, psn_fire, sliding_psn_charge
from custom_surrogates import SquareSpike, SquareSurrogate

CLASSES = ("PSN", "MaskedPSN", "SlidingPSN")
# |H| below this is too close to the threshold for float32 and float64 to be sure to agree on the spike.
NEAR = 1e-4
GRAD_TOL = {torch.float32: dict(rtol=1e-4, atol=1e-5), torch.float16: dict(rtol=2e-3, atol=2e-3),
            torch.bfloat16: dict(rtol=2e-2, atol=2e-2)}


def make(cls: str, T: int, step_mode: str = "m", **kw):
    if cls == "PSN":
        return neuron.PSN(T, **kw)
    if cls == "MaskedPSN":
        return neuron.MaskedPSN(k=2, T=T, lambda_init=kw.pop("lambda_init", 0.4), step_mode=step_mode, **kw)
    return neuron.SlidingPSN(k=3, step_mode=step_mode, **kw)


def reference_charge(node, x_seq):
    """H [T, N] float64 of the node's equations from its current parameters."""
    if isinstance(node, neuron.SlidingPSN):
        return sliding_psn_charge(x_seq, node.weight, node.bias)
    weight = node.weight if isinstance(node, neuron.PSN) else masked_psn_weight(node.weight, node.k,
                                                                                 float(node.lambda_))
    return psn_charge(x_seq, weight, node.bias)


def randomize(node):
    """Parameters that make the threshold matter: spikes about half the time for unit inputs."""
    with torch.no_grad():
        node.weight.copy_(torch.randn_like(node.weight) * 0.7)
        node.bias.copy_(torch.randn_like(node.bias) * 0.3)
    return node


def check_against_reference(node, x_seq, surrogate_ref, dtype=torch.float32, check_grads=True):
    x = x_seq.to(dtype).requires_grad_(True)
    out = node(x)
    assert out.shape == x.shape and out.dtype == dtype
    x_ref = x.detach().clone().requires_grad_(True)
    h_ref = reference_charge(node, x_ref)
    s_ref = psn_fire(h_ref, surrogate_ref)
    far = h_ref.detach().abs() > NEAR
    flat = out.reshape(h_ref.shape)
    assert torch.equal(flat[far].double(), s_ref.detach()[far])
    assert int((~far).sum()) <= max(1, h_ref.numel() // 1000)  # the test data keeps away from the threshold
    if not check_grads or x.numel() == 0:
        return
    grad_out = torch.randn(x.shape, dtype=torch.float64)
    params = [node.weight, node.bias]
    g = torch.autograd.grad(out, [x] + params, grad_out.to(dtype))
    g_ref = torch.autograd.grad(s_ref, [x_ref] + params, grad_out.reshape(h_ref.shape))
    for name, a, b in zip(("x", "weight", "bias"), g, g_ref):
        scale = 1.0 if name == "x" else max(1.0, math.sqrt(h_ref.shape[1]))  # sums over N
        tol = GRAD_TOL[dtype]
        torch.testing.assert_close(a.double(), b.double(), rtol=tol["rtol"], atol=tol["atol"] * scale,
                                   msg=lambda m: f"{name}: {m}")


# ---- construction: SpikingJelly 2.0.0's parameters, initialisation and defaults ----

def test_parameters_and_initialisation_are_spikingjellys():
    for T in (1, 4, 7):
        torch.manual_seed(3)
        w = torch.zeros(T, T)
        nn.init.kaiming_uniform_(w, a=math.sqrt(5))
        torch.manual_seed(3)
        psn = neuron.PSN(T)
        assert torch.equal(psn.weight.detach(), w) and psn.bias.shape == (T, 1)
        assert torch.equal(psn.bias.detach(), torch.full((T, 1), -1.0))
        torch.manual_seed(3)
        masked = neuron.MaskedPSN(k=2, T=T)
        assert torch.equal(masked.weight.detach(), w) and torch.equal(masked.bias.detach(), torch.full((T, 1), -1.0))
    sg = neuron.PSN(2).surrogate_function
    assert type(sg) is surrogate.ATan and sg.alpha == 2.0
    assert neuron.PSN(2).step_mode == "m"

    m = neuron.MaskedPSN(k=2, T=4)
    assert m.step_mode == "s" and float(m.lambda_) == 0.0 and m.lambda_.dtype == torch.float32
    assert torch.equal(m.mask0, torch.tensor([[1., 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]]))
    assert torch.equal(m.mask1, torch.ones(4, 4))
    assert set(m.state_dict()) == {"weight", "bias", "_lambda_", "mask0", "mask1"}
    assert type(m.surrogate_function) is surrogate.ATan

    s = neuron.SlidingPSN(k=4)
    assert s.step_mode == "s" and s.backend == "gemm" and s.supported_backends == ("gemm", "conv")
    assert torch.equal(s.weight.detach(), torch.tensor([0.125, 0.25, 0.5, 1.0]))
    assert s.bias.shape == () and float(s.bias.detach()) == -1.0
    torch.manual_seed(5)
    w = torch.ones(1, 4)
    nn.init.kaiming_uniform_(w, a=math.sqrt(5))
    torch.manual_seed(5)
    assert torch.equal(neuron.SlidingPSN(k=4, exp_init=False).weight.detach(), w[0])


def test_reexported_from_neuron():
    from spikeops import neuron_psn
    for name in CLASSES:
        assert getattr(neuron, name) is getattr(neuron_psn, name) and name in neuron.__all__


# ---- forward and backward against the reference ----

@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("T", [1, 2, 5, 16])
@pytest.mark.parametrize("step_shape", [(3,), (2, 5), (0,), (4, 0, 3), (), (7, 3, 5)])
def test_multi_step_matches_reference(cls, T, step_shape):
    node = randomize(make(cls, T))
    check_against_reference(node, torch.randn((T,) + step_shape), ("ATan", {"alpha": 2.0}))


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs(cls, dtype):
    """H is computed in float32 (the parameters' dtype); spikes and the input's gradient come back in x's dtype."""
    node = randomize(make(cls, 6))
    check_against_reference(node, torch.randn(6, 64, 64), ("ATan", {"alpha": 2.0}), dtype=dtype)


KERNEL_SURROGATES = [
    (lambda: surrogate.Sigmoid(alpha=3.0), ("Sigmoid", {"alpha": 3.0})),
    (lambda: surrogate.ATan(alpha=1.5), ("ATan", {"alpha": 1.5})),
    (lambda: surrogate.Erf(), ("Erf", {"alpha": 2.0})),
    (lambda: surrogate.SuperSpike(alpha=0.5), ("SuperSpike", {"alpha": 0.5})),
    (lambda: surrogate.PiecewiseLeakyReLU(w=0.5, c=0.1), ("PiecewiseLeakyReLU", {"w": 0.5, "c": 0.1})),
    (lambda: surrogate.S2NN(alpha=3.0, beta=0.5), ("S2NN", {"alpha": 3.0, "beta": 0.5})),
]


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("sg", KERNEL_SURROGATES, ids=lambda s: s[1][0] if isinstance(s, tuple) else None)
def test_kernel_surrogates(cls, sg):
    make_sg, ref = sg
    node = randomize(make(cls, 5, surrogate_function=make_sg()))
    check_against_reference(node, torch.randn(5, 3, 4), ref)


class SteeperATan(surrogate.ATan):
    """A built-in surrogate's subclass overriding forward: the kernel's ATan formula must not be used."""

    def forward(self, x):
        return SquareSpike.apply(x)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("make_sg", [lambda: SquareSpike.apply, SquareSurrogate, SteeperATan],
                         ids=["autograd.Function.apply", "SurrogateFunctionBase subclass", "ATan subclass"])
def test_custom_surrogate_is_honoured(cls, make_sg, monkeypatch):
    calls = []
    real = _ops.spike_fn
    monkeypatch.setattr(_ops, "spike_fn", lambda *a: calls.append(1) or real(*a))
    node = randomize(make(cls, 5, surrogate_function=make_sg()))
    x = torch.randn(5, 3, 4)
    check_against_reference(node, x, SquareSpike.apply)
    assert calls == []
    # the default ATan gives another gradient, through spikeops' spike op
    builtin = make(cls, 5)
    builtin.load_state_dict(node.state_dict())
    xg = x.clone().requires_grad_(True)
    g_custom, = torch.autograd.grad(node(xg).sum(), xg)
    g_builtin, = torch.autograd.grad(builtin(xg).sum(), xg)
    assert calls and not torch.allclose(g_custom, g_builtin)


def test_spiking_false_returns_the_primitive():
    node = neuron.PSN(3, surrogate_function=surrogate.ATan(spiking=False))
    x = torch.randn(3, 8)
    out = node(x)
    expected = surrogate.ATan.primitive_function(torch.addmm(node.bias, node.weight, x), 2.0)
    torch.testing.assert_close(out, expected)
    with pytest.raises(ValueError, match="PSN: spike_dtype=torch.uint8 and spike_tensor=True store 0/1"):
        neuron.PSN(3, surrogate_function=surrogate.ATan(spiking=False), spike_dtype=torch.uint8)(x)


# ---- MaskedPSN: the mask schedule ----

@pytest.mark.parametrize("lambda_", [0.0, 0.3, 1.0, 1.5])
def test_masked_weight_follows_lambda(lambda_):
    node = neuron.MaskedPSN(k=3, T=6, lambda_init=lambda_)
    torch.testing.assert_close(node.masked_weight().double(), masked_psn_weight(node.weight, 3, lambda_))
    if lambda_ >= 1.0:  # SpikingJelly's weight * mask0, bit for bit
        assert torch.equal(node.masked_weight(), node.weight * node.mask0)
    node.lambda_ = 0.25
    assert float(node.lambda_) == 0.25 and node.state_dict()["_lambda_"].item() == 0.25


def test_masked_psn_mask_schedule_over_training():
    """λ raised from 0 to 1 over the optimizer steps: every step's spikes and updates match the reference model,
    and once λ = 1 no gradient reaches the weights outside the band of width k."""
    T, k, steps = 6, 2, 6
    node = randomize(neuron.MaskedPSN(k=k, T=T, step_mode="m"))
    w_ref = node.weight.detach().clone().requires_grad_(True)
    b_ref = node.bias.detach().clone().requires_grad_(True)
    opt = torch.optim.SGD(node.parameters(), lr=0.5)
    opt_ref = torch.optim.SGD([w_ref, b_ref], lr=0.5)
    for i in range(steps):
        lam = min(1.0, i / (steps - 2))
        node.lambda_ = lam
        x = torch.randn(T, 16)
        out = node(x)
        s_ref = psn_fire(psn_charge(x, masked_psn_weight(w_ref, k, lam), b_ref), ("ATan", {"alpha": 2.0}))
        h = psn_charge(x, masked_psn_weight(w_ref, k, lam), b_ref).detach()
        assert torch.equal(out[h.abs() > NEAR].double(), s_ref.detach()[h.abs() > NEAR])
        target = torch.rand(T, 16)
        opt.zero_grad()
        opt_ref.zero_grad()
        ((out - target) ** 2).mean().backward()
        ((s_ref - target.double()) ** 2).mean().backward()
        torch.testing.assert_close(node.weight.grad, w_ref.grad, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(node.bias.grad, b_ref.grad, rtol=1e-4, atol=1e-6)
        if lam >= 1.0:
            assert torch.all(node.weight.grad[node.mask0 == 0] == 0)
            assert torch.any(node.weight.grad[node.mask0 == 1] != 0)
        else:
            assert torch.any(node.weight.grad[node.mask0 == 0] != 0)
        opt.step()
        opt_ref.step()
        torch.testing.assert_close(node.weight.detach(), w_ref.detach(), rtol=1e-5, atol=1e-6)


def test_masked_psn_single_step_equals_multi_step():
    T = 5
    node = randomize(neuron.MaskedPSN(k=2, T=T, lambda_init=1.0, step_mode="s"))
    x = torch.randn(T, 3, 4, requires_grad=True)
    out_s = torch.stack([node(x[t]) for t in range(T)])
    assert node.time_step == T and len(node.queue) == 2
    with pytest.raises(OverflowError, match=r"MaskedPSN: already ran T=5 steps; call reset\(\)"):
        node(x[0])
    assert node.time_step == T and len(node.queue) == 2  # the refused step changed nothing
    node.step_mode = "m"
    out_m = node(x)
    h = reference_charge(node, x).detach()
    far = (h.abs() > NEAR).reshape(x.shape)
    assert torch.equal(out_s[far], out_m[far])
    g_s = torch.autograd.grad(out_s.sum(), [x, node.weight, node.bias])
    g_m = torch.autograd.grad(out_m.sum(), [x, node.weight, node.bias])
    for a, b in zip(g_s, g_m):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    node.step_mode = "s"
    functional.reset_net(node)
    assert node.time_step == 0 and node.queue == []
    torch.testing.assert_close(node(x[0]), out_m[0])


def test_masked_psn_single_step_needs_lambda_one():
    node = neuron.MaskedPSN(k=2, T=3, lambda_init=0.5)
    with pytest.raises(ValueError, match="MaskedPSN: single-step mode needs lambda_ >= 1"):
        node(torch.randn(4))
    assert node.time_step == 0 and node.queue == []


# ---- SlidingPSN: its Toeplitz matrix and both backends ----

def sj_gemm_weight(weight: torch.Tensor, T: int) -> torch.Tensor:
    """SpikingJelly's gen_gemm_weight, row by row as it writes it."""
    k = weight.shape[0]
    out = torch.zeros(T, T)
    for i in range(T):
        start = max(0, i + 1 - k)
        length = min(i + 1 - start, k)
        out[i][start:i + 1] = weight[k - length:k]
    return out


@pytest.mark.parametrize("k", [1, 3, 8])
@pytest.mark.parametrize("T", [0, 1, 3, 5, 12])
def test_sliding_gemm_weight_is_spikingjellys(k, T):
    node = neuron.SlidingPSN(k=k, exp_init=False)
    assert torch.equal(node.gen_gemm_weight(T), sj_gemm_weight(node.weight.detach(), T))


@pytest.mark.parametrize("backend", ["gemm", "conv"])
@pytest.mark.parametrize("k", [1, 2, 4, 9])
@pytest.mark.parametrize("T", [0, 1, 4, 16])
def test_sliding_backends_match_reference(backend, k, T):
    node = randomize(neuron.SlidingPSN(k=k, step_mode="m", backend=backend))
    check_against_reference(node, torch.randn(T, 3, 5), ("ATan", {"alpha": 2.0}))


@pytest.mark.parametrize("k", [1, 3, 6])
def test_sliding_single_step_equals_multi_step(k):
    T = 9
    node = randomize(neuron.SlidingPSN(k=k, exp_init=False))
    x = torch.randn(T, 2, 5, requires_grad=True)
    out_s = []
    for t in range(T):
        out_s.append(node(x[t]))
        assert len(node.queue) == min(t + 1, k)
    out_s = torch.stack(out_s)
    node.step_mode = "m"
    out_m = node(x)
    h = reference_charge(node, x).detach()
    far = (h.abs() > NEAR).reshape(x.shape)
    assert torch.equal(out_s[far], out_m[far])
    g_s = torch.autograd.grad(out_s.sum(), [x, node.weight, node.bias])
    g_m = torch.autograd.grad(out_m.sum(), [x, node.weight, node.bias])
    for a, b in zip(g_s, g_m):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


# ---- state ----

@pytest.mark.parametrize("cls", ["MaskedPSN", "SlidingPSN"])
def test_state_reset_detach_and_saved_state(cls):
    node = make(cls, 4, step_mode="s", lambda_init=1.0) if cls == "MaskedPSN" else make(cls, 4, step_mode="s")
    x = torch.randn(4, 3, requires_grad=True)
    node(x[0])
    saved = node.memory_state()
    node(x[1])
    assert len(saved["queue"]) == 1  # a step makes a new queue: a saved state is not changed by later steps
    assert all(q.requires_grad for q in node.queue)
    functional.detach_net(node)
    assert node.queue and not any(q.requires_grad for q in node.queue)
    with pytest.raises(ValueError, match=f"{cls}: the queued inputs have 3 elements .*reset_net"):
        node(torch.randn(5))
    functional.reset_net(node)
    assert node.queue == [] and node(torch.randn(5)).shape == (5,)


def test_psn_is_multi_step_only():
    node = neuron.PSN(3)
    with pytest.raises(ValueError, match="PSN: supports step_mode 'm' only"):
        node.step_mode = "s"
    with pytest.raises(ValueError, match="PSN: supports step_mode 'm' only"):
        functional.set_step_mode(nn.Sequential(node), "s")
    functional.set_step_mode(nn.Sequential(node, neuron.SlidingPSN(2)), "m")
    functional.reset_net(nn.Sequential(node))  # no state: nothing to do


# ---- spike forms ----

@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_spike_dtype_and_spike_tensor(cls, dtype):
    x = torch.randn(4, 6, 3).to(dtype)
    base = randomize(make(cls, 4))
    out = base(x)
    as_u8 = make(cls, 4, spike_dtype=torch.uint8)
    as_u8.load_state_dict(base.state_dict())
    assert as_u8(x).dtype == torch.uint8 and torch.equal(as_u8(x), out.to(torch.uint8))
    as_f16 = make(cls, 4, spike_dtype=torch.float16)
    as_f16.load_state_dict(base.state_dict())
    assert as_f16(x).dtype == torch.float16 and torch.equal(as_f16(x), out.half())
    st_node = make(cls, 4, spike_tensor=True)
    st_node.load_state_dict(base.state_dict())
    xg = x.clone().requires_grad_(True)
    st = st_node(xg)
    assert isinstance(st, spikeops.SpikeTensor) and st.dtype == dtype and torch.equal(st.spikes, out.to(torch.uint8))
    g, = torch.autograd.grad(st.dense().float().sum(), xg)
    g_ref, = torch.autograd.grad(base(xg).float().sum(), xg)
    torch.testing.assert_close(g, g_ref)


# ---- errors ----

def test_constructor_errors():
    for bad in (0, -1, 2.0, True, "3"):
        with pytest.raises(ValueError, match=r"PSN: T must be an int >= 1"):
            neuron.PSN(bad)
        with pytest.raises(ValueError, match=r"MaskedPSN: k must be an int >= 1"):
            neuron.MaskedPSN(k=bad, T=3)
        with pytest.raises(ValueError, match=r"SlidingPSN: k must be an int >= 1"):
            neuron.SlidingPSN(k=bad)
    with pytest.raises(ValueError, match=r"MaskedPSN: T must be an int >= 1"):
        neuron.MaskedPSN(k=2, T=0)
    import numpy as np  # integer types other than int are sizes too, as in SpikingJelly
    assert neuron.PSN(np.int64(3)).T == 3 and neuron.MaskedPSN(np.int32(2), np.int64(3)).mask0.shape == (3, 3)
    assert neuron.SlidingPSN(np.int16(2)).weight.shape == (2,)
    with pytest.raises(ValueError, match="MaskedPSN: lambda_init must be finite"):
        neuron.MaskedPSN(k=2, T=3, lambda_init=float("nan"))
    with pytest.raises(TypeError, match="MaskedPSN: lambda_ must be a number"):
        neuron.MaskedPSN(k=2, T=3).lambda_ = "1"
    with pytest.raises(ValueError, match="MaskedPSN: step_mode must be 's'"):
        neuron.MaskedPSN(k=2, T=3, step_mode="x")
    with pytest.raises(ValueError, match="SlidingPSN: backend must be one of 'gemm', 'conv', got 'cupy'"):
        neuron.SlidingPSN(k=2, backend="cupy")
    with pytest.raises(TypeError, match="SlidingPSN: exp_init"):
        neuron.SlidingPSN(k=2, exp_init="yes")
    with pytest.raises(TypeError, match="PSN: surrogate_function must be callable"):
        neuron.PSN(3, surrogate_function=2.0)
    with pytest.raises(ValueError, match="SlidingPSN: spike_dtype must be None"):
        neuron.SlidingPSN(k=2, spike_dtype=torch.int32)
    with pytest.raises(ValueError, match="MaskedPSN: spike_tensor=True already stores"):
        neuron.MaskedPSN(k=2, T=3, spike_dtype=torch.uint8, spike_tensor=True)


@pytest.mark.parametrize("cls", CLASSES)
def test_input_errors(cls):
    node = make(cls, 3)
    with pytest.raises(TypeError, match=f"{cls}: x_seq must have dtype float32/float16/bfloat16, got int64"):
        node(torch.ones(3, 2, dtype=torch.int64))
    with pytest.raises(TypeError, match=f"{cls}: x_seq must be a torch.Tensor"):
        node([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=rf"{cls}: x_seq must be \[T, N, \*\]"):
        node(torch.tensor(1.0))
    if cls != "SlidingPSN":
        with pytest.raises(ValueError, match=rf"{cls}: x_seq must be \[T, N, \*\] with T = 3, got shape "
                                             r"\(4, 2\)"):
            node(torch.ones(4, 2))
    if cls != "PSN":
        node.step_mode = "s"
        with pytest.raises(TypeError, match=f"{cls}: x must have dtype"):
            node(torch.ones(2, dtype=torch.int32))
    with pytest.raises(ValueError, match=rf"{cls}: x_seq is on meta but the parameters are on cpu"):
        make(cls, 3)(torch.ones(3, 2, device="meta"))


# ---- torch.compile ----

@pytest.mark.parametrize("cls", CLASSES)
def test_torch_compile_fullgraph(cls):
    eager = randomize(make(cls, 5))
    compiled_node = make(cls, 5)
    compiled_node.load_state_dict(eager.state_dict())
    compiled = torch.compile(compiled_node, fullgraph=True, backend="aot_eager")
    x = torch.randn(5, 3, 4, requires_grad=True)
    out, out_c = eager(x), compiled(x)
    assert torch.equal(out, out_c)
    g = torch.autograd.grad(out.sum(), [x, eager.weight, eager.bias])
    g_c = torch.autograd.grad(out_c.sum(), [x, compiled_node.weight, compiled_node.bias])
    for a, b in zip(g, g_c):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.cuda
@pytest.mark.parametrize("cls", CLASSES)
def test_cuda_matches_cpu(cls):
    cpu = randomize(make(cls, 6))
    gpu = make(cls, 6).cuda()
    gpu.load_state_dict(cpu.state_dict())
    x = torch.randn(6, 4, 5)
    xc, xg = x.clone().requires_grad_(True), x.cuda().requires_grad_(True)
    out_c, out_g = cpu(xc), gpu(xg)
    h = reference_charge(cpu, x).detach()
    far = (h.abs() > NEAR).reshape(x.shape)
    assert out_g.device.type == "cuda" and torch.equal(out_g.cpu()[far], out_c[far])
    g_c, = torch.autograd.grad(out_c.sum(), xc)
    g_g, = torch.autograd.grad(out_g.sum(), xg)
    torch.testing.assert_close(g_g.cpu(), g_c, rtol=1e-4, atol=1e-5)


def test_export_refuses_psn_family(tmp_path):
    """The model file describes recurrences the runtime's neuron layer runs; a PSN is not one: refused by name."""
    for node in (neuron.PSN(3), neuron.MaskedPSN(2, 3, step_mode="m"), neuron.SlidingPSN(2, step_mode="m")):
        net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), node)
        with pytest.raises(ValueError, match=rf"layer '2' \(.*{type(node).__name__}\) is not supported"):
            spikeops.export(net, tmp_path / "m.spk", torch.randn(1, 2, 2), T=3)
