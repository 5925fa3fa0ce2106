"""Property tests of the registered ops called directly (torch.ops.spikeops.*): random shapes (empty dims too),
convolution geometries, dtypes and hyper-parameters (extremes, NaN, Inf, values beyond float32). Each call either
equals the plain-torch reference or raises a TypeError/ValueError whose message names the op and an argument;
never another exception, never a crash.

Spikes are 0/1 and weights finite in the value comparisons: what the spike ops do with other values is another
matter (and tested elsewhere). The "spikeops" hypothesis profile (conftest.py) keeps the runs deterministic and
bounded.
"""

import math
import re

import pytest
import torch
import torch.nn.functional as F

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, strategies as st  # noqa: E402

import spikeops  # noqa: E402,F401  (registers the ops)
from spikeops import _C  # noqa: E402

import reference  # noqa: E402

ops = torch.ops.spikeops
FLOATS = (torch.float32, torch.float16, torch.bfloat16)
SURROGATE_NAMES = {int(v): k for k, v in _C.SurrogateKind.__members__.items()}

# Scalars a caller may pass for a float argument: ordinary, extreme, beyond float32, and not numbers at all.
EXTREME_FLOATS = st.one_of(
    st.floats(-4.0, 4.0), st.sampled_from([0.0, -0.0, 1.0, 1e-50, 1e-40, 1.2e-38, 3.4e38, 1e39, -1e39, 1e300,
                                           math.nan, math.inf, -math.inf]))


def expect_clear_error(error: Exception, op: str, args) -> None:
    """The error is a TypeError/ValueError naming the op and one of ``args``."""
    assert type(error) in (TypeError, ValueError), repr(error)
    message = str(error)
    assert f"spikeops::{op}" in message, message
    assert any(re.search(rf"(?<![\w.]){a}(?!\w)", message) for a in args), message


def spikes_of(shape, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) < 0.4).to(dtype)


def weights_of(shape, dtype, seed):
    g = torch.Generator().manual_seed(seed + 1)
    return torch.randn(shape, generator=g).to(dtype)


TOLERANCE = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 5e-2}


def assert_close_in(out, expected, dtype, operand_dtype=torch.float32):
    # float32 accumulation in another order than torch's; the output then rounded to its dtype. (The dense weight
    # gradient computes in the output gradient's dtype: operand_dtype.)
    tol = max(TOLERANCE[dtype], TOLERANCE[operand_dtype])
    assert out.dtype == dtype and out.shape == expected.shape
    torch.testing.assert_close(out.float(), expected.float(), rtol=tol, atol=tol * 8)


# ---------------------------------------------------------------------------------------------------------
# The spike GEMM
# ---------------------------------------------------------------------------------------------------------

@given(M=st.integers(0, 6), K=st.integers(0, 9), N=st.integers(0, 7),
       spike_dtype=st.sampled_from((torch.uint8,) + FLOATS), weight_dtype=st.sampled_from(FLOATS),
       with_bias=st.booleans(), kernel=st.sampled_from(["auto", "events", "dense"]),
       k_off=st.sampled_from([0, 0, 0, 1, -1]), bias_off=st.sampled_from([0, 0, 0, 1]), seed=st.integers(0, 2**16))
def test_spike_linear_matches_torch_or_names_the_argument(M, K, N, spike_dtype, weight_dtype, with_bias, kernel,
                                                          k_off, bias_off, seed):
    spikes = spikes_of((M, max(K + k_off, 0)), spike_dtype, seed)
    weight = weights_of((N, K), weight_dtype, seed)
    bias = weights_of((N + bias_off,), weight_dtype, seed + 2) if with_bias else None
    try:
        out = ops.spike_linear(spikes, weight, bias, kernel)
    except Exception as e:  # noqa: BLE001  (the property is about which exceptions)
        assert spikes.shape[1] != K or (bias is not None and bias.shape[0] != N), repr(e)
        expect_clear_error(e, "spike_linear", ["spikes", "bias"])
        return
    assert spikes.shape[1] == K and (bias is None or bias.shape[0] == N)
    expected = F.linear(spikes.float(), weight.float(), None if bias is None else bias.float())
    assert_close_in(out, expected.to(weight_dtype), weight_dtype)


@given(M=st.integers(0, 6), K=st.integers(0, 9), N=st.integers(0, 7), rows_dtype=st.sampled_from(FLOATS),
       out_dtype=st.sampled_from(FLOATS + (torch.float64, torch.int32)), transposed=st.booleans(),
       k_off=st.sampled_from([0, 0, 0, 2]), kernel=st.sampled_from(["auto", "events", "dense"]),
       seed=st.integers(0, 2**16))
def test_spike_accumulate_rows_t_matches_torch_or_names_the_argument(M, K, N, rows_dtype, out_dtype, transposed,
                                                                     k_off, kernel, seed):
    # transposed: the spikes as the weight gradient passes them, S.t() of a contiguous [K, M].
    spikes = spikes_of((K, M), torch.uint8, seed).t() if transposed else spikes_of((M, K), torch.uint8, seed)
    rows = weights_of((K + k_off, N), rows_dtype, seed)
    try:
        out = ops.spike_accumulate_rows_t(spikes, rows, out_dtype, kernel)
    except Exception as e:  # noqa: BLE001
        assert k_off or out_dtype not in FLOATS, repr(e)
        expect_clear_error(e, "spike_accumulate_rows_t", ["rows", "out_dtype"])
        return
    assert not k_off and out_dtype in FLOATS
    assert_close_in(out, (spikes.float() @ rows.float()).t().to(out_dtype), out_dtype)


# ---------------------------------------------------------------------------------------------------------
# The spike convolution: torch's convolution is the oracle of what is valid
# ---------------------------------------------------------------------------------------------------------

CONV_ARGS = ["spikes", "weight", "bias", "stride", "padding", "dilation", "groups", "weight_shape", "grad_out"]
conv_geometry = dict(
    n=st.integers(0, 2), cin_g=st.integers(1, 3), cout_g=st.integers(0, 2), groups=st.integers(-1, 3),
    # H or W = 0: test_op_errors.py (torch refuses it unless N = 0)
    h=st.integers(1, 6), w=st.integers(1, 6), kh=st.integers(1, 3), kw=st.integers(1, 3),
    stride=st.tuples(st.integers(-1, 3), st.integers(1, 3)), padding=st.tuples(st.integers(0, 2), st.integers(-1, 2)),
    dilation=st.tuples(st.integers(0, 2), st.integers(1, 2)))


def torch_conv_or_error(fn):
    """(result, None) or (None, the error) of a plain-torch reference."""
    try:
        return fn(), None
    except RuntimeError as e:
        return None, e


def torch_refuses(spikes, weight_shape, geometry) -> bool:
    """Whether torch's convolution refuses this geometry for a batch of one (for an empty batch torch returns before
    checking some arguments, dilation 0 for one; spikeops checks them whatever the batch)."""
    one = torch.zeros((1,) + tuple(spikes.shape[1:]))
    weight = torch.zeros([max(weight_shape[0], 1) * max(geometry[3], 1)] + list(weight_shape[1:]))
    return torch_conv_or_error(lambda: F.conv2d(one, weight, None, *geometry))[1] is not None


@given(**conv_geometry, weight_dtype=st.sampled_from(FLOATS), spike_dtype=st.sampled_from((torch.uint8,) + FLOATS),
       with_bias=st.booleans(), kernel=st.sampled_from(["auto", "events", "dense"]), seed=st.integers(0, 2**16))
def test_spike_conv2d_matches_torch_or_names_the_argument(n, cin_g, cout_g, groups, h, w, kh, kw, stride, padding,
                                                          dilation, weight_dtype, spike_dtype, with_bias, kernel,
                                                          seed):
    g = max(groups, 1)
    spikes = spikes_of((n, cin_g * g, h, w), spike_dtype, seed)
    weight = weights_of((cout_g * g, cin_g, kh, kw), weight_dtype, seed)
    bias = weights_of((cout_g * g,), weight_dtype, seed + 2) if with_bias else None
    geometry = (list(stride), list(padding), list(dilation), groups)
    try:
        out = ops.spike_conv2d(spikes, weight, bias, *geometry, kernel)
    except Exception as e:  # noqa: BLE001
        expect_clear_error(e, "spike_conv2d", CONV_ARGS)
        assert torch_refuses(spikes, list(weight.shape), geometry), f"torch accepts what spikeops refused: {e}"
        return
    if weight.shape[0] == 0:  # no output channels: spikeops returns the empty result torch would refuse
        assert out.shape[1] == 0 and out.shape[0] == n
        return
    expected = F.conv2d(spikes.float(), weight.float(), None if bias is None else bias.float(), *geometry)
    assert_close_in(out, expected.to(weight_dtype), weight_dtype)


@given(**conv_geometry, out_dtype=st.sampled_from(FLOATS), grad_dtype=st.sampled_from(FLOATS),
       kernel=st.sampled_from(["auto", "events", "dense"]), seed=st.integers(0, 2**16))
def test_spike_conv2d_weight_grad_matches_torch_or_names_the_argument(n, cin_g, cout_g, groups, h, w, kh, kw, stride,
                                                                      padding, dilation, out_dtype, grad_dtype,
                                                                      kernel, seed):
    g = max(groups, 1)
    spikes = spikes_of((n, cin_g * g, h, w), torch.uint8, seed)
    weight_shape = [cout_g * g, cin_g, kh, kw]
    geometry = (list(stride), list(padding), list(dilation), groups)
    # The output gradient has the forward's output shape, where torch's forward defines one.
    probe, torch_error = torch_conv_or_error(
        lambda: F.conv2d(spikes.float(), torch.zeros([max(weight_shape[0], g)] + weight_shape[1:]), None, *geometry))
    oh, ow = (probe.shape[2], probe.shape[3]) if probe is not None else (1, 1)
    grad_out = weights_of((n, weight_shape[0], oh, ow), grad_dtype, seed)
    try:
        out = ops.spike_conv2d_weight_grad(spikes, grad_out, weight_shape, *geometry, out_dtype, kernel)
    except Exception as e:  # noqa: BLE001
        expect_clear_error(e, "spike_conv2d_weight_grad", CONV_ARGS)
        assert torch_refuses(spikes, weight_shape, geometry), f"torch accepts what spikeops refused: {e}"
        return
    assert not torch_refuses(spikes, weight_shape, geometry)
    if weight_shape[0] == 0 or n == 0:
        assert torch.equal(out, torch.zeros(weight_shape, dtype=out_dtype))
        return
    expected = torch.nn.grad.conv2d_weight(spikes.float(), weight_shape, grad_out.float(), *geometry)
    assert_close_in(out, expected.to(out_dtype), out_dtype, grad_dtype)


# ---------------------------------------------------------------------------------------------------------
# Neurons
# ---------------------------------------------------------------------------------------------------------

# One past the core's last model (models are added over time, so no fixed number).
UNKNOWN_KIND = max(int(k) for k in _C.NeuronKind.__members__.values()) + 1
# Inputs on a grid of 1/8 and power-of-two time constants: exact in float32, so the spikes compare exactly.
GRID = st.integers(-16, 16).map(lambda i: i / 8)


@given(T=st.integers(0, 4), N=st.integers(0, 5), kind=st.sampled_from([0, 1, 2]), x_dtype=st.sampled_from(FLOATS),
       spike_dtype=st.sampled_from(FLOATS + (torch.uint8,)), v_threshold=GRID, v_reset=st.one_of(st.none(), GRID),
       tau=st.sampled_from([2.0, 4.0, 8.0]), decay=st.sampled_from([0.5, 0.25]), decay_input=st.booleans(),
       state_2d=st.booleans(), seed=st.integers(0, 2**16))
def test_neuron_forward_matches_reference(T, N, kind, x_dtype, spike_dtype, v_threshold, v_reset, tau, decay,
                                          decay_input, state_2d, seed):
    g = torch.Generator().manual_seed(seed)
    x_seq = (torch.randint(-16, 17, (T, N), generator=g) / 8).to(x_dtype)
    v_init = torch.randint(-8, 9, (N,), generator=g) / 8
    learnable = torch.tensor([decay]) if kind == 2 else None  # ParametricLIF's k = sigmoid(w)
    state_init = v_init[None] if state_2d else v_init  # a one-state model takes [1, N] or [N]
    spikes, state_final, _, v_seq = ops.neuron_forward(x_seq, state_init, learnable, kind, v_threshold, v_reset,
                                                       tau, decay_input, [], False, 0, 4.0, 0.0, spike_dtype, False,
                                                       True)
    ref_spikes, ref_v_seq, ref_v_final = reference.neuron_multistep(
        x_seq, ["IF", "LIF", "PLIF"][kind], v_threshold=v_threshold, v_reset=v_reset, tau=tau,
        decay_input=decay_input, v_init=v_init, decay=learnable)
    assert spikes.dtype == spike_dtype and torch.equal(spikes.float(), ref_spikes)
    torch.testing.assert_close(v_seq, ref_v_seq)
    assert state_final.shape == state_init.shape
    torch.testing.assert_close(state_final.reshape(N), ref_v_final)


# One argument at a time is drawn from a range with bad values in it; the others are valid.
NEURON_BAD = {
    "neuron_kind": st.one_of(st.integers(-2, 2), st.integers(UNKNOWN_KIND, UNKNOWN_KIND + 2)),
    "v_threshold": EXTREME_FLOATS,
    "v_reset": st.one_of(st.none(), EXTREME_FLOATS),
    "tau": EXTREME_FLOATS,
    "surrogate_kind": st.integers(-1, 11),
    "alpha": EXTREME_FLOATS,
    "beta": EXTREME_FLOATS,
    # "none" / "[1]": refused for ParametricLIF / for IF and LIF, which have no learnable scalar.
    "learnable": st.sampled_from(["none", "[1]", "[2]", "[1, 1]", "float64", "meta"]),
    "extra": st.lists(st.floats(-2, 2), min_size=1, max_size=3),
    "x_seq": st.sampled_from([torch.float64, torch.int32, torch.uint8, torch.bool, "3-D", "meta"]),
    "state_init": st.sampled_from(["[N+1]", "[1, N+1]", "[2, N]", "[N, 1]", "float16", "meta"]),
    "saved": st.sampled_from(["[2, T, N]", "[T, N]", "float16", "meta"]),  # backward only
    "surrogate_grad_seq": st.sampled_from(["[T+1, N]", "[N, T]", "[1, T, N]", "float16", "float64", "meta"]),
    "spike_dtype": st.sampled_from([torch.float64, torch.int64, torch.bool]),
}


def neuron_args(T, N, kind, bad, value) -> dict:
    args = dict(x_seq=torch.linspace(-2, 2, T * N).reshape(T, N), state_init=torch.zeros(N),
                learnable=torch.tensor([0.5]) if kind == 2 else None, neuron_kind=kind, v_threshold=1.0,
                v_reset=0.0, tau=2.0, decay_input=True, extra=[], detach_reset=False, surrogate_kind=0, alpha=4.0,
                beta=0.0, spike_dtype=torch.float32, saved=torch.zeros(1, T, N), surrogate_grad_seq=None)
    if bad == "learnable":
        args["learnable"] = {"none": None, "[1]": torch.full((1,), 0.5), "[2]": torch.full((2,), 0.5),
                             "[1, 1]": torch.full((1, 1), 0.5), "float64": torch.tensor([0.5], dtype=torch.float64),
                             "meta": torch.tensor([0.5], device="meta")}[value]
    elif bad == "x_seq":
        x = args["x_seq"]
        args["x_seq"] = x[None] if value == "3-D" else x.to("meta") if value == "meta" else x.to(value)
    elif bad == "state_init":
        args["state_init"] = {"[N+1]": torch.zeros(N + 1), "[1, N+1]": torch.zeros(1, N + 1),
                              "[2, N]": torch.zeros(2, N), "[N, 1]": torch.zeros(N, 1),
                              "float16": torch.zeros(N, dtype=torch.float16),
                              "meta": torch.zeros(N, device="meta")}[value]
    elif bad == "saved":
        args["saved"] = {"[2, T, N]": torch.zeros(2, T, N), "[T, N]": torch.zeros(T, N),
                         "float16": torch.zeros(1, T, N, dtype=torch.float16),
                         "meta": torch.zeros(1, T, N, device="meta")}[value]
    elif bad == "surrogate_grad_seq":
        args["surrogate_grad_seq"] = {"[T+1, N]": torch.ones(T + 1, N), "[N, T]": torch.ones(N, T),
                                      "[1, T, N]": torch.ones(1, T, N), "float16": torch.ones(T, N).half(),
                                      "float64": torch.ones(T, N).double(),
                                      "meta": torch.ones(T, N, device="meta")}[value]
    elif bad is not None:
        args[bad] = value
    return args


@given(data=st.data(), T=st.integers(0, 3), N=st.integers(0, 4), kind=st.sampled_from([0, 1, 2]),
       bad=st.sampled_from([None] + sorted(NEURON_BAD)), backward=st.booleans())
def test_neuron_ops_accept_or_name_the_argument(data, T, N, kind, bad, backward):
    value = None if bad is None else data.draw(NEURON_BAD[bad], label=bad)
    a = neuron_args(T, N, kind, bad, value)
    flags = [a[k] for k in ("neuron_kind", "v_threshold", "v_reset", "tau", "decay_input", "extra",
                            "detach_reset", "surrogate_kind", "alpha", "beta")]
    op = "neuron_backward" if backward else "neuron_forward"
    # The drawn values that must be refused whatever else was drawn (the other ranges mix good and bad values).
    valid_learnable = "[1]" if kind == 2 else "none"
    same_shape = (bad, value) in (("state_init", "[N, 1]"), ("surrogate_grad_seq", "[N, T]"))  # [1, 1], T = N
    must_refuse = not (same_shape and (N == 1 if bad == "state_init" else T == N)) and (
        bad in ("extra", "state_init") or (bad == "learnable" and value != valid_learnable)
        or (bad in ("saved", "surrogate_grad_seq") and backward))
    try:
        if backward:  # x_seq stands for grad_spike_seq, spike_dtype for grad_x_dtype
            grads = ops.neuron_backward(a["x_seq"], None, None, a["saved"], a["state_init"], a["learnable"],
                                        a["surrogate_grad_seq"], *flags, a["spike_dtype"])
            assert grads[0].shape == (T, N) and grads[1].shape == a["state_init"].shape
        else:
            spikes = ops.neuron_forward(a["x_seq"], a["state_init"], a["learnable"], *flags, a["spike_dtype"], True,
                                        False)[0]
            assert spikes.shape == (T, N) and spikes.dtype == a["spike_dtype"]
    except (TypeError, ValueError, RuntimeError) as e:
        assert bad is not None, repr(e)
        # The backward takes its T and N from saved, so a bad grad_spike_seq / state_init can be reported as a
        # mismatch with saved; another valid neuron_kind is refused for its learnable scalars.
        names = {"x_seq": ["x_seq", "grad_spike_seq", "saved"], "spike_dtype": ["spike_dtype", "grad_x_dtype"],
                 "state_init": ["state_init", "saved"], "saved": ["saved", "grad_spike_seq"],
                 "neuron_kind": ["neuron_kind", "learnable"]}.get(bad, [bad])
        expect_clear_error(e, op, names)
        return
    assert not must_refuse, f"{op} accepted {bad}={value!r}"


# ---------------------------------------------------------------------------------------------------------
# The spike function and the surrogate gradients
# ---------------------------------------------------------------------------------------------------------

def reference_params(kind: int, alpha: float, beta: float) -> dict:
    name = SURROGATE_NAMES[kind]
    if name == "PiecewiseLeakyReLU":
        return {"w": alpha, "c": beta}
    if name == "FastSigmoid":
        return {"slope": alpha}
    if name == "S2NN":
        return {"alpha": alpha, "beta": beta}
    if name == "LeakyKReLU":
        return {"leak": alpha, "k": beta}
    if name == "SquarewaveFourierSeries":
        return {"n": int(beta), "T_period": alpha}
    if name == "DeterministicPass":
        return {}
    return {"alpha": alpha}


def kind_params(kind: int, alpha: float, beta: float, seed: int):
    """(alpha, beta) moved into the kind's own valid range: QPseudoSpike needs alpha > 1, SquarewaveFourierSeries
    an integer n >= 1 as beta."""
    name = SURROGATE_NAMES[kind]
    if name == "QPseudoSpike":
        return 1.0 + alpha, beta
    if name == "SquarewaveFourierSeries":
        return alpha, float(1 + seed % 5)
    return alpha, beta


@given(shape=st.lists(st.integers(0, 3), min_size=0, max_size=10), dtype=st.sampled_from(FLOATS),
       kind=st.sampled_from(sorted(SURROGATE_NAMES)), alpha=st.sampled_from([0.5, 1.0, 2.0, 4.0, 25.0]),
       beta=st.sampled_from([0.0, 0.01, -0.5]), seed=st.integers(0, 2**16))
def test_spike_fn_and_surrogate_backward_match_reference(shape, dtype, kind, alpha, beta, seed):
    alpha, beta = kind_params(kind, alpha, beta, seed)
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=g) * 2).to(dtype)
    assert torch.equal(ops.spike_fn(x, kind, alpha, beta), (x >= 0).to(dtype))
    grad_spike = torch.randn(shape, generator=g).to(dtype)
    grad_x = ops.surrogate_backward(grad_spike, x, kind, alpha, beta)
    params = reference_params(kind, alpha, beta)
    sg = reference.surrogate_grad(SURROGATE_NAMES[kind], x.float(), **params)
    expected = (grad_spike.double() * sg).to(dtype)
    tol = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 2e-2}[dtype]
    assert grad_x.dtype == dtype and grad_x.shape == x.shape
    atol = tol + reference.float32_phase_atol(SURROGATE_NAMES[kind], x.float(), **params) * (
        float(grad_spike.abs().max()) if grad_spike.numel() else 0.0)
    torch.testing.assert_close(grad_x.float(), expected.float(), rtol=tol, atol=atol)


@given(n=st.integers(0, 5), kind=st.integers(-1, len(SURROGATE_NAMES) + 1), alpha=EXTREME_FLOATS, beta=EXTREME_FLOATS,
       dtype=st.sampled_from(FLOATS + (torch.float64, torch.int64, torch.bool)),
       special=st.sampled_from([0.0, math.nan, math.inf, -math.inf, 3e38]), mismatch=st.booleans())
def test_surrogate_ops_accept_or_name_the_argument(n, kind, alpha, beta, dtype, special, mismatch):
    x = torch.full((n,), special).to(dtype) if dtype.is_floating_point else torch.ones(n, dtype=dtype)
    grad_spike = torch.ones(n + int(mismatch), dtype=torch.float32)
    for op, call in (("spike_fn", lambda: ops.spike_fn(x, kind, alpha, beta)),
                     ("surrogate_backward", lambda: ops.surrogate_backward(grad_spike, x, kind, alpha, beta))):
        try:
            out = call()
            assert out.shape == x.shape and out.dtype == x.dtype
        except Exception as e:  # noqa: BLE001
            expect_clear_error(e, op, ["x", "grad_spike", "surrogate_kind", "alpha", "beta", "surrogate"])
