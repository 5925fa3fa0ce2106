"""SpikingJelly 2.0's LIF variants: KLIFNode, CUBALIFNode, LIAFNode, ComplementaryLIFNode, GatedLIFNode.

Each is compared with its plain-PyTorch reference (tests/python/reference.py) on every branch: outputs and states
exactly (the same float32 operations in the same order), gradients of the input and of every learnable parameter
within GRAD_TOL (the surrogate derivative is float32 in spikeops and float64 rounded to float32 in the reference,
and sums over neurons run in another order). spikeops takes float32/float16/bfloat16 inputs only, so there is no
float64 gradcheck: the gradients are checked against the reference's autograd instead.
"""

import math

import pytest
import torch

from spikeops import SpikeTensor, functional, neuron, surrogate
from spikeops.neuron_lif_variants import (ComplementaryLIFNode, CUBALIFNode, GatedLIFNode, KLIFNode,
                                          LIAFNode)

import reference as ref
from op_log import OpLog

GRAD_TOL = dict(rtol=1e-5, atol=1e-6)
PARAM_GRAD_TOL = dict(rtol=1e-4, atol=1e-5)  # a parameter's gradient sums T * N terms
EXACT = dict(rtol=0, atol=0)
# ComplementaryLIF's sigmoid: the kernels' vectorized exp and torch's are each within about 2 ulp, not bitwise equal.
EXP_TOL = dict(rtol=1e-6, atol=1e-6)


def _x(T=6, shape=(3, 5), scale=1.5, shift=0.6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(T, *shape, generator=g) * scale + shift


def _run(node, x, step_mode):
    node.step_mode = step_mode
    if step_mode == "m":
        return node(x)
    return torch.stack([node(x[t]) for t in range(x.shape[0])])


def _check_grads(out, out_ref, states, states_ref, inputs, inputs_ref, params, params_ref):
    g = torch.randn_like(out_ref)
    loss = (out.float() * g).sum() + sum(s.sum() for s in states)
    loss_ref = (out_ref * g).sum() + sum(s.sum() for s in states_ref)
    n = len(inputs)
    grads = torch.autograd.grad(loss, inputs + params, allow_unused=True)
    grads_ref = torch.autograd.grad(loss_ref, inputs_ref + params_ref, allow_unused=True)
    for i, (a, b) in enumerate(zip(grads, grads_ref)):
        assert a is not None and b is not None
        torch.testing.assert_close(a, b, **(GRAD_TOL if i < n else PARAM_GRAD_TOL))


# ---- KLIFNode ----

@pytest.mark.parametrize("step_mode", ["s", "m"])
@pytest.mark.parametrize("scale_reset", [False, True])
@pytest.mark.parametrize("v_reset", [0.0, None, -0.3])
@pytest.mark.parametrize("decay_input", [True, False])
@pytest.mark.parametrize("detach_reset", [False, True])
def test_klif_matches_reference(step_mode, scale_reset, v_reset, decay_input, detach_reset):
    tau, k0 = (3.0, 1.3) if decay_input else (2.0, 0.8)
    node = KLIFNode(scale_reset, tau, decay_input, 1.0, v_reset, surrogate.ATan(), detach_reset, store_v_seq=True)
    with torch.no_grad():
        node.k.fill_(k0)
    x = _x().requires_grad_(True)
    out = _run(node, x, step_mode)
    x_ref = x.detach().clone().requires_grad_(True)
    k_ref = node.k.detach().clone().requires_grad_(True)
    s_ref, v_seq_ref, v_ref = ref.klif_reference(x_ref, k_ref, tau=tau, decay_input=decay_input,
                                                 scale_reset=scale_reset, v_reset=v_reset,
                                                 detach_reset=detach_reset, surrogate="ATan")
    assert torch.equal(out, s_ref)
    assert 0 < out.sum() < out.numel()
    torch.testing.assert_close(node.v, v_ref, **EXACT)
    torch.testing.assert_close(node.v_seq, v_seq_ref, **EXACT)
    _check_grads(out, s_ref, [node.v], [v_ref], [x], [x_ref], [node.k], [k_ref])


def test_klif_parameter_and_defaults():
    node = KLIFNode()
    assert [n for n, _ in node.named_parameters()] == ["k"]
    assert node.k.item() == 1.0 and node.k.dim() == 0 and node.k.dtype == torch.float32
    assert (node.scale_reset, node.tau, node.decay_input, node.v_threshold, node.v_reset) == \
        (False, 2.0, True, 1.0, 0.0)
    assert isinstance(node.surrogate_function, surrogate.Sigmoid) and node.step_mode == "s"


# ---- CUBALIFNode ----

@pytest.mark.parametrize("step_mode", ["s", "m"])
@pytest.mark.parametrize("v_reset", [0.0, None, 0.2])
@pytest.mark.parametrize("detach_reset", [False, True])
@pytest.mark.parametrize("decays", [(0.5, 0.75), (0.3, 0.9)])
def test_cuba_lif_matches_reference(step_mode, v_reset, detach_reset, decays):
    c_decay, v_decay = decays
    node = CUBALIFNode(c_decay, v_decay, 0.5, v_reset, surrogate.Sigmoid(), detach_reset, store_v_seq=True)
    x = _x(shift=0.2).requires_grad_(True)
    out = _run(node, x, step_mode)
    x_ref = x.detach().clone().requires_grad_(True)
    s_ref, v_seq_ref, v_ref, c_ref = ref.cuba_lif_reference(x_ref, c_decay=c_decay, v_decay=v_decay,
                                                            v_reset=v_reset, detach_reset=detach_reset,
                                                            surrogate="Sigmoid")
    assert torch.equal(out, s_ref)
    assert 0 < out.sum() < out.numel()
    torch.testing.assert_close(node.v, v_ref, **EXACT)
    torch.testing.assert_close(node.c, c_ref, **EXACT)
    torch.testing.assert_close(node.v_seq, v_seq_ref, **EXACT)
    _check_grads(out, s_ref, [node.v, node.c], [v_ref, c_ref], [x], [x_ref], [], [])


def test_cuba_lif_defaults():
    node = CUBALIFNode()
    assert (node.c_decay, node.v_decay, node.v_threshold, node.v_reset, node.c) == (0.5, 0.75, 0.5, 0.0, 0.0)
    assert type(node.surrogate_function) is surrogate.Rect and node.surrogate_function.alpha == 1.0
    assert node.step_mode == "s" and not node.detach_reset and not node.store_v_seq
    assert list(node.parameters()) == []


# ---- LIAFNode ----

@pytest.mark.parametrize("step_mode", ["s", "m"])
@pytest.mark.parametrize("act", [torch.tanh, torch.relu])
@pytest.mark.parametrize("threshold_related", [True, False])
@pytest.mark.parametrize("v_reset", [0.0, None])
@pytest.mark.parametrize("decay_input", [True, False])
@pytest.mark.parametrize("detach_reset", [False, True])
def test_liaf_matches_reference(step_mode, act, threshold_related, v_reset, decay_input, detach_reset):
    tau = 3.0
    node = LIAFNode(act, threshold_related, tau, decay_input, 1.0, v_reset, surrogate.Sigmoid(), detach_reset,
                    store_v_seq=True)
    x = _x().requires_grad_(True)
    out = _run(node, x, step_mode)
    x_ref = x.detach().clone().requires_grad_(True)
    y_ref, v_seq_ref, v_ref = ref.liaf_reference(x_ref, act, threshold_related, tau=tau, decay_input=decay_input,
                                                 v_reset=v_reset, detach_reset=detach_reset)
    torch.testing.assert_close(out, y_ref, **EXACT)
    torch.testing.assert_close(node.v, v_ref, **EXACT)
    torch.testing.assert_close(node.v_seq, v_seq_ref, **EXACT)
    _check_grads(out, y_ref, [node.v], [v_ref], [x], [x_ref], [], [])


def test_liaf_potential_is_lif_nodes():
    """LIAFNode extends LIFNode: the same charge and reset, hence the same V, whatever tau."""
    x = _x(T=9)
    for tau in (2.0, 3.0, 7.3):
        liaf = LIAFNode(torch.relu, False, tau=tau, step_mode="m", store_v_seq=True)
        lif = neuron.LIFNode(tau=tau, step_mode="m", store_v_seq=True)
        y, s = liaf(x), lif(x)
        torch.testing.assert_close(liaf.v_seq, lif.v_seq, **EXACT)
        assert not torch.equal(y, s)  # the output is act(H), not the spike


def test_liaf_arguments():
    node = LIAFNode(torch.tanh, True, 4.0, False, v_reset=None, step_mode="m")
    assert (node.tau, node.decay_input, node.v_reset, node.step_mode) == (4.0, False, None, "m")
    assert node.act is torch.tanh and node.threshold_related is True
    assert isinstance(node, neuron.LIFNode)
    with pytest.raises(TypeError, match="LIAFNode: act must be callable"):
        LIAFNode(3.0, True)
    with pytest.raises(TypeError, match="LIAFNode: threshold_related must be a bool"):
        LIAFNode(torch.tanh, "yes")
    with pytest.raises(ValueError, match="LIAFNode: tau must be a finite number > 1"):
        LIAFNode(torch.tanh, True, 0.5)
    for kw in ({"spike_dtype": torch.uint8}, {"spike_tensor": True}):
        with pytest.raises(ValueError, match="LIAFNode: the output act\\(H\\) is analog"):
            LIAFNode(torch.tanh, True, **kw)
    y = LIAFNode(torch.tanh, True, spike_dtype=torch.float16, step_mode="m")(_x())
    assert y.dtype == torch.float16


# ---- ComplementaryLIFNode ----

@pytest.mark.parametrize("step_mode", ["s", "m"])
@pytest.mark.parametrize("tau", [2.0, 3.0, 1.5])
@pytest.mark.parametrize("v_threshold", [1.0, 0.5])
@pytest.mark.parametrize("sg", ["Rect", "Sigmoid"])
def test_clif_matches_reference(step_mode, tau, v_threshold, sg):
    node = ComplementaryLIFNode(tau, v_threshold, getattr(surrogate, sg)())
    x = _x().requires_grad_(True)
    out = _run(node, x, step_mode)
    x_ref = x.detach().clone().requires_grad_(True)
    s_ref, _, _, v_ref, m_ref = ref.clif_reference(x_ref, tau=tau, v_threshold=v_threshold, surrogate=sg)
    assert torch.equal(out, s_ref)
    assert 0 < out.sum() < out.numel()
    torch.testing.assert_close(node.v, v_ref, **EXP_TOL)
    torch.testing.assert_close(node.m, m_ref, **EXP_TOL)
    _check_grads(out, s_ref, [node.v, node.m], [v_ref, m_ref], [x], [x_ref], [], [])


def test_clif_state_seqs_and_defaults():
    node = ComplementaryLIFNode()
    assert (node.tau, node.v_threshold, node.v_reset, node.detach_reset, node.step_mode) == \
        (2.0, 1.0, None, False, "s")
    assert type(node.surrogate_function) is surrogate.Rect and node.surrogate_function.alpha == 1.0
    x = _x()
    multi = ComplementaryLIFNode(step_mode="m", store_state_seqs=True)
    multi(x)
    _, v_seq, m_seq, _, _ = ref.clif_reference(x)
    torch.testing.assert_close(multi.state_seqs[0], v_seq, **EXACT)
    torch.testing.assert_close(multi.state_seqs[1], m_seq, **EXACT)
    assert multi.v_seq is None
    multi.store_state_seqs = False  # SpikingJelly: setting it clears the stored sequences
    assert multi.state_seqs is None
    single = ComplementaryLIFNode(store_state_seqs=True)  # as in SpikingJelly, single steps record nothing
    single(x[0])
    assert single.state_seqs is None and single.v_seq is None
    multi.store_state_seqs = True
    multi(x[:0])
    assert [tuple(s.shape) for s in multi.state_seqs] == [(0, 3, 5)] * 2


def test_clif_eval_mode_gives_the_same_spikes():
    x = _x()
    node = ComplementaryLIFNode(step_mode="m")
    train = node(x)
    node.reset()
    node.eval()
    assert torch.equal(node(x), train)


# ---- GatedLIFNode ----

GLIF_PARAMS = ["alpha", "beta", "gamma", "tau", "v_threshold", "linear_decay", "v_subreset", "conduct"]


def _glif_randomize(node, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in node.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.5)


@pytest.mark.parametrize("inplane", [None, 3])
@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (2, 3)])
@pytest.mark.parametrize("sg", ["Sigmoid", "ATan"])
def test_glif_matches_reference(inplane, shape, sg):
    T = 6
    node = GatedLIFNode(T, inplane, surrogate_function=getattr(surrogate, sg)())
    _glif_randomize(node)
    x = _x(T=T, shape=shape, shift=0.3).requires_grad_(True)
    out = node(x)
    for call in range(2):  # the second call starts from the first's V, and from no spike
        x_ref = x.detach().clone().requires_grad_(True)
        p_ref = {n: p.detach().clone().requires_grad_(True) for n, p in node.named_parameters()}
        v_init = None if call == 0 else v_first
        s_ref, v_seq_ref, v_ref = ref.gated_lif_reference(x_ref, p_ref, channel_wise=inplane is not None,
                                                          surrogate=sg, v_init=v_init)
        assert out.shape == x.shape
        assert torch.equal(out, s_ref)
        assert 0 < out.sum() < out.numel()
        torch.testing.assert_close(node.v, v_ref, **EXACT)
        assert node.u is node.v
        if call == 0:
            _check_grads(out, s_ref, [node.v], [v_ref], [x], [x_ref], list(node.parameters()),
                         [p_ref[n] for n in GLIF_PARAMS])
            v_first = node.v.detach()
            x = _x(T=T, shape=shape, shift=0.3, seed=5)
            out = node(x)


def test_glif_parameters_as_spikingjelly():
    T, inplane = 4, 3
    node = GatedLIFNode(T, inplane, init_tau=0.3, init_v_threshold=0.6, init_conduct=0.4)
    names = [n for n, _ in node.named_parameters()]
    assert names == GLIF_PARAMS
    for n in GLIF_PARAMS[:7]:
        assert getattr(node, n).shape == (inplane,) and getattr(node, n).dtype == torch.float32
    assert node.conduct.shape == (T, inplane)

    def logit(p):
        return torch.tensor(-math.log(1 / p - 1), dtype=torch.float32)

    for n, p in [("tau", 0.3), ("v_threshold", 0.6), ("conduct", 0.4), ("linear_decay", 0.6 / (T * 2)),
                 ("v_subreset", 0.6)]:
        assert torch.equal(getattr(node, n).detach(), logit(p).expand_as(getattr(node, n))), n
    for n in ("alpha", "beta", "gamma"):
        assert getattr(node, n).abs().max() <= 0.1
    layer = GatedLIFNode(T, init_linear_decay=0.2, init_v_subreset=0.3)
    assert all(getattr(layer, n).shape == () for n in GLIF_PARAMS[:7]) and layer.conduct.shape == (T,)
    assert torch.equal(layer.linear_decay.detach(), logit(0.2)) and torch.equal(layer.v_subreset.detach(), logit(0.3))
    assert isinstance(layer.surrogate_function, surrogate.Sigmoid) and layer.step_mode == "m"
    torch.manual_seed(3)
    a = GatedLIFNode(T, inplane).alpha.detach().clone()
    torch.manual_seed(3)
    assert torch.equal(GatedLIFNode(T, inplane).alpha.detach(), a)  # torch's generator draws the gates


def test_glif_errors():
    with pytest.raises(ValueError, match="GatedLIFNode: T must be an int >= 1"):
        GatedLIFNode(0)
    with pytest.raises(ValueError, match="GatedLIFNode: T must be an int >= 1"):
        GatedLIFNode(2.0)
    with pytest.raises(ValueError, match="GatedLIFNode: inplane must be an int >= 1"):
        GatedLIFNode(4, inplane=0)
    for arg in ("init_tau", "init_v_threshold", "init_conduct", "init_linear_decay", "init_v_subreset"):
        for bad in (0.0, 1.0, 1.5, float("nan")):
            with pytest.raises(ValueError, match=f"GatedLIFNode: {arg} must"):
                GatedLIFNode(4, **{arg: bad})
    with pytest.raises(ValueError, match="GatedLIFNode: step_mode must be 'm'"):
        GatedLIFNode(4, step_mode="s")
    node = GatedLIFNode(4, inplane=3)
    with pytest.raises(ValueError, match="GatedLIFNode: step_mode must be 'm'"):
        node.step_mode = "s"
    with pytest.raises(ValueError, match="GatedLIFNode: step_mode must be 's'"):
        node.step_mode = "x"
    with pytest.raises(ValueError, match=r"GatedLIFNode: x_seq must be \[T, N, \*\] with T = 4"):
        node(torch.zeros(5, 2, 3))
    with pytest.raises(ValueError, match="GatedLIFNode: channel-wise GLIF"):
        node(torch.zeros(4, 2, 5))
    with pytest.raises(TypeError, match="GatedLIFNode: x_seq must have dtype"):
        node(torch.zeros(4, 2, 3, dtype=torch.float64))
    with pytest.raises(TypeError, match="GatedLIFNode: surrogate_function must be callable"):
        GatedLIFNode(4, surrogate_function=1.0)
    with pytest.raises(ValueError, match="GatedLIFNode: spike_dtype must be"):
        GatedLIFNode(4, spike_dtype=torch.int32)



def _glif_twins(T, inplane, seed=1, **kw):
    """A GLIF with random parameters, and a copy of it."""
    node = GatedLIFNode(T, inplane, **kw)
    _glif_randomize(node, seed)
    twin = GatedLIFNode(T, inplane, **kw)
    twin.load_state_dict(node.state_dict())
    return node, twin


def test_glif_runs_the_fused_op(monkeypatch):
    """GatedLIFNode calls the fused op once per call (kind GatedLIF), for layer- and channel-wise parameters and a
    surrogate without a kernel formula; a surrogate that is not a Heaviside step (spiking=False) runs the loop."""
    from spikeops import _ops
    from custom_surrogates import SquareSpike
    kinds = []
    fused = _ops.neuron.neuron_forward

    def counting(*args, **kw):
        kinds.append(args[3])
        return fused(*args, **kw)

    monkeypatch.setattr(_ops.neuron, "neuron_forward", counting)
    x = _x(T=4, shape=(2, 3))
    for node in (GatedLIFNode(4), GatedLIFNode(4, 3), GatedLIFNode(4, surrogate_function=SquareSpike.apply)):
        kinds.clear()
        node(x)
        assert kinds == [int(_ops.NeuronKind.GatedLIF)]
    kinds.clear()
    GatedLIFNode(4, surrogate_function=surrogate.Sigmoid(spiking=False))(x)
    assert kinds == []


@pytest.mark.parametrize("inplane, T, shape", [(None, 1, (5,)), (3, 1, (2, 3)), (None, 3, (7, 3, 1, 5)),
                                                (5, 4, (3, 5, 3, 1)), (3, 2, (1, 3, 2)), (None, 5, (0, 3))],
                         ids=str)
def test_glif_shapes_and_every_parameters_gradient(inplane, T, shape):
    """T = 1, odd and empty shapes: spikes and V exact, gradients of x, V and alpha..conduct as the reference."""
    node = GatedLIFNode(T, inplane)
    _glif_randomize(node, seed=T)
    x = _x(T=T, shape=shape, shift=0.3, seed=T).requires_grad_(True)
    out = node(x)
    x_ref = x.detach().clone().requires_grad_(True)
    p_ref = {n: p.detach().clone().requires_grad_(True) for n, p in node.named_parameters()}
    s_ref, _, v_ref = ref.gated_lif_reference(x_ref, p_ref, channel_wise=inplane is not None)
    assert out.shape == x.shape and torch.equal(out, s_ref)
    torch.testing.assert_close(node.v, v_ref, **EXACT)
    _check_grads(out, s_ref, [node.v], [v_ref], [x], [x_ref], list(node.parameters()),
                 [p_ref[n] for n in GLIF_PARAMS])


@pytest.mark.parametrize("inplane", [None, 3])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_glif_half_inputs_as_the_step_loop(inplane, dtype):
    """A float16/bfloat16 x_seq gives the spikes and V of SpikingJelly's step loop (layer-wise, its input current
    keeps x's dtype), and its gradients within half precision."""
    node, twin = _glif_twins(6, inplane)
    x = _x(T=6, shape=(4, 3, 5), shift=0.3).to(dtype).requires_grad_(True)
    x_loop = x.detach().clone().requires_grad_(True)
    out, out_loop = node(x), twin._loop(x_loop)
    assert out.dtype == dtype and torch.equal(out, out_loop)
    assert node.v.dtype == torch.float32 and torch.equal(node.v, twin.v)
    g = torch.randn(out.shape)
    grads = torch.autograd.grad((out.float() * g).sum() + node.v.sum(), [x] + list(node.parameters()))
    grads_loop = torch.autograd.grad((out_loop.float() * g).sum() + twin.v.sum(), [x_loop] + list(twin.parameters()))
    for a, b in zip(grads, grads_loop):
        assert a.dtype == b.dtype
        torch.testing.assert_close(a.float(), b.float(), rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("inplane", [None, 3])
def test_glif_custom_surrogate_as_the_step_loop(inplane, monkeypatch):
    """A user's autograd.Function: the fused op runs, its backward takes the function's derivative, and the
    gradients are those of the step loop calling that function."""
    from spikeops import _ops
    from custom_surrogates import SquareSpike
    sgs = []
    backward = _ops.neuron.neuron_backward

    def spy(*args, **kw):
        sgs.append(args[6])  # surrogate_grad_seq
        return backward(*args, **kw)

    monkeypatch.setattr(_ops.neuron, "neuron_backward", spy)
    node, twin = _glif_twins(6, inplane, surrogate_function=SquareSpike.apply)
    x = _x(T=6, shape=(2, 3, 4), shift=0.3).requires_grad_(True)
    x_loop = x.detach().clone().requires_grad_(True)
    out, out_loop = node(x), twin._loop(x_loop)
    assert torch.equal(out, out_loop) and torch.equal(node.v, twin.v)
    _check_grads(out, out_loop, [node.v], [twin.v], [x], [x_loop], list(node.parameters()), list(twin.parameters()))
    assert len(sgs) == 1 and sgs[0] is not None


# ---- all models: the shared behaviour ----

def _make(name, step_mode="m", **kw):
    if name == "KLIF":
        return KLIFNode(step_mode=step_mode, **kw)
    if name == "CUBA":
        return CUBALIFNode(step_mode=step_mode, **kw)
    if name == "LIAF":
        return LIAFNode(torch.tanh, True, step_mode=step_mode, **kw)
    if name == "CLIF":
        return ComplementaryLIFNode(step_mode=step_mode, **kw)
    return GatedLIFNode(6, 3, **kw)


STATES = {"KLIF": ("v",), "CUBA": ("v", "c"), "LIAF": ("v",), "CLIF": ("v", "m"), "GLIF": ("v", "u")}
STEPPED = ["KLIF", "CUBA", "LIAF", "CLIF"]
ALL = STEPPED + ["GLIF"]
SPIKING = ["KLIF", "CUBA", "CLIF", "GLIF"]


@pytest.mark.parametrize("name", STEPPED)
def test_single_step_T_times_equals_multi_step(name):
    x = _x(T=7, shape=(4, 3))
    single, multi = _make(name, "s"), _make(name, "m")
    for _ in range(2):  # the state persists across calls
        out_s = torch.stack([single(x[t]) for t in range(7)])
        out_m = multi(x)
        assert torch.equal(out_s, out_m)
        for s in STATES[name]:
            assert torch.equal(getattr(single, s), getattr(multi, s))


@pytest.mark.parametrize("name", ["KLIF", "CUBA", "LIAF"])
def test_store_v_seq_both_modes(name):
    x = _x(T=5, shape=(2, 3))
    multi = _make(name, "m", store_v_seq=True)
    multi(x)
    single = _make(name, "s", store_v_seq=True)
    for t in range(5):
        single(x[t])
    assert multi.v_seq.shape == (5, 2, 3)
    assert torch.equal(single.v_seq, multi.v_seq)
    assert torch.equal(multi.v_seq[-1], multi.v)
    single.reset()
    assert single.v_seq is None


@pytest.mark.parametrize("name", ALL)
def test_reset_and_detach_every_state(name):
    node = _make(name, "m", **({"store_state_seqs": True} if name == "CLIF" else {}))
    if name in ("KLIF", "CUBA", "LIAF"):
        node.store_v_seq = True
    x = _x(T=6, shape=(2, 3, 4)).requires_grad_(True)
    out = node(x)
    for s in STATES[name]:
        assert getattr(node, s).requires_grad
    functional.detach_net(torch.nn.Sequential(node))
    for s in STATES[name]:
        assert not getattr(node, s).requires_grad
    if name != "GLIF":
        assert not node.v_seq.requires_grad if node.v_seq is not None else True
    if name == "CLIF":
        assert not any(s.requires_grad for s in node.state_seqs)
    # after detach, a second call trains only through itself
    out2 = node(x.detach().requires_grad_(True))
    out2.float().sum().backward()
    assert x.grad is None
    functional.reset_net(torch.nn.Sequential(node))
    initial = {"v": 0.0, "c": 0.0, "m": 0.0, "u": 0.0}
    for s in STATES[name]:
        assert getattr(node, s) == initial[s] and isinstance(getattr(node, s), float)
    if name != "GLIF":
        assert node.v_seq is None
    if name == "CLIF":
        assert node.state_seqs is None
    # after reset the node runs a new shape, and gives what a fresh node gives
    y = torch.randn(6, 5, 3)
    assert torch.equal(node(y), _make(name, "m")(y))
    assert out.shape == x.shape


@pytest.mark.parametrize("name", ["CUBA", "CLIF"])
def test_extra_state_shape_and_device_errors(name):
    node = _make(name, "s")
    node(torch.randn(2, 3))
    extra = STATES[name][1]
    setattr(node, extra, torch.zeros(4))
    node.v = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=f"{type(node).__name__}: the stored state {extra} has shape"):
        node(torch.randn(2, 3))


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs(name, dtype):
    x = _x(T=6, shape=(2, 3)).to(dtype)
    node, node32 = _make(name, "m"), _make(name, "m")
    if name == "GLIF":
        node32.load_state_dict(node.state_dict())
    out = node(x)
    out32 = node32(x.float())  # the state is float32: a half input is upcast exactly
    assert out.dtype == dtype
    assert torch.equal(out, out32.to(dtype))
    for s in STATES[name]:
        assert getattr(node, s).dtype == torch.float32
        assert torch.equal(getattr(node, s), getattr(node32, s))


@pytest.mark.parametrize("name", SPIKING)
def test_uint8_spikes_and_spike_tensor(name):
    x = _x(T=6, shape=(2, 3)).requires_grad_(True)
    plain = _make(name, "m")
    u8 = _make(name, "m", spike_dtype=torch.uint8)
    st = _make(name, "m", spike_tensor=True)
    if name == "GLIF":
        u8.load_state_dict(plain.state_dict())
        st.load_state_dict(plain.state_dict())
    s = plain(x)
    s8 = u8(x.detach())
    sst = st(x)
    assert s8.dtype == torch.uint8 and torch.equal(s8.float(), s)
    assert isinstance(sst, SpikeTensor) and sst.dtype == x.dtype
    assert torch.equal(sst.dense(), s)
    g = torch.randn_like(s)
    ga, = torch.autograd.grad((s * g).sum(), x)
    gb, = torch.autograd.grad((sst.dense() * g).sum(), x)
    torch.testing.assert_close(ga, gb, **EXACT)


@pytest.mark.parametrize("name", ALL)
def test_empty_and_odd_shapes(name):
    if name != "GLIF":
        node = _make(name, "m")
        out = node(torch.zeros(0, 3, 5, 7))
        assert out.shape == (0, 3, 5, 7) and node.v.shape == (3, 5, 7)
        out = node(torch.randn(4, 3, 5, 7))  # the state of the T=0 call continues
        assert out.shape == (4, 3, 5, 7)
        node = _make(name, "m")
        assert node(torch.zeros(4, 0, 5)).shape == (4, 0, 5)
        node = _make(name, "s")
        assert node(torch.zeros(0, 5)).shape == (0, 5)
        node.reset()
        assert node(torch.randn(())).shape == ()
    else:
        node = GatedLIFNode(4, 5)
        assert node(torch.randn(4, 3, 5, 7)).shape == (4, 3, 5, 7)
        assert node.v.shape == (3, 5, 7)
        assert GatedLIFNode(4, 5)(torch.zeros(4, 0, 5)).shape == (4, 0, 5)
        assert GatedLIFNode(4)(torch.randn(4, 3, 5, 7)).shape == (4, 3, 5, 7)
        assert GatedLIFNode(4)(torch.randn(4, 3)).shape == (4, 3)


@pytest.mark.parametrize("name", ALL)
def test_torch_compile_fullgraph(name):
    torch._dynamo.reset()
    x = _x(T=6, shape=(2, 3, 4))
    eager, compiled_node = _make(name, "m"), _make(name, "m")
    compiled_node.load_state_dict(eager.state_dict())
    compiled = torch.compile(compiled_node, backend="aot_eager", fullgraph=True)
    xe, xc = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out, out_c = eager(xe), compiled(xc)
    assert torch.equal(out, out_c)
    params = list(eager.parameters())
    ge = torch.autograd.grad(out.sum() + eager.v.sum(), [xe] + params)
    gc = torch.autograd.grad(out_c.sum() + compiled_node.v.sum(), [xc] + list(compiled_node.parameters()))
    for a, b in zip(ge, gc):
        torch.testing.assert_close(a, b, **GRAD_TOL)


def test_custom_surrogate_is_honoured():
    """A user's autograd.Function as surrogate_function: its gradient reaches x (here 2 everywhere)."""

    class Twice(torch.autograd.Function):
        @staticmethod
        def forward(ctx, u):
            return (u >= 0).to(u.dtype)

        @staticmethod
        def backward(ctx, g):
            return 2.0 * g

    x = _x(T=1, shape=(4,)).requires_grad_(True)
    for node in (CUBALIFNode(surrogate_function=Twice.apply, step_mode="m"),
                 ComplementaryLIFNode(surrogate_function=Twice.apply, step_mode="m")):
        s = node(x)
        g, = torch.autograd.grad(s.sum(), x)
        assert torch.equal(g, torch.full_like(x, 2.0))  # one step from rest: dH/dX = 1


def test_constructor_errors():
    with pytest.raises(ValueError, match="KLIFNode: tau must be a finite number > 1"):
        KLIFNode(tau=1.0)
    with pytest.raises(TypeError, match="KLIFNode: scale_reset must be a bool"):
        KLIFNode(scale_reset="no")
    with pytest.raises(TypeError, match="KLIFNode: decay_input must be a bool"):
        KLIFNode(decay_input=None)
    with pytest.raises(ValueError, match="KLIFNode: v_threshold must be finite"):
        KLIFNode(v_threshold=float("inf"))
    with pytest.raises(ValueError, match="KLIFNode: step_mode must be"):
        KLIFNode(step_mode="x")
    with pytest.raises(ValueError, match="CUBALIFNode: c_decay must be finite"):
        CUBALIFNode(c_decay=float("nan"))
    with pytest.raises(ValueError, match="CUBALIFNode: v_decay must be finite"):
        CUBALIFNode(v_decay=1e39)
    with pytest.raises(ValueError, match="CUBALIFNode: v_reset must be finite"):
        CUBALIFNode(v_reset=float("inf"))
    with pytest.raises(ValueError, match="ComplementaryLIFNode: tau must be a finite number > 1"):
        ComplementaryLIFNode(tau=0.9)
    with pytest.raises(TypeError, match="ComplementaryLIFNode: store_state_seqs must be a bool"):
        ComplementaryLIFNode(store_state_seqs=2)
    with pytest.raises(TypeError, match="ComplementaryLIFNode: surrogate_function must be callable"):
        ComplementaryLIFNode(surrogate_function=3)


def test_input_errors():
    for node in (KLIFNode(step_mode="m"), CUBALIFNode(step_mode="m"), ComplementaryLIFNode(step_mode="m")):
        name = type(node).__name__
        with pytest.raises(TypeError, match=f"{name}: x_seq must have dtype"):
            node(torch.zeros(2, 3, dtype=torch.float64))
        with pytest.raises(ValueError, match=f"{name}: in multi-step mode x_seq must be"):
            node(torch.zeros(()))
        node(torch.zeros(2, 3))
        with pytest.raises(ValueError, match=f"{name}: the stored membrane potential has shape"):
            node(torch.zeros(2, 4))


def test_exports_from_neuron():
    for name in ("KLIFNode", "CUBALIFNode", "LIAFNode", "ComplementaryLIFNode", "GatedLIFNode"):
        assert getattr(neuron, name).__name__ == name
        assert name in neuron.__all__


@pytest.mark.cuda
@pytest.mark.parametrize("name", ALL)
def test_cuda_equals_cpu(name, device="cuda"):
    """The step loops are PyTorch ops: on CUDA the same spikes and states. Only +, -, *, / and relu (correctly
    rounded on both devices) for KLIF, CUBA, LIAF: equal; CLIF and GLIF take sigmoid, whose CUDA float32 may
    differ by an ulp: within tolerance, and a spike may flip only where u is that close to 0."""
    x = _x(T=6, shape=(4, 3, 50))
    results = []
    for dev in ("cpu", device):
        node = _make(name, "m")
        if results:
            node.load_state_dict(results[0][3])
        node = node.to(dev)
        xd = x.to(dev).requires_grad_(True)
        out = node(xd)
        states = [getattr(node, s) for s in STATES[name]]
        (out.float().sum() + sum(s.sum() for s in states)).backward()
        results.append(([out.detach().cpu()] + [s.detach().cpu() for s in states], xd.grad.cpu(),
                        [p.grad.cpu() for p in node.parameters()], {k: v.cpu() for k, v in node.state_dict().items()}))
    (cpu_vals, cpu_gx, cpu_gp, _), (cuda_vals, cuda_gx, cuda_gp, _) = results
    if name in ("KLIF", "CUBA", "LIAF"):
        for a, b in zip(cpu_vals, cuda_vals):
            assert torch.equal(a, b)
    else:
        assert (cpu_vals[0] != cuda_vals[0]).float().mean() < 1e-3
        for a, b in zip(cpu_vals[1:], cuda_vals[1:]):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(cpu_gx, cuda_gx, rtol=1e-4, atol=1e-4)
    for a, b in zip(cpu_gp, cuda_gp):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("name", ALL)
def test_gc_container_reruns_from_every_state(name):
    """layer.GCContainer runs the block again in the backward from memory_state(): every state (c, m, u
    included) must be in _memories, or the second of two calls gets other gradients than without it."""
    from spikeops import layer
    x = _x(T=6, shape=(2, 3, 4))
    grads = []
    for gc in (False, True):
        node = _make(name, "m")
        if grads:
            node.load_state_dict(grads[0][1])
        block = layer.GCContainer(node) if gc else node
        xs = [x.clone().requires_grad_(True), (x * 0.7).requires_grad_(True)]
        out = block(xs[0])
        out2 = block(xs[1])  # starts from the state the first call left
        (out.float().sum() + out2.float().sum()).backward()
        grads.append(([xi.grad for xi in xs], node.state_dict()))
    for a, b in zip(grads[0][0], grads[1][0]):
        torch.testing.assert_close(a, b, **EXACT)


def test_export_refuses_the_step_loop_models(tmp_path):
    """LIAF (its output is act(H), not spikes) and GatedLIF (per-channel parameters and a per-step input gate the
    runtime's neuron layer does not hold) are not exportable. KLIF, CUBALIF and ComplementaryLIF export as the
    generic neuron layer (test_export.py and test_runtime.py check their results)."""
    import spikeops
    from spikeops import layer
    for name in ALL:
        net = torch.nn.Sequential(layer.Linear(4, 3, step_mode="m"), _make(name, "m"))
        if name in ("LIAF", "GLIF"):
            why = " .*outputs a function of its membrane potential" if name == "LIAF" else ""
            with pytest.raises(ValueError, match=f"spikeops.export: layer '1'{why}"):
                spikeops.export(net, tmp_path / "m.spk", torch.rand(2, 4), T=6)
        else:
            graph = spikeops.export(net, tmp_path / "m.spk", torch.rand(2, 4), T=6)
            assert graph["layers"][1]["model"] == {"KLIF": "KLIF", "CUBA": "CUBALIF", "CLIF": "ComplementaryLIF"}[name]


# ---- LIAFNode: the fused LIF kernel, its output made from the saved H ----

@pytest.mark.parametrize("step_mode", ["s", "m"])
def test_liaf_runs_the_fused_kernel_both_ways(step_mode):
    node = LIAFNode(torch.relu, True, step_mode=step_mode)
    x = _x(T=4).requires_grad_(True)
    with OpLog() as log:
        out = _run(node, x, step_mode)
        out.sum().backward()
    assert any("spikeops.neuron_forward" in op for op in log.ops)
    assert any("spikeops.neuron_backward" in op for op in log.ops)
    assert not any("sigmoid" in op for op in log.ops)  # no PyTorch surrogate: the kernel's


@pytest.mark.parametrize("threshold_related", [True, False])
def test_liaf_gradient_reaches_the_recurrence(threshold_related):
    """The gradient of act(H) flows back through V into earlier steps: the fused path's equals the reference's
    when only the last step's output is in the loss."""
    node = LIAFNode(torch.tanh, threshold_related, tau=3.0, step_mode="m")
    x = _x(T=6).requires_grad_(True)
    out = node(x)
    x_ref = x.detach().clone().requires_grad_(True)
    y_ref, _, _ = ref.liaf_reference(x_ref, torch.tanh, threshold_related, tau=3.0)
    out[-1].sum().backward()
    y_ref[-1].sum().backward()
    assert x.grad[0].abs().sum() > 0  # the first step reaches the last one's output
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-5, atol=1e-6)


def test_liaf_custom_surrogate_and_float16():
    class Doubled(surrogate.Sigmoid):
        def forward(self, x):
            return super().forward(x) * 1.0

    for sg in (surrogate.ATan(), Doubled()):
        node = LIAFNode(torch.tanh, True, tau=2.0, surrogate_function=sg, step_mode="m")
        x = _x(T=5).half().requires_grad_(True)
        out = node(x)
        assert out.dtype == torch.float16
        x_ref = x.detach().clone().requires_grad_(True)
        name = "ATan" if isinstance(sg, surrogate.ATan) else "Sigmoid"
        y_ref, _, _ = ref.liaf_reference(x_ref, torch.tanh, True, tau=2.0, surrogate=name)
        torch.testing.assert_close(out, y_ref.half(), **EXACT)
        out.float().sum().backward()
        y_ref.sum().backward()
        torch.testing.assert_close(x.grad.float(), x_ref.grad.float(), rtol=2e-3, atol=2e-3)
