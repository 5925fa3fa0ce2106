"""SpikeTensor: 1-byte spikes that carry gradients, against the same networks on float 0/1 spikes and against the
plain-PyTorch references (tests/python/reference.py, F.linear, F.conv2d, F.max_pool2d)."""

import pickle
import warnings

import pytest
import torch
import torch.nn.functional as F

import spikeops
from spikeops import SpikeTensor, SpikeTensorDensifyWarning, functional, layer, neuron, spike_tensor, surrogate
from spikeops import to_spike_tensor

import reference
from train_util import rate_mse_losses, scale_parameters


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    """Each test sees the once-per-operation densify warnings afresh."""
    monkeypatch.setattr(spike_tensor, "_warned", set())


def random_spikes(shape, rate=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) < rate).to(torch.uint8)


def saved_bytes(fn):
    """Run fn() and return (its result, the tensors autograd saved for the backward while it ran)."""
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, saved


# ---- the type ----

def test_construction_and_views_of_the_bytes():
    raw = random_spikes((3, 5))
    s = SpikeTensor(raw)
    assert isinstance(s, torch.Tensor) and isinstance(s, SpikeTensor)
    assert s.dtype == torch.float32 and s.shape == (3, 5) and s.device == raw.device
    assert s.spikes is raw and s.spikes.element_size() == 1
    assert torch.equal(s.dense(), raw.float()) and type(s.dense()) is torch.Tensor
    assert int(s.count()) == int(raw.sum())
    assert "SpikeTensor(" in repr(s) and "float32" in repr(s)
    half = SpikeTensor(raw, torch.bfloat16)
    assert half.dtype == torch.bfloat16 and half.dense().dtype == torch.bfloat16
    back = pickle.loads(pickle.dumps(s))
    assert isinstance(back, SpikeTensor) and torch.equal(back.spikes, raw)


def test_construction_errors():
    with pytest.raises(TypeError, match="spikes must be a uint8 tensor"):
        SpikeTensor(torch.zeros(3))
    with pytest.raises(TypeError, match="spikes must be a uint8 tensor"):
        SpikeTensor([0, 1])
    with pytest.raises(TypeError, match="plain uint8 tensor"):
        SpikeTensor(SpikeTensor(random_spikes((2,))))
    with pytest.raises(TypeError, match="dtype must be float32, float16 or bfloat16"):
        SpikeTensor(random_spikes((2,)), torch.int32)
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        to_spike_tensor([1, 0])
    with pytest.raises(TypeError, match="x must be float32/float16/bfloat16, uint8 or bool"):
        to_spike_tensor(torch.ones(3, dtype=torch.int64))
    with pytest.raises(TypeError, match="dtype must be"):
        to_spike_tensor(torch.ones(3), torch.float64)


def test_to_spike_tensor():
    x = torch.tensor([0.0, 1.0, 0.5, -2.0, 0.0], requires_grad=True)
    s = to_spike_tensor(x)
    assert isinstance(s, SpikeTensor) and s.spikes.tolist() == [0, 1, 1, 1, 0] and s.dtype == torch.float32
    (s.dense() * torch.arange(5.0)).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]  # straight through
    assert to_spike_tensor(torch.tensor([0, 2, 1], dtype=torch.uint8)).spikes.tolist() == [0, 1, 1]
    assert to_spike_tensor(torch.tensor([True, False])).spikes.tolist() == [1, 0]
    assert to_spike_tensor(torch.ones(2), torch.float16).dtype == torch.float16
    assert to_spike_tensor(s) is s


SHAPE_OPS = {
    "view": lambda t: t.view(4, 30),
    "reshape": lambda t: t.reshape(2, -1),
    "flatten": lambda t: t.flatten(1),
    "permute": lambda t: t.permute(2, 0, 1),
    "transpose": lambda t: t.transpose(0, 2),
    "t": lambda t: t[0].t(),
    "unsqueeze": lambda t: t.unsqueeze(1),
    "squeeze": lambda t: t[:, :1].squeeze(1),
    "select": lambda t: t[1],
    "slice": lambda t: t[:, 1:4, ::2],
    "bool_index": lambda t: t[torch.tensor([True, False, True, False])],
    "tensor_index": lambda t: t[torch.tensor([3, 0, 0])],
    "index_select": lambda t: t.index_select(2, torch.tensor([5, 1])),
    "narrow": lambda t: t.narrow(1, 2, 3),
    "expand": lambda t: t[:, :1].expand(4, 3, 6),
    "clone": lambda t: t.clone(),
    "contiguous": lambda t: t.permute(1, 0, 2).contiguous(),
    "detach": lambda t: t.detach(),
    "cat_time": lambda t: torch.cat([t, t[:2]], 0),
    "stack_time": lambda t: torch.stack([t[0], t[1], t[2]]),
    "unbind": lambda t: t.unbind(0)[2],
    "split": lambda t: t.split(2, dim=1)[1],
    "chunk": lambda t: t.chunk(2, dim=2)[1],
    "flip": lambda t: t.flip(0),
    "repeat": lambda t: t.repeat(2, 1, 1),
}


@pytest.mark.parametrize("name", list(SHAPE_OPS))
def test_shape_ops_keep_spikes_in_one_byte(name):
    op = SHAPE_OPS[name]
    raw = random_spikes((4, 5, 6))
    with warnings.catch_warnings():
        warnings.simplefilter("error", SpikeTensorDensifyWarning)
        out = op(SpikeTensor(raw))
    assert isinstance(out, SpikeTensor), type(out)
    assert out.spikes.dtype == torch.uint8 and out.dtype == torch.float32
    want = op(raw.float())
    assert out.shape == want.shape
    assert torch.equal(out.dense(), want)


@pytest.mark.parametrize("name", ["view", "permute", "slice", "cat_time", "tensor_index", "expand"])
def test_gradients_flow_through_shape_ops(name):
    op = SHAPE_OPS[name]
    x = torch.randn(4, 5, 6).clamp(min=0).requires_grad_()
    g = torch.randn(op(x.detach()).shape)
    got, = torch.autograd.grad(op(to_spike_tensor(x)), x, g)
    want, = torch.autograd.grad(op(x), x, g)  # straight through: the spikes' gradient is the float path's
    torch.testing.assert_close(got, want)


def test_moves_and_float_conversions_keep_spikes():
    s = SpikeTensor(random_spikes((3, 4)))
    h = s.half()
    assert isinstance(h, SpikeTensor) and h.dtype == torch.float16 and torch.equal(h.spikes, s.spikes)
    assert isinstance(s.to("cpu"), SpikeTensor)
    assert isinstance(s.to(torch.bfloat16), SpikeTensor)
    raw = s.to(torch.uint8)
    assert type(raw) is torch.Tensor and raw.dtype == torch.uint8 and torch.equal(raw, s.spikes)
    assert s.to(torch.int64).dtype == torch.int64 and type(s.bool()) is torch.Tensor


@pytest.mark.parametrize("kernel,stride,padding", [(2, 2, 0), (3, 2, 1), (3, 1, 1), (2, 1, 0)])
def test_max_pool_is_an_or_and_stays_spikes(kernel, stride, padding):
    x = (torch.randn(2, 3, 9, 7) - 0.3).clamp(min=0).requires_grad_()
    s = to_spike_tensor(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SpikeTensorDensifyWarning)
        out = F.max_pool2d(s, kernel, stride, padding)
        assert isinstance(out, SpikeTensor)
        want = F.max_pool2d((x != 0).float(), kernel, stride, padding)
        assert torch.equal(out.dense(), want)
        g = torch.randn(want.shape)
        got, = torch.autograd.grad(out, x, g)
    x_ref = (x.detach() != 0).float().requires_grad_()
    want_grad, = torch.autograd.grad(F.max_pool2d(x_ref, kernel, stride, padding), x_ref, g)
    torch.testing.assert_close(got, want_grad)


def test_other_ops_densify_visibly():
    raw = random_spikes((4, 6))
    s = SpikeTensor(raw)
    with pytest.warns(SpikeTensorDensifyWarning, match="float copy"):
        doubled = s * 2
    assert type(doubled) is torch.Tensor and torch.equal(doubled, raw.float() * 2)
    with pytest.warns(SpikeTensorDensifyWarning):
        pooled = F.avg_pool1d(s.unsqueeze(0), 2)
    assert type(pooled) is torch.Tensor
    with warnings.catch_warnings():
        warnings.simplefilter("error", SpikeTensorDensifyWarning)
        with pytest.raises(SpikeTensorDensifyWarning):
            s.sum(0)  # a warning per operation, once: sum has not warned yet
        assert torch.equal(s.dense().sum(0), raw.float().sum(0))  # dense() is explicit: no warning


def test_in_place_writes_are_rejected():
    s = SpikeTensor(random_spikes((3,)))
    with pytest.raises(TypeError, match="would write into spikes"):
        s.add_(1)
    with pytest.raises(TypeError, match="would write into spikes"):
        s.zero_()
    with pytest.raises(TypeError, match="would write into spikes"):
        torch.add(torch.ones(3), 1, out=s)
    buf = torch.full((3,), 7.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SpikeTensorDensifyWarning)
        buf.copy_(s)  # writing spikes into a float tensor is the conversion asked for, not a write into spikes
    assert torch.equal(buf, s.dense())


# ---- neurons that write SpikeTensors ----

KINDS = {"IF": neuron.IFNode, "LIF": neuron.LIFNode, "PLIF": neuron.ParametricLIFNode}


@pytest.mark.parametrize("step_mode", ["s", "m"])
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("v_reset", [0.0, None])
def test_neuron_spike_tensor_matches_reference(kind, step_mode, v_reset):
    torch.manual_seed(4)
    x = (torch.randn(6, 3, 7) * 1.5 + 0.8).requires_grad_()
    g = torch.randn(6, 3, 7)
    node = KINDS[kind](v_reset=v_reset, surrogate_function=surrogate.ATan(), step_mode=step_mode,
                       spike_tensor=True)
    if step_mode == "m":
        out = node(x)
    else:
        out = torch.stack([node(x_t) for x_t in x.unbind(0)])
    assert isinstance(out, SpikeTensor) and out.spikes.dtype == torch.uint8
    params = [x] + ([node.w] if kind == "PLIF" else [])
    got = torch.autograd.grad(out, params, g)

    x_ref = x.detach().clone().requires_grad_()
    kw = dict(w=node.w.detach().clone().requires_grad_()) if kind == "PLIF" else {}
    want_s, _, _ = reference.neuron_multistep(x_ref, kind, v_reset=v_reset, surrogate="ATan", **kw)
    assert torch.equal(out.dense(), want_s)
    want = torch.autograd.grad(want_s, [x_ref] + ([kw["w"]] if kw else []), g)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_neuron_spike_tensor_dtype_and_errors():
    x = torch.randn(3, 4, dtype=torch.bfloat16) + 1
    assert neuron.LIFNode(step_mode="m", spike_tensor=True)(x).dtype == torch.bfloat16
    out = neuron.LIFNode(step_mode="m", spike_tensor=True, spike_dtype=torch.float16)(x)
    assert isinstance(out, SpikeTensor) and out.dtype == torch.float16
    with pytest.raises(ValueError, match="spike_tensor=True already stores the spikes in 1 byte"):
        neuron.LIFNode(spike_tensor=True, spike_dtype=torch.uint8)
    assert "spike_tensor=True" in repr(neuron.IFNode(spike_tensor=True))


# ---- layers on SpikeTensors ----

@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_spike_linear_reads_the_bytes_and_keeps_them(dtype):
    x = (torch.randn(5, 4, 70) + 0.5).requires_grad_()
    w = torch.randn(33, 70, dtype=dtype, requires_grad=True)
    b = torch.randn(33, dtype=dtype, requires_grad=True)
    node = neuron.LIFNode(step_mode="m", spike_tensor=True, spike_dtype=dtype)
    g = torch.randn(5, 4, 33, dtype=dtype)

    def run():
        return functional.spike_linear(node(x), w, b)

    out, saved = saved_bytes(run)
    spike_sized = [t for t in saved if t.numel() == x.numel() and t.dtype != torch.float32]
    assert spike_sized and all(t.element_size() == 1 for t in spike_sized), [t.dtype for t in saved]
    got = torch.autograd.grad(out, (x, w, b), g)

    functional.reset_net(node)
    ref_node = neuron.LIFNode(step_mode="m", spike_dtype=dtype)
    x_ref, w_ref, b_ref = (t.detach().clone().requires_grad_() for t in (x, w, b))
    want_out = F.linear(ref_node(x_ref).float(), w_ref.float(), b_ref.float()).to(dtype)
    want = torch.autograd.grad(want_out, (x_ref, w_ref, b_ref), g)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(out, want_out, **tol)
    for a, b_ in zip(got, want):
        torch.testing.assert_close(a, b_, **tol)


CONV_CASES = [dict(stride=1, padding=0, dilation=1, groups=1), dict(stride=2, padding=1, dilation=1, groups=1),
              dict(stride=1, padding=2, dilation=2, groups=1), dict(stride=(2, 1), padding=(0, 1), dilation=1,
                                                                    groups=2)]


@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv2d_on_spike_tensor(case):
    torch.manual_seed(5)
    x = (torch.randn(3, 4, 9, 8) - 0.2).clamp(min=0).requires_grad_()
    conv = layer.Conv2d(4, 6, 3, **case)
    s = to_spike_tensor(x)
    out, saved = saved_bytes(lambda: conv(s))
    assert not [t for t in saved if t.numel() == x.numel() and t.element_size() > 1], \
        "the backward must keep the spikes in 1 byte, not a float copy"
    g = torch.randn(out.shape)
    got = torch.autograd.grad(out, (x, conv.weight, conv.bias), g)
    x_ref = (x.detach() != 0).float().requires_grad_()
    want_out = F.conv2d(x_ref, conv.weight, conv.bias, **case)
    want = torch.autograd.grad(want_out, (x_ref, conv.weight, conv.bias), g)
    torch.testing.assert_close(out, want_out, rtol=1e-5, atol=1e-5)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)
    with torch.no_grad():  # inference: the 1-byte spike convolution
        torch.testing.assert_close(conv(s), want_out, rtol=1e-5, atol=1e-5)


def cnn(spike_tensor: bool, step_mode: str = "m"):
    torch.manual_seed(6)
    return torch.nn.Sequential(
        layer.Conv2d(1, 6, 3, padding=1, step_mode=step_mode),
        neuron.LIFNode(step_mode=step_mode, spike_tensor=spike_tensor),
        layer.MaxPool2d(2, step_mode=step_mode),
        layer.Conv2d(6, 8, 3, step_mode=step_mode),
        neuron.IFNode(step_mode=step_mode, spike_tensor=spike_tensor),
        layer.Flatten(step_mode=step_mode),
        layer.Linear(8 * 2 * 2, 5, step_mode=step_mode, spike_input=True),
        neuron.LIFNode(step_mode=step_mode))


def test_network_gradients_match_float_spikes_and_stay_spikes_between_layers():
    x = torch.rand(4, 3, 1, 8, 8) * 6
    nets = {st: cnn(st) for st in (False, True)}
    grads = {}
    for st, net in nets.items():
        with warnings.catch_warnings():
            warnings.simplefilter("error", SpikeTensorDensifyWarning)  # no hidden float copies in the network
            out = net(x)
            loss = ((out.mean(0) - 0.5) ** 2).sum()
            loss.backward()
        grads[st] = [p.grad for p in net.parameters()]
    assert isinstance(nets[True][:3](x), SpikeTensor)
    for a, b in zip(grads[True], grads[False]):
        assert a.abs().sum() > 0
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_single_step_network_equals_multi_step():
    x = torch.rand(4, 3, 1, 8, 8) * 6
    multi = cnn(True, "m")
    single = cnn(True, "s")
    single.load_state_dict(multi.state_dict())
    out_m = multi(x)
    out_s = torch.stack([single(x_t) for x_t in x.unbind(0)])
    torch.testing.assert_close(out_s, out_m)
    out_m.sum().backward()
    out_s.sum().backward()
    for a, b in zip(single.parameters(), multi.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-6)


def test_mlp_trains_with_the_same_losses_as_float_spikes():
    def make(spike_tensor):
        torch.manual_seed(7)
        return scale_parameters(torch.nn.Sequential(
            layer.Linear(20, 64, step_mode="m"),
            neuron.LIFNode(step_mode="m", surrogate_function=surrogate.ATan(), spike_tensor=spike_tensor),
            layer.Linear(64, 64, step_mode="m", spike_input=True),
            neuron.LIFNode(step_mode="m", surrogate_function=surrogate.ATan(), spike_tensor=spike_tensor),
            layer.Linear(64, 5, step_mode="m", spike_input=True),
            neuron.LIFNode(step_mode="m", surrogate_function=surrogate.ATan())))

    x = torch.rand(8, 16, 20) * 4
    target = F.one_hot(torch.arange(16) % 5, 5).float()
    losses = {st: rate_mse_losses(make(st), x, target, steps=6) for st in (False, True)}
    assert losses[True][-1] < losses[True][0]
    torch.testing.assert_close(torch.tensor(losses[True]), torch.tensor(losses[False]), rtol=1e-5, atol=1e-6)


def test_activation_memory_is_one_byte_per_spike():
    """Between a neuron and a spike layer the graph keeps H (float32, the neuron's) and the spikes in 1 byte."""
    x = (torch.randn(4, 8, 256) + 0.5).requires_grad_()

    def kept(spike_tensor):
        node = neuron.LIFNode(step_mode="m", spike_tensor=spike_tensor)
        lin = layer.Linear(256, 16, step_mode="m", spike_input=True)
        _, saved = saved_bytes(lambda: lin(node(x)))
        return sum(t.numel() * t.element_size() for t in saved if t.numel() == x.numel())

    n = x.numel()
    assert kept(True) == 4 * n + n   # H in float32 + the spikes, transposed, in 1 byte
    assert kept(False) == 4 * n + n  # float spikes are converted to bytes for the backward: the same
    # the difference is the forward: no float spike tensor is written at all with SpikeTensors.


def test_compile_fullgraph():
    torch._dynamo.reset()
    x = torch.rand(4, 3, 1, 8, 8) * 6
    net = cnn(True)
    eager = net(x)
    eager.sum().backward()
    want = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    functional.reset_net(net)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SpikeTensorDensifyWarning)
        out = torch.compile(net, fullgraph=True, backend="aot_eager")(x)
        out.sum().backward()
    torch.testing.assert_close(out, eager)
    for p, g in zip(net.parameters(), want):
        torch.testing.assert_close(p.grad, g, rtol=1e-5, atol=1e-6)


def test_public_names():
    assert spikeops.SpikeTensor is SpikeTensor and spikeops.to_spike_tensor is to_spike_tensor
