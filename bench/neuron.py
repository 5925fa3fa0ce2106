"""Benchmark of the fused multi-step neurons against a plain-PyTorch eager implementation of the same equations.

For LIF and IF, forward-only (inference, no H saved) and forward+backward (training), at T in {4, 16, 64} and
N = 64 x 4096 neurons (plus a larger N at T=16), it prints the median time and million neuron-steps per
second of each implementation, measured in the same run, and the speed-up over eager. SpikingJelly (its
'torch' and, on CUDA, 'cupy'/'triton' back ends if present) and snnTorch rows are added when installed.
On CUDA it also prints the bytes each fused kernel must move and the fraction of the measured
device-to-device copy bandwidth that it reaches.

    python bench/neuron.py [--device cpu|cuda] [--quick] [--dtype float32|float16|bfloat16]
"""

from __future__ import annotations

import argparse

import torch

from _common import SigmoidSpike, add_common_arguments, median_time, print_setup  # bench/ is on sys.path when run as a script
from spikeops import functional, neuron, surrogate


# ---- plain PyTorch eager reference implementation (a step loop as in the tutorials) ----

def eager_neuron(kind: str, x_seq: torch.Tensor, tau: float = 2.0, v_threshold: float = 1.0,
                 v_reset: float = 0.0) -> torch.Tensor:
    v = torch.full_like(x_seq[0], v_reset)
    spikes = []
    for x in x_seq:
        h = v + x if kind == "IF" else v + (x - (v - v_reset)) / tau
        s = SigmoidSpike.apply(h - v_threshold)
        v = s * v_reset + (1.0 - s) * h
        spikes.append(s)
    return torch.stack(spikes)


# ---- timing ----

def copy_bandwidth(device: torch.device) -> float:
    """Measured device-to-device copy bandwidth in bytes/s (bytes read + bytes written)."""
    n = 256 * 1024 * 1024 // 4
    a = torch.empty(n, device=device)
    b = torch.empty_like(a)
    t = median_time(lambda: b.copy_(a), device, min_runs=10)
    return 2 * a.numel() * a.element_size() / t


# ---- implementations under test ----

def make_cases(kind: str):
    """(name, make_module) pairs; make_module() returns a callable x_seq -> spikes that resets its state."""
    cases = []

    def spikeops_node():
        node = (neuron.LIFNode(tau=2.0, step_mode="m") if kind == "LIF" else neuron.IFNode(step_mode="m"))
        sg = surrogate.Sigmoid()
        node.surrogate_function = sg

        def run(x):
            functional.reset_net(node)
            return node(x)
        return run

    cases.append(("spikeops", spikeops_node))
    cases.append(("eager torch", lambda: (lambda x: eager_neuron(kind, x))))

    try:  # optional peers
        from spikingjelly.activation_based import neuron as sj_neuron
        from spikingjelly.activation_based import functional as sj_functional

        def sj_node(backend):
            def make():
                cls = sj_neuron.LIFNode if kind == "LIF" else sj_neuron.IFNode
                kw = dict(tau=2.0) if kind == "LIF" else {}
                if backend is not None:  # SpikingJelly < 2.0 chooses its kernels with `backend`
                    kw["backend"] = backend
                node = cls(step_mode="m", **kw)

                def run(x):
                    sj_functional.reset_net(node)
                    return node(x)
                return run
            return make

        import inspect

        if "backend" in inspect.signature(sj_neuron.LIFNode.__init__).parameters:
            cases += [(f"spikingjelly {b}", sj_node(b)) for b in ("torch", "cupy", "triton")]
        else:
            cases.append(("spikingjelly", sj_node(None)))
    except ImportError:
        pass

    try:
        import snntorch

        def snn_node():
            beta = 0.5 if kind == "LIF" else 1.0
            lif = snntorch.Leaky(beta=beta, threshold=1.0, reset_mechanism="zero")

            def run(x):
                mem = lif.init_leaky()
                out = []
                for xt in x:
                    spk, mem = lif(xt, mem)
                    out.append(spk)
                return torch.stack(out)
            return run

        cases.append(("snntorch", snn_node))
    except ImportError:
        pass
    return cases


def bytes_per_neuron_step(dtype: torch.dtype, training: bool) -> int:
    """The fewest bytes the fused kernels must move per neuron-step (each input read once, output written once)."""
    e = torch.finfo(dtype).bits // 8
    if not training:
        return e + e  # read x, write spikes
    # forward: read x, write spikes and H (float32); backward: read grad of spikes and H, write grad of x
    return (e + e + 4) + (e + 4 + e)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser, quick_help="fewer configurations (for a smoke run)")
    args = parser.parse_args()

    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    print_setup(device, args.dtype)
    bandwidth = copy_bandwidth(device) if device.type == "cuda" else None
    if bandwidth:
        print(f"measured device-to-device copy bandwidth: {bandwidth / 1e9:.0f} GB/s")

    configs = [(T, 64 * 4096) for T in (4, 16, 64)] + [(16, 256 * 4096)]
    if args.quick:
        configs = [(16, 64 * 4096)]
    header = f"{'neuron':6} {'mode':9} {'T':>3} {'N':>8} {'implementation':22} {'median ms':>10} {'M steps/s':>10} {'vs eager':>9}"
    if bandwidth:
        header += f" {'B/step':>7} {'% copy bw':>9}"
    print(header)
    print("-" * len(header))
    for kind in ("LIF", "IF"):
        for training in (False, True):
            for T, N in configs:
                x = torch.randn(T, N, device=device, dtype=dtype) + 0.5
                grad = torch.randn_like(x)
                results = []
                for name, make in make_cases(kind):
                    try:
                        run = make()
                        if training:
                            xg = x.clone().requires_grad_()

                            def fn():
                                xg.grad = None
                                run(xg).backward(grad)
                        else:
                            def fn():
                                with torch.no_grad():
                                    run(x)
                        t = median_time(fn, device, budget_s=args.budget)
                    except Exception as e:  # an optional peer back end that cannot run here
                        if name == "spikeops" or name == "eager torch":
                            raise
                        print(f"{'':40} {name:22} unavailable: {type(e).__name__}: {str(e)[:60]}")
                        continue
                    results.append((name, t))
                eager_t = dict(results)["eager torch"]
                for name, t in results:
                    line = (f"{kind:6} {'fwd+bwd' if training else 'fwd':9} {T:>3} {N:>8} {name:22} "
                            f"{t * 1e3:>10.3f} {T * N / t / 1e6:>10.1f} {eager_t / t:>8.1f}x")
                    if bandwidth and name == "spikeops":
                        b = bytes_per_neuron_step(dtype, training)
                        line += f" {b:>7} {b * T * N / t / bandwidth * 100:>8.0f}%"
                    print(line, flush=True)


if __name__ == "__main__":
    main()
