"""spikeops.tune_cpu_allocator: large CPU buffers come from the heap instead of fresh mappings (glibc only).

Each case runs in a subprocess, since the setting is process-wide."""

import subprocess
import sys

import pytest

import spikeops

PROBE = r"""
import sys
import torch, spikeops
from spikeops._allocator import mallinfo2

if sys.argv[1] == "tuned":
    assert spikeops.tune_cpu_allocator() is True
before = mallinfo2().hblkhd  # bytes in mmap-ed blocks
x = torch.ones(64 << 20, dtype=torch.uint8)
print(mallinfo2().hblkhd - before)
"""


def mapped_bytes_of_a_64_mib_tensor(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], check=True, capture_output=True, text=True).stdout
    return int(out.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_large_buffers_come_from_the_heap():
    try:
        default = mapped_bytes_of_a_64_mib_tensor("default")
    except subprocess.CalledProcessError as e:  # musl or a glibc without mallinfo2
        pytest.skip(f"cannot read glibc's malloc statistics: {e.stderr[-200:]}")
    assert default >= 64 << 20  # glibc maps a fresh region for it
    assert mapped_bytes_of_a_64_mib_tensor("tuned") < 1 << 20  # the heap serves it


def test_bad_argument():
    with pytest.raises(ValueError, match=r"trim_threshold must be in \[0, 2\*\*31\)"):
        spikeops.tune_cpu_allocator(-1)
