"""The MNIST examples end to end (a few batches): data sources, summary JSON, checkpoints, --resume, --help; and
the CSNN example's neuron against snnTorch's Leaky, step by step."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import reference as ref
from train_util import scale_parameters
from spikeops import datasets, functional, surrogate
from spikeops.examples import _training, csnn_mnist, lif_fc_mnist

SHARED_MNIST = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "mnist"
SUMMARY_KEYS = {"epochs", "train_acc", "test_acc", "seconds_per_epoch", "device", "data_source"}


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No SPIKEOPS_DATA, an empty cache, and no network: the example must fall back to the embedded sample."""
    monkeypatch.delenv("SPIKEOPS_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def urlopen(url, timeout=None):
        raise OSError("offline test")

    monkeypatch.setattr(datasets.urllib.request, "urlopen", urlopen)


def run(tmp_path, *extra, example=lif_fc_mnist, max_batches=5, T=8):
    summary_path = tmp_path / "summary.json"
    argv = ["--max-batches", str(max_batches), "-T", str(T), "--log-dir", str(tmp_path / "logs"),
            "--model-output-dir", str(tmp_path / "ckpt"), "--summary-json", str(summary_path), "--no-progress",
            "--device", "cpu", *extra]
    returned = example.main(argv)
    summary = json.loads(summary_path.read_text())
    assert SUMMARY_KEYS <= set(summary)
    assert summary["epochs"] == len(summary["history"]) and summary["device"] == "cpu"
    for key in ("train_acc", "test_acc"):
        assert 0.0 <= summary[key] <= 1.0
    assert summary["seconds_per_epoch"] > 0
    assert returned["test_acc"] == summary["test_acc"]
    return summary


def test_lif_fc_mnist_embedded_sample(tmp_path, offline, capsys):
    summary = run(tmp_path, "-N", "1", "--no-tensorboard")
    out = capsys.readouterr().out
    assert "embedded sample" in summary["data_source"] and "embedded sample" in out
    assert "SPIKEOPS_DATA" in out  # says how to get the full set
    ckpt = torch.load(tmp_path / "ckpt" / "checkpoint_max.pth", weights_only=False)
    assert set(ckpt) >= {"net", "optimizer", "epoch", "max_test_acc", "history"} and ckpt["epoch"] == 0
    assert (tmp_path / "ckpt" / "checkpoint_latest.pth").is_file()
    assert (tmp_path / "logs" / "args.json").is_file()
    assert not list((tmp_path / "ckpt").glob("*.tmp"))


def test_lif_fc_mnist_resume(tmp_path, offline, capsys):
    run(tmp_path, "-N", "1", "--no-tensorboard", "--no-plot")
    first = torch.load(tmp_path / "ckpt" / "checkpoint_latest.pth", weights_only=False)
    summary = run(tmp_path, "-N", "2", "--resume", "--no-tensorboard", "--no-plot")
    assert "resumed from" in capsys.readouterr().out
    assert summary["epochs"] == 2 and [h["epoch"] for h in summary["history"]] == [0, 1]
    second = torch.load(tmp_path / "ckpt" / "checkpoint_latest.pth", weights_only=False)
    assert second["epoch"] == 1
    assert not torch.equal(first["net"]["1.weight"], second["net"]["1.weight"])


def test_lif_fc_mnist_options(tmp_path, offline):
    # the exact PoissonEncoder path, SpikingJelly 2.0 single-dash spellings, tensorboard/plots when installed
    summary = run(tmp_path, "-epochs", "1", "-lr", "0.01", "-tau", "3.0", "--encoder", "poisson", "-b", "32")
    assert summary["lr"] == 0.01 and summary["batch_size"] == 32
    try:
        import matplotlib  # noqa: F401
        assert (tmp_path / "logs" / "curves.png").stat().st_size > 1000
    except ImportError:
        pass


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="the full MNIST is not in ../shared/datasets/mnist")
def test_lif_fc_mnist_full_mnist(tmp_path, monkeypatch):
    monkeypatch.delenv("SPIKEOPS_DATA", raising=False)
    summary = run(tmp_path, "-N", "1", "--data-dir", str(SHARED_MNIST), "--no-tensorboard", "--no-plot")
    assert str(SHARED_MNIST) in summary["data_source"]
    assert summary["history"][0]["train_seconds"] > 0
    assert (tmp_path / "ckpt" / "checkpoint_max.pth").is_file()


def test_lif_fc_mnist_env_var(tmp_path, monkeypatch):
    root = tmp_path / "mnist"
    for train, n in ((True, 64 * 3), (False, 40)):
        prefix = "train" if train else "t10k"
        g = torch.Generator().manual_seed(n)
        datasets.write_idx(root / f"{prefix}-images-idx3-ubyte.gz", torch.randint(0, 256, (n, 28, 28), generator=g,
                                                                                   dtype=torch.uint8))
        datasets.write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", torch.randint(0, 10, (n,), generator=g,
                                                                                   dtype=torch.uint8))
    monkeypatch.setenv("SPIKEOPS_DATA", str(root))
    summary = run(tmp_path, "-N", "1", "--no-tensorboard", "--no-plot")
    assert "SPIKEOPS_DATA" in summary["data_source"] and summary["history"][0]["train_loss"] > 0


def test_bad_data_dir_and_args(tmp_path):
    with pytest.raises(FileNotFoundError, match="not there"):
        lif_fc_mnist.main(["--data-dir", str(tmp_path), "--log-dir", str(tmp_path / "l")])
    with pytest.raises(SystemExit):
        lif_fc_mnist.main(["-T", "0"])
    with pytest.raises(SystemExit):
        lif_fc_mnist.main(["--tau", "1.0"])


def test_atomic_write_keeps_previous_file(tmp_path):
    path = tmp_path / "checkpoint.pth"
    _training.save_checkpoint({"epoch": 1}, path)

    def interrupted(f):
        f.write(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _training.atomic_write(path, interrupted)
    assert torch.load(path, weights_only=False) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pth"]


@pytest.mark.parametrize("module, options", [
    ("lif_fc_mnist", ("--tau",)),
    ("csnn_mnist", ("--beta", "--slope", "--encoder", "--memory-format", "reset_delay")),
])
def test_help_runs_as_module(module, options):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(lif_fc_mnist.__file__).parents[2]),
                                                                      os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-m", f"spikeops.examples.{module}", "--help"], capture_output=True,
                         text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    for option in ("--dataset-dir", "--data-dir", "--log-dir", "--model-output-dir", "-N", "-T", "--resume",
                   "--summary-json", "--max-batches", "--seed", "--export", "SPIKEOPS_DATA", *options):
        assert option in out.stdout


def test_lif_fc_mnist_export(tmp_path, offline, capsys):
    # --export writes the best checkpoint's network with the run's T and the Poisson encoding
    path = tmp_path / "out" / "lif_fc.spk"
    path.parent.mkdir()
    summary = run(tmp_path, "-N", "1", "--no-tensorboard", "--no-plot", "--export", str(path))
    assert summary["export"] == str(path) and f"to {path}" in capsys.readouterr().out
    graph, tensors = ref.load_model_file(path)
    assert graph["time_steps"] == 8 and graph["encoding"] == "poisson" and graph["input_shape"] == [1, 28, 28]
    assert [layer["type"] for layer in graph["layers"]] == ["flatten", "linear", "neuron"]
    assert graph["layers"][2]["model"] == "LIF"
    ckpt = torch.load(tmp_path / "ckpt" / "checkpoint_max.pth", weights_only=False)
    assert torch.equal(tensors["1.weight"], ckpt["net"]["1.weight"])
    scores = ref.run_model_file(graph, tensors, torch.rand(4, 1, 28, 28), seed=0)
    assert scores.shape == (4, 10) and scores.min() >= 0 and scores.max() <= 8


# ------------------------------------------------------------------------------------------------ csnn_mnist

def run_csnn(tmp_path, *extra):
    return run(tmp_path, *extra, example=csnn_mnist, max_batches=3, T=4)


def test_csnn_mnist_embedded_sample(tmp_path, offline, capsys):
    summary = run_csnn(tmp_path, "-N", "1", "--no-tensorboard")
    out = capsys.readouterr().out
    assert "embedded sample" in summary["data_source"] and "embedded sample" in out
    assert summary["epochs"] == 1 and summary["T"] == 4 and summary["batch_size"] == 128 and summary["lr"] == 0.002
    assert summary["history"][0]["train_loss"] > 0
    ckpt = torch.load(tmp_path / "ckpt" / "checkpoint_max.pth", weights_only=False)
    assert set(ckpt) >= {"net", "optimizer", "epoch", "max_test_acc", "history"} and ckpt["epoch"] == 0
    shapes = {k: tuple(v.shape) for k, v in ckpt["net"].items()}
    assert shapes == {"0.weight": (12, 1, 5, 5), "0.bias": (12,), "3.weight": (64, 12, 5, 5), "3.bias": (64,),
                      "7.weight": (10, 1024), "7.bias": (10,)}
    assert (tmp_path / "ckpt" / "checkpoint_latest.pth").is_file()
    assert not list((tmp_path / "ckpt").glob("*.tmp"))


def test_csnn_mnist_options_and_resume(tmp_path, offline, capsys):
    # a channels-last checkpoint resumes in NCHW (same parameters), with rate-coded input and other options
    run_csnn(tmp_path, "-N", "1", "-b", "32", "--no-tensorboard", "--no-plot")
    first = torch.load(tmp_path / "ckpt" / "checkpoint_latest.pth", weights_only=False)
    summary = run_csnn(tmp_path, "-N", "2", "-b", "32", "--resume", "--memory-format", "contiguous", "--encoder",
                       "rate", "--beta", "0.75", "--slope", "10", "--spike-tensor", "--no-tensorboard", "--no-plot")
    assert "resumed from" in capsys.readouterr().out
    assert summary["epochs"] == 2 and summary["batch_size"] == 32
    second = torch.load(tmp_path / "ckpt" / "checkpoint_latest.pth", weights_only=False)
    assert second["epoch"] == 1 and not torch.equal(first["net"]["3.weight"], second["net"]["3.weight"])
    with pytest.raises(SystemExit):
        csnn_mnist.main(["--beta", "1.0"])


@pytest.mark.parametrize("encoder, encoding", [("direct", "direct"), ("rate", "poisson")])
def test_csnn_mnist_export(tmp_path, offline, encoder, encoding):
    # the channels-last network exports (its ChannelsLast wrappers as the neurons inside) with the encoding of
    # its --encoder; the network's spike counts against the file's are in test_export.py
    path = tmp_path / "csnn.spk"
    run_csnn(tmp_path, "-N", "1", "--no-tensorboard", "--no-plot", "--encoder", encoder, "--export", str(path))
    graph, tensors = ref.load_model_file(path)
    assert graph["time_steps"] == 4 and graph["encoding"] == encoding
    assert [layer["name"] for layer in graph["layers"]] == ["0", "1", "2.node", "3", "4", "5.node", "6", "7", "8"]
    ckpt = torch.load(tmp_path / "ckpt" / "checkpoint_max.pth", weights_only=False)["net"]
    assert set(tensors) == set(ckpt) and all(torch.equal(tensors[k], ckpt[k].contiguous()) for k in ckpt)
    x = datasets.MNIST(datasets.SAMPLE_DIR, train=False).data[:4].unsqueeze(1).float() / 255
    assert ref.run_model_file(graph, tensors, x, seed=0).shape == (4, 10)


def test_csnn_channels_last_neuron_is_exact():
    # the neuron runs on the channels-last memory as it lies: same spikes, state and gradient as on NCHW
    g = torch.Generator().manual_seed(0)
    x = torch.rand(5, 3, 4, 6, 7, generator=g) * 1.5
    grad = torch.randn(x.shape, generator=g)
    results = []
    for wrapped in (False, True):
        node = csnn_mnist.leaky()
        x_cl = x.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
        x_in = (x_cl if wrapped else x).detach().requires_grad_()
        out = csnn_mnist.ChannelsLast(node)(x_in) if wrapped else node(x_in)
        (out * grad).sum().backward()
        assert out.shape == x.shape and (out.stride(2) == 1) == wrapped  # stays channels-last for the next conv
        results.append((out, x_in.grad))
    assert torch.equal(results[0][0], results[1][0]) and 0 < results[0][0].mean() < 1
    torch.testing.assert_close(results[0][1], results[1][1], rtol=0, atol=0)


def test_csnn_forward_direct_matches_repeated_input():
    # computing the first conv + pool once and repeating it is the tutorial's loop feeding the image every step
    torch.manual_seed(0)
    for channels_last in (True, False):
        net = csnn_mnist.build_net(channels_last=channels_last)
        scale_parameters(net)
        x = torch.rand(6, 1, 28, 28)
        T = 5
        out = csnn_mnist.forward_direct(net, x, T)
        functional.reset_net(net)
        ref = net(x.unsqueeze(0).expand(T, *x.shape))
        assert out.shape == (T, 6, 10) and 0.05 < out.mean() < 0.95
        torch.testing.assert_close(out, ref)
        functional.reset_net(net)


@pytest.mark.parametrize("channels_last", [True, False])
def test_csnn_spike_tensor_network_matches_float_spikes(channels_last):
    # --spike-tensor: the same network on 1-byte spikes (event-driven second convolution): same outputs and
    # gradients up to float32 summation order, the spikes between the layers are SpikeTensors
    x = torch.rand(6, 1, 28, 28)
    results = []
    for spike_tensor in (False, True):
        torch.manual_seed(0)
        net = csnn_mnist.build_net(channels_last=channels_last, spike_tensor=spike_tensor)
        scale_parameters(net)
        seen = []
        net[3].register_forward_pre_hook(lambda m, a: seen.append(type(a[0]).__name__))
        out = csnn_mnist.forward_direct(net, x, 5)
        out.sum().backward()
        assert seen == ["SpikeTensor" if spike_tensor else "Tensor"]
        results.append((out, [p.grad for p in net.parameters()]))
    assert 0.05 < results[0][0].mean() < 0.95
    torch.testing.assert_close(results[1][0], results[0][0])
    for got, want in zip(results[1][1], results[0][1]):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def snntorch_leaky_loop(x_seq, beta, slope, reset_delay, threshold=1.0):
    """snnTorch's ``Leaky.forward`` (reset_mechanism='subtract', fast_sigmoid surrogate), step by step in plain
    torch: the reset comes from the previous membrane, detached; spikes fire where mem - threshold > 0."""

    class FastSigmoidSpike(torch.autograd.Function):
        @staticmethod
        def forward(ctx, u):
            ctx.save_for_backward(u)
            return (u > 0).to(u)

        @staticmethod
        def backward(ctx, grad):
            (u,) = ctx.saved_tensors
            return grad / (slope * u.abs() + 1.0) ** 2

    mem = torch.zeros_like(x_seq[0])
    spikes = []
    for x in x_seq:
        reset = FastSigmoidSpike.apply(mem - threshold).detach()
        mem = beta * mem + x - reset * threshold
        spk = FastSigmoidSpike.apply(mem - threshold)
        if not reset_delay:
            mem = mem - (spk - reset) * threshold
        spikes.append(spk)
    return torch.stack(spikes), mem


def leaky_inputs(T=20, n=3000):
    # inputs in [-0.25, 1): the membrane stays below twice the threshold, where the two resets agree
    g = torch.Generator().manual_seed(1)
    return torch.rand(T, n, generator=g) * 1.25 - 0.25, torch.randn(T, n, generator=g)


def test_leaky_mapping_matches_snntorch_step_loop():
    """LIFNode(tau=1/(1-beta), decay_input=False, v_reset=None) is snnTorch's Leaky(beta, reset_delay=False):
    the same spikes, membrane and input gradient (fast-sigmoid surrogate)."""
    x0, grad = leaky_inputs()
    for beta in (0.5, 0.75):
        node = csnn_mnist.leaky(beta=beta, slope=25.0)
        assert node.tau == 1 / (1 - beta) and not node.decay_input and node.v_reset is None
        assert isinstance(node.surrogate_function, surrogate.FastSigmoid) and node.surrogate_function.slope == 25.0
        x = x0.clone().requires_grad_()
        spikes = node(x)
        (spikes * grad).sum().backward()
        x_ref = x0.clone().requires_grad_()
        ref_spikes, ref_mem = snntorch_leaky_loop(x_ref, beta, 25.0, reset_delay=False)
        (ref_spikes * grad).sum().backward()
        assert 0.1 < spikes.mean() < 0.6
        if beta == 0.5:  # 1/tau = 0.5 exactly: the same float arithmetic, bit for bit
            assert torch.equal(spikes, ref_spikes)
        else:  # V - V/tau vs beta*V round differently; a spike may flip only where H is within rounding of 1
            assert (spikes != ref_spikes).float().mean() < 1e-3
            continue
        torch.testing.assert_close(node.v, ref_mem.detach(), rtol=0, atol=1e-6)
        torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-5, atol=1e-6)


def test_leaky_mapping_vs_snntorch_default_reset_delay():
    """snnTorch's default Leaky (reset_delay=True, the tutorial's) subtracts the threshold one step later, after
    the decay: each neuron's first spike is at the same step, later ones may differ."""
    x0, _ = leaky_inputs()
    spikes = csnn_mnist.leaky(beta=0.5)(x0)
    ref, _ = snntorch_leaky_loop(x0, 0.5, 25.0, reset_delay=True)
    T = x0.shape[0]
    steps = torch.arange(T).unsqueeze(1).expand_as(spikes)
    first = torch.where(spikes.bool(), steps, T).min(0).values
    ref_first = torch.where(ref.bool(), steps, T).min(0).values
    assert torch.equal(first, ref_first) and (first < T).float().mean() > 0.9
    up_to_first = steps <= first
    assert torch.equal(spikes[up_to_first], ref[up_to_first])
    assert not torch.equal(spikes, ref)


def test_leaky_loop_is_snntorchs():
    """The hand loop above is snnTorch's Leaky (checked against snnTorch itself when it is installed)."""
    snn = pytest.importorskip("snntorch")
    from snntorch import surrogate as snn_surrogate

    x0, grad = leaky_inputs(T=12, n=500)
    for reset_delay in (False, True):
        lif = snn.Leaky(beta=0.5, spike_grad=snn_surrogate.fast_sigmoid(slope=25), reset_delay=reset_delay)
        x = x0.clone().requires_grad_()
        mem = lif.init_leaky()
        out = []
        for t in range(x.shape[0]):
            spk, mem = lif(x[t], mem)
            out.append(spk)
        (torch.stack(out) * grad).sum().backward()
        x_ref = x0.clone().requires_grad_()
        ref, ref_mem = snntorch_leaky_loop(x_ref, 0.5, 25.0, reset_delay=reset_delay)
        (ref * grad).sum().backward()
        assert torch.equal(torch.stack(out), ref)
        torch.testing.assert_close(mem, ref_mem)
        torch.testing.assert_close(x.grad, x_ref.grad)
