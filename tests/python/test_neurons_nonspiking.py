"""NonSpikingIFNode and NonSpikingLIFNode against reference.nonspiking_reference (potentials exact: the same
operations in float32; gradients within a float32 rounding for NonSpikingLIF, whose fused backward adds the
output's and the next step's gradients in another order than autograd does), every decode, dtypes, shapes,
torch.compile and errors."""

import pytest
import torch
from torch import nn

from spikeops import functional, neuron, layer

import reference as ref
from op_log import OpLog

EXACT = dict(rtol=0, atol=0)
DECODES = [None, "max-mem", "max-abs-mem", "mean-mem", "last_mem"]
MODELS = {"IF": (lambda **kw: neuron.NonSpikingIFNode(**kw), None),
          "LIF": (lambda **kw: neuron.NonSpikingLIFNode(**kw), 2.0),
          "LIF3": (lambda **kw: neuron.NonSpikingLIFNode(tau=3.0, **kw), 3.0)}


def _input(shape, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def _as_tensor(out):
    return torch.stack(out) if isinstance(out, list) else out


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("decode", DECODES)
def test_matches_reference(name, decode):
    make, tau = MODELS[name]
    x = _input((7, 3, 5), seed=len(name)).requires_grad_(True)
    out = make(decode=decode)(x)
    x_ref = x.detach().clone().requires_grad_(True)
    out_ref = ref.nonspiking_reference(x_ref, tau, decode)
    if decode is None:
        assert isinstance(out, list) and len(out) == 7  # SpikingJelly returns the list of potentials
    out, out_ref = _as_tensor(out), _as_tensor(out_ref)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, out_ref, **EXACT)
    g = torch.randn_like(out)
    gx, = torch.autograd.grad((out * g).sum(), x)
    gx_ref, = torch.autograd.grad((out_ref * g).sum(), x_ref)
    torch.testing.assert_close(gx, gx_ref, **(EXACT if tau is None else dict(rtol=1e-6, atol=1e-7)))


def test_max_abs_mem_picks_the_larger_magnitude():
    x = torch.tensor([[1.0, -3.0], [-1.5, 2.5]])  # potentials (IF): [1, -3], [-0.5, -0.5]
    out = neuron.NonSpikingIFNode(decode="max-abs-mem")(x)
    assert torch.equal(out, torch.tensor([1.0, -3.0]))


@pytest.mark.parametrize("gradcheck_decode", ["mean-mem", "last_mem"])
def test_gradcheck_float64(gradcheck_decode):
    """Smooth (no spike): the float32 module's gradient is the exact linear map, checked in float64 against
    finite differences of the reference."""
    x = _input((4, 3), seed=3).double().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: ref.nonspiking_reference(t, 2.0, gradcheck_decode).double(), (x,))
    node = neuron.NonSpikingLIFNode(decode=gradcheck_decode)
    xf = x.detach().float().requires_grad_(True)
    g, = torch.autograd.grad(node(xf).sum(), xf)
    g64, = torch.autograd.grad(ref.nonspiking_reference(x, 2.0, gradcheck_decode).sum(), x)
    torch.testing.assert_close(g.double(), g64, rtol=1e-6, atol=1e-7)


def test_every_call_starts_from_zero_and_reset_detach():
    node = neuron.NonSpikingLIFNode(decode="last_mem")
    x = _input((5, 4), seed=4).requires_grad_(True)
    first, second = node(x), node(x)
    assert torch.equal(first, second)
    assert node.v.requires_grad
    functional.detach_net(nn.Sequential(node))
    assert not node.v.requires_grad
    functional.reset_net(nn.Sequential(node))
    assert node.v == 0.0
    assert node.memory_state() == {}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs(dtype):
    x = _input((6, 4), seed=5).to(dtype).requires_grad_(True)
    out = neuron.NonSpikingLIFNode(decode="mean-mem")(x)
    assert out.dtype == dtype
    torch.testing.assert_close(out, ref.nonspiking_reference(x.detach().float(), 2.0, "mean-mem").to(dtype), **EXACT)
    g, = torch.autograd.grad(out.float().sum(), x)
    assert g.dtype == dtype


@pytest.mark.parametrize("shape", [(0, 3, 4), (4, 0, 5), (5, 3, 5, 7)])
def test_shapes(shape):
    x = _input(shape, seed=6)
    out = neuron.NonSpikingIFNode()(x)
    assert len(out) == shape[0] and all(o.shape == shape[1:] for o in out)
    if shape[0] > 0:
        out = neuron.NonSpikingLIFNode(decode="max-mem")(x)
        assert out.shape == shape[1:]
        torch.testing.assert_close(out, ref.nonspiking_reference(x, 2.0, "max-mem"), **EXACT)
    else:
        with pytest.raises(ValueError, match="NonSpikingLIFNode: decode='max-mem' needs at least one time step"):
            neuron.NonSpikingLIFNode(decode="max-mem")(x)


def test_in_a_network_and_torch_compile_fullgraph():
    net = nn.Sequential(layer.Linear(5, 3), neuron.NonSpikingLIFNode(decode="mean-mem"))
    x = _input((4, 2, 5), seed=7)
    out = net(x)
    compiled = torch.compile(net, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(x), out, **EXACT)
    node_list = torch.compile(neuron.NonSpikingIFNode(), backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(torch.stack(node_list(x)), _as_tensor(ref.nonspiking_reference(x)), **EXACT)


def test_multi_step_only():
    node = neuron.NonSpikingIFNode()
    assert node.step_mode == "m"
    with pytest.raises(ValueError, match="NonSpikingIFNode: step_mode can only be 'm'"):
        node.step_mode = "s"
    functional.set_step_mode(nn.Sequential(node), "m")
    with pytest.raises(ValueError, match="NonSpikingIFNode: step_mode can only be 'm'"):
        functional.set_step_mode(nn.Sequential(node), "s")


@pytest.mark.parametrize("make, exc, match", [
    (lambda: neuron.NonSpikingIFNode(decode="max"), ValueError, "NonSpikingIFNode: decode must be one of"),
    (lambda: neuron.NonSpikingLIFNode(decode="last-mem"), ValueError, "NonSpikingLIFNode: decode must be one of"),
    (lambda: neuron.NonSpikingLIFNode(tau=1.0), ValueError, "NonSpikingLIFNode: tau must be a finite number > 1"),
    (lambda: neuron.NonSpikingLIFNode(tau="2"), TypeError, "NonSpikingLIFNode: tau must be a number"),
    (lambda: neuron.NonSpikingIFNode()(torch.ones(3, dtype=torch.int64)), TypeError,
     "NonSpikingIFNode: x_seq must have dtype"),
    (lambda: neuron.NonSpikingIFNode()(torch.tensor(1.0)), ValueError, "NonSpikingIFNode: x_seq must be"),
])
def test_errors(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_defaults_are_spikingjellys():
    node = neuron.NonSpikingLIFNode()
    assert node.tau == 2.0 and node.decode is None and list(node.parameters()) == []
    assert neuron.NonSpikingLIFNode(3.0, "mean-mem").decode == "mean-mem"
    assert neuron.NonSpikingIFNode("last_mem").decode == "last_mem"


@pytest.mark.cuda
def test_cuda_matches_cpu():
    x = _input((6, 3, 4), seed=8)
    out_c = neuron.NonSpikingLIFNode(decode="max-abs-mem")(x)
    out_g = neuron.NonSpikingLIFNode(decode="max-abs-mem")(x.cuda())
    assert out_g.device.type == "cuda"
    torch.testing.assert_close(out_g.cpu(), out_c, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_built_in_models_run_the_fused_kernel(name):
    make, _ = MODELS[name]
    x = _input((6, 4), seed=2).requires_grad_(True)
    with OpLog() as log:
        make(decode="last_mem")(x).sum().backward()
    assert "spikeops.neuron_forward.default" in log.ops and "spikeops.neuron_backward.default" in log.ops
    assert not any(op.startswith("aten.add") for op in log.ops)  # no step loop


def test_a_subclass_with_its_own_charge_runs_its_loop():
    class Halving(neuron.NonSpikingLIFNode):
        def neuronal_charge(self, x):
            self.v = self.v * 0.5 + x

    x = _input((5, 3), seed=4)
    with OpLog() as log:
        out = Halving(decode="last_mem")(x)
    assert not any("spikeops" in op for op in log.ops)
    v = torch.zeros(3)
    for t in range(5):
        v = v * 0.5 + x[t]
    torch.testing.assert_close(out, v, **EXACT)
