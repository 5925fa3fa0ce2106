"""spikeops.export: the file layout (docs/model_format.md), the exported graph run by the plain reference runner
against the original model, the errors, and that exporting leaves the model as it was."""

import json
import struct

import pytest
import torch
from torch import nn

import reference as ref
from neuron_zoo import FUSED_NEURONS
from train_util import scale_parameters
import spikeops
from spikeops import functional, layer, neuron, surrogate
from spikeops.examples import csnn_mnist, lif_fc_mnist


def run_model(net, x_seq, step_mode):
    """The original model on [T, N, ...]: one call in multi-step mode, else one call per step."""
    with torch.no_grad():
        out = net(x_seq) if step_mode == "m" else torch.stack([net(x) for x in x_seq])
    functional.reset_net(net)
    return out


def export_and_run(net, tmp_path, x, T, encoding="direct", seed=None):
    path = tmp_path / "model.spk"
    graph = spikeops.export(net, path, x[:1], T=T, encoding=encoding)
    file_graph, tensors = ref.load_model_file(path)
    assert file_graph == graph
    return graph, tensors, ref.run_model_file(graph, tensors, x, seed=seed)


def assert_counts_match(scores, expected, exact):
    """Spike counts: identical, or (where float summation order differs) off by at most one in a few places."""
    if exact:
        assert torch.equal(scores, expected)
        return
    torch.testing.assert_close(scores, expected, rtol=0, atol=1)
    assert (scores != expected).float().mean() <= 0.05
    assert (scores.argmax(1) != expected.argmax(1)).float().mean() <= 0.125


def read_raw(path):
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return n, json.loads(data[8:8 + n]), data[8:8 + n], data[8 + n:]


# ------------------------------------------------------------------------------------------------ file layout

def small_net():
    g = torch.Generator().manual_seed(3)
    net = nn.Sequential(
        layer.Conv2d(1, 3, 3, step_mode="m"),
        neuron.ParametricLIFNode(init_tau=3.0, v_threshold=0.1 + 0.2, step_mode="m"),
        layer.Flatten(step_mode="m"),
        layer.Linear(3 * 4 * 4, 5, bias=False, step_mode="m"),
        neuron.LIFNode(tau=1 / 0.3, v_reset=None, surrogate_function=surrogate.ATan(), step_mode="m"),
    )
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return net


def test_file_layout(tmp_path):
    net = small_net()
    path = tmp_path / "small.spk"
    graph = spikeops.export(net, str(path), torch.rand(2, 1, 6, 6), T=7)
    n, header, header_bytes, body = read_raw(path)
    json_end = len(header_bytes.rstrip(b" "))
    assert n % 8 == 0 and n - json_end < 8 and header_bytes.endswith(b"}" + b" " * (n - json_end))
    meta = header.pop("__metadata__")
    assert meta["format"] == "spikeops" and meta["format_version"] == "1"
    assert meta["producer"] == f"spikeops {spikeops.__version__}"
    assert all(isinstance(v, str) for v in meta.values())
    assert json.loads(meta["graph"]) == graph
    # tensors in the order the layers name them, back to back, covering the data section exactly
    assert list(header) == ["0.weight", "0.bias", "1.learnable", "3.weight"]
    offset = 0
    for name, info in header.items():
        assert info["dtype"] == "F32"
        begin, end = info["data_offsets"]
        assert begin == offset and end - begin == 4 * torch.Size(info["shape"]).numel()
        offset = end
    assert offset == len(body)
    # the values, byte for byte
    expected = {"0.weight": net[0].weight, "0.bias": net[0].bias, "1.learnable": torch.sigmoid(net[1].w).reshape(1),
                "3.weight": net[3].weight}
    _, tensors = ref.load_model_file(path)
    for name, value in expected.items():
        assert tensors[name].shape == value.shape and torch.equal(tensors[name], value.detach())
    assert graph == {
        "time_steps": 7, "encoding": "direct", "input_shape": [1, 6, 6],
        "layers": [
            {"name": "0", "type": "conv2d", "weight": "0.weight", "bias": "0.bias", "in_channels": 1,
             "out_channels": 3, "kernel_size": [3, 3], "stride": [1, 1], "padding": [0, 0], "dilation": [1, 1],
             "groups": 1, "output_shape": [3, 4, 4]},
            {"name": "1", "type": "neuron", "model": "ParametricLIF", "v_threshold": 0.1 + 0.2, "v_reset": 0.0,
             "tau": 2.0, "decay_input": True, "detach_reset": False, "surrogate": "Sigmoid", "extra": {},
             "state_init": [0.0], "learnable": "1.learnable", "output_shape": [3, 4, 4]},
            {"name": "2", "type": "flatten", "output_shape": [48]},
            {"name": "3", "type": "linear", "weight": "3.weight", "bias": None, "in_features": 48,
             "out_features": 5, "output_shape": [5]},
            {"name": "4", "type": "neuron", "model": "LIF", "v_threshold": 1.0, "v_reset": None, "tau": 1 / 0.3,
             "decay_input": True, "detach_reset": False, "surrogate": "ATan", "extra": {}, "state_init": [0.0],
             "output_shape": [5]},
        ]}
    assert json.loads(meta["graph"])["layers"][1]["v_threshold"] == 0.1 + 0.2  # floats round-trip exactly
    assert [p.name for p in tmp_path.iterdir()] == ["small.spk"]  # no temporary file left behind


def test_file_readable_by_safetensors(tmp_path):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    net = small_net()
    spikeops.export(net, tmp_path / "m.spk", torch.rand(1, 1, 6, 6), T=2)
    loaded = safetensors_torch.load_file(tmp_path / "m.spk")
    assert torch.equal(loaded["0.weight"], net[0].weight.detach())


def test_half_precision_and_channels_last_weights_are_float32_c_order(tmp_path):
    net = small_net()
    net[0].weight.data = net[0].weight.data.to(memory_format=torch.channels_last)
    net[3].half()
    net[3].spike_input = True  # the half Linear takes the float32 spikes of the PLIF neuron as spikes
    spikeops.export(net, tmp_path / "m.spk", torch.rand(1, 1, 6, 6), T=2)
    _, tensors = ref.load_model_file(tmp_path / "m.spk")
    assert torch.equal(tensors["0.weight"], net[0].weight.detach().contiguous())
    assert torch.equal(tensors["3.weight"], net[3].weight.detach().float())


# ------------------------------------------------------------------------------------------------ parity

@pytest.mark.parametrize("encoding", ["direct", "poisson"])
def test_lif_fc_mnist_matches(tmp_path, encoding):
    torch.manual_seed(0)
    net = lif_fc_mnist.build_net()
    with torch.no_grad():
        net[1].weight.mul_(8)  # so that the output neurons fire
    x = torch.rand(16, 1, 28, 28)
    T = 12
    graph, _, scores = export_and_run(net, tmp_path, x, T, encoding, seed=5)
    assert graph["encoding"] == encoding and graph["time_steps"] == T
    g = torch.Generator().manual_seed(5)  # the reference runner's draws, step by step
    x_seq = torch.stack([x] * T) if encoding == "direct" else \
        torch.stack([(torch.rand(x.shape, generator=g) <= x).float() for _ in range(T)])
    expected = run_model(net, x_seq, "m").sum(0)
    assert 0.1 * T < scores.mean() < 0.9 * T
    assert_counts_match(scores, expected, exact=True)  # the same ops on the same shapes


@pytest.mark.parametrize("channels_last", [True, False])
def test_csnn_mnist_matches(tmp_path, channels_last):
    torch.manual_seed(0)
    net = csnn_mnist.build_net(channels_last=channels_last)
    scale_parameters(net)
    x = torch.rand(16, 1, 28, 28)
    T = 6
    graph, _, scores = export_and_run(net, tmp_path, x, T)
    node = ".node" if channels_last else ""  # ChannelsLast wraps the neuron: it is exported as its child
    assert [layer["name"] for layer in graph["layers"]] == ["0", "1", "2" + node, "3", "4", "5" + node, "6", "7", "8"]
    expected = run_model(net, torch.stack([x] * T), "m").sum(0)
    with torch.no_grad():
        direct = csnn_mnist.forward_direct(net, x, T).sum(0)  # what the example trains and tests with
    functional.reset_net(net)
    assert 0.1 * T < scores.mean() < 0.9 * T
    # the Linear reads spikes through the spike GEMM and the convolutions may run channels-last: other
    # summation orders than the reference's F.linear / F.conv2d
    assert_counts_match(scores, expected, exact=False)
    assert_counts_match(scores, direct, exact=False)


def mixed_net(step_mode, v_reset, bias, seed=0):
    """IF / PLIF / LIF with Conv2d + BatchNorm2d (eval, non-trivial running statistics), padded max and average
    pooling, Dropout, Flatten, Linear: input [2, 9, 9] -> [5]. In multi-step mode plain torch modules go through
    SeqToANNContainer and one single-step neuron through MultiStepContainer; in single-step mode every module
    runs one step per call."""
    torch.manual_seed(seed)
    m = step_mode == "m"
    seq = layer.SeqToANNContainer if m else nn.Sequential
    net = nn.Sequential(
        layer.Conv2d(2, 6, 3, padding=1, bias=bias, step_mode=step_mode),
        layer.BatchNorm2d(6, step_mode=step_mode),
        neuron.IFNode(v_reset=v_reset, detach_reset=True, step_mode=step_mode),
        layer.MaxPool2d(3, stride=2, padding=1, step_mode=step_mode),                      # -> 6 x 5x5
        seq(nn.Conv2d(6, 8, (3, 2), stride=(1, 2), padding=(1, 0), bias=bias),          # -> 8 x 5x2
            nn.BatchNorm2d(8, affine=bias)),
        neuron.ParametricLIFNode(init_tau=3.0, decay_input=False, v_reset=v_reset, step_mode=step_mode),
        layer.AvgPool2d(2, padding=1, count_include_pad=False, step_mode=step_mode),       # -> 8 x 3x2
        layer.Dropout(0.5, step_mode=step_mode),
        seq(nn.Flatten(), nn.Linear(48, 5, bias=bias)),
        layer.MultiStepContainer(neuron.LIFNode(tau=3.0, v_reset=v_reset)) if m else
        neuron.LIFNode(tau=3.0, v_reset=v_reset),
    )
    with torch.no_grad():
        for mod in net.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.copy_(torch.randn(mod.num_features) * 0.5)
                mod.running_var.copy_(torch.rand(mod.num_features) + 0.5)
                if mod.affine:
                    mod.weight.copy_(torch.rand(mod.num_features) + 0.5)
                    mod.bias.copy_(torch.randn(mod.num_features) * 0.2)
            elif isinstance(mod, nn.Conv2d):
                mod.weight.mul_(3)
            elif isinstance(mod, nn.Linear):
                mod.weight.mul_(12).add_(0.2)  # inputs are rates in [0, 1]: a positive drive
    return net.eval()


@pytest.mark.parametrize("step_mode", ["m", "s"])
@pytest.mark.parametrize("v_reset, bias", [(0.0, True), (None, False), (-0.5, False), (None, True)])
def test_mixed_network_matches(tmp_path, step_mode, v_reset, bias):
    net = mixed_net(step_mode, v_reset, bias)
    x = torch.rand(32, 2, 9, 9) * 2
    T = 8
    graph, tensors, scores = export_and_run(net, tmp_path, x, T)
    types = [layer["type"] for layer in graph["layers"]]
    assert types == ["conv2d", "neuron", "max_pool2d", "conv2d", "neuron", "avg_pool2d", "flatten", "linear", "neuron"]
    assert [graph["layers"][i]["model"] for i in (1, 4, 8)] == ["IF", "ParametricLIF", "LIF"]
    names = [layer["name"] for layer in graph["layers"]]
    assert names == ["0", "2", "3", "4.0", "5", "6", "8.0", "8.1", "9.0" if step_mode == "m" else "9"]
    assert graph["layers"][3]["output_shape"] == [8, 5, 2] and graph["layers"][5]["output_shape"] == [8, 3, 2]
    # both convolutions carry the folded batch norm, with a bias even where the conv had none
    assert graph["layers"][0]["bias"] == "0.bias" and graph["layers"][3]["bias"] == "4.0.bias"
    expected = run_model(net, torch.stack([x] * T), step_mode).sum(0)
    assert 0.05 * T < scores.mean() < 0.95 * T
    # folding BatchNorm into the convolution rounds differently from conv then BatchNorm
    assert_counts_match(scores, expected, exact=False)

    # the folded convolution is conv + BatchNorm up to float32 rounding
    conv, bn = (net[0], net[1])
    h = torch.rand(4, 2, 9, 9)
    folded = torch.nn.functional.conv2d(h, tensors["0.weight"], tensors["0.bias"], padding=1)
    with torch.no_grad():
        unfolded = nn.BatchNorm2d.forward(bn, nn.Conv2d.forward(conv, h))  # one step, whatever the step mode
    torch.testing.assert_close(folded, unfolded, rtol=1e-5, atol=1e-5)


def test_mixed_network_without_batch_norm_is_exact(tmp_path):
    net = mixed_net("m", None, True)
    net[1] = nn.Identity()
    net[4][1] = nn.Identity()
    x = torch.rand(32, 2, 9, 9) * 2
    T = 8
    graph, _, scores = export_and_run(net, tmp_path, x, T)
    expected = run_model(net, torch.stack([x] * T), "m").sum(0)
    assert 0.05 * T < scores.mean() < 0.95 * T
    assert_counts_match(scores, expected, exact=True)


def test_padding_strings_resolve(tmp_path):
    net = nn.Sequential(nn.Conv2d(1, 2, 3, padding="same", dilation=2), nn.Conv2d(2, 2, 3, padding="valid"),
                        nn.Flatten(), neuron.IFNode())
    graph = spikeops.export(net, tmp_path / "m.spk", torch.rand(1, 1, 7, 7), T=1)
    assert graph["layers"][0]["padding"] == [2, 2] and graph["layers"][0]["output_shape"] == [2, 7, 7]
    assert graph["layers"][1]["padding"] == [0, 0] and graph["layers"][2]["output_shape"] == [50]


# ------------------------------------------------------------------------------------------------ errors

def export_error(tmp_path, net, x=None, exc=ValueError, match=None, **kw):
    x = torch.rand(1, 1, 8, 8) if x is None else x
    kw = {"T": 4, **kw}
    with pytest.raises(exc, match=match):
        spikeops.export(net, tmp_path / "bad.spk", x, **kw)
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.parametrize("net, match", [
    (nn.Sequential(nn.Flatten(), nn.ReLU()), r"layer '1' \(torch\.nn\.ReLU\) is not supported; supported: Linear"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sequential(nn.Flatten(), nn.GELU())),
     r"layer '1\.1' \(torch\.nn\.GELU\) is not supported"),
    (nn.Sequential(nn.Conv2d(1, 4, 3), nn.Conv2d(4, 4, 3, groups=2)), r"layer '1' \(torch\.nn\.Conv2d\).*groups=2"),
    (nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, padding_mode="reflect")), r"layer '0'.*padding_mode='reflect'"),
    (nn.Sequential(nn.Conv2d(1, 4, 2, padding="same")), r"layer '0'.*padding='same'.*unevenly"),
    (nn.Sequential(layer.MaxPool2d(3, ceil_mode=True)), r"layer '0' \(spikeops\.layer\.MaxPool2d\).*ceil_mode"),
    (nn.Sequential(nn.MaxPool2d(2, dilation=2)), r"layer '0'.*dilation"),
    (nn.Sequential(nn.AvgPool2d(2, ceil_mode=True)), r"layer '0'.*ceil_mode"),
    (nn.Sequential(nn.AvgPool2d(2, divisor_override=3)), r"layer '0'.*divisor_override=3"),
    (nn.Sequential(nn.Flatten(start_dim=2)), r"layer '0' \(torch\.nn\.Flatten\).*start_dim=2"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), neuron.IFNode(), nn.BatchNorm2d(2)),
     r"layer '2' \(torch\.nn\.BatchNorm2d\).*directly after a Conv2d"),
    (nn.Sequential(nn.BatchNorm2d(1)), r"layer '0'.*directly after a Conv2d"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2, track_running_stats=False)),
     r"layer '1'.*running statistics"),
    (nn.Sequential(nn.Flatten(), nn.Linear(100, 3)), r"layer '1' \(torch\.nn\.Linear\).*in_features=100.*\[64\]"),
    (nn.Sequential(nn.Linear(8, 3)), r"layer '0'.*in_features=8.*\[1, 8, 8\].*Flatten"),
    (nn.Sequential(nn.Conv2d(3, 2, 3)), r"layer '0'.*in_channels=3.*\[1, 8, 8\]"),
    (nn.Sequential(nn.Flatten(), layer.Linear(64, 3, spike_input=True)), r"layer '1'.*spike_input=True.*not spikes"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), neuron.IFNode()), r"last layer '1'.*\[2, 6, 6\].*1-D"),
    (nn.Sequential(nn.Dropout()), r"no layer to export"),
])
def test_unsupported_layers(tmp_path, net, match):
    export_error(tmp_path, net, match=match)


def test_spike_input_linear_after_spikes_is_accepted(tmp_path):
    net = nn.Sequential(nn.Flatten(), nn.Identity(), layer.Linear(64, 3, spike_input=True))
    spikeops.export(net, tmp_path / "a.spk", torch.rand(1, 1, 8, 8), T=2, encoding="poisson")  # spikes in
    net = nn.Sequential(neuron.IFNode(), nn.MaxPool2d(2), nn.Flatten(), layer.Linear(16, 3, spike_input=True))
    spikeops.export(net, tmp_path / "b.spk", torch.rand(1, 1, 8, 8), T=2)  # max-pooled spikes are spikes
    net = nn.Sequential(neuron.IFNode(), nn.AvgPool2d(2), nn.Flatten(), layer.Linear(16, 3, spike_input=True))
    with pytest.raises(ValueError, match="layer '3'.*not spikes"):
        spikeops.export(net, tmp_path / "c.spk", torch.rand(1, 1, 8, 8), T=2)


@pytest.mark.parametrize("kw, match", [
    ({"T": 0}, r"T must be an int in \[1, 65536\], got 0"),
    ({"T": 65537}, r"T must be .* got 65537"),
    ({"T": 2.0}, r"T must be .* got 2\.0"),
    ({"T": True}, r"T must be .* got True"),
    ({"encoding": "rate"}, r"encoding must be one of \('direct', 'poisson'\), got 'rate'"),
])
def test_bad_arguments(tmp_path, kw, match):
    export_error(tmp_path, nn.Sequential(nn.Flatten(), nn.Linear(64, 3)), match=match, **kw)


@pytest.mark.parametrize("x, exc, match", [
    (torch.zeros(1, 64, dtype=torch.int64), ValueError, r"example_input must be a non-empty float tensor.*int64"),
    (torch.zeros(64), ValueError, r"example_input must be .*\[N, \*input_shape\].*shape \(64,\)"),
    (torch.zeros(0, 64), ValueError, r"example_input .*N >= 1.*shape \(0, 64\)"),
    ([[0.0] * 64], TypeError, r"example_input must be a torch\.Tensor"),
])
def test_bad_example_input(tmp_path, x, exc, match):
    export_error(tmp_path, nn.Sequential(nn.Linear(64, 3)), x=x, exc=exc, match=match)


def test_model_must_be_a_module(tmp_path):
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        spikeops.export(lambda x: x, tmp_path / "m.spk", torch.rand(1, 4), T=1)


def zoo_net(model, step_mode, seed=0):
    """x [16] -> Linear -> the neuron -> Linear -> the neuron again: every fused model, its second layer fed
    spikes; weights on a grid of 1/16 so that every sum is exact."""
    torch.manual_seed(seed)
    make = FUSED_NEURONS[model]
    net = nn.Sequential(layer.Linear(16, 12, step_mode=step_mode), make(step_mode),
                        layer.Linear(12, 5, step_mode=step_mode), make(step_mode))
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Linear):
                m.weight.copy_(torch.round(torch.randn(m.weight.shape) * 16) / 16)
                m.bias.copy_(torch.round(torch.rand(m.bias.shape) * 8) / 16)
    return net


@pytest.mark.parametrize("model", sorted(FUSED_NEURONS))
def test_every_fused_neuron_exports_its_model(tmp_path, model):
    """The generic neuron layer: the model's name, parameters, learnable scalars and initial states, run by the
    plain reference of that model, give the module's spikes."""
    net = zoo_net(model, "m")
    x = torch.randint(0, 17, (16, 16)).float() / 8
    T = 9
    graph, tensors, scores = export_and_run(net, tmp_path, x, T)
    node = net[1]
    layer1 = graph["layers"][1]
    info = spikeops._ops.neuron.neuron_info(node._neuron_kind)
    assert layer1["type"] == "neuron" and layer1["model"] == model == info["name"]
    assert list(layer1["extra"]) == list(info["extra_names"])
    assert layer1["extra"] == dict(zip(info["extra_names"], node._extra()))
    assert len(layer1["state_init"]) == info["states"] == len(node._state_names)
    assert ("learnable" in layer1) == (info["learnable"] > 0)
    if info["learnable"]:
        assert torch.equal(tensors[layer1["learnable"]], node._learnable_tensor(torch.device("cpu")).detach())
    expected = run_model(net, torch.stack([x] * T), "m").sum(0)
    assert expected.sum() > 0, "the test network should fire"
    assert torch.equal(scores, expected)


def test_izhikevich_state_init_is_w_rest(tmp_path):
    graph, _, _ = export_and_run(zoo_net("Izhikevich", "m"), tmp_path, torch.rand(2, 16), 2)
    assert graph["layers"][1]["state_init"] == [-0.125, -0.125]  # V at v_reset, W at w_rest
    graph, _, _ = export_and_run(zoo_net("ALIF", "m"), tmp_path, torch.rand(2, 16), 2)
    assert graph["layers"][1]["state_init"] == [0.0, 0.0]  # soft reset: V at 0; A at 0


class OwnCharge(neuron.BaseNode):
    def neuronal_charge(self, x):
        self.v = self.v * 0.5 + x


@pytest.mark.parametrize("node, match", [
    (OwnCharge(), r"layer '1' \(.*OwnCharge\) runs its own neuronal_charge"),
    (neuron.LIAFNode(torch.relu, True), r"layer '1' \(spikeops\.neuron_lif_variants\.LIAFNode\) outputs a function"),
    (neuron.LIFNode(surrogate_function=lambda u: (u >= 0).float()), r"layer '1'.*surrogate_function without"),
])
def test_step_loop_neurons_are_refused(tmp_path, node, match):
    export_error(tmp_path, nn.Sequential(nn.Flatten(), node), match=match)


# ------------------------------------------------------------------------------------------------ no side effects

def test_export_leaves_the_model_as_it_was(tmp_path):
    net = mixed_net("m", 0.0, True).train()
    net[4].eval()  # a submodule in another mode than its parent keeps its mode
    x = torch.rand(4, 2, 9, 9)
    net(torch.stack([x] * 3))  # BatchNorm statistics move and the neurons hold state
    state = {k: v.clone() for k, v in net.state_dict().items()}
    modes = {name: m.training for name, m in net.named_modules()}
    rng = torch.get_rng_state()
    spikeops.export(net, tmp_path / "m.spk", x, T=5, encoding="poisson")
    assert {name: m.training for name, m in net.named_modules()} == modes
    after = net.state_dict()
    assert all(torch.equal(after[k], v) for k, v in state.items())  # eval: running statistics untouched
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(m.v == m.v_init_value and m.v_seq is None for m in net.modules() if isinstance(m, neuron.BaseNode))
    # and exporting again over the same file gives the same bytes
    first = (tmp_path / "m.spk").read_bytes()
    spikeops.export(net, tmp_path / "m.spk", x, T=5, encoding="poisson")
    assert (tmp_path / "m.spk").read_bytes() == first
