"""Benchmark of every fused neuron model against SpikingJelly's same class, an eager PyTorch step loop of the same
equations, and that loop under torch.compile.

For each model (IF, LIF, ParametricLIF, QIF, EIF, Izhikevich, ALIF, KLIF, CUBALIF, ComplementaryLIF, GatedLIF
(layer-wise), LIAF, NonSpikingIF, NonSpikingLIF, and PSN when spikeops has it), with its SpikingJelly-compatible
defaults, at T in {16, 64} and N neurons (default 64 x 4096), it times the forward without grad and the
forward+backward of:
  - spikeops: the module with step_mode='m' (the fused kernel);
  - SpikingJelly: the same class of SpikingJelly (when ``import spikingjelly`` works; ALIF has none);
  - eager: the model's equations as a plain PyTorch step loop (below), whose spikes are checked equal to
    spikeops' on the bench input once per model;
  - compiled: that loop under torch.compile (default inductor; compile time excluded, a warm-up run included).
Every ratio compares implementations measured in the same run. It ends with a Markdown table for
docs/performance.md, with the bytes the fused kernel moves per neuron-step (from spikeops._ops.neuron_info).

    python bench/neuron.py [--quick] [--models LIF,QIF,...] [--neurons N] [--budget S] [--device cpu|cuda]
                           [--no-compile] [--tune-malloc]

The SpikingJelly column needs it installed (never a spikeops dependency): run the script with a Python that has
SpikingJelly 2.0 and spikeops on its path.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import time
from typing import Callable, Dict, Optional

import torch
from torch import Tensor

import spikeops
# bench/ is on sys.path when run as a script
from _common import ATanSpike, RectSpike, SigmoidSpike, add_common_arguments, median_time, print_setup
from spikeops import functional, neuron
from spikeops._ops import NeuronKind, neuron_info

try:  # optional peer, never a dependency
    from spikingjelly.activation_based import functional as sj_functional
    from spikingjelly.activation_based import neuron as sj_neuron
except ImportError:
    sj_neuron = None


# ---- the eager baselines: each model's equations with its default parameters (SpikingJelly 2.0's defaults) ----
# Each takes the input [T, N] and the model's learnable tensors, and returns the spikes [T, N]. The reset is
# SpikingJelly's: V = S v_reset + (1 - S) H (hard) or H - S threshold (soft).

def _hard_reset(h: Tensor, s: Tensor, v_reset: float) -> Tensor:
    return s * v_reset + (1.0 - s) * h


def if_loop(x_seq: Tensor, p: Dict[str, Tensor]) -> Tensor:
    v, out = torch.zeros_like(x_seq[0]), []
    for x in x_seq:
        h = v + x
        s = SigmoidSpike.apply(h - 1.0)
        v = _hard_reset(h, s, 0.0)
        out.append(s)
    return torch.stack(out)


def lif_loop(x_seq: Tensor, p: Dict[str, Tensor]) -> Tensor:  # tau 2, decay_input, 1/tau as a multiplier
    v, out = torch.zeros_like(x_seq[0]), []
    for x in x_seq:
        h = v + (x - v) * 0.5
        s = SigmoidSpike.apply(h - 1.0)
        v = _hard_reset(h, s, 0.0)
        out.append(s)
    return torch.stack(out)


def plif_loop(x_seq: Tensor, p: Dict[str, Tensor]) -> Tensor:  # 1/tau = sigmoid(w), w learnable
    k = torch.sigmoid(p["w"])
    v, out = torch.zeros_like(x_seq[0]), []
    for x in x_seq:
        h = v + (x - v) * k
        s = SigmoidSpike.apply(h - 1.0)
        v = _hard_reset(h, s, 0.0)
        out.append(s)
    return torch.stack(out)


def qif_loop(x_seq: Tensor, p: Dict[str, Tensor]) -> Tensor:  # tau 2, v_c 0.8, a0 1, v_rest 0, v_reset -0.1
    v, out = torch.full_like(x_seq[0], -0.1), []
    for x in x_seq:
        h = v + (x + 1.0 * (v - 0.0) * (v - 0.8)) / 2.0
        s = SigmoidSpike.apply(h - 1.0)
        v = _hard_reset(h, s, -0.1)
        out.append(s)
    return torch.stack(out)


def eif_loop(x_seq: Tensor, p: Dict[str, Tensor]) -> Tensor:  # tau 2, delta_T 1, theta_rh 0.8, v_rest 0, v_reset -0.1
    v, out = torch.full_like(x_seq[0], -0.1), []
    for x in x_seq:
        h = v + (x + 0.0 - v + 1.0 * torch.exp((v - 0.8) / 1.0)) / 2.0
        s = SigmoidSpike.apply(h - 1.0)
        v = _hard_reset(h, s, -0.1)
        out.append(s)
    return torch.stack(out)


def izhikevich_loop(x_seq: Tensor, p: Dict[str, Tensor]) -> Tensor:
    # tau 2, v_c 0.8, a0 1, v_reset 0, v_rest -0.1, w_rest 0, tau_w 2, a 0, b 0
    v, w, out = torch.zeros_like(x_seq[0]), torch.zeros_like(x_seq[0]), []
    for x in x_seq:
        h = v + (x + 1.0 * (v + 0.1) * (v - 0.8) - w) / 2.0
        s = SigmoidSpike.apply(h - 1.0)
        w = w + (0.0 * (h + 0.1) - w) / 2.0 + 0.0 * s
        v = _hard_reset(h, s, 0.0)
        out.append(s)
    return torch.stack(out)


def alif_loop(x_seq: Tensor, p: Dict[str, Tensor]) -> Tensor:  # tau 2, tau_adapt 200, beta 0.01, v_reset 0
    rho = 1.0 - 1.0 / 200.0
    v, a, out = torch.zeros_like(x_seq[0]), torch.zeros_like(x_seq[0]), []
    for x in x_seq:
        h = v + (x - v) * 0.5
        a = a * rho
        b = 1.0 + 0.01 * a
        s = SigmoidSpike.apply(h - b)
        v = _hard_reset(h, s, 0.0)
        a = a + s
        out.append(s)
    return torch.stack(out)


def klif_loop(x_seq: Tensor, p: Dict[str, Tensor]) -> Tensor:  # tau 2, k learnable, hard reset 0
    k = p["k"]
    v, out = torch.zeros_like(x_seq[0]), []
    for x in x_seq:
        f = torch.relu(k * (v + (x - v) / 2.0))
        s = SigmoidSpike.apply(f - 1.0)
        v = _hard_reset(f, s, 0.0)
        out.append(s)
    return torch.stack(out)


def cubalif_loop(x_seq: Tensor, p: Dict[str, Tensor]) -> Tensor:  # c_decay 0.5, v_decay 0.75, threshold 0.5, Rect
    v, c, out = torch.zeros_like(x_seq[0]), torch.zeros_like(x_seq[0]), []
    for x in x_seq:
        c = c * 0.5 + x
        h = v * 0.75 + c
        s = RectSpike.apply(h - 0.5)
        v = _hard_reset(h, s, 0.0)
        out.append(s)
    return torch.stack(out)


def clif_loop(x_seq: Tensor, p: Dict[str, Tensor]) -> Tensor:  # tau 2, threshold 1, Rect, soft reset
    v, m, out = torch.zeros_like(x_seq[0]), torch.zeros_like(x_seq[0]), []
    for x in x_seq:
        h = v - (v - 0.0) / 2.0 + x
        s = RectSpike.apply(h - 1.0)
        m = m * torch.sigmoid(h / 2.0) + s
        v = h - s * (1.0 + torch.sigmoid(m))
        out.append(s)
    return torch.stack(out)


def liaf_loop(x_seq: Tensor, p: Dict[str, Tensor]) -> Tensor:  # LIF (tau 2, 1/tau a multiplier); relu(H - 1) out
    v, out = torch.zeros_like(x_seq[0]), []
    for x in x_seq:
        h = v + (x - v) * 0.5
        out.append(torch.relu(h - 1.0))
        v = _hard_reset(h, SigmoidSpike.apply(h - 1.0), 0.0)
    return torch.stack(out)


def nonspiking_if_loop(x_seq: Tensor, p: Dict[str, Tensor]) -> Tensor:  # V = V + X, every V out
    v, out = torch.zeros_like(x_seq[0]), []
    for x in x_seq:
        v = v + x
        out.append(v)
    return torch.stack(out)


def nonspiking_lif_loop(x_seq: Tensor, p: Dict[str, Tensor]) -> Tensor:  # V = V + (X - V) / 2, every V out
    v, out = torch.zeros_like(x_seq[0]), []
    for x in x_seq:
        v = v + (x - v) / 2.0
        out.append(v)
    return torch.stack(out)


def glif_loop(x_seq: Tensor, p: Dict[str, Tensor]) -> Tensor:  # layer-wise, every parameter learnable, Sigmoid
    a, b, g, tau, vth, ld, vsr = (p[n].sigmoid() for n in ("alpha", "beta", "gamma", "tau", "v_threshold",
                                                            "linear_decay", "v_subreset"))
    v, s, out = torch.zeros_like(x_seq[0]), torch.zeros_like(x_seq[0]), []
    for t, x in enumerate(x_seq):
        current = x * (1 - b * (1 - p["conduct"][t].sigmoid()))
        h = ((1 - a * (1 - tau)) * v - (1 - a) * ld) + current
        h = h - (1 - a * (1 - tau)) * v * g * s - (1 - g) * vsr * s
        s = SigmoidSpike.apply(h - vth)
        v = h
        out.append(s)
    return torch.stack(out)


def psn_loop(x_seq: Tensor, p: Dict[str, Tensor]) -> Tensor:  # H = W X + B over T (one GEMM), ATan
    return ATanSpike.apply(torch.addmm(p["bias"], p["weight"], x_seq.flatten(1))).view(x_seq.shape)


# ---- the models ----

@dataclasses.dataclass
class Model:
    name: str
    spikeops_class: str           # in spikeops.neuron
    loop: Callable                # the eager baseline
    kind: Optional[str] = None    # NeuronKind name of the fused kernel (None: not a recurrence)
    sj_class: Optional[str] = None
    learnable: tuple = ()         # the module's parameters the loop takes
    args: tuple = ()              # the constructors' positional arguments (both libraries')
    # The output is made from the kernel's saved values, not its spikes (LIAF's act(H), the readouts' V): the
    # spikes are written in 1 byte and the backward reads the saved values' gradient.
    saved_output: bool = False


MODELS = [
    Model("IF", "IFNode", if_loop, "IF", "IFNode"),
    Model("LIF", "LIFNode", lif_loop, "LIF", "LIFNode"),
    Model("ParametricLIF", "ParametricLIFNode", plif_loop, "ParametricLIF", "ParametricLIFNode", ("w",)),
    Model("QIF", "QIFNode", qif_loop, "QIF", "QIFNode"),
    Model("EIF", "EIFNode", eif_loop, "EIF", "EIFNode"),
    Model("Izhikevich", "IzhikevichNode", izhikevich_loop, "Izhikevich", "IzhikevichNode"),
    Model("ALIF", "ALIFNode", alif_loop, "ALIF", None),
    Model("KLIF", "KLIFNode", klif_loop, "KLIF", "KLIFNode", ("k",)),
    Model("CUBALIF", "CUBALIFNode", cubalif_loop, "CUBALIF", "CUBALIFNode"),
    Model("ComplementaryLIF", "ComplementaryLIFNode", clif_loop, "ComplementaryLIF", "ComplementaryLIFNode"),
    Model("GatedLIF", "GatedLIFNode", glif_loop, "GatedLIF", "GatedLIFNode",
          ("alpha", "beta", "gamma", "tau", "v_threshold", "linear_decay", "v_subreset", "conduct")),
    Model("LIAF", "LIAFNode", liaf_loop, "LIF", "LIAFNode", args=(torch.relu, True), saved_output=True),
    Model("NonSpikingIF", "NonSpikingIFNode", nonspiking_if_loop, "NonSpikingIF", "NonSpikingIFNode",
          saved_output=True),
    Model("NonSpikingLIF", "NonSpikingLIFNode", nonspiking_lif_loop, "NonSpikingLIF", "NonSpikingLIFNode",
          saved_output=True),
    Model("PSN", "PSN", psn_loop, None, "PSN", ("weight", "bias")),
]


_TAKES_T = ("PSN", "GatedLIF")  # constructed for a fixed T (multi-step only)


def make_spikeops(model: Model, T: int, device: torch.device) -> torch.nn.Module:
    cls = getattr(neuron, model.spikeops_class)
    if model.name in _TAKES_T:
        node = cls(T=T)
    elif model.name.startswith("NonSpiking"):
        node = cls()  # multi-step only
    else:
        node = cls(*model.args, step_mode="m")
    return node.to(device)


def make_sj(model: Model, T: int, ours: torch.nn.Module, device: torch.device) -> Optional[torch.nn.Module]:
    if sj_neuron is None or model.sj_class is None:
        return None
    cls = getattr(sj_neuron, model.sj_class)
    if model.name in _TAKES_T:
        node = cls(T=T)
    elif model.name.startswith("NonSpiking"):
        node = cls()
    else:
        node = cls(*model.args)
        # SpikingJelly's CUBALIFNode takes no step_mode argument. Its LIAFNode stays single-step (run over T by
        # the caller): in multi-step mode SpikingJelly 2.0.0 returns LIFNode's spikes, not act(H).
        node.step_mode = "s" if model.name == "LIAF" else "m"
    for name in model.learnable:  # the same learnable values as spikeops' module
        with torch.no_grad():
            getattr(node, name).copy_(getattr(ours, name))
    return node.to(device)


def bytes_per_neuron_step(model: Model, T: int, training: bool) -> Optional[float]:
    """What the fused kernel must move per neuron-step (float32): x read and spikes written; for training also
    its K saved values (written by the forward, read by the backward), the spike gradient read and the input
    gradient written. Its S states, read and written once per sequence, add 8 S / T."""
    if model.kind is None:
        return None
    info = neuron_info(NeuronKind[model.kind])
    S, K = info["states"], info["saved"]
    spike = 1 if model.saved_output else 4
    if model.saved_output:  # the saved values are written in inference too, and their gradient read
        return (4 + spike + 4 * K + 8 * S / T) + ((4 + 8 * K + 4 + 4 * S / T) if training else 0)
    if not training:
        return 4 + spike + 8 * S / T
    return (4 + spike + 4 * K + 8 * S / T) + (4 + 4 * K + 4 + 4 * S / T)


# ---- timing ----

def copy_bandwidth(device: torch.device) -> float:
    """Measured device-to-device copy bandwidth in bytes/s (bytes read + bytes written)."""
    n = 256 * 1024 * 1024 // 4
    a = torch.empty(n, device=device)
    b = torch.empty_like(a)
    t = median_time(lambda: b.copy_(a), device, min_runs=10)
    return 2 * a.numel() * a.element_size() / t


def step_fn(run: Callable[[Tensor], Tensor], params: list, x: Tensor, grad: Tensor, training: bool) -> Callable:
    """One timed call: the forward without grad, or the forward+backward (gradients set to None first, as
    optimizer.zero_grad() leaves them)."""
    if not training:
        def fn():
            with torch.no_grad():
                run(x)
        return fn
    xg = x.clone().requires_grad_()

    def fn():
        xg.grad = None
        for q in params:
            q.grad = None
        run(xg).backward(grad)
    return fn


def with_reset(node: torch.nn.Module, reset_net: Callable, over_steps: Optional[Callable] = None
               ) -> Callable[[Tensor], Tensor]:
    """The node's [T, N] output, after a reset: a list of steps (the readouts) stacked; with over_steps, a
    single-step node run over T by it."""
    def run(x):
        reset_net(node)
        out = over_steps(x, node) if over_steps is not None else node(x)
        # SpikingJelly's layer-wise GatedLIFNode broadcasts its [1, 1, 1] parameters into [T, 1, 1, 1, N].
        return (torch.stack(out) if isinstance(out, list) else out).reshape(x.shape)
    return run


def implementations(model: Model, T: int, device: torch.device, compile_loop: bool) -> dict:
    """name -> (run, learnable params) for this model at T."""
    ours = make_spikeops(model, T, device)
    impls = {"spikeops": (with_reset(ours, functional.reset_net), list(ours.parameters()))}
    sj = make_sj(model, T, ours, device)
    if sj is not None:
        over_steps = sj_functional.multi_step_forward if getattr(sj, "step_mode", "m") == "s" else None
        impls["SpikingJelly"] = (with_reset(sj, sj_functional.reset_net, over_steps), list(sj.parameters()))
    p = {name: getattr(ours, name).detach().clone().requires_grad_() for name in model.learnable}
    impls["eager"] = (lambda x: model.loop(x, p), list(p.values()))
    if compile_loop:
        compiled = torch.compile(model.loop)
        impls["compiled"] = (lambda x: compiled(x, p), list(p.values()))
    return impls


def check_spikes(model: Model, impls: dict, x: Tensor) -> str:
    """Asserts the eager loop's spikes equal spikeops' on x; reports the other baselines' differences."""
    with torch.no_grad():
        spikes = {name: run(x).float() for name, (run, _) in impls.items()}
    ref = spikes["spikeops"]
    differ = int((spikes["eager"] != ref).sum())
    assert differ == 0, f"{model.name}: the eager loop's spikes differ from spikeops' at {differ} of {ref.numel()}"
    what = "mean output" if model.saved_output else "firing rate"
    notes = [f"{what} {ref.mean().item():.3f}", "eager outputs equal"]
    for name in ("compiled", "SpikingJelly"):
        if name in spikes:
            d = int((spikes[name] != ref).sum())
            notes.append(f"{name} outputs {'equal' if d == 0 else f'differ at {d} of {ref.numel()}'}")
    return ", ".join(notes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser, quick_help="T=16 only, shorter timing (a smoke run)")
    parser.add_argument("--models", default=",".join(m.name for m in MODELS),
                        help="comma-separated models (default: all)")
    parser.add_argument("--neurons", type=int, default=64 * 4096, help="N, neurons per time step")
    parser.add_argument("--no-compile", action="store_true", help="leave out the torch.compile'd loop")
    parser.add_argument("--tune-malloc", action="store_true", help="call spikeops.tune_cpu_allocator() first")
    args = parser.parse_args()
    if args.dtype != "float32":
        parser.error("--dtype: the baselines compute in float32, so this benchmark runs float32 only")
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in {m.name for m in MODELS}]
    if unknown:
        parser.error(f"--models: unknown {unknown}; known: {', '.join(m.name for m in MODELS)}")
    models = [m for m in MODELS if m.name in names]
    if any(m.name == "PSN" for m in models) and not hasattr(neuron, "PSN"):
        print("spikeops.neuron.PSN does not exist in this build: no PSN row")
        models = [m for m in models if m.name != "PSN"]

    device = torch.device(args.device)
    print_setup(device, args.dtype)
    if args.tune_malloc:
        print(f"spikeops.tune_cpu_allocator(): {spikeops.tune_cpu_allocator()}")
    print(f"SpikingJelly: {'not installed' if sj_neuron is None else importlib.metadata.version('spikingjelly')}")
    bandwidth = copy_bandwidth(device) if device.type == "cuda" else None
    if bandwidth:
        print(f"measured device-to-device copy bandwidth: {bandwidth / 1e9:.0f} GB/s")
    torch._dynamo.config.cache_size_limit = 64  # every (model, T, grad mode) compiles its own graph

    Ts = (16,) if args.quick else (16, 64)
    budget = min(args.budget, 0.2) if args.quick else args.budget
    N = args.neurons
    gen = torch.Generator().manual_seed(0)
    inputs = {T: (torch.randn(T, N, generator=gen) + 0.5).to(device) for T in Ts}
    grads = {T: torch.randn(T, N, generator=gen).to(device) for T in Ts}

    rows = []
    for model in models:
        torch._dynamo.reset()
        for T in Ts:
            impls = implementations(model, T, device, not args.no_compile)
            for training in (False, True):
                times = {}
                for name, (run, params) in impls.items():
                    fn = step_fn(run, params, inputs[T], grads[T], training)
                    extra = ""
                    if name == "compiled":
                        t0 = time.perf_counter()
                        fn()  # compiles (the backward too): excluded from the timing
                        extra = f" (compiling: {time.perf_counter() - t0:.1f} s, excluded)"
                    times[name] = median_time(fn, device, budget_s=budget)
                    print(f"  {model.name:16} {'fwd+bwd' if training else 'fwd':7} T={T:<3} {name:12} "
                          f"{times[name] * 1e3:9.3f} ms{extra}", flush=True)
                rows.append((model, T, training, times))
            if T == Ts[0]:  # after the timing, so that the compiled loop's first call there is its compilation
                print(f"  {model.name}: {check_spikes(model, impls, inputs[T])}", flush=True)

    print(f"\nN = {N} neurons, float32, times in ms (median), ratios = baseline time / spikeops time, "
          "B/step = bytes the fused kernel moves per neuron-step"
          + (", % bw = of the copy bandwidth" if bandwidth else ""))
    cols = ["model", "pass", "T", "spikeops", "SpikingJelly", "eager", "compiled", "vs SJ", "vs eager",
            "vs compiled", "B/step"] + (["% bw"] if bandwidth else [])
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for model, T, training, times in rows:
        ours = times["spikeops"]

        def ms(name):
            return f"{times[name] * 1e3:.3f}" if name in times else "-"

        def ratio(name):
            return f"{times[name] / ours:.1f}x" if name in times else "-"
        b = bytes_per_neuron_step(model, T, training)
        cells = [model.name, "fwd+bwd" if training else "fwd", str(T), ms("spikeops"), ms("SpikingJelly"),
                 ms("eager"), ms("compiled"), ratio("SpikingJelly"), ratio("eager"), ratio("compiled"),
                 "-" if b is None else f"{b:.1f}"]
        if bandwidth:
            cells.append("-" if b is None else f"{b * T * N / ours / bandwidth * 100:.0f}%")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
