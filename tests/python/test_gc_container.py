"""layer.GCContainer (gradient checkpointing of blocks with neurons): the same outputs, gradients and neuron
states as the network without containers, in both step modes, across chunks of time and with random layers;
and what the forward keeps for the backward is only the blocks' inputs."""

from __future__ import annotations

import copy
import sys

import pytest
import torch
from torch import nn

from spikeops import SpikeTensor, base, functional, layer, neuron, surrogate
from spikeops._allocator import mallinfo2


def lif(step_mode="m", **kw):
    return neuron.LIFNode(tau=2.0, surrogate_function=surrogate.ATan(), step_mode=step_mode, **kw)


def mlp(gc: bool, step_mode="m", hidden=48, spike_tensor=True, dropout=0.0):
    """An MLP in three blocks (Linear, neuron); the hidden spikes are SpikeTensors read by the spike GEMM."""
    blocks = [
        [layer.Linear(20, hidden, step_mode=step_mode), lif(step_mode, spike_tensor=spike_tensor)],
        [layer.Linear(hidden, hidden, step_mode=step_mode), layer.Dropout(dropout, step_mode=step_mode),
         lif(step_mode, spike_tensor=spike_tensor)],
        [layer.Linear(hidden, 5, step_mode=step_mode), lif(step_mode)],
    ]
    if gc:
        return nn.Sequential(*[layer.GCContainer(*b) for b in blocks])
    return nn.Sequential(*[m for b in blocks for m in b])


def twins(**kw):
    torch.manual_seed(0)
    plain = mlp(False, **kw)
    with torch.no_grad():
        for p in plain.parameters():
            p.mul_(4)  # every layer fires
    gc = mlp(True, **kw)
    # the same parameters, in the same order
    for p_gc, p in zip(gc.parameters(), plain.parameters(), strict=True):
        with torch.no_grad():
            p_gc.copy_(p)
    return plain, gc


def run(net, x, seed=0):
    torch.manual_seed(seed)
    functional.reset_net(net)
    out = net(x)
    (out.float() * torch.linspace(-1, 1, out.shape[-1])).sum().backward()
    return out


def assert_same_training_step(plain, gc, x):
    out_plain = run(plain, x)
    out_gc = run(gc, x)
    assert torch.equal(out_gc.float(), out_plain.float())
    assert out_plain.float().sum() > 0  # the test network fires
    for (name, p_gc), p in zip(gc.named_parameters(), plain.parameters()):
        assert p.grad is not None and p.grad.abs().sum() > 0, name
        torch.testing.assert_close(p_gc.grad, p.grad, rtol=1e-6, atol=1e-7, msg=name)
    # the neurons end in the forward's final state, not in the recomputation's
    for n_gc, n in zip([m for m in gc.modules() if isinstance(m, neuron.BaseNode)],
                       [m for m in plain.modules() if isinstance(m, neuron.BaseNode)]):
        assert torch.equal(n_gc.v, n.v)


@pytest.mark.parametrize("spike_tensor", [True, False])
def test_multi_step_same_as_without(spike_tensor):
    plain, gc = twins(spike_tensor=spike_tensor)
    x = torch.rand(6, 7, 20) * 3
    assert_same_training_step(plain, gc, x)


def test_with_dropout_same_random_masks():
    plain, gc = twins(dropout=0.3)
    plain.train(), gc.train()
    x = torch.rand(6, 7, 20) * 3
    assert_same_training_step(plain, gc, x)


def test_single_step_loop_same_as_without():
    """Each step is its own checkpoint: the recomputation of step t must start from v at the start of step t."""
    plain, gc = twins(step_mode="s")

    def over_time(net):
        def f(x_seq):
            return torch.stack([net(x) for x in x_seq])
        return f

    x = torch.rand(5, 4, 20) * 3
    functional.reset_net(plain), functional.reset_net(gc)
    torch.manual_seed(0)
    a = over_time(plain)(x)
    a.sum().backward()
    torch.manual_seed(0)
    b = over_time(gc)(x)
    b.sum().backward()
    assert torch.equal(a.float(), b.float())
    for p_gc, p in zip(gc.parameters(), plain.parameters()):
        torch.testing.assert_close(p_gc.grad, p.grad, rtol=1e-6, atol=1e-7)


def test_state_carried_across_chunks():
    """Two forwards of consecutive chunks of time before one backward: the gradient of the first chunk flows
    through the state into the second, and each chunk is recomputed from its own initial state."""
    plain, gc = twins()
    x = torch.rand(8, 3, 20) * 3
    outs = {}
    for name, net in (("plain", plain), ("gc", gc)):
        functional.reset_net(net)
        y = torch.cat([net(x[:4]), net(x[4:])])
        (y.float() * torch.linspace(-1, 1, y.shape[-1])).sum().backward()
        outs[name] = y
    assert torch.equal(outs["gc"].float(), outs["plain"].float())
    for p_gc, p in zip(gc.parameters(), plain.parameters()):
        torch.testing.assert_close(p_gc.grad, p.grad, rtol=1e-6, atol=1e-7)


def test_no_grad_is_a_plain_sequential():
    plain, gc = twins()
    x = torch.rand(6, 7, 20) * 3
    with torch.no_grad():
        functional.reset_net(plain), functional.reset_net(gc)
        assert torch.equal(gc(x).float(), plain(x).float())


def test_under_torch_compile():
    """The containers run eagerly inside a compiled network (a graph break), with the same results."""
    plain, gc = twins()
    x = torch.rand(6, 7, 20) * 3
    assert_same_training_step(plain, torch.compile(gc, backend="aot_eager"), x)


def test_output_stays_a_spike_tensor():
    block = layer.GCContainer(layer.Linear(20, 8, step_mode="m"), lif(spike_tensor=True))
    y = block(torch.rand(3, 2, 20) * 3)
    assert isinstance(y, SpikeTensor) and y.spikes.dtype == torch.uint8 and y.requires_grad


def _heap_bytes() -> int:
    info = mallinfo2()
    return info.uordblks + info.hblkhd


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads glibc's mallinfo2")
def test_forward_keeps_only_block_inputs():
    """The memory a training forward leaves allocated (what the backward needs): with containers it is about
    the blocks' 1-byte inputs, without them it includes the float32 membrane potentials of every step."""
    try:
        _heap_bytes()
    except (OSError, AttributeError):
        pytest.skip("not glibc >= 2.33 (no mallinfo2)")
    T, B, H = 8, 64, 1024
    kept = {}
    for gc in (False, True):
        torch.manual_seed(0)
        net = mlp(gc, hidden=H)
        x = torch.rand(T, B, 20) * 3
        functional.reset_net(net)
        net(x).sum().backward()  # packed weights cached, lazy buffers made
        functional.reset_net(net)
        before = _heap_bytes()
        out = net(x)
        kept[gc] = _heap_bytes() - before
        out.sum().backward()
    h_seq = T * B * H * 4  # one layer's float32 membrane potentials
    assert kept[False] > 2 * h_seq, kept
    assert kept[True] < h_seq, kept


def test_bad_arguments():
    with pytest.raises(TypeError, match="no spike compressor"):
        layer.GCContainer(None, layer.Linear(2, 2))

    class Stateful(base.MemoryModule):
        def forward(self, x):
            return x

    with pytest.raises(TypeError, match="_memories"):
        layer.GCContainer(Stateful())(torch.rand(2, requires_grad=True))


def test_memory_state_round_trip():
    node = lif()
    node(torch.rand(3, 4) * 3)
    state = node.memory_state()
    assert set(state) == {"v", "v_seq"} and state["v"] is node.v
    v = node.v
    node.reset()
    node.load_memory_state(state)
    assert node.v is v
    node2 = copy.deepcopy(node)
    assert torch.equal(node2.v, v)
