"""MNIST from its original IDX files, and where those files come from.

:class:`MNIST` reads ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
``t10k-labels-idx1-ubyte`` (each gzipped or not) from one directory, checks every header against the bytes
that follow, and keeps the whole split in memory as tensors (``.data`` uint8 [N, 28, 28], ``.targets`` int64
[N]). A corrupt or truncated file raises ``ValueError`` naming the file and what is wrong; nothing is kept
from a split that failed to load.

:func:`resolve_mnist_root` decides which directory to read, in this order:

1. an explicit directory (``--data-dir`` on the examples' command line, or ``root``);
2. the ``SPIKEOPS_DATA`` environment variable (a directory holding the files, or a parent with ``mnist/``);
3. a complete copy in the cache (``$XDG_CACHE_HOME/spikeops/mnist``, default ``~/.cache/spikeops/mnist``);
4. a download from the standard MNIST mirrors into that cache, checking MD5 sums;
5. the sample embedded in this package (the first 2,000 training and 1,000 test digits of the real MNIST),
   so that the examples run on an offline machine.

Example::

    from spikeops import datasets
    root, source = datasets.resolve_mnist_root()
    train = datasets.MNIST(root, train=True)
    x, y = train[0]                 # float [1, 28, 28] in [0, 1], int
    images, labels = train.data, train.targets   # for batching straight from tensors
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import tempfile
import urllib.request
import zlib
from pathlib import Path
from typing import Callable, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

__all__ = ["MNIST", "resolve_mnist_root", "mnist_files_present", "download_mnist", "read_idx", "write_idx",
           "write_mnist_subset", "default_cache_dir", "SAMPLE_DIR", "MNIST_MIRRORS", "MNIST_FILES",
           "FULL_DATA_HINT"]

PathLike = Union[str, os.PathLike]

# The embedded sample (see its README.txt for the attribution and licence).
SAMPLE_DIR = Path(__file__).resolve().parent / "data" / "mnist_sample"

MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

# name -> (md5 of the original .gz as the mirrors serve it (torchvision's list), md5 of the decompressed file).
# A download is accepted when either matches, so a mirror that recompresses the files still passes.
MNIST_FILES = {
    "train-images-idx3-ubyte": ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "6bbc9ace898e44ae57da46a324031adb"),
    "train-labels-idx1-ubyte": ("d53e105ee54ea40749a09fcbcd1e9432", "a25bea736e30d166cdddb491f175f624"),
    "t10k-images-idx3-ubyte": ("9fb629c4189551a2d022fa330f9573f3", "2646ac647ad5339dbf082846283269ea"),
    "t10k-labels-idx1-ubyte": ("ec29112dd5afa0611ce80d1b7f02629c", "27ae3e4e09519cfbb04c329615203637"),
}

FULL_DATA_HINT = (
    "to train on the full MNIST (60,000 + 10,000 digits), put the four IDX files "
    "(train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
    "t10k-labels-idx1-ubyte.gz, from any MNIST mirror) in a directory and pass --data-dir DIR or set "
    "SPIKEOPS_DATA=DIR; on a machine with internet access they are downloaded automatically")

_IDX_DTYPES = {0x08: (torch.uint8, 1)}  # MNIST only uses unsigned bytes
_SUBDIRS = ("", "mnist", "MNIST/raw", "raw")  # also accept torchvision's layout root/MNIST/raw


# ---------------------------------------------------------------- IDX files

# Trailing bytes after the data are counted up to this many (then reported as "more than"), so a file whose
# stream holds far more than its header declares is rejected without reading (or decompressing) all of it.
_TRAILING_COUNT_LIMIT = 1 << 20
_READ_CHUNK = 1 << 20


class _IdxStream:
    """A file's bytes, decompressed as they are read when it starts with the gzip magic; errors name the file.
    Reads never take more memory than the bytes asked for (or present)."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self._file = open(path, "rb")
            gzipped = self._file.read(2) == b"\x1f\x8b"
            self._file.seek(0)
        except OSError as e:
            raise ValueError(f"{path}: cannot read the file ({e.strerror or e})") from e
        self._stream = gzip.GzipFile(fileobj=self._file, mode="rb") if gzipped else self._file

    def __enter__(self) -> "_IdxStream":
        return self

    def __exit__(self, *exc) -> None:
        self._file.close()

    def read(self, n: int) -> bytes:
        """Up to n bytes (fewer at the end of the data), read in chunks of at most _READ_CHUNK."""
        parts, left = [], n
        try:
            while left > 0:
                part = self._stream.read(min(left, _READ_CHUNK))
                if not part:
                    break
                parts.append(part)
                left -= len(part)
        except EOFError as e:
            raise ValueError(f"{self.path}: the gzip stream is truncated ({e})") from e
        except (gzip.BadGzipFile, zlib.error) as e:
            raise ValueError(f"{self.path}: the gzip stream is corrupt ({e})") from e
        except OSError as e:
            raise ValueError(f"{self.path}: cannot read the file ({e.strerror or e})") from e
        return b"".join(parts)


def read_idx(path: PathLike, expected_ndim: Optional[int] = None) -> Tensor:
    """Read one IDX file (gzipped or not) into a tensor, checking the header against the data.

    The header is read first and bounds what is read after it: a file (or gzip stream) holding more than its
    header declares is rejected once a bounded number of extra bytes has been counted.

    Args:
        path: the file.
        expected_ndim (int, optional): the number of dimensions the header must announce.

    Returns:
        Tensor: uint8 with the shape the header gives.

    Raises:
        ValueError: naming the file, when the magic number, the dimensions or the length are wrong.
    """
    path = Path(path)
    with _IdxStream(path) as stream:
        magic = stream.read(4)
        if len(magic) < 4:
            raise ValueError(f"{path}: too short for an IDX file ({len(magic)} bytes; the header alone is at least 4)")
        zero, type_code, ndim = struct.unpack(">HBB", magic)
        if zero != 0:
            raise ValueError(f"{path}: bad magic number 0x{magic.hex()} (an IDX file starts with two zero bytes)")
        if type_code not in _IDX_DTYPES:
            raise ValueError(f"{path}: unsupported IDX data type 0x{type_code:02x} (MNIST uses 0x08, unsigned byte)")
        if expected_ndim is not None and ndim != expected_ndim:
            raise ValueError(f"{path}: the header announces {ndim} dimensions, expected {expected_ndim} "
                             f"(magic 0x{magic.hex()})")
        header = 4 + 4 * ndim
        dims_bytes = stream.read(4 * ndim)
        if len(dims_bytes) < 4 * ndim:
            raise ValueError(f"{path}: truncated header ({4 + len(dims_bytes)} bytes, the {ndim}-dimensional header "
                             f"needs {header})")
        dims = struct.unpack(f">{ndim}I", dims_bytes)
        dtype, itemsize = _IDX_DTYPES[type_code]
        count = 1
        for d in dims:
            count *= d
        expected = header + count * itemsize
        body = stream.read(count * itemsize)
        if len(body) < count * itemsize:
            raise ValueError(f"{path}: truncated: the header announces shape {list(dims)} ({expected} bytes with the "
                             f"header) but the file holds {header + len(body)} bytes")
        trailing = len(stream.read(_TRAILING_COUNT_LIMIT + 1))
        if trailing > _TRAILING_COUNT_LIMIT:
            raise ValueError(f"{path}: more than {_TRAILING_COUNT_LIMIT} unexpected bytes after the data of shape "
                             f"{list(dims)}")
        if trailing:
            raise ValueError(f"{path}: {trailing} unexpected bytes after the data of shape {list(dims)}")
    data = torch.frombuffer(bytearray(body), dtype=dtype) if count else torch.empty(0, dtype=dtype)
    return data.reshape(dims)


def write_idx(path: PathLike, tensor: Tensor, compress: Optional[bool] = None) -> None:
    """Write a uint8 tensor as an IDX file (gzipped when ``compress`` or when the name ends in ``.gz``).

    The gzip header carries no time stamp, so the same tensor always gives the same bytes.
    """
    path = Path(path)
    if tensor.dtype != torch.uint8:
        raise TypeError(f"write_idx: tensor must be uint8, got {tensor.dtype}")
    if tensor.dim() > 255:
        raise ValueError("write_idx: at most 255 dimensions")
    header = struct.pack(">HBB", 0, 0x08, tensor.dim()) + struct.pack(f">{tensor.dim()}I", *tensor.shape)
    payload = header + tensor.contiguous().numpy().tobytes()
    if compress is None:
        compress = path.suffix == ".gz"
    if compress:
        payload = gzip.compress(payload, compresslevel=9, mtime=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(payload)


def _find_file(root: Path, name: str) -> Optional[Path]:
    for sub in _SUBDIRS:
        for candidate in (root / sub / name, root / sub / (name + ".gz")):
            if candidate.is_file():
                return candidate
    return None


def mnist_files_present(root: PathLike) -> bool:
    """True when ``root`` (or root/mnist, root/MNIST/raw) holds all four MNIST files, gzipped or not."""
    root = Path(root)
    return root.is_dir() and all(_find_file(root, name) is not None for name in MNIST_FILES)


# ---------------------------------------------------------------- the data set

class MNIST(torch.utils.data.Dataset):
    """The MNIST digits, read from the original IDX files.

    Args:
        root: directory with the IDX files (``train-images-idx3-ubyte[.gz]`` etc.; ``root/mnist/`` and
            torchvision's ``root/MNIST/raw/`` are searched too).
        train (bool): the 60,000-digit training split (True) or the 10,000-digit test split.
        transform (callable, optional): applied to the float image [1, 28, 28] in __getitem__.
        target_transform (callable, optional): applied to the int label in __getitem__.

    Attributes:
        data (Tensor): uint8 [N, 28, 28], the whole split (for batching without a DataLoader).
        targets (Tensor): int64 [N], labels 0..9.
        root (Path), files (tuple of Path): where they were read from.

    Raises:
        FileNotFoundError: a file is missing. ValueError: a file is corrupt, truncated or inconsistent.
    """

    classes = [str(i) for i in range(10)]

    def __init__(self, root: PathLike, train: bool = True, transform: Optional[Callable] = None,
                 target_transform: Optional[Callable] = None):
        self.root = Path(root)
        self.train = bool(train)
        self.transform = transform
        self.target_transform = target_transform
        prefix = "train" if self.train else "t10k"
        image_name, label_name = f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"
        paths = []
        for name in (image_name, label_name):
            p = _find_file(self.root, name)
            if p is None:
                raise FileNotFoundError(f"MNIST: {name}[.gz] not found in {self.root}; {FULL_DATA_HINT}")
            paths.append(p)
        image_path, label_path = paths
        images = read_idx(image_path, expected_ndim=3)
        if tuple(images.shape[1:]) != (28, 28):
            raise ValueError(f"{image_path}: MNIST images must be 28 x 28, the header says "
                             f"{images.shape[1]} x {images.shape[2]}")
        labels = read_idx(label_path, expected_ndim=1)
        if labels.shape[0] != images.shape[0]:
            raise ValueError(f"{label_path}: holds {labels.shape[0]} labels but {image_path.name} holds "
                             f"{images.shape[0]} images")
        if labels.numel() and int(labels.max()) > 9:
            raise ValueError(f"{label_path}: label {int(labels.max())} is out of range (MNIST labels are 0..9)")
        # Assigned only now: a failure above leaves no half-loaded object behind.
        self.files = (image_path, label_path)
        self.data = images
        self.targets = labels.long()

    def __len__(self) -> int:
        return self.data.shape[0]

    def __getitem__(self, index: int) -> Tuple[Tensor, int]:
        image = self.data[index].unsqueeze(0).float().div_(255.0)
        label = int(self.targets[index])
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return image, label

    def __repr__(self) -> str:
        split = "train" if self.train else "test"
        return f"MNIST(split={split}, n={len(self)}, root={str(self.root)!r})"


# ---------------------------------------------------------------- where the data comes from

def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/spikeops/mnist``, or ``~/.cache/spikeops/mnist``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "spikeops" / "mnist"


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def download_mnist(dest: PathLike, mirrors: Sequence[str] = MNIST_MIRRORS, timeout: float = 10.0,
                   log: Callable[[str], None] = print) -> Path:
    """Download the four MNIST files into ``dest``, checking their MD5 sums.

    Each file goes to a temporary name and is renamed only once verified, so an interrupted download
    never leaves a file that looks complete. Files already present and verified are kept.

    Raises:
        RuntimeError: when a file could not be fetched from any mirror (the message lists each failure).
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name, (gz_md5, raw_md5) in MNIST_FILES.items():
        target = dest / (name + ".gz")
        if target.is_file():
            data = target.read_bytes()
            try:
                ok = _md5(data) == gz_md5 or _md5(gzip.decompress(data)) == raw_md5
            except (OSError, EOFError, zlib.error):
                ok = False
            if ok:
                continue
        errors = []
        for mirror in mirrors:
            url = mirror + name + ".gz"
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    data = response.read()
            except Exception as e:  # network errors come in many types (URLError, socket.timeout, ...)
                errors.append(f"{url}: {e}")
                continue
            try:
                ok = _md5(data) == gz_md5 or _md5(gzip.decompress(data)) == raw_md5
            except (OSError, EOFError, zlib.error):
                ok = False
            if not ok:
                errors.append(f"{url}: MD5 mismatch (got {_md5(data)}, expected {gz_md5})")
                continue
            fd, tmp = tempfile.mkstemp(dir=dest, prefix=name, suffix=".part")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, target)
            log(f"downloaded {url} ({len(data)} bytes, MD5 verified)")
            break
        else:
            raise RuntimeError(f"could not download {name}.gz: " + "; ".join(errors))
    return dest


def resolve_mnist_root(data_dir: Optional[PathLike] = None, download: bool = True,
                       cache_dir: Optional[PathLike] = None, timeout: float = 10.0,
                       log: Callable[[str], None] = print) -> Tuple[Path, str]:
    """Choose the MNIST directory: explicit, ``SPIKEOPS_DATA``, cache, download, or the embedded sample.

    Args:
        data_dir: an explicit directory; when given it must hold the files (no fallback).
        download (bool): try the mirrors when nothing local is found. Default True.
        cache_dir: where downloads go. Default :func:`default_cache_dir`.
        timeout (float): seconds per network operation.
        log (callable): receives progress messages.

    Returns:
        (Path, str): the directory and a one-line description of the source, e.g.
        ``"embedded sample (2,000 train / 1,000 test digits of MNIST)"``. :data:`FULL_DATA_HINT` says how
        to get the full set.

    Raises:
        FileNotFoundError: ``data_dir`` or ``SPIKEOPS_DATA`` names a directory without the four files.
    """
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        if not mnist_files_present(root):
            raise FileNotFoundError(f"--data-dir {root}: the four MNIST IDX files are not there "
                                    f"(expected {', '.join(n + '[.gz]' for n in MNIST_FILES)})")
        return root, f"MNIST from {root} (given explicitly)"
    env = os.environ.get("SPIKEOPS_DATA")
    if env:
        root = Path(env).expanduser()
        if mnist_files_present(root):  # also finds them in root/mnist and root/MNIST/raw
            return root, f"MNIST from {root} (SPIKEOPS_DATA)"
        raise FileNotFoundError(f"SPIKEOPS_DATA={env}: the four MNIST IDX files are neither there nor in "
                                f"{root / 'mnist'}")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if mnist_files_present(cache):
        return cache, f"MNIST from the cache {cache}"
    if download:
        try:
            download_mnist(cache, timeout=timeout, log=log)
            return cache, f"MNIST downloaded into the cache {cache}"
        except (RuntimeError, OSError) as e:
            log(f"MNIST download failed ({_first_line(str(e))}); using the embedded sample")
    n_train, n_test = _sample_sizes()
    return SAMPLE_DIR, (f"embedded sample ({n_train:,} train / {n_test:,} test digits of MNIST, "
                        f"shipped in the package)")


def _first_line(text: str, limit: int = 200) -> str:
    text = text.splitlines()[0] if text else ""
    return text if len(text) <= limit else text[:limit] + "..."


def _sample_sizes() -> Tuple[int, int]:
    sizes = []
    for name in ("train-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        try:
            with gzip.open(SAMPLE_DIR / name, "rb") as f:
                sizes.append(struct.unpack(">I", f.read(8)[4:8])[0])
        except (OSError, EOFError, struct.error):
            sizes.append(0)
    return sizes[0], sizes[1]


def write_mnist_subset(src_root: PathLike, dst_dir: PathLike, n_train: int = 2000, n_test: int = 1000) -> None:
    """Write the first ``n_train`` training and ``n_test`` test digits of the MNIST in ``src_root`` as gzipped
    IDX files into ``dst_dir`` (this is how the embedded sample was made).

    Example::

        python -c "from spikeops import datasets; datasets.write_mnist_subset('/path/to/mnist', \\
            'python/spikeops/data/mnist_sample')"
    """
    for train, n in ((True, n_train), (False, n_test)):
        ds = MNIST(src_root, train=train)
        prefix = "train" if train else "t10k"
        write_idx(Path(dst_dir) / f"{prefix}-images-idx3-ubyte.gz", ds.data[:n].clone())
        write_idx(Path(dst_dir) / f"{prefix}-labels-idx1-ubyte.gz", ds.targets[:n].to(torch.uint8))
