"""Shared test setup: the `cuda` marker skips when no GPU is usable; deterministic seeds."""

import pytest
import torch

import spikeops

CUDA_OK = spikeops.build_info()["cuda_available"]


def pytest_collection_modifyitems(config, items):
    skip = pytest.mark.skip(reason="needs a CUDA GPU and a spikeops built with CUDA")
    for item in items:
        if "cuda" in item.keywords and not CUDA_OK:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
