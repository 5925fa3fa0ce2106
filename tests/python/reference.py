"""Plain-PyTorch references of every spikeops kernel, written for clarity, never for speed.

Each formula is SpikingJelly's (``spikingjelly.activation_based.surrogate`` and ``neuron``), restated with
ordinary torch ops and autograd, step by step. The kernels are compared to these.

One deliberate detail: spikeops applies 1/tau as a float32 multiplier ``k`` (``x * k``), so the LIF charge here
is written with the same multiplier. SpikingJelly divides by tau; for tau = 2 (a power of two) both are
bit-identical, for other tau they differ by float32 rounding only.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

# ---------------------------------------------------------------------------------------------------------
# Surrogate derivatives σ'(x): name -> (default parameters, derivative)
# ---------------------------------------------------------------------------------------------------------


def sigmoid_grad(x: Tensor, alpha: float) -> Tensor:
    sg = torch.sigmoid(alpha * x)
    return alpha * sg * (1.0 - sg)


def atan_grad(x: Tensor, alpha: float) -> Tensor:
    return alpha / 2.0 / (1.0 + (math.pi / 2.0 * alpha * x) ** 2)


def piecewise_quadratic_grad(x: Tensor, alpha: float) -> Tensor:
    return torch.where(x.abs() > 1.0 / alpha, torch.zeros_like(x), alpha - alpha**2 * x.abs())


def piecewise_exp_grad(x: Tensor, alpha: float) -> Tensor:
    return alpha / 2.0 * torch.exp(-alpha * x.abs())


def soft_sign_grad(x: Tensor, alpha: float) -> Tensor:
    return 1.0 / (2.0 * alpha * (1.0 / alpha + x.abs()) ** 2)


def super_spike_grad(x: Tensor, alpha: float) -> Tensor:
    return alpha / (x.abs() + 1.0) ** 2


def erf_grad(x: Tensor, alpha: float) -> Tensor:
    return alpha / math.sqrt(math.pi) * torch.exp(-((alpha * x) ** 2))


def rect_grad(x: Tensor, alpha: float) -> Tensor:
    return alpha * (x.abs() < 0.5 / alpha).to(x.dtype)


def piecewise_leaky_relu_grad(x: Tensor, w: float, c: float) -> Tensor:
    return torch.where(x.abs() < w, torch.full_like(x, 1.0 / (2.0 * w)), torch.full_like(x, c))


def fast_sigmoid_grad(x: Tensor, slope: float) -> Tensor:  # snnTorch's spikegen fast_sigmoid
    return 1.0 / (slope * x.abs() + 1.0) ** 2


def nonzero_sign_log_abs_grad(x: Tensor, alpha: float) -> Tensor:
    return 1.0 / (1.0 / alpha + x.abs())


def s2nn_grad(x: Tensor, alpha: float, beta: float) -> Tensor:
    sgax = torch.sigmoid(alpha * x)
    return torch.where(x < 0.0, alpha * sgax * (1.0 - sgax), beta / (x + 1.0))


def q_pseudo_spike_grad(x: Tensor, alpha: float) -> Tensor:
    return (1.0 + 2.0 / (alpha - 1.0) * x.abs()) ** (-alpha)


def leaky_k_relu_grad(x: Tensor, leak: float, k: float) -> Tensor:
    mask1 = (x >= 0.0).to(x.dtype)
    return mask1 * k + (1.0 - mask1) * leak


def fake_numerical_gradient_grad(x: Tensor, alpha: float) -> Tensor:
    return torch.clamp_max(((x >= 0.0) * 2.0 - 1.0) / x, alpha)


def log_tailed_relu_grad(x: Tensor, alpha: float) -> Tensor:
    grad = torch.ones_like(x)
    grad[x > 1.0] = 1.0 / x[x > 1.0]
    grad[x <= 0.0] = alpha
    return grad


def squarewave_fourier_series_grad(x: Tensor, n: int, T_period: float) -> Tensor:
    w = math.pi * 2.0 / T_period
    grad = torch.zeros_like(x)
    for i in range(1, n):
        grad = grad + torch.cos((2 * i - 1.0) * w * x)
    return grad * (4.0 / T_period)


def float32_phase_atol(name: str, x: Tensor, **params) -> float:
    """The absolute error float32 kernels may show on top of the usual tolerances: SquarewaveFourierSeries takes
    cos of (2i - 1) 2π x / T, whose float32 rounding (2^-24 relative) moves its highest harmonic's phase by up to
    2^-24 (2n - 3) 2π |x| / T; each of the n - 1 cosines times 4/T moves that much. 0 for the other surrogates."""
    if name != "SquarewaveFourierSeries" or params["n"] < 2 or x.numel() == 0:
        return 0.0
    finite = x[x.isfinite()]
    top = float(finite.abs().max()) if finite.numel() else 0.0
    n, T = params["n"], params["T_period"]
    phase = (2 * n - 3) * 2 * math.pi * top / T
    return 2.0**-24 * (phase + 1.0) * (n - 1) * 4.0 / T * 2.0  # x2: the rounding of x times the frequency too


def deterministic_pass_grad(x: Tensor) -> Tensor:
    return torch.ones_like(x)


# name -> (constructor kwargs of the spikeops class with non-default values to test, derivative(x, **kwargs))
SURROGATES = {
    "Sigmoid": ({"alpha": 4.0}, lambda x, alpha: sigmoid_grad(x, alpha)),
    "ATan": ({"alpha": 2.0}, lambda x, alpha: atan_grad(x, alpha)),
    "PiecewiseQuadratic": ({"alpha": 1.0}, lambda x, alpha: piecewise_quadratic_grad(x, alpha)),
    "PiecewiseExp": ({"alpha": 1.0}, lambda x, alpha: piecewise_exp_grad(x, alpha)),
    "SoftSign": ({"alpha": 2.0}, lambda x, alpha: soft_sign_grad(x, alpha)),
    "SuperSpike": ({"alpha": 1.0}, lambda x, alpha: super_spike_grad(x, alpha)),
    "Erf": ({"alpha": 2.0}, lambda x, alpha: erf_grad(x, alpha)),
    "Rect": ({"alpha": 1.0}, lambda x, alpha: rect_grad(x, alpha)),
    "PiecewiseLeakyReLU": ({"w": 1.0, "c": 0.01}, lambda x, w, c: piecewise_leaky_relu_grad(x, w, c)),
    "FastSigmoid": ({"slope": 25.0}, lambda x, slope: fast_sigmoid_grad(x, slope)),
    "NonzeroSignLogAbs": ({"alpha": 1.0}, nonzero_sign_log_abs_grad),
    "S2NN": ({"alpha": 4.0, "beta": 1.0}, s2nn_grad),
    "QPseudoSpike": ({"alpha": 2.0}, q_pseudo_spike_grad),
    "LeakyKReLU": ({"leak": 0.0, "k": 1.0}, leaky_k_relu_grad),
    "FakeNumericalGradient": ({"alpha": 0.3}, fake_numerical_gradient_grad),
    "LogTailedReLU": ({"alpha": 0.0}, log_tailed_relu_grad),
    "SquarewaveFourierSeries": ({"n": 2, "T_period": 8.0}, squarewave_fourier_series_grad),
    "DeterministicPass": ({}, deterministic_pass_grad),
}


def surrogate_grad(name: str, x: Tensor, **params) -> Tensor:
    """σ'(x) of the surrogate `name` with `params` (SpikingJelly's parameter names), computed in float64."""
    return SURROGATES[name][1](x.double(), **params)


class SpikeFn(torch.autograd.Function):
    """Θ(x) = (x >= 0) forward, σ'(x) backward."""

    @staticmethod
    def forward(ctx, x, name, params):
        ctx.save_for_backward(x)
        ctx.name, ctx.params = name, params
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * surrogate_grad(ctx.name, x, **ctx.params).to(x.dtype), None, None


def spike(x: Tensor, name: str, params: dict) -> Tensor:
    return SpikeFn.apply(x, name, params)


# ---------------------------------------------------------------------------------------------------------
# Neurons (multi-step, float32)
# ---------------------------------------------------------------------------------------------------------


def neuron_multistep(x_seq: Tensor, kind: str, *, v_threshold: float = 1.0, v_reset: Optional[float] = 0.0,
                     tau: float = 2.0, w: Optional[Tensor] = None, decay_input: bool = True,
                     detach_reset: bool = False, surrogate: str = "Sigmoid", params: Optional[dict] = None,
                     v_init: Optional[Tensor] = None, decay: Optional[Tensor] = None):
    """Run an IF / LIF / ParametricLIF neuron over x_seq [T, *] step by step in float32.

    Args:
        kind: "IF", "LIF" or "PLIF" (ParametricLIF, whose 1/tau is sigmoid(w), w a float32 scalar tensor).
        v_reset: hard-reset potential, or None for the soft reset.
        v_init: potential before step 0; default v_reset (0 for the soft reset).
        decay: PLIF's multiplier sigmoid(w) given directly (as a model file stores it), instead of w.

    Returns:
        (spike_seq [T, *] float32, v_seq [T, *] float32, v_final [*] float32), differentiable.
    """
    params = SURROGATES[surrogate][0] if params is None else params
    x_seq = x_seq.float()
    vr = 0.0 if v_reset is None else v_reset
    v = torch.full_like(x_seq[0], vr) if v_init is None else v_init.float()
    if kind == "LIF":
        k = torch.tensor(1.0 / tau, dtype=torch.float32)
    elif kind == "PLIF":
        k = torch.sigmoid(w.float()) if decay is None else decay.float()
    spikes, vs = [], []
    for x in x_seq:
        if kind == "IF":
            h = v + x
        elif decay_input:
            h = v + (x - (v - vr)) * k
        else:
            h = v - (v - vr) * k + x
        s = spike(h - v_threshold, surrogate, params)
        s_reset = s.detach() if detach_reset else s
        if v_reset is None:
            v = h - s_reset * v_threshold
        else:
            v = s_reset * v_reset + (1.0 - s_reset) * h
        spikes.append(s)
        vs.append(v)
    if len(spikes) == 0:
        empty = x_seq.new_empty(x_seq.shape)
        return empty, empty, v
    return torch.stack(spikes), torch.stack(vs), v


# ---------------------------------------------------------------------------------------------------------
# The model file (docs/model_format.md): a reader written by hand, and a plain runner of the graph
# ---------------------------------------------------------------------------------------------------------


def load_model_file(path) -> Tuple[dict, Dict[str, Tensor]]:
    """Read a spikeops model file (safetensors layout) with struct/json only.

    Returns:
        (graph dict, {tensor name: float32 Tensor of the header's shape}).
    """
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__")
    if meta["format"] != "spikeops" or meta["format_version"] != "1":
        raise ValueError(f"{path}: not a spikeops model file of format version 1: {meta}")
    body = data[8 + n:]
    tensors = {}
    for name, info in header.items():
        if info["dtype"] != "F32":
            raise ValueError(f"{path}: tensor {name} has dtype {info['dtype']}, expected F32")
        begin, end = info["data_offsets"]
        flat = torch.frombuffer(bytearray(body[begin:end]), dtype=torch.float32) if end > begin else torch.empty(0)
        tensors[name] = flat.reshape(info["shape"])  # little-endian bytes read natively: an x86/ARM host
    return json.loads(meta["graph"]), tensors


def _stateless_layer(layer: dict, tensors: Dict[str, Tensor], x: Tensor) -> Tensor:
    """One stateless layer on a batch of samples x [B, *]."""
    kind = layer["type"]
    bias = tensors[layer["bias"]] if layer.get("bias") else None
    if kind == "linear":
        return F.linear(x, tensors[layer["weight"]], bias)
    if kind == "conv2d":
        return F.conv2d(x, tensors[layer["weight"]], bias, layer["stride"], layer["padding"], layer["dilation"],
                        layer["groups"])
    if kind == "flatten":
        return x.flatten(1)
    if kind == "max_pool2d":
        return F.max_pool2d(x, layer["kernel_size"], layer["stride"], layer["padding"])
    if kind == "avg_pool2d":
        return F.avg_pool2d(x, layer["kernel_size"], layer["stride"], layer["padding"],
                            count_include_pad=layer["count_include_pad"])
    raise ValueError(f"layer {layer['name']}: unknown type {kind!r}")


def run_model_file(graph: dict, tensors: Dict[str, Tensor], x: Tensor, seed: Optional[int] = None) -> Tensor:
    """Run a model file's graph on static inputs, as docs/model_format.md describes it.

    Args:
        x: [N, *input_shape] float32.
        seed: seed of the Poisson encoder's generator (None: torch's default generator).

    Returns:
        scores [N, num_out] float32: the last layer's output summed over the T steps.
    """
    T = graph["time_steps"]
    x = x.float()
    assert list(x.shape[1:]) == graph["input_shape"], (tuple(x.shape), graph["input_shape"])
    N = x.shape[0]
    if graph["encoding"] == "direct":
        x_seq = torch.stack([x] * T)
    elif graph["encoding"] == "poisson":
        g = None if seed is None else torch.Generator().manual_seed(seed)
        x_seq = torch.stack([(torch.rand(x.shape, generator=g) <= x).float() for _ in range(T)])
    else:
        raise ValueError(f"unknown encoding {graph['encoding']!r}")
    with torch.no_grad():
        for layer in graph["layers"]:
            kind = layer["type"]
            if kind == "neuron":
                x_seq = model_file_neuron(layer, tensors, x_seq)
            elif kind in ("if", "lif", "plif"):
                x_seq = neuron_multistep(
                    x_seq, {"if": "IF", "lif": "LIF", "plif": "PLIF"}[kind], v_threshold=layer["v_threshold"],
                    v_reset=layer["v_reset"], tau=layer.get("tau", 2.0), decay_input=layer.get("decay_input", True),
                    decay=tensors[layer["decay"]] if kind == "plif" else None)[0]
            else:  # stateless: every step on its own, the steps folded into the batch
                y = _stateless_layer(layer, tensors, x_seq.flatten(0, 1))
                x_seq = y.view((T, N) + tuple(y.shape[1:]))
            assert list(x_seq.shape[2:]) == layer["output_shape"], (layer["name"], tuple(x_seq.shape))
    return x_seq.sum(0)


# ---------------------------------------------------------------------------------------------------------
# SpikingJelly 2.0's nonlinear, adaptive and non-spiking neurons, and the LSNN (ALIF), step by step in float32.
# The charge of QIF, EIF and Izhikevich is written in SpikingJelly 2.0.0's operation order (spikingjelly/_ops/
# {qif,eif,izhikevich}/cpu.py: a division by tau), so the forward is bit-exact with it.
# ---------------------------------------------------------------------------------------------------------


def _fire_and_reset(h: Tensor, threshold, v_reset: Optional[float], detach_reset: bool, surrogate: str,
                    params: Optional[dict]):
    """S = Θ(h - threshold) with the surrogate; V = S Vr + (1 - S) h, or h - S threshold with v_reset=None."""
    params = SURROGATES[surrogate][0] if params is None else params
    s = spike(h - threshold, surrogate, params)
    s_r = s.detach() if detach_reset else s
    v = h - s_r * threshold if v_reset is None else s_r * v_reset + (1.0 - s_r) * h
    return s, v


def _stack(seq, like: Tensor) -> Tensor:
    return torch.stack(seq) if seq else like.new_empty((0,) + tuple(like.shape))


def qif_reference(x_seq: Tensor, v0: Optional[Tensor] = None, *, tau=2.0, v_c=0.8, a0=1.0, v_threshold=1.0,
                  v_rest=0.0, v_reset: Optional[float] = -0.1, detach_reset=False, surrogate="Sigmoid",
                  params=None):
    """QIF: H = V + (X + a0 (V - v_rest)(V - v_c)) / tau. Returns (spikes [T, *], v_seq [T, *], v [*])."""
    x_seq = x_seq.float()
    v = torch.full_like(x_seq[0] if len(x_seq) else x_seq.new_empty(x_seq.shape[1:]),
                        0.0 if v_reset is None else v_reset) if v0 is None else v0
    spikes, vs = [], []
    for x in x_seq:
        h = v + (x + a0 * (v - v_rest) * (v - v_c)) / tau
        s, v = _fire_and_reset(h, v_threshold, v_reset, detach_reset, surrogate, params)
        spikes.append(s)
        vs.append(v)
    return _stack(spikes, v), _stack(vs, v), v


def eif_reference(x_seq: Tensor, v0: Optional[Tensor] = None, *, tau=2.0, delta_T=1.0, theta_rh=0.8,
                  v_threshold=1.0, v_rest=0.0, v_reset: Optional[float] = -0.1, detach_reset=False,
                  surrogate="Sigmoid", params=None):
    """EIF: H = V + (X + v_rest - V + delta_T exp((V - theta_rh) / delta_T)) / tau. Returns as qif_reference."""
    x_seq = x_seq.float()
    v = torch.full_like(x_seq[0] if len(x_seq) else x_seq.new_empty(x_seq.shape[1:]),
                        0.0 if v_reset is None else v_reset) if v0 is None else v0
    spikes, vs = [], []
    for x in x_seq:
        h = v + (x + v_rest - v + delta_T * torch.exp((v - theta_rh) / delta_T)) / tau
        s, v = _fire_and_reset(h, v_threshold, v_reset, detach_reset, surrogate, params)
        spikes.append(s)
        vs.append(v)
    return _stack(spikes, v), _stack(vs, v), v


def izhikevich_reference(x_seq: Tensor, v0: Optional[Tensor] = None, w0: Optional[Tensor] = None, *, tau=2.0,
                         v_c=0.8, a0=1.0, v_threshold=1.0, v_reset: Optional[float] = 0.0, v_rest=-0.1,
                         w_rest=0.0, tau_w=2.0, a=0.0, b=0.0, detach_reset=False, surrogate="Sigmoid",
                         params=None):
    """Izhikevich: H = V + (X + a0 (V - v_rest)(V - v_c) - W) / tau; S = Θ(H - v_threshold);
    W' = W + (a (H - v_rest) - W) / tau_w + b S (S not detached); V' the reset of H.
    Returns (spikes, v_seq, v, w_seq, w)."""
    x_seq = x_seq.float()
    like = x_seq[0] if len(x_seq) else x_seq.new_empty(x_seq.shape[1:])
    v = torch.full_like(like, 0.0 if v_reset is None else v_reset) if v0 is None else v0
    w = torch.full_like(like, w_rest) if w0 is None else w0
    spikes, vs, ws = [], [], []
    for x in x_seq:
        h = v + (x + a0 * (v - v_rest) * (v - v_c) - w) / tau
        s, v = _fire_and_reset(h, v_threshold, v_reset, detach_reset, surrogate, params)
        w = w + (a * (h - v_rest) - w) / tau_w + b * s
        spikes.append(s)
        vs.append(v)
        ws.append(w)
    return _stack(spikes, v), _stack(vs, v), v, _stack(ws, w), w


def alif_reference(x_seq: Tensor, v0: Optional[Tensor] = None, a0: Optional[Tensor] = None, *, tau=2.0,
                   tau_adapt=200.0, beta=0.01, decay_input=True, v_threshold=1.0, v_reset: Optional[float] = 0.0,
                   detach_reset=False, surrogate="Sigmoid", params=None):
    """Adaptive-threshold LIF (Bellec et al. 2018, Norse's order): H the LIF charge (1/tau a float32
    multiplier, as LIFNode), A' = A (1 - 1/tau_adapt), B = v_threshold + beta A', S = Θ(H - B), A = A' + S,
    V = the reset of H (soft: H - S B). Returns (spikes, v_seq, v, a_seq, a)."""
    x_seq = x_seq.float()
    like = x_seq[0] if len(x_seq) else x_seq.new_empty(x_seq.shape[1:])
    vr = 0.0 if v_reset is None else v_reset
    v = torch.full_like(like, vr) if v0 is None else v0
    a = torch.zeros_like(like) if a0 is None else a0
    k, rho = 1.0 / tau, 1.0 - 1.0 / tau_adapt
    spikes, vs, as_ = [], [], []
    for x in x_seq:
        h = v + (x - (v - vr)) * k if decay_input else v - (v - vr) * k + x
        a = a * rho
        b = v_threshold + beta * a
        s, v = _fire_and_reset(h, b, v_reset, detach_reset, surrogate, params)
        a = a + s
        spikes.append(s)
        vs.append(v)
        as_.append(a)
    return _stack(spikes, v), _stack(vs, v), v, _stack(as_, a), a


def norse_lsnn_feed_forward_reference(input_seq: Tensor, v: Tensor, i: Tensor, b: Tensor, *, tau_mem_inv: float,
                                      tau_syn_inv: float, tau_adapt_inv: float, v_leak: float, v_th: float,
                                      v_reset: float, beta: float, dt: float):
    """Norse 1.1.0's ``lsnn_feed_forward_step`` over a sequence (norse/torch/functional/lsnn.py), forward only:
        v_d = v + dt tau_mem_inv ((v_leak - v) + i);  i_d = i - dt tau_syn_inv i;  b_d = b + dt tau_adapt_inv (v_th - b)
        z = Θ(v_d - b_d) (Norse's heaviside: 1 where > 0);  v = (1 - z) v_d + z v_reset;  b = b_d + z beta;
        i = i_d + input.
    Returns the spikes [T, *] and the final (v, i, b)."""
    spikes = []
    for x in input_seq:
        v_d = v + dt * tau_mem_inv * ((v_leak - v) + i)
        i_d = i + (-dt * tau_syn_inv * i)
        b_d = b + dt * tau_adapt_inv * (v_th - b)
        z = (v_d - b_d > 0).to(v_d.dtype)
        v = (1 - z) * v_d + z * v_reset
        b = b_d + z * beta
        i = i_d + x
        spikes.append(z)
    return torch.stack(spikes), (v, i, b)


def nonspiking_reference(x_seq: Tensor, tau: Optional[float] = None, decode: Optional[str] = None):
    """NonSpikingIF (tau None): V = V + X; NonSpikingLIF: V = V + (X - V) / tau; V starts at 0; then SpikingJelly's
    decode of the T potentials (None: the list). Computed in float32, or float64 for a float64 input (gradcheck)."""
    x_seq = x_seq if x_seq.dtype == torch.float64 else x_seq.float()
    v = torch.zeros_like(x_seq[0])
    vs = []
    for x in x_seq:
        v = v + x if tau is None else v + (x - v) / tau
        vs.append(v)
    if decode is None:
        return vs
    st = torch.stack(vs)
    if decode == "max-mem":
        return st.max(0).values
    if decode == "max-abs-mem":
        hi, lo = st.max(0).values, st.min(0).values
        return torch.where(hi.abs() > lo.abs(), hi, lo)
    if decode == "mean-mem":
        return st.mean(0)
    assert decode == "last_mem"
    return vs[-1]


# SpikingJelly 2.0's LIF variants (neuron/lif_variants.py), multi-step, state in float32. Written from the
# papers' equations in SpikingJelly's operation order; `surrogate` names a SURROGATES entry (Θ forward, its σ'
# backward). Each returns the outputs [T, *], the state after every step [T, *] and the final states.
# ---------------------------------------------------------------------------------------------------------


def _reset(h: Tensor, s: Tensor, v_threshold, v_reset: Optional[float], detach_reset: bool) -> Tensor:
    s = s.detach() if detach_reset else s
    if v_reset is None:
        return h - s * v_threshold
    return s * v_reset + (1.0 - s) * h


def _lif_charge_div(v: Tensor, x: Tensor, tau: float, decay_input: bool, v_reset: Optional[float]) -> Tensor:
    vr = 0.0 if v_reset is None else v_reset
    return v + (x - (v - vr)) / tau if decay_input else v - (v - vr) / tau + x


def _stack_or_empty(xs, like: Tensor) -> Tensor:
    return torch.stack(xs) if xs else like.new_empty(like.shape)


def klif_reference(x_seq: Tensor, k: Tensor, *, tau: float = 2.0, decay_input: bool = True,
                   scale_reset: bool = False, v_threshold: float = 1.0, v_reset: Optional[float] = 0.0,
                   detach_reset: bool = False, surrogate: str = "Sigmoid", params: Optional[dict] = None,
                   v_init: Optional[Tensor] = None):
    """KLIF: H = LIF charge (dividing by tau); F = relu(k H); S = Θ(F - v_threshold); reset of F, or of F / k
    with threshold v_threshold / k (scale_reset). Returns (spikes, v_seq, v_final)."""
    params = SURROGATES[surrogate][0] if params is None else params
    x_seq = x_seq.float()
    v = torch.full_like(x_seq[0], 0.0 if v_reset is None else v_reset) if v_init is None else v_init
    spikes, vs = [], []
    for x in x_seq:
        f = torch.relu(k * _lif_charge_div(v, x, tau, decay_input, v_reset))
        s = spike(f - v_threshold, surrogate, params)
        if scale_reset:
            v = _reset(f / k, s, v_threshold / k, v_reset, detach_reset)
        else:
            v = _reset(f, s, v_threshold, v_reset, detach_reset)
        spikes.append(s)
        vs.append(v)
    return _stack_or_empty(spikes, x_seq), _stack_or_empty(vs, x_seq), v


def cuba_lif_reference(x_seq: Tensor, *, c_decay: float = 0.5, v_decay: float = 0.75, v_threshold: float = 0.5,
                       v_reset: Optional[float] = 0.0, detach_reset: bool = False, surrogate: str = "Rect",
                       params: Optional[dict] = None, v_init: Optional[Tensor] = None,
                       c_init: Optional[Tensor] = None):
    """Current-based LIF: C = C c_decay + X; H = V v_decay + C; S = Θ(H - v_threshold); hard or soft reset.
    Returns (spikes, v_seq, v_final, c_final)."""
    params = SURROGATES[surrogate][0] if params is None else params
    x_seq = x_seq.float()
    v = torch.full_like(x_seq[0], 0.0 if v_reset is None else v_reset) if v_init is None else v_init
    c = torch.zeros_like(x_seq[0]) if c_init is None else c_init
    spikes, vs = [], []
    for x in x_seq:
        c = c * c_decay + x
        h = v * v_decay + c
        s = spike(h - v_threshold, surrogate, params)
        v = _reset(h, s, v_threshold, v_reset, detach_reset)
        spikes.append(s)
        vs.append(v)
    return _stack_or_empty(spikes, x_seq), _stack_or_empty(vs, x_seq), v, c


def liaf_reference(x_seq: Tensor, act, threshold_related: bool, *, tau: float = 2.0, decay_input: bool = True,
                   v_threshold: float = 1.0, v_reset: Optional[float] = 0.0, detach_reset: bool = False,
                   surrogate: str = "Sigmoid", params: Optional[dict] = None, v_init: Optional[Tensor] = None):
    """LIAF: the LIF charge with 1/tau as a float32 multiplier (spikeops' LIFNode, which LIAFNode extends);
    Y = act(H - v_threshold) or act(H); the spike S = Θ(H - v_threshold) only resets. Returns (y, v_seq, v_final)."""
    params = SURROGATES[surrogate][0] if params is None else params
    x_seq = x_seq.float()
    vr = 0.0 if v_reset is None else v_reset
    v = torch.full_like(x_seq[0], vr) if v_init is None else v_init
    k = torch.tensor(1.0 / tau, dtype=torch.float32)
    ys, vs = [], []
    for x in x_seq:
        h = v + (x - (v - vr)) * k if decay_input else v - (v - vr) * k + x
        ys.append(act(h - v_threshold if threshold_related else h))
        s = spike(h - v_threshold, surrogate, params)
        v = _reset(h, s, v_threshold, v_reset, detach_reset)
        vs.append(v)
    return _stack_or_empty(ys, x_seq), _stack_or_empty(vs, x_seq), v


def clif_reference(x_seq: Tensor, *, tau: float = 2.0, v_threshold: float = 1.0, surrogate: str = "Rect",
                   params: Optional[dict] = None, v_init: Optional[Tensor] = None, m_init: Optional[Tensor] = None):
    """Complementary LIF: H = V - V / tau + X; S = Θ(H - v_threshold); M = M sigmoid(H / tau) + S;
    V = H - S (v_threshold + sigmoid(M)). Returns (spikes, v_seq, m_seq, v_final, m_final)."""
    params = SURROGATES[surrogate][0] if params is None else params
    x_seq = x_seq.float()
    v = torch.zeros_like(x_seq[0]) if v_init is None else v_init
    m = torch.zeros_like(x_seq[0]) if m_init is None else m_init
    spikes, vs, ms = [], [], []
    for x in x_seq:
        h = v - (v - 0.0) / tau + x
        s = spike(h - v_threshold, surrogate, params)
        m = m * torch.sigmoid(h / tau) + s
        v = h - s * (v_threshold + torch.sigmoid(m))
        spikes.append(s)
        vs.append(v)
        ms.append(m)
    return _stack_or_empty(spikes, x_seq), _stack_or_empty(vs, x_seq), _stack_or_empty(ms, x_seq), v, m


def gated_lif_reference(x_seq: Tensor, p: Dict[str, Tensor], *, channel_wise: bool, surrogate: str = "Sigmoid",
                        params: Optional[dict] = None, v_init: Optional[Tensor] = None):
    """GLIF (Yao et al. 2022) with raw parameters p (alpha, beta, gamma, tau, v_threshold, linear_decay,
    v_subreset: shape () or (C,); conduct: (T, ...)), each used through its sigmoid; channel-wise parameters act
    on dimension 1 of a step [N, C, *]. The previous spike starts at 0. Returns (spikes, v_seq, v_final)."""
    params = SURROGATES[surrogate][0] if params is None else params
    x_seq = x_seq.float()

    def gate(t: Tensor) -> Tensor:
        g = torch.sigmoid(t)
        return g.reshape(-1, *([1] * (x_seq.dim() - 3))) if channel_wise else g

    a, b, g = gate(p["alpha"]), gate(p["beta"]), gate(p["gamma"])
    tau, vth, ld, vsr = gate(p["tau"]), gate(p["v_threshold"]), gate(p["linear_decay"]), gate(p["v_subreset"])
    v = torch.zeros_like(x_seq[0]) if v_init is None else v_init
    s = torch.zeros_like(x_seq[0])
    spikes, vs = [], []
    for t, x in enumerate(x_seq):
        current = x * (1 - b * (1 - gate(p["conduct"][t])))
        h = ((1 - a * (1 - tau)) * v - (1 - a) * ld) + current
        h = h - (1 - a * (1 - tau)) * v * g * s - (1 - g) * vsr * s
        s = spike(h - vth, surrogate, params)
        v = h
        spikes.append(s)
        vs.append(v)
    return _stack_or_empty(spikes, x_seq), _stack_or_empty(vs, x_seq), v


# The PSN family (Fang et al., 2023; SpikingJelly 2.0's PSN, MaskedPSN, SlidingPSN): a mixing over time, then Θ
# ---------------------------------------------------------------------------------------------------------


def psn_charge(x_seq: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """H[t, n] = Σ_j weight[t, j] X[j, n] + bias[t], written as sums over j, in float64.

    Args:
        x_seq: [T, *] inputs; weight [T, T]; bias [T, 1] (PSN, MaskedPSN) or a scalar (SlidingPSN).

    Returns:
        H [T, N] float64 (N the product of x_seq's other sizes), differentiable in x_seq, weight and bias.
    """
    T = x_seq.shape[0]
    x = x_seq.double().reshape(T, math.prod(x_seq.shape[1:]))
    w, b = weight.double(), bias.double().reshape(-1, 1)
    rows = [sum((w[t, j] * x[j] for j in range(T)), torch.zeros_like(x[0])) + b[min(t, b.shape[0] - 1)]
            for t in range(T)]
    return torch.stack(rows) if rows else x.new_zeros(x.shape)


def masked_psn_weight(weight: Tensor, k: int, lambda_: float) -> Tensor:
    """weight ⊙ M_k(λ): M_k[i][j] = 1 for j <= i <= j + k - 1 else 0, M_k(λ) = λ M_k + (1 - λ) J; λ >= 1 is M_k."""
    T = weight.shape[0]
    lam = min(float(lambda_), 1.0)
    m = torch.tensor([[1.0 if j <= i <= j + k - 1 else 0.0 for j in range(T)] for i in range(T)],
                     dtype=torch.float64)
    return weight.double() * (lam * m + (1.0 - lam) * torch.ones_like(m))


def sliding_psn_charge(x_seq: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """H[t] = Σ_{i=0}^{k-1} weight[i] X[t - k + 1 + i] + bias (steps before 0 contribute nothing), float64 [T, N]."""
    T, k = x_seq.shape[0], weight.shape[0]
    x = x_seq.double().reshape(T, math.prod(x_seq.shape[1:]))
    w = weight.double()
    rows = []
    for t in range(T):
        h = torch.zeros_like(x[0]) + bias.double()
        for i in range(k):
            if t - k + 1 + i >= 0:
                h = h + w[i] * x[t - k + 1 + i]
        rows.append(h)
    return torch.stack(rows) if rows else x.new_zeros(x.shape)


def psn_fire(h: Tensor, surrogate) -> Tensor:
    """S = Θ(H) with the surrogate's derivative: ``surrogate`` is a (name, params) pair of SURROGATES, or a callable
    (a user's surrogate, called on H as the neuron calls it)."""
    if callable(surrogate):
        return surrogate(h)
    name, params = surrogate
    return spike(h, name, params)


def model_file_neuron(layer: dict, tensors: Dict[str, Tensor], x_seq: Tensor) -> Tensor:
    """A model file's generic neuron layer ({"type": "neuron", "model": ...}) run by this file's reference of
    that model, from the layer's initial states; returns the spikes [T, N, *]."""
    model, e = layer["model"], layer["extra"]
    like = x_seq[0] if len(x_seq) else x_seq.new_empty(x_seq.shape[1:])
    init = [torch.full_like(like, v, dtype=torch.float32) for v in layer["state_init"]]
    learnable = tensors[layer["learnable"]] if "learnable" in layer else None
    common = dict(v_threshold=layer["v_threshold"], v_reset=layer["v_reset"])
    tau, decay_input = layer["tau"], layer["decay_input"]
    if model in ("IF", "LIF", "ParametricLIF"):
        kind = {"IF": "IF", "LIF": "LIF", "ParametricLIF": "PLIF"}[model]
        return neuron_multistep(x_seq, kind, tau=tau, decay_input=decay_input, v_init=init[0],
                                decay=None if learnable is None else learnable[0], **common)[0]
    if model == "QIF":
        return qif_reference(x_seq, init[0], tau=tau, v_c=e["v_c"], a0=e["a0"], v_rest=e["v_rest"], **common)[0]
    if model == "EIF":
        return eif_reference(x_seq, init[0], tau=tau, delta_T=e["delta_T"], theta_rh=e["theta_rh"],
                             v_rest=e["v_rest"], **common)[0]
    if model == "Izhikevich":
        return izhikevich_reference(x_seq, init[0], init[1], tau=tau, v_c=e["v_c"], a0=e["a0"], v_rest=e["v_rest"],
                                    tau_w=e["tau_w"], a=e["a"], b=e["b"], **common)[0]
    if model == "ALIF":  # the file stores rho = 1 - 1/tau_adapt; the steps of alif_reference with that rho
        vr = 0.0 if layer["v_reset"] is None else layer["v_reset"]
        v, a, k, spikes = init[0], init[1], 1.0 / tau, []
        for x in x_seq.float():
            h = v + (x - (v - vr)) * k if decay_input else v - (v - vr) * k + x
            a = a * e["adapt_decay"]
            s, v = _fire_and_reset(h, layer["v_threshold"] + e["beta"] * a, layer["v_reset"], False, "Sigmoid", None)
            a = a + s
            spikes.append(s)
        return _stack(spikes, like)
    if model == "KLIF":
        return klif_reference(x_seq, learnable[0], tau=tau, decay_input=decay_input,
                              scale_reset=e["scale_reset"] == 1.0, v_init=init[0], **common)[0]
    if model == "CUBALIF":
        return cuba_lif_reference(x_seq, c_decay=e["c_decay"], v_decay=e["v_decay"], v_init=init[0], c_init=init[1],
                                  **common)[0]
    if model == "ComplementaryLIF":
        return clif_reference(x_seq, tau=tau, v_threshold=layer["v_threshold"], v_init=init[0], m_init=init[1])[0]
    raise ValueError(f"model_file_neuron: no reference for the neuron model {model!r}")
