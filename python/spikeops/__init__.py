"""spikeops: spiking neural networks for PyTorch on fused C++/CUDA kernels.

SpikingJelly-style API::

    from spikeops import neuron, surrogate, functional, layer
    node = neuron.LIFNode(tau=2.0, surrogate_function=surrogate.ATan(), step_mode='m')
    spikes = node(x_seq)          # x_seq: [T, N, *]
    functional.reset_net(node)
"""

from __future__ import annotations

from importlib.metadata import version as _distribution_version

from . import _C
from . import _ops  # noqa: F401  (registers the torch.library ops)
from . import base, datasets, encoding, functional, layer, loss, neuron, runtime, surrogate
from ._allocator import tune_cpu_allocator
from ._export import export
from .spike_tensor import SpikeTensor, SpikeTensorDensifyWarning, to_spike_tensor

# The installed distribution's version: CMakeLists.txt's project() line, as the compiled core's build_info().
__version__ = _distribution_version("spikeops")

__all__ = ["build_info", "export", "tune_cpu_allocator", "SpikeTensor", "SpikeTensorDensifyWarning", "to_spike_tensor", "neuron", "surrogate", "functional", "layer", "base", "datasets", "encoding",
           "loss", "runtime", "__version__"]


def build_info() -> dict:
    """What this build contains.

    Returns:
        dict: ``version``, ``cpu_simd`` (the SIMD level the CPU kernels use on this machine: avx512, avx2 or
        baseline), ``cpu_simd_compiled``, ``openmp``, ``openmp_threads``, ``cuda`` (compiled with CUDA),
        ``cuda_architectures``, and ``cuda_available`` (compiled with CUDA and a GPU visible to torch).
    """
    import torch

    info = dict(_C.build_info())
    info["cuda_available"] = bool(info["cuda"] and torch.cuda.is_available())
    return info
