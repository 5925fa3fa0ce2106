"""ALIFNode (adaptive-threshold LIF, Bellec et al.'s LSNN) against reference.alif_reference, against Norse's LSNN
step equations with the parameter mapping its docstring states, and against LIFNode when beta = 0.

Forward values are exact (the same float32 operations); gradients sum the reset's terms in another order and
the reference's surrogate derivative is computed in float64, hence GRAD_TOL.
"""

import pytest
import torch
from torch import nn

import spikeops
from spikeops import functional, neuron, surrogate

import reference as ref

GRAD_TOL = dict(rtol=1e-5, atol=1e-6)
EXACT = dict(rtol=0, atol=0)
PARAMS = [dict(), dict(tau=3.0, tau_adapt=5.0, beta=0.3), dict(tau=1.5, tau_adapt=20.0, beta=1.8, v_threshold=0.8)]


def _input(shape, seed=0, scale=1.5, shift=0.8):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * scale + shift


def _run(node, x, step_mode):
    return node(x) if step_mode == "m" else torch.stack([node(x[t]) for t in range(x.shape[0])])


@pytest.mark.parametrize("param_set", [0, 1, 2])
@pytest.mark.parametrize("decay_input", [True, False])
@pytest.mark.parametrize("v_reset", [0.0, None, -0.2])
@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("step_mode", ["s", "m"])
def test_matches_reference(param_set, decay_input, v_reset, detach_reset, step_mode):
    kw = dict(PARAMS[param_set], decay_input=decay_input, v_reset=v_reset, detach_reset=detach_reset)
    node = neuron.ALIFNode(**kw, step_mode=step_mode, store_v_seq=True)
    x = _input((10, 4, 6), seed=param_set).requires_grad_(True)
    spikes = _run(node, x, step_mode)
    x_ref = x.detach().clone().requires_grad_(True)
    s_ref, v_seq_ref, v_ref, _, a_ref = ref.alif_reference(x_ref, **kw)
    assert torch.equal(spikes, s_ref)
    assert 0 < spikes.sum() < spikes.numel()
    torch.testing.assert_close(node.v, v_ref, **EXACT)
    torch.testing.assert_close(node.a, a_ref, **EXACT)
    torch.testing.assert_close(node.v_seq, v_seq_ref, **EXACT)
    g = torch.randn_like(spikes)
    gx, = torch.autograd.grad((spikes * g).sum() + node.v.sum() + node.a.sum(), x)
    gx_ref, = torch.autograd.grad((s_ref * g).sum() + v_ref.sum() + a_ref.sum(), x_ref)
    torch.testing.assert_close(gx, gx_ref, **GRAD_TOL)


def test_adaptation_raises_the_threshold():
    """Under a constant drive the ALIF fires less than the LIF it reduces to, and less later than early."""
    x = torch.full((60, 1), 1.5)
    alif = neuron.ALIFNode(tau=2.0, tau_adapt=30.0, beta=0.2, step_mode="m")(x)
    lif = neuron.LIFNode(tau=2.0, step_mode="m")(x)
    assert alif.sum() < lif.sum()
    assert alif[:20].sum() > alif[40:].sum()


@pytest.mark.parametrize("v_reset", [0.0, None])
@pytest.mark.parametrize("decay_input", [True, False])
def test_beta_zero_is_lif(v_reset, decay_input):
    kw = dict(tau=3.0, decay_input=decay_input, v_reset=v_reset, step_mode="m")
    x = _input((8, 5, 3), seed=3).requires_grad_(True)
    alif, lif = neuron.ALIFNode(beta=0.0, **kw), neuron.LIFNode(**kw)
    s_a, s_l = alif(x), lif(x)
    assert torch.equal(s_a, s_l)
    torch.testing.assert_close(alif.v, lif.v, **EXACT)
    g_a, = torch.autograd.grad(s_a.sum() + alif.v.sum(), x)
    g_l, = torch.autograd.grad(s_l.sum() + lif.v.sum(), x)
    torch.testing.assert_close(g_a, g_l, **GRAD_TOL)


@pytest.mark.parametrize("tau, tau_adapt, beta, v_threshold, v_reset", [
    (2.0, 200.0, 0.01, 1.0, 0.0), (4.0, 10.0, 0.5, 0.7, -0.1), (1.25, 3.0, 1.8, 1.2, 0.2)])
def test_norse_mapping(tau, tau_adapt, beta, v_threshold, v_reset):
    """Norse's lsnn_feed_forward_step equations with the mapped parameters (dt tau_mem_inv = 1/tau,
    v_leak = v_reset, dt tau_adapt_inv = 1/tau_adapt, dt tau_syn_inv = 1, input one step early) fire the same
    spikes; its threshold b is v_threshold + beta * a."""
    x = _input((40, 64), seed=4, scale=1.0, shift=0.6)
    node = neuron.ALIFNode(tau=tau, tau_adapt=tau_adapt, beta=beta, v_threshold=v_threshold, v_reset=v_reset,
                           step_mode="m")
    spikes = node(x)
    dt = 1e-3
    z, (v_n, _, b_n) = ref.norse_lsnn_feed_forward_reference(
        torch.cat([x[1:], torch.zeros_like(x[:1])]), torch.full_like(x[0], v_reset), x[0].clone(),
        torch.full_like(x[0], v_threshold), tau_mem_inv=1.0 / tau / dt, tau_syn_inv=1.0 / dt,
        tau_adapt_inv=1.0 / tau_adapt / dt, v_leak=v_reset, v_th=v_threshold, v_reset=v_reset, beta=beta, dt=dt)
    assert 0 < spikes.sum() < spikes.numel()
    assert torch.equal(spikes, z)
    torch.testing.assert_close(node.v, v_n, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(v_threshold + beta * node.a, b_n, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("v_reset", [0.0, None])
def test_single_step_T_times_equals_multi_step(v_reset):
    kw = dict(PARAMS[1], v_reset=v_reset)
    x = _input((7, 3, 4), seed=5)
    single = neuron.ALIFNode(**kw, step_mode="s", store_v_seq=True)
    multi = neuron.ALIFNode(**kw, step_mode="m", store_v_seq=True)
    for _ in range(2):  # the state (v and a) persists across calls
        assert torch.equal(torch.stack([single(x[t]) for t in range(7)]), multi(x))
        assert torch.equal(single.v, multi.v) and torch.equal(single.a, multi.a)
    assert single.v_seq.shape == (14, 3, 4) and torch.equal(single.v_seq[7:], multi.v_seq)


def test_reset_and_detach():
    node = neuron.ALIFNode(**PARAMS[1], step_mode="m", store_v_seq=True)
    x = _input((4, 6), seed=6).requires_grad_(True)
    node(x)
    assert node.v.requires_grad and node.a.requires_grad and node.v_seq.requires_grad
    functional.detach_net(nn.Sequential(node))
    assert not node.v.requires_grad and not node.a.requires_grad and not node.v_seq.requires_grad
    a_mid, v_mid = node.a.clone(), node.v.clone()
    x2 = _input((4, 6), seed=7).requires_grad_(True)
    out = node(x2)  # continues from the detached state
    s_ref, _, _, _, _ = ref.alif_reference(x2, v_mid, a_mid, **PARAMS[1])
    assert torch.equal(out, s_ref)
    functional.reset_net(nn.Sequential(node))
    assert node.v == 0.0 and node.a == 0.0 and node.v_seq is None
    assert set(node.memory_state()) == {"v", "a", "v_seq"}
    assert torch.equal(node(x.detach()), neuron.ALIFNode(**PARAMS[1], step_mode="m")(x.detach()))
    with pytest.raises(ValueError, match="ALIFNode: the stored"):
        node(_input((4, 7)))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs(dtype):
    x = _input((6, 4, 5), seed=8).to(dtype).requires_grad_(True)
    node = neuron.ALIFNode(**PARAMS[1], step_mode="m")
    out = node(x)
    assert out.dtype == dtype and node.v.dtype == torch.float32 and node.a.dtype == torch.float32
    s_ref, _, v_ref, _, a_ref = ref.alif_reference(x.detach().float(), **PARAMS[1])
    assert torch.equal(out.float(), s_ref)
    torch.testing.assert_close(node.a, a_ref, **EXACT)
    g, = torch.autograd.grad(out.float().sum(), x)
    assert g.dtype == dtype


def test_spike_dtype_uint8_and_spike_tensor():
    x = _input((5, 3, 4), seed=9)
    base = neuron.ALIFNode(**PARAMS[1], step_mode="m")(x)
    as_u8 = neuron.ALIFNode(**PARAMS[1], step_mode="m", spike_dtype=torch.uint8)(x)
    assert as_u8.dtype == torch.uint8 and torch.equal(as_u8, base.to(torch.uint8))
    xg = x.clone().requires_grad_(True)
    st = neuron.ALIFNode(**PARAMS[1], step_mode="m", spike_tensor=True)(xg)
    assert isinstance(st, spikeops.SpikeTensor) and torch.equal(st.spikes, base.to(torch.uint8))
    g, = torch.autograd.grad(st.dense().sum(), xg)
    xg2 = x.clone().requires_grad_(True)
    g_ref, = torch.autograd.grad(neuron.ALIFNode(**PARAMS[1], step_mode="m")(xg2).sum(), xg2)
    torch.testing.assert_close(g, g_ref, **EXACT)


@pytest.mark.parametrize("shape", [(0, 3, 4), (4, 0, 5), (5, 3, 5, 7)])
def test_empty_and_odd_shapes(shape):
    x = _input(shape, seed=10)
    node = neuron.ALIFNode(**PARAMS[1], step_mode="m", store_v_seq=True)
    out = node(x)
    assert out.shape == shape and node.v_seq.shape == shape
    assert node.v.shape == shape[1:] and node.a.shape == shape[1:]
    assert torch.equal(out, ref.alif_reference(x, **PARAMS[1])[0])


def test_torch_compile_fullgraph():
    x = _input((5, 3, 4), seed=11).requires_grad_(True)
    eager, node_c = neuron.ALIFNode(**PARAMS[1], step_mode="m"), neuron.ALIFNode(**PARAMS[1], step_mode="m")
    compiled = torch.compile(node_c, backend="aot_eager", fullgraph=True)
    out, out_c = eager(x), compiled(x)
    assert torch.equal(out, out_c) and torch.equal(eager.a, node_c.a)
    g, = torch.autograd.grad(out.sum(), x)
    g_c, = torch.autograd.grad(out_c.sum(), x)
    torch.testing.assert_close(g, g_c, **GRAD_TOL)


def test_other_surrogate():
    node = neuron.ALIFNode(**PARAMS[1], surrogate_function=surrogate.ATan(), step_mode="m")
    x = _input((6, 5), seed=12).requires_grad_(True)
    out = node(x)
    s_ref, _, v_ref, _, _ = ref.alif_reference(x, **PARAMS[1], surrogate="ATan")
    assert torch.equal(out, s_ref)
    g, = torch.autograd.grad(out.sum() + node.v.sum(), x)
    g_ref, = torch.autograd.grad(s_ref.sum() + v_ref.sum(), x)
    torch.testing.assert_close(g, g_ref, **GRAD_TOL)


def test_defaults_and_order():
    n = neuron.ALIFNode()
    assert (n.tau, n.tau_adapt, n.beta, n.decay_input, n.v_threshold, n.v_reset) == (2.0, 200.0, 0.01, True, 1.0, 0.0)
    assert n.step_mode == "s" and not n.detach_reset and list(n.parameters()) == [] and n.a == 0.0
    n = neuron.ALIFNode(3.0, 50.0, 0.5, False, 0.9, None)
    assert (n.tau, n.tau_adapt, n.beta, n.decay_input, n.v_threshold, n.v_reset) == (3.0, 50.0, 0.5, False, 0.9, None)


@pytest.mark.parametrize("kw, exc, match", [
    (dict(tau=1.0), ValueError, "ALIFNode: tau must be a finite number > 1"),
    (dict(tau_adapt=0.5), ValueError, "ALIFNode: tau_adapt must be a finite number > 1"),
    (dict(tau_adapt=float("inf")), ValueError, "ALIFNode: tau_adapt must be"),
    (dict(beta=-0.1), ValueError, "ALIFNode: beta must be >= 0"),
    (dict(beta=float("nan")), ValueError, "ALIFNode: beta must be finite"),
    (dict(beta="1"), TypeError, "ALIFNode: beta must be a number"),
    (dict(decay_input=None), TypeError, "ALIFNode: decay_input must be a bool"),
    (dict(v_threshold=float("inf")), ValueError, "ALIFNode: v_threshold must be finite"),
    (dict(step_mode="q"), ValueError, "ALIFNode: step_mode must be"),
])
def test_constructor_errors(kw, exc, match):
    with pytest.raises(exc, match=match):
        neuron.ALIFNode(**kw)


@pytest.mark.cuda
def test_cuda_matches_cpu():
    x = _input((6, 3, 4), seed=13)
    cpu, gpu = neuron.ALIFNode(**PARAMS[1], step_mode="m"), neuron.ALIFNode(**PARAMS[1], step_mode="m").cuda()
    xc, xg = x.clone().requires_grad_(True), x.cuda().requires_grad_(True)
    out_c, out_g = cpu(xc), gpu(xg)
    assert out_g.device.type == "cuda" and gpu.a.device.type == "cuda" and torch.equal(out_g.cpu(), out_c)
    torch.testing.assert_close(gpu.a.cpu(), cpu.a, rtol=1e-6, atol=1e-6)
    g_c, = torch.autograd.grad(out_c.sum() + cpu.v.sum(), xc)
    g_g, = torch.autograd.grad(out_g.sum() + gpu.v.sum(), xg)
    torch.testing.assert_close(g_g.cpu(), g_c, rtol=1e-5, atol=1e-6)
