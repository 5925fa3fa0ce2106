"""What the benchmarks share: timing with a warm-up and a median, and the header line naming the setup."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

import spikeops


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_time(fn, device: torch.device, min_runs: int = 5, budget_s: float = 1.0, max_runs: int = 50) -> float:
    """Median wall time of fn() in seconds after one warm-up call (synchronizing the GPU around each run)."""
    fn()
    sync(device)
    times = []
    start = time.perf_counter()
    while len(times) < min_runs or (time.perf_counter() - start < budget_s and len(times) < max_runs):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def add_common_arguments(parser: argparse.ArgumentParser, quick_help: str) -> None:
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--budget", type=float, default=1.0, help="seconds of timing per measurement")


def cpu_model() -> str:
    """The CPU's model name as the OS reports it (Linux: /proc/cpuinfo), or platform.processor()."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def print_setup(device: torch.device, dtype_name: str) -> None:
    info = spikeops.build_info()
    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical cores, SIMD level used: {info['cpu_simd']}")
    print(f"spikeops {info['version']}  device={device}  dtype={dtype_name}  cpu_simd={info['cpu_simd']}  "
          f"threads={info['openmp_threads']}  torch={torch.__version__} (torch threads {torch.get_num_threads()})")


def surrogate_spike(derivative) -> type:
    """The eager baselines' spike: an autograd.Function with the Heaviside forward (x >= 0) and
    ``grad * derivative(x)`` backward, as the tutorials write it."""

    class Spike(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return (x >= 0).to(x)

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad * derivative(x)

    return Spike


# The surrogate derivatives of the baselines: SpikingJelly's Sigmoid (alpha 4), ATan (alpha 2) and Rect
# (alpha 1), snnTorch's fast sigmoid (slope 25).
SigmoidSpike = surrogate_spike(lambda x: 4.0 * torch.sigmoid(4.0 * x) * (1.0 - torch.sigmoid(4.0 * x)))
ATanSpike = surrogate_spike(lambda x: 1.0 / (1.0 + (torch.pi / 2 * 2.0 * x).square()))
RectSpike = surrogate_spike(lambda x: (x.abs() < 0.5).to(x))
FastSigmoidSpike = surrogate_spike(lambda x: 1.0 / (25.0 * x.abs() + 1.0).square())
