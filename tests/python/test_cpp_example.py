"""The installed C++ application (examples/cpp/mnist_infer) against the Python model it was exported from.

Runs only where CI (or you) built the example and points ``SPIKEOPS_MNIST_INFER`` at the binary::

    SPIKEOPS_MNIST_INFER=build/ci-example/mnist_infer python -m pytest tests/python/test_cpp_example.py

A small convolutional SNN is trained for a few hundred steps on MNIST (the full set from ../shared when it is
there, else the sample shipped in the package), exported, and run by the C++ program on the test images: its
predictions and output spike counts must be identical to the Python model's.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
from torch import nn

import spikeops
from spikeops import datasets, functional, layer, neuron, surrogate

RUNNER = os.environ.get("SPIKEOPS_MNIST_INFER")
SHARED_MNIST = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "mnist"
T = 8

pytestmark = pytest.mark.skipif(not RUNNER, reason="SPIKEOPS_MNIST_INFER (the built mnist_infer) is not set")


def small_csnn() -> nn.Sequential:
    def lif():
        return neuron.LIFNode(tau=2.0, surrogate_function=surrogate.ATan(), step_mode="m")
    return nn.Sequential(
        layer.Conv2d(1, 8, 5, step_mode="m"), layer.MaxPool2d(2, step_mode="m"), lif(),
        layer.Conv2d(8, 16, 5, step_mode="m"), layer.MaxPool2d(2, step_mode="m"), lif(),
        layer.Flatten(step_mode="m"), layer.Linear(16 * 4 * 4, 10, step_mode="m"), lif())


def counts(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    functional.reset_net(net)
    out = net(x.unsqueeze(0).repeat(T, 1, 1, 1, 1)).sum(0)
    functional.reset_net(net)
    return out


def test_cpp_application_matches_python(tmp_path):
    root = SHARED_MNIST if datasets.mnist_files_present(SHARED_MNIST) else datasets.SAMPLE_DIR
    train = datasets.MNIST(root, train=True)
    test = datasets.MNIST(root, train=False)
    train_x = train.data.float().div(255).unsqueeze(1)
    train_y = train.targets.long()

    torch.manual_seed(0)
    net = small_csnn()
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    for step in range(300):
        idx = torch.randint(0, train_x.shape[0], (64,))
        rate = counts(net, train_x[idx]) / T
        loss = nn.functional.mse_loss(rate, nn.functional.one_hot(train_y[idx], 10).float())
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()

    path = tmp_path / "small_csnn.spikeops"
    spikeops.export(net, path, train_x[:1], T=T, encoding="direct")
    n = min(1000, len(test))
    predictions = tmp_path / "predictions.txt"
    subprocess.run([RUNNER, str(path), str(root), "--limit", str(n), "--batch", "64", "--predictions",
                    str(predictions)], check=True)

    rows = [line.split() for line in predictions.read_text().splitlines()]
    assert [int(r[0]) for r in rows] == list(range(n))
    cpp_pred = torch.tensor([int(r[1]) for r in rows])
    cpp_counts = torch.tensor([[float(v) for v in r[2:]] for r in rows])

    test_x = test.data[:n].float().div(255).unsqueeze(1)
    with torch.no_grad():
        py_counts = torch.cat([counts(net, test_x[i:i + 100]) for i in range(0, n, 100)])
    py_pred = py_counts.argmax(1)

    # the network learned something, so the comparison is not between two silent networks
    accuracy = (py_pred == test.targets[:n].long()).float().mean().item()
    assert accuracy > 0.7, accuracy
    assert py_counts.sum() > n
    mismatched = (cpp_counts != py_counts).any(1).nonzero().flatten().tolist()
    assert not mismatched, f"spike counts differ on images {mismatched[:10]}"
    assert torch.equal(cpp_pred, py_pred)


def test_cpp_application_device_option(tmp_path):
    """--device: a bad name is refused; cuda runs on a GPU when the installed library has CUDA and one is
    present (the GPU's results are compared with the CPU's in test_cuda.py), else fails with a message."""
    root = SHARED_MNIST if datasets.mnist_files_present(SHARED_MNIST) else datasets.SAMPLE_DIR
    torch.manual_seed(0)
    path = tmp_path / "small_csnn.spikeops"
    spikeops.export(small_csnn(), path, torch.rand(1, 1, 28, 28), T=T, encoding="direct")
    base = [RUNNER, str(path), str(root), "--limit", "64", "--json"]
    bad = subprocess.run(base + ["--device", "tpu"], capture_output=True, text=True)
    assert bad.returncode == 1 and "--device must be cpu, cuda or cuda:N, got tpu" in bad.stderr
    cpu = subprocess.run(base + ["--device", "cpu"], capture_output=True, text=True, check=True)
    gpu = subprocess.run(base + ["--device", "cuda"], capture_output=True, text=True)
    if gpu.returncode == 0:
        assert json.loads(gpu.stdout)["device"] == "cuda"
        assert abs(json.loads(gpu.stdout)["accuracy"] - json.loads(cpu.stdout)["accuracy"]) <= 0.02
    else:
        assert gpu.returncode == 1 and "CUDA" in gpu.stderr, gpu.stderr
