"""QIFNode, EIFNode and IzhikevichNode against their plain-PyTorch references (reference.py).

The charge is SpikingJelly 2.0.0's expression, so spikes and states are exact (atol 0); gradients run through
the same operations but the reset's products are summed in another order and the reference's surrogate
derivative is computed in float64, hence GRAD_TOL.
"""

import pytest
import torch
from torch import nn

import spikeops
from spikeops import functional, neuron, surrogate

import reference as ref

GRAD_TOL = dict(rtol=1e-5, atol=1e-6)
EXACT = dict(rtol=0, atol=0)
# EIF's exp: the kernels' expf and torch's vectorized exp are each within about 1 ulp, not bitwise equal.
EXP_TOL = dict(rtol=1e-6, atol=1e-6)


def _state_tol(name):
    return EXP_TOL if name == "EIF" else EXACT

# name -> (class, reference, parameter sets (constructor kwargs, also the reference's), extra state names)
MODELS = {
    "QIF": (neuron.QIFNode, ref.qif_reference,
            [{}, dict(tau=3.0, v_c=0.5, a0=0.7, v_rest=0.1, v_threshold=0.9)], ()),
    "EIF": (neuron.EIFNode, ref.eif_reference,
            [{}, dict(tau=4.0, delta_T=0.5, theta_rh=0.6, v_rest=0.05, v_threshold=0.8)], ()),
    "Izhikevich": (neuron.IzhikevichNode, ref.izhikevich_reference,
                   [dict(a=0.3, b=0.2), dict(tau=3.0, v_c=0.5, a0=0.6, v_rest=0.0, w_rest=0.1, tau_w=5.0, a=-0.2,
                                             b=0.5, v_threshold=0.9), {}], ("w",)),
}
RESETS = {"QIF": [-0.1, None, -0.3], "EIF": [-0.1, None, -0.3], "Izhikevich": [0.0, None, -0.2]}


def _input(shape, seed=0, scale=1.0, shift=0.5):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g) * scale + shift


def _reference(name, x, kw, **extra):
    out = MODELS[name][1](x, **kw, **extra)
    spikes, v_seq, v = out[:3]
    states = {"w": out[4]} if name == "Izhikevich" else {}
    return spikes, v_seq, v, states


def _run(node, x, step_mode):
    if step_mode == "m":
        return node(x)
    return torch.stack([node(x[t]) for t in range(x.shape[0])])


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("param_set", [0, 1])
@pytest.mark.parametrize("reset_index", [0, 1, 2])
@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("step_mode", ["s", "m"])
def test_matches_reference(name, param_set, reset_index, detach_reset, step_mode):
    cls, _, param_sets, extra_states = MODELS[name]
    v_reset = RESETS[name][reset_index]
    kw = dict(param_sets[param_set], v_reset=v_reset, detach_reset=detach_reset)
    node = cls(**kw, step_mode=step_mode, store_v_seq=True)
    x = _input((8, 4, 6), seed=param_set * 7 + reset_index).requires_grad_(True)
    spikes = _run(node, x, step_mode)
    x_ref = x.detach().clone().requires_grad_(True)
    s_ref, v_seq_ref, v_ref, states_ref = _reference(name, x_ref, kw)
    assert spikes.dtype == torch.float32
    assert torch.equal(spikes, s_ref)
    assert 0 < spikes.sum() < spikes.numel()
    torch.testing.assert_close(node.v, v_ref, **_state_tol(name))
    torch.testing.assert_close(node.v_seq, v_seq_ref, **_state_tol(name))
    for s in extra_states:
        torch.testing.assert_close(getattr(node, s), states_ref[s], **_state_tol(name))
    g = torch.randn_like(spikes)
    loss = (spikes * g).sum() + node.v.sum() + sum(getattr(node, s).sum() for s in extra_states)
    loss_ref = (s_ref * g).sum() + v_ref.sum() + sum(states_ref[s].sum() for s in extra_states)
    gx, = torch.autograd.grad(loss, x)
    gx_ref, = torch.autograd.grad(loss_ref, x_ref)
    torch.testing.assert_close(gx, gx_ref, **GRAD_TOL)
    assert gx.abs().sum() > 0


@pytest.mark.parametrize("name", sorted(MODELS))
def test_gradient_wrt_initial_state(name):
    """A state carried in from a previous call (with a graph) gets its gradient as in the reference."""
    cls, _, param_sets, extra_states = MODELS[name]
    kw = param_sets[0]
    node = cls(**kw, step_mode="m")
    x1, x2 = _input((3, 5), seed=1), _input((4, 5), seed=2)
    p = torch.tensor(1.1, requires_grad=True)
    node(x1 * p)
    v0 = node.v
    states0 = {s: getattr(node, s) for s in extra_states}
    out = node(x2)
    extra = {"v0": v0}
    if name == "Izhikevich":
        extra["w0"] = states0["w"]
    s_ref, _, v_ref, _ = _reference(name, x2, kw, **extra)
    assert torch.equal(out, s_ref)
    g, = torch.autograd.grad(out.sum() + node.v.sum(), p, retain_graph=True)  # the first call's graph is shared
    g_ref, = torch.autograd.grad(s_ref.sum() + v_ref.sum(), p)
    assert g != 0
    torch.testing.assert_close(g, g_ref, **GRAD_TOL)


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("v_reset_index", [0, 1])
def test_single_step_T_times_equals_multi_step(name, v_reset_index):
    cls, _, param_sets, extra_states = MODELS[name]
    kw = dict(param_sets[0], v_reset=RESETS[name][v_reset_index])
    x = _input((7, 3, 4), seed=3)
    single, multi = cls(**kw, step_mode="s", store_v_seq=True), cls(**kw, step_mode="m", store_v_seq=True)
    for _ in range(2):  # the state persists across calls
        s_single = torch.stack([single(x[t]) for t in range(7)])
        s_multi = multi(x)
        assert torch.equal(s_single, s_multi)
        assert torch.equal(single.v, multi.v)
        for s in extra_states:
            assert torch.equal(getattr(single, s), getattr(multi, s))
    assert single.v_seq.shape == (14, 3, 4) and multi.v_seq.shape == (7, 3, 4)
    assert torch.equal(single.v_seq[7:], multi.v_seq)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_reset_and_detach(name):
    cls, _, param_sets, extra_states = MODELS[name]
    kw = param_sets[1]
    node = cls(**kw, step_mode="m", store_v_seq=True)
    x = _input((4, 6), seed=4).requires_grad_(True)
    node(x)
    assert node.v.requires_grad and node.v_seq.requires_grad
    for s in extra_states:
        assert getattr(node, s).requires_grad
    functional.detach_net(nn.Sequential(node))
    assert not node.v.requires_grad and not node.v_seq.requires_grad
    for s in extra_states:
        assert not getattr(node, s).requires_grad
    functional.reset_net(nn.Sequential(node))
    assert node.v == (0.0 if node.v_reset is None else node.v_reset) and node.v_seq is None
    if name == "Izhikevich":
        assert node.w == kw.get("w_rest", 0.0) and isinstance(node.w, float)
    assert set(node.memory_state()) == {"v", "v_seq", *extra_states}
    # after reset_net the neuron starts again: same output as a fresh one
    fresh = cls(**kw, step_mode="m")
    assert torch.equal(node(x.detach()), fresh(x.detach()))
    with pytest.raises(ValueError, match=f"{cls.__name__}: the stored"):
        node(_input((4, 7)))


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs(name, dtype):
    """Half inputs: the state stays float32 (the input widened exactly), spikes come back in the input dtype."""
    cls, _, param_sets, _ = MODELS[name]
    x = _input((6, 4, 5), seed=5).to(dtype).requires_grad_(True)
    node = cls(**param_sets[0], step_mode="m")
    out = node(x)
    assert out.dtype == dtype and node.v.dtype == torch.float32
    s_ref, _, v_ref, _ = _reference(name, x.detach().float(), param_sets[0])
    assert torch.equal(out.float(), s_ref)
    torch.testing.assert_close(node.v, v_ref, **_state_tol(name))
    g, = torch.autograd.grad(out.float().sum(), x)
    assert g.dtype == dtype and torch.isfinite(g.float()).all()


@pytest.mark.parametrize("name", sorted(MODELS))
def test_spike_dtype_uint8_and_spike_tensor(name):
    cls, _, param_sets, _ = MODELS[name]
    x = _input((5, 3, 4), seed=6)
    base = cls(**param_sets[0], step_mode="m")(x)
    as_u8 = cls(**param_sets[0], step_mode="m", spike_dtype=torch.uint8)(x)
    assert as_u8.dtype == torch.uint8 and torch.equal(as_u8, base.to(torch.uint8))
    xg = x.clone().requires_grad_(True)
    st = cls(**param_sets[0], step_mode="m", spike_tensor=True)(xg)
    assert isinstance(st, spikeops.SpikeTensor)
    assert torch.equal(st.spikes, base.to(torch.uint8))
    g, = torch.autograd.grad(st.dense().sum(), xg)
    xg2 = x.clone().requires_grad_(True)
    g_ref, = torch.autograd.grad(cls(**param_sets[0], step_mode="m")(xg2).sum(), xg2)
    torch.testing.assert_close(g, g_ref, **EXACT)


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("shape", [(0, 3, 4), (4, 0, 5), (5, 3, 5, 7)])
def test_empty_and_odd_shapes(name, shape):
    cls, _, param_sets, extra_states = MODELS[name]
    x = _input(shape, seed=7)
    node = cls(**param_sets[0], step_mode="m", store_v_seq=True)
    out = node(x)
    assert out.shape == shape and node.v.shape == shape[1:] and node.v_seq.shape == shape
    for s in extra_states:
        assert getattr(node, s).shape == shape[1:]
    s_ref, v_seq_ref, _, _ = _reference(name, x, param_sets[0])
    assert torch.equal(out, s_ref)
    torch.testing.assert_close(node.v_seq, v_seq_ref, **_state_tol(name))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_torch_compile_fullgraph(name):
    cls, _, param_sets, _ = MODELS[name]
    x = _input((5, 3, 4), seed=8).requires_grad_(True)
    eager, node_c = cls(**param_sets[0], step_mode="m"), cls(**param_sets[0], step_mode="m")
    compiled = torch.compile(node_c, backend="aot_eager", fullgraph=True)
    out, out_c = eager(x), compiled(x)
    assert torch.equal(out, out_c)
    torch.testing.assert_close(node_c.v, eager.v, **EXACT)
    g, = torch.autograd.grad(out.sum(), x)
    g_c, = torch.autograd.grad(out_c.sum(), x)
    torch.testing.assert_close(g, g_c, **GRAD_TOL)


def test_other_surrogate():
    node = neuron.QIFNode(surrogate_function=surrogate.ATan(), step_mode="m")
    x = _input((6, 5), seed=9).requires_grad_(True)
    out = node(x)
    s_ref, _, v_ref = ref.qif_reference(x, surrogate="ATan")
    assert torch.equal(out, s_ref)
    g, = torch.autograd.grad(out.sum() + node.v.sum(), x)
    g_ref, = torch.autograd.grad(s_ref.sum() + v_ref.sum(), x)
    torch.testing.assert_close(g, g_ref, **GRAD_TOL)


def test_defaults_are_spikingjellys():
    q, e, i = neuron.QIFNode(), neuron.EIFNode(), neuron.IzhikevichNode()
    assert (q.tau, q.v_c, q.a0, q.v_threshold, q.v_rest, q.v_reset) == (2.0, 0.8, 1.0, 1.0, 0.0, -0.1)
    assert (e.tau, e.delta_T, e.theta_rh, e.v_threshold, e.v_rest, e.v_reset) == (2.0, 1.0, 0.8, 1.0, 0.0, -0.1)
    assert (i.tau, i.v_c, i.a0, i.v_threshold, i.v_reset, i.v_rest, i.w_rest, i.tau_w, i.a, i.b) == \
        (2.0, 0.8, 1.0, 1.0, 0.0, -0.1, 0.0, 2.0, 0.0, 0.0)
    for n in (q, e, i):
        assert n.step_mode == "s" and not n.detach_reset and not n.store_v_seq
        assert isinstance(n.surrogate_function, surrogate.Sigmoid) and n.surrogate_function.alpha == 4.0
        assert list(n.parameters()) == []
    # positional order as SpikingJelly's
    q = neuron.QIFNode(3.0, 0.5, 0.7, 0.9, 0.1, -0.2)
    assert (q.tau, q.v_c, q.a0, q.v_threshold, q.v_rest, q.v_reset) == (3.0, 0.5, 0.7, 0.9, 0.1, -0.2)
    i = neuron.IzhikevichNode(3.0, 0.5, 0.7, 0.9, -0.2, 0.1, 0.3, 4.0, 0.5, 0.6)
    assert (i.tau, i.v_c, i.a0, i.v_threshold, i.v_reset, i.v_rest, i.w_rest, i.tau_w, i.a, i.b) == \
        (3.0, 0.5, 0.7, 0.9, -0.2, 0.1, 0.3, 4.0, 0.5, 0.6)


@pytest.mark.parametrize("cls, kw, exc, match", [
    (neuron.QIFNode, dict(tau=1.0), ValueError, "QIFNode: tau must be a finite number > 1"),
    (neuron.QIFNode, dict(a0=0.0), ValueError, "QIFNode: a0 must be a finite number > 0"),
    (neuron.QIFNode, dict(v_c=float("nan")), ValueError, "QIFNode: v_c must be finite"),
    (neuron.QIFNode, dict(v_rest="0"), TypeError, "QIFNode: v_rest must be a number"),
    (neuron.QIFNode, dict(v_reset=1.0), ValueError, "QIFNode: v_threshold must be > v_reset"),
    (neuron.QIFNode, dict(v_rest=-0.2), ValueError, "QIFNode: v_rest must be >= v_reset"),
    (neuron.QIFNode, dict(step_mode="x"), ValueError, "QIFNode: step_mode must be"),
    (neuron.EIFNode, dict(tau=0.5), ValueError, "EIFNode: tau must be"),
    (neuron.EIFNode, dict(delta_T=0.0), ValueError, "EIFNode: delta_T must be a finite number > 0"),
    (neuron.EIFNode, dict(theta_rh=float("inf")), ValueError, "EIFNode: theta_rh must be finite"),
    (neuron.EIFNode, dict(v_reset=2.0), ValueError, "EIFNode: v_threshold must be > v_reset"),
    (neuron.EIFNode, dict(detach_reset=2), TypeError, "EIFNode: detach_reset must be a bool"),
    (neuron.IzhikevichNode, dict(tau=1.0), ValueError, "IzhikevichNode: tau must be"),
    (neuron.IzhikevichNode, dict(a0=-1.0), ValueError, "IzhikevichNode: a0 must be"),
    (neuron.IzhikevichNode, dict(tau_w=0.0), ValueError, "IzhikevichNode: tau_w must be a finite number > 0"),
    (neuron.IzhikevichNode, dict(a=float("nan")), ValueError, "IzhikevichNode: a must be finite"),
    (neuron.IzhikevichNode, dict(b=1e39), ValueError, "IzhikevichNode: b must be finite"),
    (neuron.IzhikevichNode, dict(w_rest=None), TypeError, "IzhikevichNode: w_rest must be a number"),
    (neuron.IzhikevichNode, dict(spike_dtype=torch.int32), ValueError, "IzhikevichNode: spike_dtype must be"),
])
def test_constructor_errors(cls, kw, exc, match):
    with pytest.raises(exc, match=match):
        cls(**kw)


def test_input_errors():
    with pytest.raises(TypeError, match="QIFNode: x_seq must have dtype"):
        neuron.QIFNode(step_mode="m")(torch.ones(3, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="IzhikevichNode: in multi-step mode x_seq must be"):
        neuron.IzhikevichNode(step_mode="m")(torch.tensor(1.0))


@pytest.mark.cuda
@pytest.mark.parametrize("name", sorted(MODELS))
def test_cuda_matches_cpu(name):
    cls, _, param_sets, extra_states = MODELS[name]
    x = _input((6, 3, 4), seed=10)
    cpu, gpu = cls(**param_sets[0], step_mode="m"), cls(**param_sets[0], step_mode="m").cuda()
    xc, xg = x.clone().requires_grad_(True), x.cuda().requires_grad_(True)
    out_c, out_g = cpu(xc), gpu(xg)
    assert out_g.device.type == "cuda" and torch.equal(out_g.cpu(), out_c)
    torch.testing.assert_close(gpu.v.cpu(), cpu.v, rtol=1e-6, atol=1e-6)
    for s in extra_states:
        assert getattr(gpu, s).device.type == "cuda"
    g_c, = torch.autograd.grad(out_c.sum() + cpu.v.sum(), xc)
    g_g, = torch.autograd.grad(out_g.sum() + gpu.v.sum(), xg)
    torch.testing.assert_close(g_g.cpu(), g_c, rtol=1e-5, atol=1e-6)
