"""The neuron modules (fused C++ kernels) against the step-by-step reference in reference.py.

Spikes must be identical (the kernels round every operation as the reference does); membrane potentials and
gradients agree within float32 rounding (the backward recomputes spikes and potentials from the saved H).
"""

import itertools
import math

import pytest
import torch

import reference as ref
from spikeops import functional, neuron, surrogate

KINDS = ("IF", "LIF", "PLIF")
DTYPE_TOL = {torch.float32: dict(rtol=1e-4, atol=1e-5),
             torch.float16: dict(rtol=2e-3, atol=1e-3),
             torch.bfloat16: dict(rtol=1.6e-2, atol=1e-2)}


def make_node(kind, step_mode="m", surrogate_name="Sigmoid", sg_params=None, tau=2.0, **kw):
    params = ref.SURROGATES[surrogate_name][0] if sg_params is None else sg_params
    sg = getattr(surrogate, surrogate_name)(**params)
    if kind == "IF":
        kw.pop("decay_input", None)
        return neuron.IFNode(surrogate_function=sg, step_mode=step_mode, **kw)
    if kind == "LIF":
        return neuron.LIFNode(tau=tau, surrogate_function=sg, step_mode=step_mode, **kw)
    return neuron.ParametricLIFNode(init_tau=tau, surrogate_function=sg, step_mode=step_mode, **kw)


def reference_of(node, kind, x_seq, surrogate_name="Sigmoid", sg_params=None, v_init=None, w=None):
    params = ref.SURROGATES[surrogate_name][0] if sg_params is None else sg_params
    return ref.neuron_multistep(
        x_seq, kind, v_threshold=node.v_threshold, v_reset=node.v_reset, tau=getattr(node, "tau", 2.0),
        w=w, decay_input=getattr(node, "decay_input", True), detach_reset=node.detach_reset,
        surrogate=surrogate_name, params=params, v_init=v_init)


def input_current(shape, dtype=torch.float32, scale=1.5):
    # Centered so that roughly a third of the neuron-steps fire with tau = 2 and v_threshold = 1.
    return (torch.randn(shape) * scale + 0.6).to(dtype)


def compare_with_reference(kind, shape, dtype=torch.float32, surrogate_name="Sigmoid", sg_params=None,
                           tau=2.0, store_v_seq=True, **node_kw):
    """Forward and backward of a fresh node vs the reference, with random upstream gradients of the spikes,
    of v_seq and of the final v."""
    node = make_node(kind, surrogate_name=surrogate_name, sg_params=sg_params, tau=tau,
                     store_v_seq=store_v_seq, **node_kw)
    x = input_current(shape, dtype).requires_grad_(True)
    spikes = node(x)
    v_final = node.v
    g_s = torch.randn(shape)
    g_v = torch.randn(shape)
    g_f = torch.randn(shape[1:])
    loss = (spikes.float() * g_s).sum() + (v_final * g_f).sum()
    if store_v_seq:
        loss = loss + (node.v_seq * g_v).sum()
    loss.backward()

    x_ref = x.detach().clone().requires_grad_(True)
    w_ref = node.w.detach().clone().requires_grad_(True) if kind == "PLIF" else None
    s_ref, v_seq_ref, v_final_ref = reference_of(node, kind, x_ref, surrogate_name, sg_params, w=w_ref)
    # Round-trip the reference spikes through `dtype` as the module's spikes are: the gradient reaching them
    # is then rounded to `dtype` in both.
    loss_ref = (s_ref.to(dtype).float() * g_s).sum() + (v_final_ref * g_f).sum()
    if store_v_seq:
        loss_ref = loss_ref + (v_seq_ref * g_v).sum()
    loss_ref.backward()

    assert spikes.dtype == dtype and spikes.shape == shape
    assert torch.equal(spikes, s_ref.to(dtype)), "spikes differ from the reference"
    torch.testing.assert_close(v_final, v_final_ref, rtol=1e-6, atol=1e-6)
    if store_v_seq:
        torch.testing.assert_close(node.v_seq, v_seq_ref, rtol=1e-6, atol=1e-6)
    assert x.grad.dtype == dtype
    torch.testing.assert_close(x.grad, x_ref.grad.to(dtype), **DTYPE_TOL[dtype])
    if kind == "PLIF":
        torch.testing.assert_close(node.w.grad, w_ref.grad, rtol=1e-4, atol=1e-4)
    return spikes


# ---- every branch of the contract ----

BRANCHES = [
    (kind, v_reset, decay_input, detach_reset)
    for kind, v_reset, decay_input, detach_reset in itertools.product(KINDS, (0.0, None, -0.3), (True, False),
                                                                      (False, True))
    if not (kind == "IF" and not decay_input)  # IF has no decay_input
]


@pytest.mark.parametrize("kind,v_reset,decay_input,detach_reset", BRANCHES)
def test_branches_match_reference(kind, v_reset, decay_input, detach_reset):
    spikes = compare_with_reference(kind, (6, 4, 37), v_reset=v_reset, decay_input=decay_input,
                                    detach_reset=detach_reset)
    assert 0 < spikes.sum() < spikes.numel(), "the test input must make some, not all, neurons fire"


@pytest.mark.parametrize("v_threshold", [0.5, 1.0, 2.5, -0.25])
@pytest.mark.parametrize("kind", KINDS)
def test_thresholds(kind, v_threshold):
    compare_with_reference(kind, (5, 64), v_threshold=v_threshold, v_reset=None)
    compare_with_reference(kind, (5, 64), v_threshold=v_threshold, v_reset=0.2)


@pytest.mark.parametrize("tau", [1.5, 3.0, 10.0, 100.0])
@pytest.mark.parametrize("kind", ("LIF", "PLIF"))
def test_tau(kind, tau):
    compare_with_reference(kind, (7, 50), tau=tau, decay_input=True)
    compare_with_reference(kind, (7, 50), tau=tau, decay_input=False, v_reset=None)


@pytest.mark.parametrize("name", list(ref.SURROGATES))
@pytest.mark.parametrize("kind", ("IF", "LIF"))
def test_every_surrogate(kind, name):
    compare_with_reference(kind, (5, 3, 29), surrogate_name=name)


@pytest.mark.parametrize("name,params", [("Sigmoid", {"alpha": 1.5}), ("ATan", {"alpha": 5.0}),
                                         ("PiecewiseLeakyReLU", {"w": 0.5, "c": 0.1}),
                                         ("FastSigmoid", {"slope": 5.0}), ("Rect", {"alpha": 0.7}),
                                         ("NonzeroSignLogAbs", {"alpha": 2.5}), ("S2NN", {"alpha": 2.0, "beta": 0.5}),
                                         ("QPseudoSpike", {"alpha": 3.0}), ("LeakyKReLU", {"leak": 0.2, "k": 1.5}),
                                         ("FakeNumericalGradient", {"alpha": 1.5}),
                                         ("LogTailedReLU", {"alpha": 0.1}),
                                         ("SquarewaveFourierSeries", {"n": 4, "T_period": 5.0})])
def test_surrogate_parameters(name, params):
    compare_with_reference("LIF", (5, 40), surrogate_name=name, sg_params=params)


# ---- shapes and dtypes ----

SHAPES = [(1, 1), (1, 5), (3, 16), (4, 17), (2, 3, 5, 7), (5, 2 * 1024 + 5), (257, 3), (64, 33)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("kind", KINDS)
def test_shapes(kind, shape):
    compare_with_reference(kind, shape, v_reset=None if kind == "IF" else 0.0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", [(4, 33), (3, 2, 100)], ids=str)
def test_half_precision(kind, dtype, shape):
    compare_with_reference(kind, shape, dtype=dtype)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", [(3, 0), (0, 5), (0, 0), (2, 4, 0)], ids=str)
def test_empty(kind, shape):
    node = make_node(kind, store_v_seq=True)
    x = torch.randn(shape, requires_grad=True)
    spikes = node(x)
    assert spikes.shape == shape and node.v.shape == shape[1:] and node.v_seq.shape == shape
    (spikes.sum() + node.v.sum()).backward()
    assert x.grad.shape == shape


@pytest.mark.parametrize("spike_dtype", [torch.float32, torch.float16, torch.bfloat16, torch.uint8], ids=str)
@pytest.mark.parametrize("kind", KINDS)
def test_spike_dtype(kind, spike_dtype):
    x = input_current((6, 70))
    node = make_node(kind, spike_dtype=spike_dtype)
    spikes = node(x)
    s_ref, _, v_ref = reference_of(node, kind, x, w=getattr(node, "w", None))
    assert spikes.dtype == spike_dtype and spikes.element_size() == spike_dtype.itemsize
    assert torch.equal(spikes, s_ref.to(spike_dtype))
    torch.testing.assert_close(node.v, v_ref.detach(), rtol=1e-6, atol=1e-6)


def test_uint8_spikes_carry_no_gradient():
    # Integer tensors cannot carry gradients in torch; the spike GEMM issue adds a 1-byte spike type that does.
    x = input_current((4, 10)).requires_grad_(True)
    spikes = neuron.LIFNode(step_mode="m", spike_dtype=torch.uint8)(x)
    assert spikes.dtype == torch.uint8 and not spikes.requires_grad


# ---- state, step modes, reset ----

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("v_reset", [0.0, None])
def test_single_step_equals_multi_step(kind, v_reset):
    x = input_current((9, 3, 11))
    multi = make_node(kind, "m", v_reset=v_reset)
    single = make_node(kind, "s", v_reset=v_reset)
    xm = x.clone().requires_grad_(True)
    xs = x.clone().requires_grad_(True)
    s_multi = multi(xm)
    s_single = torch.stack([single(xt) for xt in xs])
    assert torch.equal(s_multi, s_single)
    assert torch.equal(multi.v, single.v)
    g = torch.randn_like(x)
    (s_multi * g).sum().backward()
    (s_single * g).sum().backward()
    torch.testing.assert_close(xm.grad, xs.grad, rtol=1e-5, atol=1e-6)
    if kind == "PLIF":
        torch.testing.assert_close(multi.w.grad, single.w.grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_static_input_expanded_over_time_is_not_copied(kind, monkeypatch):
    """x.expand(T, ...) (a static image's current at every step) reaches the kernel as a stride-0 view and gives
    the spikes, state and gradients of the same input repeated in memory."""
    from spikeops import _ops
    strides = []
    forward = _ops.neuron.neuron_forward

    def spy(x_seq, *args):
        strides.append(x_seq.stride())
        return forward(x_seq, *args)

    monkeypatch.setattr(_ops.neuron, "neuron_forward", spy)
    current = input_current((3, 4, 5))
    results = []
    for expand in (True, False):
        node = make_node(kind)
        c = current.clone().requires_grad_(True)
        x = c.expand(7, 3, 4, 5) if expand else c.unsqueeze(0).repeat(7, 1, 1, 1)
        s = node(x)
        (s * torch.linspace(-1, 1, s.numel()).view_as(s)).sum().backward()
        results.append((s, node.v, c.grad))
    assert strides[0] == (0, 1) and strides[1] == (60, 1)
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])
    torch.testing.assert_close(results[0][2], results[1][2])


@pytest.mark.parametrize("kind", KINDS)
def test_state_persists_across_calls(kind):
    # Two calls of 4 steps are one call of 8 steps, forward and backward (the gradient crosses the calls
    # through the stored v, i.e. the kernels' grad_v_init).
    x = input_current((8, 2, 13))
    whole = make_node(kind)
    split = make_node(kind)
    xw = x.clone().requires_grad_(True)
    xs = x.clone().requires_grad_(True)
    s_whole = whole(xw)
    s_split = torch.cat([split(xs[:4]), split(xs[4:])])
    assert torch.equal(s_whole, s_split)
    assert torch.equal(whole.v, split.v)
    g = torch.randn_like(x)
    ((s_whole * g).sum() + whole.v.sum()).backward()
    ((s_split * g).sum() + split.v.sum()).backward()
    torch.testing.assert_close(xw.grad, xs.grad, rtol=1e-5, atol=1e-6)
    assert xs.grad[:4].abs().sum() > 0, "the gradient must reach the first call through the state"


@pytest.mark.parametrize("kind", KINDS)
def test_gradient_through_initial_state_matches_reference(kind):
    # The second call starts from the first call's v; compare with the reference started from the same v.
    x1, x2 = input_current((3, 40)), input_current((5, 40))
    node = make_node(kind, v_reset=None)
    node(x1)
    v0 = node.v.detach().clone().requires_grad_(True)
    node.v = v0
    x2a = x2.clone().requires_grad_(True)
    s = node(x2a)
    g = torch.randn_like(s)
    (s * g).sum().backward()
    v0_ref = v0.detach().clone().requires_grad_(True)
    x2_ref = x2.clone().requires_grad_(True)
    w = node.w.detach() if kind == "PLIF" else None
    s_ref, _, _ = reference_of(node, kind, x2_ref, v_init=v0_ref, w=w)
    (s_ref * g).sum().backward()
    assert torch.equal(s, s_ref)
    torch.testing.assert_close(v0.grad, v0_ref.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(x2a.grad, x2_ref.grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("v_reset", [0.0, None, -0.5])
def test_reset_net_restores_initial_state(v_reset):
    net = torch.nn.Sequential(neuron.LIFNode(step_mode="m", v_reset=v_reset),
                              neuron.IFNode(step_mode="m", v_reset=v_reset))
    x = input_current((4, 3, 5))
    first = net(x)
    second = net(x)
    assert not torch.equal(first, second), "state must carry over between calls"
    functional.reset_net(net)
    for node in net:
        assert node.v == (0.0 if v_reset is None else v_reset)
    assert torch.equal(net(x), first)


def test_detach_cuts_the_graph():
    node = neuron.LIFNode(step_mode="m")
    x1 = input_current((3, 8)).requires_grad_(True)
    node(x1)
    assert node.v.requires_grad
    functional.detach_net(node)
    assert not node.v.requires_grad
    x2 = input_current((3, 8)).requires_grad_(True)
    node(x2).sum().backward()
    assert x1.grad is None and x2.grad is not None


def test_inference_saves_nothing_for_backward():
    # Without any input requiring grad the node asks the kernel for no H: spikes carry no graph.
    node = neuron.LIFNode(step_mode="m")
    with torch.no_grad():
        s = node(input_current((4, 10), scale=3.0))
    assert not s.requires_grad and s.sum() > 0


def test_parametric_lif_learns_tau():
    node = neuron.ParametricLIFNode(init_tau=2.0, step_mode="m")
    assert math.isclose(torch.sigmoid(node.w).item(), 0.5, rel_tol=1e-6)
    opt = torch.optim.SGD(node.parameters(), lr=1.0)
    x = input_current((8, 64))
    w0 = node.w.item()
    node(x).mean().backward()
    assert node.w.grad is not None and node.w.grad.abs() > 0
    opt.step()
    assert node.w.item() != w0


def test_defaults_are_spikingjelly_defaults():
    node = neuron.LIFNode()
    assert (node.tau, node.decay_input, node.v_threshold, node.v_reset, node.detach_reset, node.step_mode,
            node.store_v_seq) == (2.0, True, 1.0, 0.0, False, "s", False)
    assert isinstance(node.surrogate_function, surrogate.Sigmoid) and node.surrogate_function.alpha == 4.0
    plif = neuron.ParametricLIFNode()
    torch.testing.assert_close(plif.w.detach(), torch.tensor(-math.log(1.0)))
