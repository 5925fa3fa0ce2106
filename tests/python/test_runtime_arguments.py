"""Arguments of the runtime Model and of export that used to escape as raw Python or torch errors."""

import numpy as np
import pytest
import torch
from torch import nn

import spikeops
from spikeops import layer, neuron


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("runtime_args") / "net.spikeops"
    net = nn.Sequential(layer.Flatten(step_mode="m"), layer.Linear(4, 3, step_mode="m"), neuron.LIFNode(step_mode="m"))
    spikeops.export(net, path, torch.rand(1, 4), T=3, encoding="poisson")
    return spikeops.runtime.load(path)


@pytest.mark.parametrize("seed", ["a", None, 1.5, float("nan"), True, torch.tensor(1.0)])
def test_seed_must_be_an_int(model, seed):
    # 'a', None and NaN used to fail inside int() without naming seed; 1.5 was silently truncated to 1.
    with pytest.raises(TypeError, match=r"RuntimeModel: seed must be an int in \[0, 2\*\*64\)"):
        model(torch.rand(2, 4), seed=seed)


@pytest.mark.parametrize("seed", [0, 7, 2**64 - 1, np.uint64(5), np.int32(3)])
def test_integer_seeds_are_accepted(model, seed):
    scores, predictions = model(torch.rand(2, 4), seed=seed)
    assert scores.shape == (2, 3) and predictions.shape == (2,)


@pytest.mark.parametrize("device, exc, match", [(None, TypeError, "got NoneType"), (3, TypeError, "got int"),
                                                ("gpu0", ValueError, "'gpu0' is not a device name")])
def test_to_names_a_bad_device(model, device, exc, match):
    # None gave torch's "device() received an invalid combination of arguments", 3 a RuntimeError about
    # accelerators, "gpu0" torch's RuntimeError.
    with pytest.raises(exc, match=rf"RuntimeModel.to: device .*{match}"):
        model.to(device)
    assert model.device == torch.device("cpu")


def test_export_to_a_directory_is_named(tmp_path):
    # Used to raise IsADirectoryError from the rename of the temporary file.
    net = nn.Sequential(layer.Flatten(step_mode="m"), layer.Linear(4, 3, step_mode="m"), neuron.IFNode(step_mode="m"))
    with pytest.raises(ValueError, match=r"spikeops.export: path .* is a directory"):
        spikeops.export(net, tmp_path, torch.rand(1, 4), T=2)
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind
