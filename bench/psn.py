"""Benchmark of the PSN family (PSN, MaskedPSN, SlidingPSN) against the same equations in eager PyTorch.

A PSN is one GEMM over T plus the spike function, in spikeops as in SpikingJelly; this measures that spikeops'
classes cost no more than the plain equations and SpikingJelly's own classes. For each model, forward-only
(inference, under no_grad) and forward+backward (training, gradients of the input, weight and bias), at T in
{16, 64} and N = 4096 neurons (the batch folded into N), it prints the median time of each implementation, measured
in the same run, and its speed relative to eager PyTorch and to SpikingJelly. SpikingJelly's rows are added when it
is importable (e.g. run with the peers' venv).

    python bench/psn.py [--device cpu|cuda] [--quick] [--dtype float32|float16|bfloat16] [--n 4096]
"""

from __future__ import annotations

import argparse

import torch

from _common import ATanSpike, add_common_arguments, median_time, print_setup  # bench/ is on sys.path as a script
from spikeops import neuron

K = 4  # MaskedPSN's and SlidingPSN's order
LAMBDA = 0.5  # MaskedPSN's λ: midway through the masking schedule


# ---- the equations in eager PyTorch (the ATan spike as an autograd.Function, as tutorials write it) ----

def eager_psn(weight, bias, x):
    return ATanSpike.apply(torch.addmm(bias, weight, x.flatten(1))).view(x.shape)


def eager_masked_psn(weight, bias, mask0, x):
    masked = (LAMBDA * mask0 + (1.0 - LAMBDA)) * weight
    return ATanSpike.apply(torch.addmm(bias, masked, x.flatten(1))).view(x.shape)


def eager_sliding_psn(weight, bias, x):
    T, k = x.shape[0], weight.shape[0]
    w = torch.zeros(T, T, dtype=weight.dtype, device=weight.device)
    for i in range(T):  # the banded matrix row by row
        start = max(0, i + 1 - k)
        w[i, start:i + 1] = weight[k - (i + 1 - start):]
    return ATanSpike.apply(torch.addmm(bias, w, x.flatten(1))).view(x.shape)


def make_spikeops(model: str, T: int, device, backend: str = "gemm"):
    if model == "PSN":
        return neuron.PSN(T).to(device)
    if model == "MaskedPSN":
        return neuron.MaskedPSN(K, T, lambda_init=LAMBDA, step_mode="m").to(device)
    return neuron.SlidingPSN(K, step_mode="m", backend=backend).to(device)


def make_cases(model: str, T: int, device):
    """(name, module-or-None, run(x)) triples; every implementation gets the same parameters."""
    ref = make_spikeops(model, T, device)
    cases = [("spikeops", ref, ref)]
    if model == "SlidingPSN":
        conv = make_spikeops(model, T, device, backend="conv")
        conv.load_state_dict(ref.state_dict())
        cases.append(("spikeops conv", conv, conv))
    eager = make_spikeops(model, T, device)  # holds the eager baseline's parameters
    eager.load_state_dict(ref.state_dict())
    if model == "PSN":
        run = lambda x: eager_psn(eager.weight, eager.bias, x)  # noqa: E731
    elif model == "MaskedPSN":
        run = lambda x: eager_masked_psn(eager.weight, eager.bias, eager.mask0, x)  # noqa: E731
    else:
        run = lambda x: eager_sliding_psn(eager.weight, eager.bias, x)  # noqa: E731
    cases.append(("eager torch", eager, run))
    try:  # optional peer
        from spikingjelly.activation_based import neuron as sj_neuron
    except ImportError:
        return cases
    if model == "PSN":
        sj = sj_neuron.PSN(T)
    elif model == "MaskedPSN":
        sj = sj_neuron.MaskedPSN(K, T, lambda_init=LAMBDA, step_mode="m")
    else:
        sj = sj_neuron.SlidingPSN(K, step_mode="m")
    sj = sj.to(device)
    sj.load_state_dict(ref.state_dict())
    cases.append(("spikingjelly", sj, sj))
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser, quick_help="T=16 only (for a smoke run)")
    parser.add_argument("--n", type=int, default=4096, help="neurons per step (batch folded in)")
    args = parser.parse_args()
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    print_setup(device, args.dtype)
    print(f"MaskedPSN k={K} lambda={LAMBDA}, SlidingPSN k={K}; surrogate ATan(alpha=2); ratios are the other "
          "implementation's time over this one's (> 1: this one is faster)")
    header = (f"{'model':10} {'mode':8} {'T':>3} {'N':>6} {'implementation':15} {'median ms':>10} "
              f"{'vs eager':>9} {'vs SJ':>7}")
    print(header)
    print("-" * len(header))
    for model in ("PSN", "MaskedPSN", "SlidingPSN"):
        for training in (False, True):
            for T in ((16,) if args.quick else (16, 64)):
                x = torch.randn(T, args.n, device=device, dtype=dtype)
                grad = torch.randn_like(x)
                results = []
                for name, module, run in make_cases(model, T, device):
                    if dtype != torch.float32 and not name.startswith("spikeops"):
                        module.to(dtype)  # eager addmm and SpikingJelly need the parameters in x's dtype
                    if training:
                        xg = x.clone().requires_grad_()

                        def fn():
                            xg.grad = None
                            module.zero_grad(set_to_none=True)
                            run(xg).backward(grad)
                    else:
                        def fn():
                            with torch.no_grad():
                                run(x)
                    results.append((name, median_time(fn, device, budget_s=args.budget)))
                times = dict(results)
                for name, t in results:
                    sj = times.get("spikingjelly")
                    print(f"{model:10} {'fwd+bwd' if training else 'fwd':8} {T:>3} {args.n:>6} {name:15} "
                          f"{t * 1e3:>10.3f} {times['eager torch'] / t:>8.2f}x "
                          f"{(f'{sj / t:.2f}x' if sj else '-'):>7}", flush=True)


if __name__ == "__main__":
    main()
