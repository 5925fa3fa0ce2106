"""The C++ inference runtime (spikeops::Model, through spikeops.runtime) against the PyTorch models it was
exported from.

With weights and inputs on a coarse dyadic grid every float32 sum is exact whatever its order, so the
runtime's spike counts must equal the Python model's exactly (both run the same neuron kernel); with ordinary
float weights the two agree up to summation order, checked on predictions.
"""

import re
import threading

import pytest
import torch
from torch import nn

import spikeops
from neuron_zoo import FUSED_NEURONS
from spikeops import functional, layer, neuron, surrogate
from spikeops.examples import csnn_mnist, lif_fc_mnist


def dyadic_(net: nn.Module, scale: float = 16.0, gain: float = 1.0) -> nn.Module:
    """Multiply the weights by ``gain`` (so that every layer fires), then round every parameter to a multiple
    of 1/scale (small integers over a power of two)."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                m.weight.mul_(gain)
        for p in net.parameters():
            p.copy_(torch.round(p * scale) / scale)
    return net


def python_scores(net: nn.Module, x: torch.Tensor, T: int) -> torch.Tensor:
    """The model's output over T steps of direct input, summed over T: [N, num_outputs]."""
    functional.reset_net(net)
    with torch.no_grad():
        out = net(x.unsqueeze(0).repeat((T,) + (1,) * x.dim()))
    functional.reset_net(net)
    return out.sum(0).flatten(1)


def run_both(net, x, T, tmp_path, name="net"):
    path = tmp_path / f"{name}.spikeops"
    spikeops.export(net, path, x[:1], T=T, encoding="direct")
    model = spikeops.runtime.load(path)
    scores, predictions = model(x)
    return model, scores, predictions, python_scores(net, x, T)


def mixed_net(step_mode: str) -> nn.Sequential:
    """Every layer kind with non-default settings."""
    return nn.Sequential(
        layer.Conv2d(2, 6, 3, stride=2, padding=2, dilation=2, step_mode=step_mode),
        neuron.IFNode(v_threshold=0.75, v_reset=None, step_mode=step_mode),
        layer.Conv2d(6, 5, 3, padding=1, bias=False, step_mode=step_mode),
        layer.AvgPool2d(2, stride=2, padding=1, count_include_pad=False, step_mode=step_mode),
        neuron.ParametricLIFNode(init_tau=3.0, decay_input=False, v_reset=-0.25, step_mode=step_mode),
        layer.MaxPool2d(3, stride=2, padding=1, step_mode=step_mode),
        layer.Flatten(step_mode=step_mode),
        layer.Linear(5 * 2 * 2, 7, step_mode=step_mode),
        neuron.LIFNode(tau=4.0, v_threshold=0.5, surrogate_function=surrogate.ATan(), step_mode=step_mode),
    )


class SingleStep(nn.Module):
    """Runs a single-step network over [T, N, ...] the way users of step_mode='s' do."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x_seq):
        return torch.stack([self.net(x) for x in x_seq])


def test_mixed_network_exact(tmp_path):
    torch.manual_seed(1)
    net = dyadic_(mixed_net("m"), gain=4)
    x = torch.randint(0, 17, (9, 2, 13, 11)).float() / 8
    model, scores, predictions, expected = run_both(net, x, 6, tmp_path)
    assert expected.sum() > 0, "the test network should fire"
    torch.testing.assert_close(scores, expected, rtol=0, atol=0)
    assert torch.equal(predictions, expected.argmax(1))
    assert model.time_steps == 6 and model.input_shape == (2, 13, 11) and model.num_outputs == 7


def test_single_step_network_exact(tmp_path):
    torch.manual_seed(1)
    net = dyadic_(mixed_net("s"), gain=4)
    x = torch.randint(0, 17, (5, 2, 13, 11)).float() / 8
    path = tmp_path / "s.spikeops"
    spikeops.export(net, path, x[:1], T=5)
    scores, _ = spikeops.runtime.load(path)(x)
    torch.testing.assert_close(scores, python_scores(SingleStep(net), x, 5), rtol=0, atol=0)


def zoo_net(model: str, step_mode: str) -> nn.Sequential:
    """x [2, 5, 5] -> Conv2d -> the neuron -> Flatten -> Linear (fed spikes) -> the neuron again, with dyadic
    weights: every sum exact, so the runtime must give the model's spikes exactly."""
    torch.manual_seed(4)
    make = FUSED_NEURONS[model]
    net = nn.Sequential(layer.Conv2d(2, 3, 3, step_mode=step_mode), make(step_mode),
                        layer.Flatten(step_mode=step_mode), layer.Linear(27, 6, step_mode=step_mode),
                        make(step_mode))
    return dyadic_(net, gain=3)


@pytest.mark.parametrize("step_mode", ["m", "s"])
@pytest.mark.parametrize("model", sorted(FUSED_NEURONS))
def test_every_fused_neuron_runs_exactly(tmp_path, model, step_mode):
    """Each stateful model exported and run by the C++ runtime (the same fused kernel, from the file's
    parameters, learnable scalars and initial states) gives the PyTorch model's spikes."""
    net = zoo_net(model, step_mode)
    x = torch.randint(0, 17, (7, 2, 5, 5)).float() / 8
    T = 10
    path = tmp_path / f"{model}.spikeops"
    spikeops.export(net, path, x[:1], T=T)
    rt = spikeops.runtime.load(path)
    scores, predictions = rt(x)
    expected = python_scores(net if step_mode == "m" else SingleStep(net), x, T)
    assert expected.sum() > 0, "the test network should fire"
    torch.testing.assert_close(scores, expected, rtol=0, atol=0)
    reports = rt.reports()
    assert reports[1]["type"] == "neuron" and reports[1]["spikes"] > 0
    assert f"neuron ({model})" in repr(rt)


def exported_csnn(tmp_path, n: int, channels_last: bool = True, T: int = 12):
    """The CSNN example's network with dyadic weights, exported: (path, images x [n, 1, 28, 28], the Python
    model's output spike counts over T steps [n, 10])."""
    torch.manual_seed(2)
    net = dyadic_(csnn_mnist.build_net(channels_last=channels_last), gain=4)
    x = torch.randint(0, 17, (n, 1, 28, 28)).float() / 16
    functional.reset_net(net)
    with torch.no_grad():
        expected = csnn_mnist.forward_direct(net, x, T).sum(0)
    path = tmp_path / "csnn.spikeops"
    spikeops.export(net, path, x[:1], T=T)
    return path, x, expected


@pytest.mark.parametrize("channels_last", [True, False])
def test_csnn_example_network_exact(tmp_path, channels_last):
    path, x, expected = exported_csnn(tmp_path, 6, channels_last)
    model = spikeops.runtime.load(path)
    scores, _ = model(x)
    assert expected.sum() > 0
    torch.testing.assert_close(scores, expected, rtol=0, atol=0)
    reports = {r["name"]: r for r in model.reports()}
    # the second convolution and the classifier are fed spikes: accumulate-only, no multiplies
    assert reports["3"]["spike_input"] and reports["3"]["dense_macs"] == 0 and reports["3"]["synaptic_ops"] > 0
    assert reports["7"]["spike_input"] and reports["7"]["dense_macs"] == 0
    assert not reports["0"]["spike_input"] and reports["0"]["dense_macs"] == 6 * 24 * 24 * 25 * 12


def test_float_weights_agree(tmp_path):
    """Trained-like float weights: summation order differs, predictions agree."""
    torch.manual_seed(3)
    net = lif_fc_mnist.build_net()
    with torch.no_grad():
        net[1].weight.mul_(8)
    x = torch.rand(64, 1, 28, 28)
    _, scores, predictions, expected = run_both(net, x, 20, tmp_path)
    assert (predictions == expected.argmax(1)).float().mean() >= 0.95
    assert (scores - expected).abs().max() <= 1


def conv_in_runtime_order(x, w, b, stride, padding, dilation):
    """F.conv2d in float32, rounded as the runtime's kernels round: each output is the bias, then tap by tap
    (ky, kx) and input channel by channel x * w added, each product and each sum rounded to float32."""
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    N, C, H, W = x.shape
    O, _, kh, kw = w.shape
    OH, OW = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    xp = torch.nn.functional.pad(x, (pw, pw, ph, ph))
    out = (b if b is not None else torch.zeros(O)).view(1, O, 1, 1).expand(N, O, OH, OW).clone()
    for ky in range(kh):
        for kx in range(kw):
            patch = xp[:, :, ky * dh:ky * dh + sh * (OH - 1) + 1:sh, kx * dw:kx * dw + sw * (OW - 1) + 1:sw]
            for c in range(C):
                out = out + patch[:, c:c + 1] * w[:, c, ky, kx].view(1, O, 1, 1)
    return out


# (C, O, H, W, kernel, stride, padding, dilation): the first seven are narrow layers with stride 1 along x, which
# the runtime computes densely (cpu::conv2d_direct_values); the last three take the event-driven kernel.
REAL_INPUT_CONVS = [
    (1, 12, 28, 28, (5, 5), (1, 1), (0, 0), (1, 1)),   # the CSNN example's first convolution
    (3, 5, 9, 21, (3, 3), (1, 1), (1, 1), (1, 1)),     # 21 columns: a full and a partial vector
    (2, 16, 11, 40, (3, 5), (2, 1), (2, 0), (2, 3)),
    (4, 1, 6, 7, (1, 1), (1, 1), (0, 0), (1, 1)),
    (2, 7, 5, 3, (3, 3), (1, 1), (2, 2), (1, 1)),       # fewer columns than a vector, padding wider than a tap
    (1, 9, 4, 17, (1, 7), (3, 1), (1, 3), (1, 2)),
    (5, 13, 8, 33, (2, 4), (1, 1), (1, 2), (3, 1)),
    (3, 17, 9, 21, (3, 3), (1, 1), (1, 1), (1, 1)),     # 17 outputs
    (2, 6, 13, 11, (3, 3), (2, 2), (2, 2), (2, 2)),     # stride 2 along x
    (1, 12, 28, 28, (5, 5), (1, 2), (0, 0), (1, 1)),
]


@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("case", REAL_INPUT_CONVS, ids=lambda c: "x".join(map(str, c[:4])) + f"-k{c[4][0]}{c[4][1]}")
def test_conv_on_real_values_rounds_in_kernel_order(tmp_path, case, batch):
    """A convolution fed real values (float weights, inputs with zeros and negatives) equals, bit for bit, the
    reference summed in the kernels' order, whichever kernel the runtime picks."""
    C, O, H, W, kernel, stride, padding, dilation = case
    torch.manual_seed(sum(case[:4]) + batch)
    conv = layer.Conv2d(C, O, kernel, stride=stride, padding=padding, dilation=dilation, step_mode="m")
    net = nn.Sequential(conv, layer.Flatten(step_mode="m"))
    x = torch.randn(batch, C, H, W) * (torch.rand(batch, C, H, W) < 0.4)  # 60% zeros, as in an image
    path = tmp_path / "conv.spikeops"
    spikeops.export(net, path, x[:1], T=1)
    scores, _ = spikeops.runtime.load(path)(x)
    with torch.no_grad():
        expected = conv_in_runtime_order(x, conv.weight, conv.bias, stride, padding, dilation)
        torch.testing.assert_close(scores, expected.flatten(1), rtol=0, atol=0)
        torch.testing.assert_close(scores, torch.nn.functional.conv2d(x, conv.weight, conv.bias, stride, padding,
                                                                      dilation).flatten(1))


@pytest.mark.parametrize("kernel, stride, padding", [(2, 2, 0), (3, 2, 1), ((2, 3), (2, 3), 0)])
def test_max_pool_of_real_values_matches_torch(tmp_path, kernel, stride, padding):
    """Max pooling of real values (2x2 windows have their own loop) equals torch's, NaN propagated."""
    net = nn.Sequential(layer.MaxPool2d(kernel, stride=stride, padding=padding, step_mode="m"),
                        layer.Flatten(step_mode="m"))
    x = torch.randn(3, 4, 10, 12)
    x[0, 1, 4, 5] = float("nan")
    x[1, 2, 0, 0] = float("nan")
    x[2, 3] = -float("inf")
    path = tmp_path / "pool.spikeops"
    spikeops.export(net, path, x[:1], T=1)
    scores, _ = spikeops.runtime.load(path)(x)
    expected = torch.nn.functional.max_pool2d(x, kernel, stride, padding).flatten(1)
    assert scores.isnan().sum() == expected.isnan().sum() > 0
    torch.testing.assert_close(scores, expected, rtol=0, atol=0, equal_nan=True)


def test_synaptic_ops_count_spikes_times_fan_out(tmp_path):
    torch.manual_seed(4)
    lif = neuron.LIFNode(step_mode="m")
    net = nn.Sequential(layer.Linear(12, 9, step_mode="m"), lif, layer.Linear(9, 4, step_mode="m"),
                        neuron.IFNode(step_mode="m"))
    dyadic_(net, 4, gain=4)
    x = torch.rand(3, 12)
    model, scores, _, expected = run_both(net, x, 5, tmp_path)
    torch.testing.assert_close(scores, expected, rtol=0, atol=0)
    functional.reset_net(net)
    with torch.no_grad():
        hidden_spikes = net[:2](x.unsqueeze(0).repeat(5, 1, 1)).sum().item()
    r = model.reports()
    assert r[1]["spikes"] == hidden_spikes and r[1]["neuron_steps"] == 5 * 3 * 9
    assert r[2]["synaptic_ops"] == hidden_spikes * 4
    assert r[0]["dense_macs"] == 3 * 12 * 9  # direct input: computed once per sample, not per step
    model.reset_reports()
    assert all(rep["spikes"] == 0 and rep["synaptic_ops"] == 0 for rep in model.reports())


def test_poisson_encoding(tmp_path):
    net = nn.Sequential(layer.Linear(4, 4, bias=False, step_mode="m"), neuron.IFNode(step_mode="m"))
    with torch.no_grad():
        net[0].weight.copy_(torch.eye(4))
    path = tmp_path / "p.spikeops"
    spikeops.export(net, path, torch.rand(1, 4), T=50, encoding="poisson")
    model = spikeops.runtime.load(path)
    assert model.encoding == "poisson"
    x = torch.tensor([[1.0, 0.0, 0.5, 0.25]]).repeat(200, 1)
    scores, _ = model(x, seed=7)
    assert torch.equal(scores[:, 0], torch.full((200,), 50.0))  # u <= 1 always
    rates = scores.mean(0) / 50
    assert rates[1] < 0.01 and abs(rates[2] - 0.5) < 0.03 and abs(rates[3] - 0.25) < 0.03
    again, _ = model(x, seed=7)
    other, _ = model(x, seed=8)
    assert torch.equal(scores, again) and not torch.equal(scores, other)


def test_bad_files_and_inputs(tmp_path):
    net = lif_fc_mnist.build_net()
    path = tmp_path / "ok.spikeops"
    spikeops.export(net, path, torch.rand(1, 1, 28, 28), T=4)
    data = path.read_bytes()
    bad = tmp_path / "bad.spikeops"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="bad.spikeops.*outside the"):
        spikeops.runtime.load(bad)
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="bad.spikeops"):
        spikeops.runtime.load(bad)
    with pytest.raises(ValueError, match="cannot open"):
        spikeops.runtime.load(tmp_path / "missing.spikeops")
    model = spikeops.runtime.load(path)
    with pytest.raises(ValueError, match=r"x must have shape \[N, 1, 28, 28\]"):
        model(torch.rand(2, 784))
    with pytest.raises(ValueError, match="x must be float32"):
        model(torch.rand(2, 1, 28, 28, dtype=torch.float64))
    scores, predictions = model(torch.rand(1, 28, 28))  # one sample without the batch dimension
    assert scores.shape == (1, 10) and predictions.shape == (1,)
    assert model(torch.rand(0, 1, 28, 28))[0].shape == (0, 10)
    assert "linear" in repr(model)


def test_device_moves(tmp_path):
    """Model.to: the CPU always; a GPU only with a CUDA build and a GPU (test_cuda.py compares the results)."""
    path = tmp_path / "m.spikeops"
    spikeops.export(lif_fc_mnist.build_net(), path, torch.rand(1, 1, 28, 28), T=4)
    model = spikeops.runtime.load(path, device="cpu")
    assert model.device == torch.device("cpu")
    with pytest.raises(ValueError, match="device must be cpu or cuda, got meta"):
        model.to("meta")
    if not spikeops._C.build_info()["cuda"]:
        with pytest.raises(ValueError, match="built without CUDA"):
            model.to("cuda")
    elif not torch.cuda.is_available():
        with pytest.raises(RuntimeError):
            model.to("cuda")
    assert model.device == torch.device("cpu")  # a failed move leaves the model where it was
    assert model.to("cpu") is model
    assert model(torch.rand(2, 1, 28, 28))[0].shape == (2, 10)


def small_conv_net() -> nn.Sequential:
    """Conv2d + LIF + MaxPool + Linear + LIF, the network of the runtime's thread-safety report."""
    torch.manual_seed(7)
    net = nn.Sequential(
        layer.Conv2d(1, 4, 3, padding=1, step_mode="m"),
        neuron.LIFNode(tau=2.0, step_mode="m"),
        layer.MaxPool2d(2, step_mode="m"),
        layer.Flatten(step_mode="m"),
        layer.Linear(4 * 5 * 5, 10, step_mode="m"),
        neuron.LIFNode(tau=2.0, step_mode="m"),
    )
    return dyadic_(net, gain=4.0)


def test_one_model_from_four_threads(tmp_path):
    """One RuntimeModel called from 4 Python threads (the call releases the GIL) with batches of different
    sizes at the same time: every call returns what the same batch returns alone, and the reports count
    every call once."""
    path = tmp_path / "conv.spikeops"
    x = torch.rand(300, 1, 10, 10)
    spikeops.export(small_conv_net(), path, x[:1], T=4)
    model = spikeops.runtime.load(path)
    batches = (1, 7, 64, 300)
    expected = {}
    counts = {}
    for n in batches:
        model.reset_reports()
        expected[n] = model(x[:n])
        counts[n] = [(r["spikes"], r["synaptic_ops"], r["dense_macs"]) for r in model.reports()]
    assert expected[300][0].sum() > 0  # the network fires
    model.reset_reports()

    rounds, wrong, errors = 5, [], []

    def work(t):
        try:
            for r in range(rounds):
                for k in range(len(batches)):
                    n = batches[(k + t + r) % len(batches)]
                    scores, predictions = model(x[:n])
                    if not (torch.equal(scores, expected[n][0]) and torch.equal(predictions, expected[n][1])):
                        wrong.append(n)
                    model.reports()  # read while the other threads run
        except Exception as e:  # noqa: BLE001 (reported by the main thread)
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert wrong == [], f"{len(wrong)} calls gave other results than the same batch alone"
    total = [tuple(4 * rounds * sum(counts[n][i][j] for n in batches) for j in range(3)) for i in range(6)]
    assert [(r["spikes"], r["synaptic_ops"], r["dense_macs"]) for r in model.reports()] == total


def test_spike_tensor_input(tmp_path):
    """A SpikeTensor is a tensor whose values are its 0/1 spikes, whatever float dtype it presents."""
    path = tmp_path / "conv.spikeops"
    spikes = (torch.rand(5, 1, 10, 10) < 0.5).to(torch.uint8)
    spikeops.export(small_conv_net(), path, spikes[:1].float(), T=4)
    model = spikeops.runtime.load(path)
    scores, predictions = model(spikes.float())
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        got = model(spikeops.SpikeTensor(spikes, dtype=dtype))
        assert torch.equal(got[0], scores) and torch.equal(got[1], predictions)
    got = model(spikeops.SpikeTensor(spikes[0]))  # one sample without the batch dimension
    assert torch.equal(got[0], scores[:1])


def test_load_directory(tmp_path):
    with pytest.raises(ValueError, match=re.escape(f"'{tmp_path}' is a directory, expected a model file")):
        spikeops.runtime.load(tmp_path)


class _NoStorage(torch.Tensor):
    """A tensor subclass without memory of its own (as a SpikeTensor, but unknown to the runtime)."""

    __torch_function__ = torch._C._disabled_torch_function_impl

    @staticmethod
    def __new__(cls, like):
        return torch.Tensor._make_wrapper_subclass(cls, like.shape, dtype=like.dtype, device=like.device)

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        raise NotImplementedError(func)


def test_storage_less_tensor_input(tmp_path):
    path = tmp_path / "conv.spikeops"
    x = torch.rand(2, 1, 10, 10)
    spikeops.export(small_conv_net(), path, x[:1], T=4)
    model = spikeops.runtime.load(path)
    with pytest.raises(TypeError, match="RuntimeModel: x must be a torch.Tensor holding its values in memory, got a "
                                        "_NoStorage"):
        model(_NoStorage(x))
