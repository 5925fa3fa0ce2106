"""The MNIST example end to end (a few batches): data sources, summary JSON, checkpoints, --resume, --help."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from spikeops import datasets
from spikeops.examples import _training, lif_fc_mnist

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


def run(tmp_path, *extra):
    summary_path = tmp_path / "summary.json"
    argv = ["--max-batches", "5", "-T", "8", "--log-dir", str(tmp_path / "logs"), "--model-output-dir",
            str(tmp_path / "ckpt"), "--summary-json", str(summary_path), "--no-progress", "--device", "cpu",
            *extra]
    returned = lif_fc_mnist.main(argv)
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


def test_help_runs_as_module():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(lif_fc_mnist.__file__).parents[2]),
                                                                      os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-m", "spikeops.examples.lif_fc_mnist", "--help"], capture_output=True,
                         text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    for option in ("--dataset-dir", "--data-dir", "--log-dir", "--model-output-dir", "-N", "-T", "--tau", "--resume",
                   "--summary-json", "--max-batches", "SPIKEOPS_DATA"):
        assert option in out.stdout
