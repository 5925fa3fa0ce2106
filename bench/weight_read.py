"""What reading the weight at every call costs spike_linear, against the packed-weight cache it replaced.

spike_linear no longer keeps a packed copy of the weight (a cache keyed on Tensor._version missed writes that
bypass the version counter: w.data.mul_, numpy views). In one process, interleaved, for each shape and firing
rate, with the event-driven kernel forced (the only path that packed; the dense path reads the weight as it is):
  - cached     the old behaviour on a cache hit: a copy packed once, outside the timing,
  - pack/call  a packed copy made at every call (pack_weight: a transposing copy of the weight),
  - read       what spike_linear does now: on the CPU the kernel packs a tile at a time into scratch,
for the forward and for forward+backward (where the old cache repacked after every optimizer step anyway).

    python bench/weight_read.py [--device cpu|cuda] [--quick] [--budget S]
"""

from __future__ import annotations

import argparse

import torch

from _common import add_common_arguments, median_time, print_setup  # bench/ is on sys.path when run as a script
from spike_gemm import SHAPES
from spikeops import _C, functional
from spikeops._ops import spike_linear as sl

RATES = (0.005, 0.05)


def variants(weight):
    packed_once = sl.pack_weight(weight.detach())
    layout = _C.RowsLayout.packed
    return {"cached": lambda w: (packed_once, layout),
            "pack/call": lambda w: (sl.pack_weight(w.detach()), layout),
            "read": sl._weight_rows}


def run_case(M, K, N, rate, device, budget, backward):
    g = torch.Generator(device="cpu").manual_seed(0)
    spikes = (torch.rand(M, K, generator=g) < rate).to(torch.uint8).to(device)
    weight = (torch.randn(N, K, generator=g) / K**0.5).to(device).requires_grad_(backward)
    bias = torch.zeros(N, device=device, requires_grad=backward)
    grad = torch.randn(M, N, generator=g).to(device)
    original = sl._weight_rows
    times = {}
    try:
        for name, rows in variants(weight).items():
            sl._weight_rows = rows

            def step():
                y = functional.spike_linear(spikes, weight, bias, kernel="events")
                if backward:
                    weight.grad = bias.grad = None
                    y.backward(grad)

            with torch.enable_grad() if backward else torch.no_grad():
                times[name] = median_time(step, device, budget_s=budget)
    finally:
        sl._weight_rows = original
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser, quick_help="the small shapes only")
    args = parser.parse_args()
    device = torch.device(args.device)
    print_setup(device, "float32")
    header = (f"{'mode':8} {'M':>5} {'K':>5} {'N':>5} {'rate':>6} {'cached ms':>10} {'pack/call ms':>13} "
              f"{'read ms':>9} {'read/cached':>12}")
    print(header)
    print("-" * len(header))
    for backward in (False, True):
        for M, K, N in (SHAPES[1:] if args.quick else SHAPES):
            for rate in RATES:
                t = run_case(M, K, N, rate, device, args.budget, backward)
                print(f"{'fwd+bwd' if backward else 'fwd':8} {M:5d} {K:5d} {N:5d} {rate:6.3f} "
                      f"{t['cached'] * 1e3:10.3f} {t['pack/call'] * 1e3:13.3f} {t['read'] * 1e3:9.3f} "
                      f"{t['read'] / t['cached']:11.2f}x", flush=True)


if __name__ == "__main__":
    main()
