"""Benchmark of the accumulate-only spike GEMM against F.linear on the same spikes as floats.

For each shape and firing rate it prints the median time of
  - F.linear(spikes.float(), W)             the dense baseline (torch's BLAS), measured in the same run,
  - spikeops accumulate                     the accumulate-only kernel alone (kernel="events"),
  - spikeops spike_linear                   what users get (kernel="auto"): the core's policy picks the kernel,
then a convolution layer (F.conv2d vs functional.spike_conv2d),
and the ratio against the baseline, for the forward and for forward+backward (weight and bias gradients, into
.grad set to None before each backward as optimizer.zero_grad() does; the spikes come from uint8, so they need
no gradient).

    python bench/spike_gemm.py [--device cpu|cuda] [--dtype float32|bfloat16] [--quick] [--tune-malloc]

--tune-malloc calls spikeops.tune_cpu_allocator() first (glibc then keeps the large outputs in its heap instead
of mapping them afresh each call, as the training examples do): both sides gain.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from _common import add_common_arguments, median_time, print_setup  # bench/ is on sys.path when run as a script
import spikeops
from spikeops import _C, functional

RATES = (0.005, 0.01, 0.05, 0.10, 0.25, 0.50)
# The large and small-batch shapes, and a classifier: the CSNN example's 1024 -> 10 layer at batch 64 and
# T = 25 (narrower than one 64-column tile of the CPU kernel).
SHAPES = ((1024, 4096, 4096), (32, 1024, 1024), (1600, 1024, 10))
# A spiking VGG-style layer: T*batch = 64 images of 64 channels, 16x16, 3x3 convolution to 128 channels.
CONV = dict(N=64, C=64, HW=16, C_out=128, kernel=3, padding=1)


def run_case(M, K, N, rate, dtype, device, budget, backward):
    g = torch.Generator(device="cpu").manual_seed(0)
    spikes_u8 = (torch.rand(M, K, generator=g) < rate).to(torch.uint8).to(device)
    spikes_f = spikes_u8.to(dtype)
    weight = (torch.randn(N, K, generator=g) / K**0.5).to(dtype).to(device)
    bias = torch.zeros(N, dtype=dtype, device=device)
    if backward:
        weight.requires_grad_(True)
        bias.requires_grad_(True)
    grad = torch.randn(M, N, generator=g).to(dtype).to(device)

    def dense():
        y = F.linear(spikes_f, weight, bias)
        if backward:
            weight.grad = bias.grad = None  # as optimizer.zero_grad() leaves them: no accumulation
            y.backward(grad)

    def ours(kernel="auto"):
        y = functional.spike_linear(spikes_u8, weight, bias, kernel=kernel)
        if backward:
            weight.grad = bias.grad = None
            y.backward(grad)

    def accumulate_only():
        ours("events")

    ctx = torch.enable_grad() if backward else torch.no_grad()
    with ctx:
        t_dense = median_time(dense, device, budget_s=budget)
        t_acc = median_time(accumulate_only, device, budget_s=budget)
        t_ours = median_time(ours, device, budget_s=budget)
    return t_dense, t_acc, t_ours


def run_case_cuda(M, K, N, rate, dtype, budget, backward):
    """cuBLAS on float spikes in bfloat16 and in float32 (torch's default: no TF32), then spike_linear with the
    weight in dtype through each CUDA kernel forced and as dispatched."""
    device = torch.device("cuda")
    g = torch.Generator(device="cpu").manual_seed(0)
    spikes_u8 = (torch.rand(M, K, generator=g) < rate).to(torch.uint8).to(device)
    weight0 = torch.randn(N, K, generator=g) / K**0.5
    grad0 = torch.randn(M, N, generator=g)

    def case(weight_dtype, fn):
        weight = weight0.to(weight_dtype).to(device).requires_grad_(backward)
        bias = torch.zeros(N, dtype=weight_dtype, device=device, requires_grad=backward)
        spikes_f = spikes_u8.to(weight_dtype)
        grad = grad0.to(weight_dtype).to(device)

        def step():
            y = fn(spikes_f, spikes_u8, weight, bias)
            if backward:
                weight.grad = bias.grad = None
                y.backward(grad)
        return step

    def cublas(spikes_f, spikes_u8, weight, bias):
        return F.linear(spikes_f, weight, bias)

    def ours(kernel):
        return lambda spikes_f, spikes_u8, weight, bias: functional.spike_linear(spikes_u8, weight, bias,
                                                                                 kernel=kernel)

    times = {}
    with torch.enable_grad() if backward else torch.no_grad():
        times["bf16"] = median_time(case(torch.bfloat16, cublas), device, budget_s=budget)
        times["fp32"] = median_time(case(torch.float32, cublas), device, budget_s=budget)
        for kernel in ("events", "tiled", "tensor_core", "auto"):
            times[kernel] = median_time(case(dtype, ours(kernel)), device, budget_s=budget)
    return times


def run_conv_case(rate, dtype, device, budget, backward):
    g = torch.Generator(device="cpu").manual_seed(0)
    c = CONV
    spikes_u8 = (torch.rand(c["N"], c["C"], c["HW"], c["HW"], generator=g) < rate).to(torch.uint8).to(device)
    spikes_f = spikes_u8.to(dtype)
    weight = (torch.randn(c["C_out"], c["C"], c["kernel"], c["kernel"], generator=g) / 24).to(dtype).to(device)
    weight.requires_grad_(backward)

    def dense():
        y = F.conv2d(spikes_f, weight, None, 1, c["padding"])
        if backward:
            weight.grad = None
            y.sum().backward()

    def ours(kernel="auto"):
        y = functional.spike_conv2d(spikes_u8, weight, None, 1, c["padding"], kernel=kernel)
        if backward:
            weight.grad = None
            y.sum().backward()

    def accumulate_only():
        ours("events")

    ctx = torch.enable_grad() if backward else torch.no_grad()
    with ctx:
        return (median_time(dense, device, budget_s=budget), median_time(accumulate_only, device, budget_s=budget),
                median_time(ours, device, budget_s=budget))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser, quick_help="the small shapes only")
    parser.add_argument("--tune-malloc", action="store_true", help="call spikeops.tune_cpu_allocator() first")
    parser.add_argument("--conv-only", action="store_true", help="the convolution table only")
    args = parser.parse_args()
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    print_setup(device, args.dtype)
    if args.tune_malloc:
        print(f"spikeops.tune_cpu_allocator(): {spikeops.tune_cpu_allocator()}")
    if args.conv_only:
        pass
    elif device.type == "cuda":
        linear_table_cuda(args, dtype)
    else:
        linear_table_cpu(args, dtype, device)
    c = CONV
    how = "event-driven" if device.type == "cpu" else "accumulate-only, one thread per output"
    print(f"\nconv2d {c['N']}x{c['C']}x{c['HW']}x{c['HW']} -> {c['C_out']} channels, {c['kernel']}x{c['kernel']}, "
          f"padding {c['padding']}: F.conv2d on float spikes vs spike_conv2d ({how})")
    if device.type == "cpu":
        print(f"(dense dispatch above firing rate {_C.CPU_CONV_DENSE_ABOVE_RATE}, for the weight gradient "
              f"above {_C.CPU_CONV_DENSE_ABOVE_RATE_WEIGHT_GRADIENT})")
    print(f"{'mode':8} {'rate':>6} {'F.conv2d ms':>12} {'accumulate ms':>14} {'spike_conv2d ms':>16} {'accum x':>8} "
          f"{'spike_conv2d x':>15}")
    for backward in (False, True):
        for rate in RATES:
            t_dense, t_acc, t_ours = run_conv_case(rate, dtype, device, args.budget, backward)
            print(f"{'fwd+bwd' if backward else 'fwd':8} {rate:6.3f} {t_dense * 1e3:12.3f} {t_acc * 1e3:14.3f} "
                  f"{t_ours * 1e3:16.3f} {t_dense / t_acc:7.1f}x {t_dense / t_ours:14.1f}x", flush=True)


def print_linear_table(args, header: str, cells) -> None:
    """The header, then a row per mode, shape and firing rate: the case, then cells(M, K, N, rate, backward)."""
    print(header)
    print("-" * len(header))
    shapes = SHAPES[1:] if args.quick else SHAPES
    for backward in (False, True):
        for M, K, N in shapes:
            for rate in RATES:
                print(f"{'fwd+bwd' if backward else 'fwd':8} {M:5d} {K:5d} {N:5d} {rate:6.3f} "
                      f"{cells(M, K, N, rate, backward)}", flush=True)


def linear_table_cpu(args, dtype, device) -> None:
    print(f"dense dispatch above firing rate {_C.CPU_DENSE_ABOVE_RATE} (forward), "
          f"{_C.CPU_DENSE_ABOVE_RATE_WEIGHT_GRADIENT} (weight gradient), for products of at least "
          f"{_C.SPIKE_GEMM_RATE_MIN_MACS} multiply-adds")

    def cells(M, K, N, rate, backward):
        t_dense, t_acc, t_ours = run_case(M, K, N, rate, dtype, device, args.budget, backward)
        return (f"{t_dense * 1e3:12.3f} {t_acc * 1e3:14.3f} {t_ours * 1e3:16.3f} {t_dense / t_acc:7.1f}x "
                f"{t_dense / t_ours:14.1f}x")

    print_linear_table(args, f"{'mode':8} {'M':>5} {'K':>5} {'N':>5} {'rate':>6} {'F.linear ms':>12} "
                             f"{'accumulate ms':>14} {'spike_linear ms':>16} {'accum x':>8} {'spike_linear x':>15}",
                       cells)


def linear_table_cuda(args, dtype) -> None:
    print(f"spike_linear with {args.dtype} weights; kernels chosen above firing rate {_C.CUDA_TILED_ABOVE_RATE} "
          f"(tiled events) and {_C.CUDA_TENSOR_CORE_ABOVE_RATE} (tensor cores), for products of at least "
          f"{_C.SPIKE_GEMM_RATE_MIN_MACS} multiply-adds; x bf16 and x fp32: cuBLAS on float "
          "spikes in that dtype over spike_linear as dispatched")

    def cells(M, K, N, rate, backward):
        t = run_case_cuda(M, K, N, rate, dtype, args.budget, backward)
        kernels = " ".join(f"{t[k] * 1e3:9.3f}" for k in ("events", "tiled", "tensor_core", "auto"))
        return (f"{t['bf16'] * 1e3:12.3f} {t['fp32'] * 1e3:12.3f} {kernels} {t['bf16'] / t['auto']:6.1f}x "
                f"{t['fp32'] / t['auto']:6.1f}x")

    print_linear_table(args, f"{'mode':8} {'M':>5} {'K':>5} {'N':>5} {'rate':>6} {'cuBLAS bf16':>12} "
                             f"{'cuBLAS fp32':>12} {'events':>9} {'tiled':>9} {'tensor':>9} {'auto':>9} "
                             f"{'x bf16':>7} {'x fp32':>7}   (ms)", cells)

if __name__ == "__main__":
    main()
