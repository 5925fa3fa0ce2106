"""Keep large CPU buffers in the process heap between training steps: :func:`tune_cpu_allocator`.

glibc's malloc serves every request above its mmap threshold (at most 32 MiB) with freshly mapped pages and
unmaps them on free. Multi-step SNN training allocates activations of all T steps at once ([T * N, C, H, W]
tensors of tens of MiB), so with the default allocator each step maps them again and touches every 4 KiB
page for the first time: zero fills and outputs that should cost little take many times longer in page
faults (docs/performance.md has the figures). A per-step loop does not pay this, because its tensors are T times smaller and glibc reuses them.

The usual cure for PyTorch on CPUs is another allocator (jemalloc or tcmalloc through ``LD_PRELOAD``). This
function does the equivalent with glibc's own knobs, for the calling process: no mmap for large requests
(``M_MMAP_MAX = 0``) and freed memory kept at the top of the heap up to ``trim_threshold`` bytes
(``M_TRIM_THRESHOLD``). The environment variables ``MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=...`` do the same
from outside. The cost: memory freed by the process is returned to the operating system less eagerly.

The library never calls it by itself (the allocator belongs to the application); the MNIST examples and
``bench/train_mnist.py`` do, unless told not to.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

__all__ = ["tune_cpu_allocator"]

# mallopt parameters, from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


class MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (glibc >= 2.33)."""

    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]


@functools.lru_cache(maxsize=None)
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def mallinfo2() -> MallInfo2:
    """glibc's malloc statistics, for measurements (the benchmarks and tests): ``uordblks`` bytes in use in the
    heap, ``hblkhd`` bytes in mmapped blocks. Raises OSError or AttributeError where the C library has no
    ``mallinfo2`` (not glibc >= 2.33)."""
    fn = _libc().mallinfo2
    fn.restype = MallInfo2
    return fn()


def tune_cpu_allocator(trim_threshold: int = 1 << 30) -> bool:
    """Make glibc's malloc keep large buffers in the heap (see the module docstring). Process-wide.

    Args:
        trim_threshold (int): bytes of free memory at the top of the heap kept before glibc gives it back to the
            operating system, in [0, 2**31).

    Returns:
        bool: True when applied; False where the C library is not glibc (macOS, Windows, musl): nothing changed
        there (use jemalloc or tcmalloc through ``LD_PRELOAD`` where that matters).
    """
    if not (0 <= int(trim_threshold) < 2 ** 31):
        raise ValueError(f"tune_cpu_allocator: trim_threshold must be in [0, 2**31), got {trim_threshold}")
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = _libc()
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # glibc only  # noqa: B018
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)))
