"""Custom neurons (SpikingJelly's neuronal_charge / neuronal_fire / neuronal_reset) and custom surrogates.

Each is compared with a plain-PyTorch step loop written here from its equations: spikes exact, potentials and
gradients (input and parameters) equal. The built-in neurons with a kernel surrogate keep the fused op.
"""

import pytest
import torch
from torch import nn

import spikeops
from spikeops import _ops, functional, neuron, surrogate
from custom_surrogates import SquareSpike, SquareSurrogate


# Forward values are exact; gradients sum the same terms in another order (the reset's products are written
# (1 - S) V + S Vr in BaseNode, as in SpikingJelly, and S Vr + (1 - S) H here).
GRAD_TOL = dict(rtol=1e-5, atol=1e-6)


# ---- the custom neurons and their plain-PyTorch equations ----

class TutorialLIF(neuron.BaseNode):
    """The SpikingJelly tutorial's way: a LIF-like neuronal_charge on BaseNode."""

    def __init__(self, tau=2.0, **kw):
        super().__init__(**kw)
        self.tau = tau

    def neuronal_charge(self, x):
        vr = 0.0 if self.v_reset is None else self.v_reset
        self.v = self.v + (x - (self.v - vr)) / self.tau


class QIF(neuron.BaseNode):
    """Quadratic integrate-and-fire with a learnable a0: H = V + (a0 (V - v_rest)(V - v_c) + X) / tau."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.a0 = nn.Parameter(torch.tensor(0.8))

    def neuronal_charge(self, x):
        self.v = self.v + (self.a0 * self.v * (self.v - 0.6) + x) / 2.0


class RefractoryIF(neuron.IFNode):
    """An IFNode overriding neuronal_reset: a spike resets below v_reset (to v_reset - 0.5)."""

    def neuronal_reset(self, spike):
        spike_d = spike.detach() if self.detach_reset else spike
        self.v = spike_d * (self.v_reset - 0.5) + (1.0 - spike_d) * self.v


def charge_tutorial(v, x, node):
    vr = 0.0 if node.v_reset is None else node.v_reset
    return v + (x - (v - vr)) / node.tau


def charge_qif(v, x, node):
    return v + (node.a0 * v * (v - 0.6) + x) / 2.0


def charge_if(v, x, node):
    return v + x


def plain_loop(x_seq, node, charge, fire=None, reset=None, v=None):
    """The neuron as a plain PyTorch step loop: (spikes [T, ...], v after each step [T, ...], v_final)."""
    sg = node.surrogate_function
    v = torch.full_like(x_seq[0], 0.0 if node.v_reset is None else node.v_reset, dtype=torch.float32) \
        if v is None else v
    spikes, vs = [], []
    for x in x_seq:
        h = charge(v, x, node)
        s = sg(h - node.v_threshold) if fire is None else fire(h)
        s_r = s.detach() if node.detach_reset else s
        if reset is not None:
            v = reset(h, s_r)
        elif node.v_reset is None:
            v = h - s_r * node.v_threshold
        else:
            v = s_r * node.v_reset + (1.0 - s_r) * h
        spikes.append(s)
        vs.append(v)
    return torch.stack(spikes), torch.stack(vs), v


CUSTOM = {
    "tutorial": (lambda **kw: TutorialLIF(tau=2.0, **kw), charge_tutorial, None),
    "qif": (lambda **kw: QIF(**kw), charge_qif, None),
    "reset": (lambda **kw: RefractoryIF(**kw), charge_if,
              lambda node: (lambda h, s: s * (node.v_reset - 0.5) + (1.0 - s) * h)),
}


def _run_both(name, step_mode, v_reset=0.0, detach_reset=False, T=6, shape=(3, 5), surrogate_function=None):
    make, charge, reset = CUSTOM[name]
    kw = dict(v_reset=v_reset, detach_reset=detach_reset, store_v_seq=True, step_mode=step_mode)
    if surrogate_function is not None:
        kw["surrogate_function"] = surrogate_function
    node = make(**kw)
    x = (torch.randn(T, *shape) * 1.5 + 0.6).requires_grad_(True)
    if step_mode == "m":
        spikes = node(x)
    else:
        spikes = torch.stack([node(x[t]) for t in range(T)])
    x_ref = x.detach().clone().requires_grad_(True)
    s_ref, v_seq_ref, v_ref = plain_loop(x_ref, node, charge, reset=reset(node) if reset else None)
    return node, x, spikes, x_ref, s_ref, v_seq_ref, v_ref


@pytest.mark.parametrize("name", sorted(CUSTOM))
@pytest.mark.parametrize("step_mode", ["s", "m"])
@pytest.mark.parametrize("v_reset", [0.0, None, -0.25])
@pytest.mark.parametrize("detach_reset", [False, True])
def test_custom_neuron_matches_plain_loop(name, step_mode, v_reset, detach_reset):
    if name == "reset" and v_reset is None:
        pytest.skip("RefractoryIF resets to v_reset - 0.5: a hard reset only")
    node, x, spikes, x_ref, s_ref, v_seq_ref, v_ref = _run_both(name, step_mode, v_reset, detach_reset)
    assert spikes.dtype == x.dtype
    assert torch.equal(spikes, s_ref)
    assert 0 < spikes.sum() < spikes.numel()
    torch.testing.assert_close(node.v, v_ref, rtol=0, atol=0)
    g = torch.randn_like(spikes)
    params = list(node.parameters())
    grads = torch.autograd.grad((spikes * g).sum() + node.v.sum(), [x] + params)
    grads_ref = torch.autograd.grad((s_ref * g).sum() + v_ref.sum(), [x_ref] + params)
    for a, b in zip(grads, grads_ref):
        torch.testing.assert_close(a, b, **GRAD_TOL)
    if step_mode == "m":
        torch.testing.assert_close(node.v_seq, v_seq_ref, rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(CUSTOM))
def test_custom_single_step_T_times_equals_multi_step(name):
    make = CUSTOM[name][0]
    x = torch.randn(7, 4, 3) * 1.5 + 0.6
    single, multi = make(step_mode="s"), make(step_mode="m")
    if isinstance(single, QIF):
        multi.load_state_dict(single.state_dict())
    s_single = torch.stack([single(x[t]) for t in range(7)])
    s_multi = multi(x)
    assert torch.equal(s_single, s_multi)
    s_ref, _, _ = plain_loop(x, multi, CUSTOM[name][1], reset=CUSTOM[name][2](multi) if CUSTOM[name][2] else None)
    assert torch.equal(s_multi, s_ref)
    assert torch.equal(single.v, multi.v)
    # the state persists across calls
    assert torch.equal(torch.stack([single(x[t]) for t in range(7)]), multi(x))


def test_store_v_seq_custom_and_builtin():
    """Multi-step: v_seq is V after every step ([T, N, *]). Single-step appends V at each call (SpikingJelly 2.0's
    BaseNode.single_step_forward), restarting after reset(); both give the same sequence."""
    x = torch.randn(5, 2, 3) + 0.5
    for node in (TutorialLIF(step_mode="m", store_v_seq=True), neuron.LIFNode(step_mode="m", store_v_seq=True)):
        node(x)
        assert node.v_seq.shape == x.shape and node.v_seq.dtype == torch.float32
        assert torch.equal(node.v_seq[-1], node.v)
        node.reset()
        assert node.v_seq is None and node.v == 0.0
        node.step_mode = "m"
        node(x)
        multi_v_seq = node.v_seq
        node.reset()
        node.step_mode = "s"
        for t in range(x.shape[0]):
            node(x[t])
            assert node.v_seq.shape == (t + 1,) + x.shape[1:]
        assert torch.equal(node.v_seq, multi_v_seq)
        node.reset()
        assert node.v_seq is None
        node(torch.randn(4, 3))  # after a reset: a new sequence
        assert node.v_seq.shape == (1, 4, 3)
    empty = TutorialLIF(step_mode="m", store_v_seq=True)
    out = empty(torch.empty(0, 2, 3))
    assert out.shape == (0, 2, 3) and empty.v_seq.shape == (0, 2, 3) and empty.v.shape == (2, 3)


def test_custom_reset_and_detach():
    node = QIF(step_mode="m")
    x1, x2 = torch.randn(4, 6) + 0.5, (torch.randn(4, 6) + 0.5).requires_grad_(True)
    node(x1.requires_grad_(True))
    assert node.v.requires_grad
    node.detach()
    assert not node.v.requires_grad
    v_mid = node.v.clone()
    out = node(x2)
    # truncated: the second call's gradient is that of a loop started from the detached v
    s_ref, _, _ = plain_loop(x2, node, charge_qif, v=v_mid)
    assert torch.equal(out, s_ref)
    g = torch.autograd.grad(out.sum(), [x2, node.a0])
    g_ref = torch.autograd.grad(s_ref.sum(), [x2, node.a0])
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, **GRAD_TOL)
    functional.reset_net(nn.Sequential(node))
    assert node.v == 0.0
    node(torch.randn(4, 6))
    with pytest.raises(ValueError, match="QIF: the stored membrane potential has shape"):
        node(torch.randn(4, 7))


def test_base_node_without_charge_raises_not_implemented():
    class NoCharge(neuron.BaseNode):
        pass

    for step_mode, x in (("s", torch.randn(3)), ("m", torch.randn(2, 3))):
        with pytest.raises(NotImplementedError, match="NoCharge must define neuronal_charge"):
            NoCharge(step_mode=step_mode)(x)


def test_builtin_neuronal_methods_are_the_kernels_equations():
    """LIFNode().neuronal_charge(x) etc. work as in SpikingJelly and compute what the fused kernel computes."""
    x = torch.randn(4, 5) + 0.5
    configs = [(neuron.IFNode, {}), (neuron.LIFNode, dict(tau=3.0, v_reset=-0.2)),
               (neuron.LIFNode, dict(decay_input=False, v_reset=None)), (neuron.ParametricLIFNode, dict(init_tau=3.0))]
    for cls, kw in configs:
        node, fused = cls(**kw), cls(**kw)
        for t in range(3):
            node.v_float_to_tensor(x)
            node.neuronal_charge(x)
            spike = node.neuronal_fire()
            node.neuronal_reset(spike)
            assert torch.equal(spike, fused(x))
            assert torch.equal(node.v, fused.v)


# ---- custom surrogates on a built-in neuron ----

class SteeperSigmoid(surrogate.Sigmoid):
    """A built-in surrogate's subclass overriding forward: the kernel's Sigmoid formula must not be used."""

    def forward(self, x):
        return SquareSpike.apply(x)


@pytest.mark.parametrize("make_sg", [lambda: SquareSpike.apply, lambda: SquareSurrogate(), lambda: SteeperSigmoid()],
                         ids=["autograd.Function.apply", "SurrogateFunctionBase subclass", "Sigmoid subclass"])
@pytest.mark.parametrize("cls", ["LIF", "PLIF"])
@pytest.mark.parametrize("step_mode", ["s", "m"])
def test_custom_surrogate_on_builtin_neuron(make_sg, cls, step_mode, monkeypatch):
    """A surrogate the core has no formula for, whose forward is heaviside: the fused op runs (once per call) and
    its backward takes the surrogate's derivative as surrogate_grad_seq, giving exactly the gradients of the same
    neuron written as a plain PyTorch loop."""
    forward_calls, surrogate_grads = spy_neuron_ops(monkeypatch)
    sg = make_sg()
    kw = dict(surrogate_function=sg, step_mode=step_mode, v_reset=None)
    node = neuron.LIFNode(tau=2.0, **kw) if cls == "LIF" else neuron.ParametricLIFNode(init_tau=2.0, **kw)
    builtin = neuron.LIFNode(tau=2.0, step_mode="m", v_reset=None) if cls == "LIF" else \
        neuron.ParametricLIFNode(init_tau=2.0, step_mode="m", v_reset=None)
    x = (torch.randn(6, 8) * 1.5 + 0.6).requires_grad_(True)
    out = node(x) if step_mode == "m" else torch.stack([node(x[t]) for t in range(6)])
    assert len(forward_calls) == (1 if step_mode == "m" else 6)  # the fused op, not the step loop
    # plain PyTorch: the kernels' charge with the custom surrogate
    k = (lambda: node.w.sigmoid()) if cls == "PLIF" else (lambda: 1.0 / 2.0)
    x_ref = x.detach().clone().requires_grad_(True)
    s_ref, _, v_ref = plain_loop(x_ref, node, lambda v, xt, n: v + (xt - v) * k())
    assert torch.equal(out, s_ref)
    params = list(node.parameters())
    g, *g_params = torch.autograd.grad(out.sum() + node.v.sum(), [x] + params)
    # Every fused backward took the custom derivative as surrogate_grad_seq.
    assert len(surrogate_grads) == len(forward_calls) and all(t is not None for t in surrogate_grads)
    g_ref, *g_params_ref = torch.autograd.grad(s_ref.sum() + v_ref.sum(), [x_ref] + params)
    for a, b in zip([g] + g_params, [g_ref] + g_params_ref):
        torch.testing.assert_close(a, b, **GRAD_TOL)
    # and the built-in Sigmoid gives another gradient: the custom one was not replaced by a kernel formula
    g_builtin, = torch.autograd.grad(builtin(x).sum() + builtin.v.sum(), x)
    assert not torch.allclose(g, g_builtin)


def spy_neuron_ops(monkeypatch):
    """Record the fused forward's calls and the surrogate_grad_seq of every fused backward."""
    forward_calls, surrogate_grads = [], []
    forward, backward = _ops.neuron.neuron_forward, _ops.neuron.neuron_backward

    def spy_forward(*args, **kw):
        forward_calls.append(1)
        return forward(*args, **kw)

    def spy_backward(*args, **kw):
        surrogate_grads.append(args[6])  # surrogate_grad_seq
        return backward(*args, **kw)

    monkeypatch.setattr(_ops.neuron, "neuron_forward", spy_forward)
    monkeypatch.setattr(_ops.neuron, "neuron_backward", spy_backward)
    return forward_calls, surrogate_grads


class _StrictSpike(torch.autograd.Function):
    """Fires at u > 0, not u >= 0: heaviside everywhere but at u == 0 exactly."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x > 0).to(x)

    @staticmethod
    def backward(ctx, grad):
        x, = ctx.saved_tensors
        return grad / (1.0 + x * x) ** 2


class _EarlySpike(torch.autograd.Function):
    """Fires a quarter below the threshold."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x >= -0.25).to(x)

    @staticmethod
    def backward(ctx, grad):
        x, = ctx.saved_tensors
        return grad * torch.sigmoid(x) * (1 - torch.sigmoid(x))


@pytest.mark.parametrize("sg, x", [
    (_EarlySpike.apply, torch.tensor([[0.9, 1.8, 0.2], [0.1, 0.3, 1.6], [0.8, 2.0, 0.7], [1.5, 0.4, 0.3]])),
    # x = 2 from V = 0 gives H = 1 = v_threshold (exact in float32): heaviside fires there, u > 0 does not.
    (_StrictSpike.apply, torch.tensor([[2.0, 0.5, 2.0], [2.0, 1.0, 0.0], [0.5, 2.0, 3.0], [1.0, 0.5, 2.0]])),
], ids=["fires-early", "strict-at-threshold"])
@pytest.mark.parametrize("step_mode", ["s", "m"])
def test_custom_surrogate_that_is_not_heaviside_runs_the_step_loop(sg, x, step_mode):
    """A custom surrogate whose forward is not heaviside(u): the neuron gives that function's own spikes, state
    and gradients (the plain PyTorch loop's), not the kernel's heaviside spikes."""
    node = neuron.LIFNode(tau=2.0, surrogate_function=sg, step_mode=step_mode)
    x = x.clone().requires_grad_(True)
    out = node(x) if step_mode == "m" else torch.stack([node(x[t]) for t in range(x.shape[0])])
    x_ref = x.detach().clone().requires_grad_(True)
    s_ref, _, v_ref = plain_loop(x_ref, node, lambda v, xt, n: v + (xt - v) * 0.5)
    heaviside = neuron.LIFNode(tau=2.0, step_mode="m")(x.detach())
    assert not torch.equal(s_ref, heaviside)  # the case tells the two apart
    assert torch.equal(out, s_ref)
    assert torch.equal(node.v, v_ref)
    g, = torch.autograd.grad((out * torch.arange(1.0, 4.0)).sum() + node.v.sum(), x)
    g_ref, = torch.autograd.grad((s_ref * torch.arange(1.0, 4.0)).sum() + v_ref.sum(), x_ref)
    torch.testing.assert_close(g, g_ref, **GRAD_TOL)


def test_spiking_false_surrogate_runs_its_primitive():
    """SpikingJelly's neuronal_fire returns the primitive when spiking=False; the fused kernel would give 0/1."""
    node = neuron.LIFNode(surrogate_function=surrogate.Sigmoid(spiking=False), step_mode="m")
    x = torch.randn(5, 4)
    s_ref, _, _ = plain_loop(x, node, lambda v, xt, n: v + (xt - v) * 0.5)
    out = node(x)
    assert torch.equal(out, s_ref)
    assert ((out > 0) & (out < 1)).any()
    with pytest.raises(ValueError, match="LIFNode: spike_dtype=torch.uint8 and spike_tensor=True store 0/1"):
        neuron.LIFNode(surrogate_function=surrogate.Sigmoid(spiking=False), spike_dtype=torch.uint8)(x[0])


def test_surrogate_subclass_without_forward_names_itself():
    class Bare(surrogate.SurrogateFunctionBase):
        def __init__(self):
            super().__init__(1.0)

    with pytest.raises(NotImplementedError, match="Bare must define forward"):
        neuron.IFNode(surrogate_function=Bare())(torch.randn(3))


# ---- dtypes and spike forms of the loop path ----

@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_custom_spike_dtype_and_spike_tensor(dtype):
    x = (torch.randn(4, 6) * 1.5 + 0.6).to(dtype)
    base = TutorialLIF(step_mode="m")(x)
    assert base.dtype == dtype
    as_u8 = TutorialLIF(step_mode="m", spike_dtype=torch.uint8)(x)
    assert as_u8.dtype == torch.uint8 and torch.equal(as_u8, base.to(torch.uint8))
    xg = x.clone().requires_grad_(True)
    st = TutorialLIF(step_mode="m", spike_tensor=True)(xg)
    assert isinstance(st, spikeops.SpikeTensor) and st.dtype == dtype
    assert torch.equal(st.spikes, base.to(torch.uint8))
    g, = torch.autograd.grad(st.dense().float().sum(), xg)
    g_ref, = torch.autograd.grad(TutorialLIF(step_mode="m")(xg).float().sum(), xg)
    torch.testing.assert_close(g, g_ref, **GRAD_TOL)


def test_custom_input_checks():
    with pytest.raises(TypeError, match="TutorialLIF"):
        TutorialLIF(step_mode="m")(torch.ones(3, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="TutorialLIF: in multi-step mode x_seq must be"):
        TutorialLIF(step_mode="m")(torch.tensor(1.0))
    assert TutorialLIF(step_mode="m")(torch.ones(3, 2)).shape == (3, 2)  # and a valid input runs


# ---- the built-ins keep the fused kernels; what cannot go to the runtime is refused ----

def test_builtins_call_the_fused_op_and_custom_neurons_do_not(monkeypatch):
    calls = []
    fused = _ops.neuron.neuron_forward

    def counting(*args, **kw):
        calls.append(1)
        return fused(*args, **kw)

    monkeypatch.setattr(_ops.neuron, "neuron_forward", counting)
    x = torch.randn(3, 4)
    # A surrogate the core has no formula for keeps the fused kernel too (its derivative goes to the backward).
    for node in (neuron.IFNode(step_mode="m"), neuron.LIFNode(step_mode="m"), neuron.ParametricLIFNode(),
                 neuron.LIFNode(surrogate_function=surrogate.ATan()),
                 neuron.LIFNode(surrogate_function=SteeperSigmoid()),
                 neuron.LIFNode(surrogate_function=SquareSpike.apply),
                 neuron.QIFNode(step_mode="m"), neuron.EIFNode(step_mode="m"), neuron.IzhikevichNode(step_mode="m"),
                 neuron.ALIFNode(step_mode="m"), neuron.KLIFNode(step_mode="m"), neuron.CUBALIFNode(step_mode="m"),
                 neuron.ComplementaryLIFNode(step_mode="m"), neuron.GatedLIFNode(3)):
        calls.clear()
        node(x)
        assert calls == [1], type(node).__name__

    class SameAsLIF(neuron.LIFNode):  # no step method overridden: still the built-in LIF
        pass

    for node in (SameAsLIF(step_mode="m"), TutorialLIF(step_mode="m"), QIF(step_mode="m"), RefractoryIF(),
                 neuron.LIFNode(surrogate_function=surrogate.Sigmoid(spiking=False)),
                 neuron.ComplementaryLIFNode(step_mode="m", store_state_seqs=True)):
        calls.clear()
        node(x)
        assert calls == ([1] if isinstance(node, SameAsLIF) else []), type(node).__name__


def test_export_refuses_loop_neurons(tmp_path):
    for node in (TutorialLIF(), neuron.LIFNode(surrogate_function=SquareSpike.apply)):
        net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), node)
        with pytest.raises(ValueError, match="PyTorch step loop"):
            spikeops.export(net, tmp_path / "m.spk", torch.randn(1, 2, 2), T=3)


def test_torch_compile_custom_neuron():
    x = (torch.randn(5, 3, 4) * 1.5 + 0.6).requires_grad_(True)
    eager, compiled_node = QIF(step_mode="m"), QIF(step_mode="m")
    compiled = torch.compile(compiled_node, backend="aot_eager")
    out, out_c = eager(x), compiled(x)
    assert torch.equal(out, out_c)
    g = torch.autograd.grad(out.sum(), [x, eager.a0])
    g_c = torch.autograd.grad(out_c.sum(), [x, compiled_node.a0])
    for a, b in zip(g, g_c):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.cuda
def test_custom_neuron_and_surrogate_on_cuda():
    x = torch.randn(5, 3, 4) * 1.5 + 0.6
    makers = (lambda: QIF(step_mode="m"), lambda: neuron.LIFNode(step_mode="m", surrogate_function=SquareSurrogate()))
    for make in makers:
        cpu, gpu = make(), make().cuda()
        xc, xg = x.clone().requires_grad_(True), x.cuda().requires_grad_(True)
        out_c, out_g = cpu(xc), gpu(xg)
        assert out_g.device.type == "cuda" and torch.equal(out_g.cpu(), out_c)
        g_c, = torch.autograd.grad(out_c.sum(), xc)
        g_g, = torch.autograd.grad(out_g.sum(), xg)
        torch.testing.assert_close(g_g.cpu(), g_c, rtol=1e-5, atol=1e-6)


def test_single_step_v_seq_is_detached_with_the_state():
    node = neuron.LIFNode(store_v_seq=True)
    x = (torch.randn(3, 5) + 0.5).requires_grad_(True)
    for t in range(3):
        node(x[t])
    assert node.v_seq.requires_grad
    node.detach()
    assert not node.v_seq.requires_grad and not node.v.requires_grad


@pytest.mark.parametrize("make_sg", [lambda: SquareSpike.apply, lambda: SquareSurrogate()],
                         ids=["autograd.Function.apply", "SurrogateFunctionBase subclass"])
def test_torch_compile_fullgraph_with_custom_surrogate(make_sg):
    """Under torch.compile a surrogate without a kernel formula runs the step loop (the fused path's spike check
    is data-dependent and its derivative uses autograd.grad): same spikes and gradients as eager."""
    x = (torch.randn(5, 3, 4) * 1.5 + 0.6).requires_grad_(True)
    eager, node = neuron.LIFNode(surrogate_function=make_sg(), step_mode="m"), \
        neuron.LIFNode(surrogate_function=make_sg(), step_mode="m")
    compiled = torch.compile(node, backend="aot_eager", fullgraph=True)
    out, out_c = eager(x), compiled(x)
    assert torch.equal(out, out_c)
    g, = torch.autograd.grad(out.sum(), x)
    g_c, = torch.autograd.grad(out_c.sum(), x)
    torch.testing.assert_close(g, g_c, rtol=1e-6, atol=1e-6)
