"""spikeops.datasets: IDX reading and validation, the MNIST data set, where the data comes from."""

import gzip
import hashlib
import struct
from pathlib import Path

import pytest
import torch

from spikeops import datasets

SHARED_MNIST = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "mnist"
NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def make_mnist(root: Path, n_train: int = 12, n_test: int = 5, gz: bool = True, seed: int = 0):
    """A small synthetic MNIST in the original layout; returns the tensors written."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=g)
        labels = torch.randint(0, 10, (n,), dtype=torch.uint8, generator=g)
        ext = ".gz" if gz else ""
        datasets.write_idx(root / f"{prefix}-images-idx3-ubyte{ext}", images)
        datasets.write_idx(root / f"{prefix}-labels-idx1-ubyte{ext}", labels)
        out[prefix] = (images, labels)
    return out


def raw_idx(dims, payload: bytes, type_code: int = 0x08) -> bytes:
    return struct.pack(">HBB", 0, type_code, len(dims)) + struct.pack(f">{len(dims)}I", *dims) + payload


# ---------------------------------------------------------------- IDX files

@pytest.mark.parametrize("name", ["x.idx", "x.idx.gz"])
def test_write_read_idx_round_trip(tmp_path, name):
    t = torch.randint(0, 256, (3, 4, 5), dtype=torch.uint8)
    datasets.write_idx(tmp_path / name, t)
    assert (tmp_path / name).read_bytes()[:2] == (b"\x1f\x8b" if name.endswith(".gz") else b"\x00\x00")
    back = datasets.read_idx(tmp_path / name, expected_ndim=3)
    assert back.dtype == torch.uint8 and torch.equal(back, t)


def test_write_idx_is_deterministic(tmp_path):
    t = torch.arange(100, dtype=torch.uint8)
    datasets.write_idx(tmp_path / "a.gz", t)
    datasets.write_idx(tmp_path / "b.gz", t)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()


def test_read_idx_empty(tmp_path):
    (tmp_path / "e").write_bytes(raw_idx((0, 28, 28), b""))
    assert datasets.read_idx(tmp_path / "e").shape == (0, 28, 28)


@pytest.mark.parametrize("content, message", [
    (b"\x00\x00", "too short"),
    (b"\x01\x00\x08\x03" + b"\x00" * 12, "bad magic number"),
    (raw_idx((2, 2), b"\x00" * 4, type_code=0x0D), "unsupported IDX data type"),
    (raw_idx((2, 2), b"\x00" * 4), "announces 2 dimensions, expected 3"),
    (b"\x00\x00\x08\x03\x00\x00\x00\x02", "truncated header"),
    (raw_idx((2, 28, 28), b"\x00" * (2 * 784 - 1)), "truncated"),
    (raw_idx((2, 28, 28), b"\x00" * (2 * 784 + 3)), "3 unexpected bytes"),
])
def test_read_idx_rejects_bad_files(tmp_path, content, message):
    path = tmp_path / "bad-images-idx3-ubyte"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as info:
        datasets.read_idx(path, expected_ndim=3)
    assert str(path) in str(info.value)


def test_read_idx_truncated_and_corrupt_gzip(tmp_path):
    t = torch.randint(0, 256, (50, 28, 28), dtype=torch.uint8)
    datasets.write_idx(tmp_path / "ok.gz", t)
    blob = (tmp_path / "ok.gz").read_bytes()
    (tmp_path / "cut.gz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ValueError, match="cut.gz.*truncated"):
        datasets.read_idx(tmp_path / "cut.gz")
    bad = bytearray(blob)
    bad[len(bad) // 2] ^= 0xFF
    bad[-8] ^= 0xFF  # the CRC too, so any decoder notices
    (tmp_path / "bad.gz").write_bytes(bytes(bad))
    with pytest.raises(ValueError, match="bad.gz.*(corrupt|truncated)"):
        datasets.read_idx(tmp_path / "bad.gz")


def test_read_idx_reads_no_more_than_the_header_declares(tmp_path):
    """A small gzip file whose header declares 10 images but whose stream holds 64 MiB more is rejected without
    decompressing (or holding) all of it: the header bounds what is read."""
    import gzip
    import tracemalloc

    extra = 64 << 20
    path = tmp_path / "bomb-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(raw_idx((10, 28, 28), b"\x00" * (10 * 784 + extra)), compresslevel=1))
    assert path.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"more than \d+ unexpected bytes after the data of shape \[10, 28, 28\]"):
            datasets.read_idx(path, expected_ndim=3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"read_idx held {peak} bytes for a 10-image file"


def test_read_idx_unreadable(tmp_path):
    with pytest.raises(ValueError, match="cannot read"):
        datasets.read_idx(tmp_path)  # a directory


# ---------------------------------------------------------------- MNIST

@pytest.mark.parametrize("gz", [True, False])
def test_mnist_loads_both_splits(tmp_path, gz):
    written = make_mnist(tmp_path, gz=gz)
    for train, prefix in ((True, "train"), (False, "t10k")):
        ds = datasets.MNIST(tmp_path, train=train)
        images, labels = written[prefix]
        assert len(ds) == images.shape[0]
        assert ds.data.dtype == torch.uint8 and torch.equal(ds.data, images)
        assert ds.targets.dtype == torch.int64 and torch.equal(ds.targets, labels.long())
        x, y = ds[3]
        assert x.shape == (1, 28, 28) and x.dtype == torch.float32
        assert torch.allclose(x[0], images[3].float() / 255) and 0 <= x.min() and x.max() <= 1
        assert isinstance(y, int) and y == int(labels[3])
        assert repr(ds).startswith("MNIST(")


def test_mnist_transforms(tmp_path):
    make_mnist(tmp_path)
    ds = datasets.MNIST(tmp_path, transform=lambda x: x * 2, target_transform=lambda y: y + 100)
    x, y = ds[0]
    assert torch.allclose(x, datasets.MNIST(tmp_path)[0][0] * 2) and y >= 100


def test_mnist_torchvision_layout(tmp_path):
    make_mnist(tmp_path / "MNIST" / "raw", gz=False)
    assert datasets.mnist_files_present(tmp_path)
    assert len(datasets.MNIST(tmp_path, train=False)) == 5


def test_mnist_missing_file(tmp_path):
    make_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    assert not datasets.mnist_files_present(tmp_path)
    datasets.MNIST(tmp_path, train=True)  # the other split is complete
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        datasets.MNIST(tmp_path, train=False)


def test_mnist_inconsistent_files(tmp_path):
    make_mnist(tmp_path)
    datasets.write_idx(tmp_path / "train-labels-idx1-ubyte.gz", torch.zeros(11, dtype=torch.uint8))
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.gz: holds 11 labels but .* holds 12 images"):
        datasets.MNIST(tmp_path)
    datasets.write_idx(tmp_path / "train-labels-idx1-ubyte.gz", torch.full((12,), 10, dtype=torch.uint8))
    with pytest.raises(ValueError, match="label 10 is out of range"):
        datasets.MNIST(tmp_path)
    datasets.write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", torch.zeros(5, 27, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz: MNIST images must be 28 x 28"):
        datasets.MNIST(tmp_path, train=False)


def test_mnist_truncated_file_names_it(tmp_path):
    make_mnist(tmp_path, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte: truncated"):
        datasets.MNIST(tmp_path)


def test_embedded_sample():
    assert datasets.mnist_files_present(datasets.SAMPLE_DIR)
    train = datasets.MNIST(datasets.SAMPLE_DIR, train=True)
    test = datasets.MNIST(datasets.SAMPLE_DIR, train=False)
    assert (len(train), len(test)) == (2000, 1000)
    assert set(train.targets.tolist()) == set(range(10))
    assert (datasets.SAMPLE_DIR / "README.txt").read_text().count("CC BY-SA 3.0") >= 1
    size = sum(p.stat().st_size for p in datasets.SAMPLE_DIR.iterdir())
    assert size < 1_000_000


@pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="the full MNIST is not in ../shared/datasets/mnist")
def test_full_mnist_and_sample_match():
    train = datasets.MNIST(SHARED_MNIST, train=True)
    test = datasets.MNIST(SHARED_MNIST, train=False)
    assert train.data.shape == (60000, 28, 28) and test.data.shape == (10000, 28, 28)
    assert train.targets.bincount().tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    sample_train = datasets.MNIST(datasets.SAMPLE_DIR, train=True)
    sample_test = datasets.MNIST(datasets.SAMPLE_DIR, train=False)
    assert torch.equal(sample_train.data, train.data[:2000]) and torch.equal(sample_train.targets, train.targets[:2000])
    assert torch.equal(sample_test.data, test.data[:1000]) and torch.equal(sample_test.targets, test.targets[:1000])


# ---------------------------------------------------------------- where the data comes from

@pytest.fixture
def no_env(monkeypatch, tmp_path):
    monkeypatch.delenv("SPIKEOPS_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _offline(monkeypatch):
    calls = []

    def urlopen(url, timeout=None):
        calls.append(url)
        raise OSError("no network in this test")

    monkeypatch.setattr(datasets.urllib.request, "urlopen", urlopen)
    return calls


def test_resolve_explicit(tmp_path, no_env):
    make_mnist(tmp_path / "m")
    root, source = datasets.resolve_mnist_root(tmp_path / "m")
    assert root == tmp_path / "m" and "given explicitly" in source
    with pytest.raises(FileNotFoundError, match="not there"):
        datasets.resolve_mnist_root(tmp_path / "nothing")


def test_resolve_env(tmp_path, no_env, monkeypatch):
    make_mnist(tmp_path / "data" / "mnist")
    for value in (tmp_path / "data", tmp_path / "data" / "mnist"):
        monkeypatch.setenv("SPIKEOPS_DATA", str(value))
        root, source = datasets.resolve_mnist_root()
        assert root == value and "SPIKEOPS_DATA" in source and len(datasets.MNIST(root)) == 12
    monkeypatch.setenv("SPIKEOPS_DATA", str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="SPIKEOPS_DATA"):
        datasets.resolve_mnist_root()


def test_resolve_cache_then_sample(tmp_path, no_env, monkeypatch):
    calls = _offline(monkeypatch)
    assert datasets.default_cache_dir() == tmp_path / "cache" / "spikeops" / "mnist"
    logs = []
    root, source = datasets.resolve_mnist_root(log=logs.append)
    assert root == datasets.SAMPLE_DIR and "embedded sample (2,000 train / 1,000 test" in source
    assert len(calls) == len(datasets.MNIST_MIRRORS) and any("download failed" in m for m in logs)
    calls.clear()
    root, _ = datasets.resolve_mnist_root(download=False)
    assert root == datasets.SAMPLE_DIR and not calls
    make_mnist(datasets.default_cache_dir())
    root, source = datasets.resolve_mnist_root()
    assert root == datasets.default_cache_dir() and "cache" in source and not calls


def test_download_verifies_md5(tmp_path, no_env, monkeypatch):
    src = tmp_path / "src"
    make_mnist(src)
    blobs = {name: (src / (name + ".gz")).read_bytes() for name in NAMES}
    sums = {name: (hashlib.md5(b).hexdigest(), hashlib.md5(gzip.decompress(b)).hexdigest())
            for name, b in blobs.items()}
    monkeypatch.setattr(datasets, "MNIST_FILES", sums)
    served = []

    class Response:
        def __init__(self, data):
            self.data = data

        def read(self):
            return self.data

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def urlopen(url, timeout=None):
        served.append(url)
        name = url.rsplit("/", 1)[1][:-3]
        if url.startswith(datasets.MNIST_MIRRORS[0]):
            return Response(blobs[name][:-10])  # a damaged copy: the MD5 check must reject it
        return Response(blobs[name])

    monkeypatch.setattr(datasets.urllib.request, "urlopen", urlopen)
    root, source = datasets.resolve_mnist_root(log=lambda m: None)
    assert root == datasets.default_cache_dir() and "downloaded" in source
    assert len(served) == 8  # each file: the damaged mirror, then the good one
    assert torch.equal(datasets.MNIST(root).data, datasets.MNIST(src).data)
    assert not list(root.glob("*.part"))
    served.clear()
    datasets.download_mnist(root, log=lambda m: None)  # already there and verified: nothing fetched
    assert not served


def test_download_all_mirrors_bad(tmp_path, no_env, monkeypatch):
    _offline(monkeypatch)
    with pytest.raises(RuntimeError, match="could not download train-images-idx3-ubyte.gz"):
        datasets.download_mnist(tmp_path / "dl", log=lambda m: None)
