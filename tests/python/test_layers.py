"""Step-mode-aware layers, containers and the network-level helpers in ``functional``; torch.compile of a small
multi-step network; a tiny training run.

A layer in ``step_mode='m'`` must equal the plain torch layer applied to every time step (loop over t and
stack); in ``'s'`` it is the plain torch layer. A network run step by step equals the same network run on
the whole sequence.
"""

import copy

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from spikeops import functional, layer, neuron, surrogate

T, N = 4, 3


def per_step(module, x_seq):
    """The reference for step_mode='m': the torch module applied to each time step, stacked."""
    return torch.stack([module(x_seq[t]) for t in range(x_seq.shape[0])])


# (spikeops layer factory, torch layer factory, per-step input shape)
LAYER_CASES = {
    "Linear": (lambda sm: layer.Linear(6, 5, step_mode=sm), lambda: nn.Linear(6, 5), (N, 6)),
    "Linear-nobias-extra-dims": (lambda sm: layer.Linear(6, 5, bias=False, step_mode=sm),
                                 lambda: nn.Linear(6, 5, bias=False), (N, 2, 6)),
    "Conv2d": (lambda sm: layer.Conv2d(2, 4, 3, padding=1, step_mode=sm),
               lambda: nn.Conv2d(2, 4, 3, padding=1), (N, 2, 7, 5)),
    "Conv2d-stride-groups": (lambda sm: layer.Conv2d(4, 6, 3, stride=2, groups=2, bias=False, step_mode=sm),
                             lambda: nn.Conv2d(4, 6, 3, stride=2, groups=2, bias=False), (N, 4, 8, 7)),
    "Flatten": (lambda sm: layer.Flatten(step_mode=sm), lambda: nn.Flatten(), (N, 2, 3, 4)),
    "Flatten-partial": (lambda sm: layer.Flatten(1, 2, step_mode=sm), lambda: nn.Flatten(1, 2), (N, 2, 3, 4)),
    "MaxPool2d": (lambda sm: layer.MaxPool2d(2, step_mode=sm), lambda: nn.MaxPool2d(2), (N, 2, 6, 5)),
    "MaxPool2d-ceil": (lambda sm: layer.MaxPool2d(3, 2, padding=1, ceil_mode=True, step_mode=sm),
                       lambda: nn.MaxPool2d(3, 2, padding=1, ceil_mode=True), (N, 2, 7, 6)),
    "AvgPool2d": (lambda sm: layer.AvgPool2d(2, step_mode=sm), lambda: nn.AvgPool2d(2), (N, 2, 6, 5)),
    "AvgPool2d-pad": (lambda sm: layer.AvgPool2d(3, 1, padding=1, count_include_pad=False, step_mode=sm),
                      lambda: nn.AvgPool2d(3, 1, padding=1, count_include_pad=False), (N, 2, 5, 5)),
    "BatchNorm2d-eval": (lambda sm: layer.BatchNorm2d(2, step_mode=sm).eval(),
                         lambda: nn.BatchNorm2d(2).eval(), (N, 2, 4, 4)),
    "Dropout-eval": (lambda sm: layer.Dropout(0.5, step_mode=sm).eval(),
                     lambda: nn.Dropout(0.5).eval(), (N, 6)),
}


def randomize_buffers(module):
    # Give BatchNorm non-trivial running statistics and affine parameters, so eval mode is not an identity.
    if isinstance(module, nn.BatchNorm2d):
        with torch.no_grad():
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
            module.weight.uniform_(0.5, 1.5)
            module.bias.uniform_(-0.5, 0.5)
    return module


@pytest.mark.parametrize("case", list(LAYER_CASES))
def test_multi_step_layer_equals_torch_layer_per_step(case):
    make, make_torch, step_shape = LAYER_CASES[case]
    m = randomize_buffers(make("m"))
    ref = make_torch().train(m.training)
    ref.load_state_dict(m.state_dict())
    x_seq = torch.randn((T,) + step_shape, requires_grad=True)
    y = m(x_seq)
    expected = per_step(ref, x_seq)
    assert y.shape == expected.shape and y.shape[:2] == (T, N)
    assert_close(y, expected)
    # Gradients flow to the input and the parameters as through the per-step loop.
    g = torch.randn_like(y)
    grads = torch.autograd.grad((y * g).sum(), [x_seq] + list(m.parameters()))
    ref_grads = torch.autograd.grad((expected * g).sum(), [x_seq] + list(ref.parameters()))
    for a, b in zip(grads, ref_grads):
        assert_close(a, b)


@pytest.mark.parametrize("case", list(LAYER_CASES))
def test_single_step_layer_is_the_torch_layer(case):
    make, make_torch, step_shape = LAYER_CASES[case]
    s = randomize_buffers(make("s"))
    assert s.step_mode == "s"
    ref = make_torch().train(s.training)
    ref.load_state_dict(s.state_dict())
    x = torch.randn(step_shape)
    assert torch.equal(s(x), ref(x))


def test_layers_default_to_single_step_and_show_step_mode():
    lin = layer.Linear(3, 2)
    assert lin.step_mode == "s"
    assert "step_mode=s" in repr(lin)
    functional.set_step_mode(lin, "m")
    assert "step_mode=m" in repr(lin)


def test_batchnorm_multi_step_train_uses_statistics_over_time_and_batch():
    bn = layer.BatchNorm2d(3, step_mode="m")
    ref = nn.BatchNorm2d(3)
    x_seq = torch.randn(T, N, 3, 4, 5) * 2 + 1
    # Make the time steps differ in scale: per-step statistics would then give a different result.
    x_seq = x_seq * torch.arange(1, T + 1).view(T, 1, 1, 1, 1)
    y = bn(x_seq)
    expected = ref(x_seq.flatten(0, 1)).view(x_seq.shape)
    assert_close(y, expected)
    assert_close(bn.running_mean, ref.running_mean)
    assert_close(bn.running_var, ref.running_var)
    assert bn.num_batches_tracked.item() == 1
    assert not torch.allclose(y, per_step(nn.BatchNorm2d(3), x_seq), atol=1e-3)


def test_dropout_multi_step_train_draws_a_mask_per_step():
    drop = layer.Dropout(0.5, step_mode="m")
    y = drop(torch.ones(T, 1, 400))
    assert y.shape == (T, 1, 400)
    assert set(y.unique().tolist()) == {0.0, 2.0}  # kept elements are scaled by 1 / (1 - p)
    masks = (y != 0)
    assert not torch.equal(masks[0], masks[1])  # documented: each time step draws its own mask
    assert 0.3 < masks.float().mean().item() < 0.7


# ---------------------------------------------------------------------------------------------------------
# Containers
# ---------------------------------------------------------------------------------------------------------

def test_seq_to_ann_container_eval_equals_per_step():
    conv, bn = nn.Conv2d(2, 4, 3, padding=1), randomize_buffers(nn.BatchNorm2d(4))
    container = layer.SeqToANNContainer(conv, bn).eval()
    x_seq = torch.randn(T, N, 2, 5, 6)
    y = container(x_seq)
    assert y.shape == (T, N, 4, 5, 6)
    assert_close(y, per_step(nn.Sequential(conv, bn), x_seq))


def test_seq_to_ann_container_train_batchnorm_statistics_over_t_times_n():
    conv, bn = nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4)
    ref_conv, ref_bn = copy.deepcopy(conv), copy.deepcopy(bn)
    container = layer.SeqToANNContainer(conv, bn).train()
    x_seq = torch.randn(T, N, 2, 5, 6) * torch.arange(1, T + 1).view(T, 1, 1, 1, 1)
    y = container(x_seq)
    expected = ref_bn(ref_conv(x_seq.flatten(0, 1))).view(T, N, 4, 5, 6)
    assert_close(y, expected)
    assert_close(bn.running_mean, ref_bn.running_mean)
    assert_close(bn.running_var, ref_bn.running_var)
    # Normalised over T*N: every channel of the whole sequence has mean ~0 and variance ~1.
    assert_close(y.mean(dim=(0, 1, 3, 4)), torch.zeros(4), atol=1e-5, rtol=0)
    assert_close(y.var(dim=(0, 1, 3, 4), unbiased=False), torch.ones(4), atol=1e-3, rtol=0)


def test_multi_step_container_runs_single_step_modules_per_step():
    lin = nn.Linear(5, 4)
    container = layer.MultiStepContainer(lin, neuron.LIFNode(step_mode="s"))
    x_seq = torch.rand(T, N, 5) * 4
    y = container(x_seq)
    # The same computation with a multi-step neuron.
    node_m = neuron.LIFNode(step_mode="m")
    expected = node_m(per_step(lin, x_seq))
    assert y.shape == (T, N, 4)
    assert torch.equal(y, expected)
    assert 0 < y.sum() < y.numel()
    # The single-step neuron inside kept its state across the steps.
    assert torch.equal(container[1].v, node_m.v)


def test_multi_step_container_with_stateless_module():
    pool = nn.MaxPool2d(2)
    x_seq = torch.randn(T, N, 2, 4, 4)
    assert torch.equal(layer.MultiStepContainer(pool)(x_seq), per_step(pool, x_seq))


# ---------------------------------------------------------------------------------------------------------
# functional: set_step_mode, reset_net, detach_net
# ---------------------------------------------------------------------------------------------------------

def test_set_step_mode_switches_every_layer_and_neuron():
    net = nn.Sequential(layer.Conv2d(1, 2, 3), layer.BatchNorm2d(2), neuron.IFNode(), layer.MaxPool2d(2),
                        layer.Flatten(), nn.Sequential(layer.Linear(8, 2), neuron.ParametricLIFNode()),
                        layer.Dropout(), neuron.LIFNode(), nn.ReLU())
    stepped = [m for m in net.modules() if hasattr(m, "step_mode")]
    assert len(stepped) == 9 and all(m.step_mode == "s" for m in stepped)
    functional.set_step_mode(net, "m")
    assert all(m.step_mode == "m" for m in stepped)
    out = net(torch.rand(T, N, 1, 6, 6) * 3)
    assert out.shape == (T, N, 2)
    functional.set_step_mode(net, "s")
    assert all(m.step_mode == "s" for m in stepped)


def test_network_single_step_t_times_equals_multi_step():
    net_s = nn.Sequential(layer.Flatten(), layer.Linear(12, 7), neuron.LIFNode(tau=2.0))
    net_m = copy.deepcopy(net_s)
    functional.set_step_mode(net_m, "m")
    x_seq = torch.randn(5, 3, 3, 4) * 4

    functional.reset_net(net_s)
    spikes_s = torch.stack([net_s(x_seq[t]) for t in range(5)])
    functional.reset_net(net_m)
    spikes_m = net_m(x_seq)

    assert spikes_m.shape == (5, 3, 7)
    assert 0 < spikes_m.sum() < spikes_m.numel()
    assert torch.equal(spikes_s, spikes_m)
    assert torch.equal(net_s[2].v, net_m[2].v)


def test_network_single_step_equals_multi_step_gradients():
    net_s = nn.Sequential(layer.Flatten(), layer.Linear(12, 7), neuron.LIFNode(tau=2.0))
    net_m = copy.deepcopy(net_s)
    functional.set_step_mode(net_m, "m")
    x_seq = torch.randn(5, 3, 3, 4) * 4
    xs, xm = x_seq.clone().requires_grad_(), x_seq.clone().requires_grad_()
    torch.stack([net_s(xs[t]) for t in range(5)]).sum().backward()
    net_m(xm).sum().backward()
    assert xm.grad.abs().sum() > 0
    assert_close(xs.grad, xm.grad)
    assert_close(net_s[1].weight.grad, net_m[1].weight.grad)


@pytest.mark.parametrize("make, expected", [
    (lambda: neuron.IFNode(step_mode="m"), 0.0),
    (lambda: neuron.IFNode(v_reset=None, step_mode="m"), 0.0),
    (lambda: neuron.LIFNode(v_reset=-0.25, step_mode="m", store_v_seq=True), -0.25),
    (lambda: neuron.ParametricLIFNode(v_reset=0.5, step_mode="m"), 0.5),
    (lambda: neuron.ParametricLIFNode(v_reset=None, step_mode="m", store_v_seq=True), 0.0),
], ids=["IF", "IF-soft", "LIF-v_reset", "PLIF-v_reset", "PLIF-soft"])
def test_reset_net_restores_initial_potential(make, expected):
    node = make()
    net = nn.Sequential(layer.Linear(4, 4, step_mode="m"), nn.Sequential(node))
    assert node.v == expected and isinstance(node.v, float)
    net(torch.rand(T, N, 4) * 3)
    assert isinstance(node.v, torch.Tensor) and node.v.shape == (N, 4)
    assert not torch.all(node.v == expected)
    functional.reset_net(net)
    assert isinstance(node.v, float) and node.v == expected
    assert node.v_seq is None


def test_reset_net_makes_runs_repeatable():
    net = nn.Sequential(layer.Linear(4, 6, step_mode="m"), neuron.LIFNode(step_mode="m"))
    x = torch.rand(T, N, 4) * 3
    first = net(x)
    second = net(x)  # continues from the state the first call left
    functional.reset_net(net)
    third = net(x)
    assert torch.equal(first, third)
    assert not torch.equal(first, second)


@pytest.mark.parametrize("cls", [neuron.IFNode, neuron.LIFNode, neuron.ParametricLIFNode])
def test_detach_net_cuts_the_graph_through_the_state(cls):
    node = cls(step_mode="m")
    net = nn.Sequential(layer.Linear(4, 4, step_mode="m"), node)
    net(torch.rand(T, N, 4, requires_grad=True) * 3)
    assert node.v.requires_grad and node.v.grad_fn is not None
    v = node.v.detach().clone()
    functional.detach_net(net)
    assert not node.v.requires_grad and node.v.grad_fn is None
    assert torch.equal(node.v, v)
    # After a reset the state is a float: detach_net leaves it alone.
    functional.reset_net(net)
    functional.detach_net(net)
    assert node.v == node.v_init_value


def test_truncated_bptt_with_detach_net():
    net = nn.Sequential(layer.Linear(5, 6, step_mode="m"), neuron.LIFNode(step_mode="m"))
    reference = copy.deepcopy(net)
    x1 = (torch.rand(T, N, 5) * 3).requires_grad_()
    x2 = (torch.rand(T, N, 5) * 3).requires_grad_()

    loss1 = net(x1).sum()
    functional.detach_net(net)
    loss2 = net(x2).sum()
    loss2.backward()
    assert x1.grad is None  # nothing flowed back into the first chunk
    assert x2.grad is not None and x2.grad.abs().sum() > 0
    loss1.backward()  # the first chunk's graph is still intact and separate
    assert x1.grad is not None

    # The second chunk's gradients equal those of a run that starts from the detached state.
    with torch.no_grad():
        reference(x1)
    x2_ref = x2.detach().clone().requires_grad_()
    reference(x2_ref).sum().backward()
    assert_close(x2.grad, x2_ref.grad)

    # Without detach_net the gradient of the second chunk's loss does reach the first chunk.
    functional.reset_net(net)
    x1.grad = None
    net(x1)
    net(x2).sum().backward()
    assert x1.grad is not None and x1.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------------------------
# torch.compile
# ---------------------------------------------------------------------------------------------------------

def make_compile_net():
    return nn.Sequential(layer.Linear(8, 16, step_mode="m"), neuron.LIFNode(step_mode="m"),
                         layer.Linear(16, 4, step_mode="m"), neuron.IFNode(v_reset=None, step_mode="m"))


def check_compiled_matches_eager(backend):
    torch._dynamo.reset()
    net = make_compile_net()
    with torch.no_grad():
        net[2].weight.abs_()  # positive weights so the second layer of neurons fires too
    compiled = torch.compile(net, fullgraph=True, backend=backend)
    x = torch.rand(6, 3, 8) * 3

    def run(module):
        functional.reset_net(net)
        xr = x.clone().requires_grad_()
        out = module(xr)
        out.sum().backward()
        return out.detach(), xr.grad, net[0].weight.grad.clone(), net[1].v.detach()

    net.zero_grad()
    eager = run(net)
    net.zero_grad()
    comp = run(compiled)
    net.zero_grad()
    comp_again = run(compiled)  # a second call after reset_net reuses the graph and gives the same
    assert 0 < eager[0].sum() < eager[0].numel()
    for c in (comp, comp_again):
        assert torch.equal(c[0], eager[0])
        assert_close(c[1], eager[1])
        assert_close(c[2], eager[2])
        assert_close(c[3], eager[3])
    assert eager[1].abs().sum() > 0


def test_compile_fullgraph_matches_eager():
    check_compiled_matches_eager("aot_eager")


def test_compile_fullgraph_inductor_matches_eager():
    # Inductor generates and compiles C++ for the non-spikeops ops (about 10-15 s cold on 2 cores).
    check_compiled_matches_eager("inductor")


# ---------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------

def test_tiny_training_run_lowers_the_loss():
    net = nn.Sequential(layer.Linear(20, 10, step_mode="m"),
                        neuron.LIFNode(step_mode="m", surrogate_function=surrogate.ATan()))
    x = torch.rand(8, 16, 20) * 3
    target = nn.functional.one_hot(torch.randint(0, 10, (16,)), 10).float()
    opt = torch.optim.Adam(net.parameters(), lr=0.03)
    losses = []
    for _ in range(20):
        functional.reset_net(net)
        rate = net(x).mean(0)
        loss = nn.functional.mse_loss(rate, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # Some spikes at the start (a silent network would sit at exactly 0.1 with zero surrogate input there).
    assert losses[0] != pytest.approx(0.1)
    assert net[0].weight.grad.abs().sum() > 0
    assert losses[-1] < 0.9 * losses[0], losses
