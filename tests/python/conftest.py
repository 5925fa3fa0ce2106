"""Shared test setup: the `cuda` marker skips when no GPU is usable; deterministic seeds."""

import pytest
import torch
from hypothesis import HealthCheck, settings

import spikeops

CUDA_OK = spikeops.build_info()["cuda_available"]

settings.register_profile("spikeops", derandomize=True, deadline=None, max_examples=40,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("spikeops")

# The CUDA tests compare float32 results of torch ops on the GPU (a Conv2d fed real values, the dense gradient of
# spikes) with the CPU's: torch lets cuDNN convolutions use TF32 by default (10-bit mantissas), which would flip
# spikes that sit near the threshold. Full float32 on the GPU for the whole session. (The legacy flags: reading
# them back raises once only part of torch's newer fp32_precision settings has been set.)
torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="needs a CUDA GPU and a spikeops built with CUDA")
    for item in items:
        if "cuda" in item.keywords and not CUDA_OK:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
