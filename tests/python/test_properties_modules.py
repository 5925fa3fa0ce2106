"""Property tests (hypothesis) of the modules and the public Python API.

Each property draws random shapes (empty ones included), dtypes, hyper-parameters and values and checks one of two
outcomes: the result equals the plain-torch reference (reference.py, or the formula restated here), or the call
raises TypeError/ValueError whose message names the offending argument. Any other exception fails the test.

The spike GEMM/convolution paths get 0/1 spikes and finite weights only (their NaN and non-binary value semantics
are pinned elsewhere); the registered ops called directly are covered by the op tests.
"""

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn

import reference as ref
import spikeops
from spikeops import encoding, functional, layer, loss, neuron, surrogate
from spikeops.spike_tensor import SpikeTensor, SpikeTensorDensifyWarning, to_spike_tensor

FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
DTYPE_TOL = {torch.float32: dict(rtol=1e-4, atol=1e-5),
             torch.float16: dict(rtol=2e-3, atol=1e-3),
             torch.bfloat16: dict(rtol=1.6e-2, atol=1e-2)}
SURROGATE_NAMES = sorted(ref.SURROGATES)
NEURONS = {"IF": neuron.IFNode, "LIF": neuron.LIFNode, "PLIF": neuron.ParametricLIFNode}


def assert_named_error(exc: BaseException, *names: str) -> None:
    """A TypeError/ValueError whose message names one of `names`."""
    assert isinstance(exc, (TypeError, ValueError)), f"{type(exc).__name__} instead of TypeError/ValueError: {exc}"
    assert any(n in str(exc) for n in names), f"the message does not name {names}: {exc}"


def randn(seed: int, shape, dtype=torch.float32, scale=1.0, shift=0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g) * scale + shift).to(dtype)


def spikes01(seed: int, shape, rate: float = 0.3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) < rate).to(torch.uint8)


seeds = st.integers(0, 2**31 - 1)
small_shapes = st.lists(st.integers(0, 4), min_size=0, max_size=3).map(tuple)
nonempty_shapes = st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple)


# ------------------------------------------------------------------------------------------------------ neurons

@st.composite
def surrogate_configs(draw):
    name = draw(st.sampled_from(SURROGATE_NAMES))
    params = {}
    for key in ref.SURROGATES[name][0]:
        if key == "c":
            params[key] = draw(st.floats(0.0, 0.5))
        elif key == "leak" or (key == "alpha" and name in ("LogTailedReLU", "FakeNumericalGradient")):
            params[key] = draw(st.floats(-0.5, 8.0))  # any finite value is valid there
        elif key == "n":
            params[key] = draw(st.integers(1, 6))
        elif key == "alpha" and name == "QPseudoSpike":
            params[key] = draw(st.floats(1.25, 8.0))  # the tail index must be > 1
        else:
            params[key] = draw(st.floats(0.25, 8.0))
    return name, params


@st.composite
def neuron_configs(draw):
    kind = draw(st.sampled_from(sorted(NEURONS)))
    sg_name, sg_params = draw(surrogate_configs())
    kw = dict(v_threshold=draw(st.floats(0.25, 2.0)),
              v_reset=draw(st.one_of(st.none(), st.floats(-0.5, 0.5))),
              detach_reset=draw(st.booleans()))
    if kind == "LIF":
        kw["tau"] = draw(st.floats(1.05, 50.0))
    if kind == "PLIF":
        kw["init_tau"] = draw(st.floats(1.05, 50.0))
    if kind != "IF":
        kw["decay_input"] = draw(st.booleans())
    return kind, sg_name, sg_params, kw


def make_neuron(kind, sg_name, sg_params, kw, step_mode):
    sg = getattr(surrogate, sg_name)(**sg_params)
    return NEURONS[kind](surrogate_function=sg, step_mode=step_mode, **kw)


def neuron_reference(node, kind, sg_name, sg_params, x_seq, w=None):
    return ref.neuron_multistep(
        x_seq, kind, v_threshold=node.v_threshold, v_reset=node.v_reset, tau=getattr(node, "tau", 2.0), w=w,
        decay_input=getattr(node, "decay_input", True), detach_reset=node.detach_reset, surrogate=sg_name,
        params=sg_params)


@given(cfg=neuron_configs(), T=st.integers(0, 5), step_shape=small_shapes, dtype=st.sampled_from(FLOAT_DTYPES),
       spike_form=st.sampled_from(["dtype", "uint8", "spike_tensor"]), store_v_seq=st.booleans(),
       extremes=st.booleans(), seed=seeds)
def test_neuron_multi_step_equals_reference(cfg, T, step_shape, dtype, spike_form, store_v_seq, extremes, seed):
    kind, sg_name, sg_params, kw = cfg
    kw = dict(kw, store_v_seq=store_v_seq, spike_dtype=torch.uint8 if spike_form == "uint8" else None,
              spike_tensor=spike_form == "spike_tensor")
    node = make_neuron(kind, sg_name, sg_params, kw, "m")
    shape = (T,) + step_shape
    x = randn(seed, shape, dtype, scale=1.5, shift=0.6)
    if extremes and x.numel():  # at the last step: after it the kernels' state and the reference's may differ
        special = torch.tensor([math.inf, -math.inf, math.nan, 1e30, -1e30, 3e38], dtype=dtype)
        last = x[-1].view(-1)
        last[: min(6, last.numel())] = special[: min(6, last.numel())]
    x.requires_grad_(True)
    spikes = node(x)
    assert spikes.shape == shape
    assert isinstance(spikes, SpikeTensor) == (spike_form == "spike_tensor")
    assert spikes.dtype == (torch.uint8 if spike_form == "uint8" else dtype)
    if spike_form == "spike_tensor":
        spikes = spikes.dense()
    if T == 0:
        torch.testing.assert_close(node.v, torch.full(step_shape, node.v_init_value))
        return
    x_ref = x.detach().clone().requires_grad_(True)
    w_ref = node.w.detach().clone().requires_grad_(True) if kind == "PLIF" else None
    s_ref, v_seq_ref, v_ref = neuron_reference(node, kind, sg_name, sg_params, x_ref, w_ref)
    assert torch.equal(spikes, s_ref.to(spikes.dtype))
    if extremes:
        # Past an infinite charge only the spikes are pinned: the kernels reset a neuron that fired to v_reset
        # where the reference's S v_reset + (1 - S) H gives 0 * inf = NaN (so later steps differ too), and the
        # gradients differ likewise.
        return
    torch.testing.assert_close(node.v, v_ref, rtol=1e-5, atol=1e-5)
    if store_v_seq:
        torch.testing.assert_close(node.v_seq, v_seq_ref, rtol=1e-5, atol=1e-5)
    if x.numel() == 0 or spike_form == "uint8":  # uint8 spikes carry no gradient
        return
    g = randn(seed + 1, shape)
    g_v = randn(seed + 2, step_shape)
    ((spikes.float() * g).sum() + (node.v * g_v).sum()).backward()
    ((s_ref.to(dtype).float() * g).sum() + (v_ref * g_v).sum()).backward()
    torch.testing.assert_close(x.grad, x_ref.grad.to(dtype), **DTYPE_TOL[dtype])
    if kind == "PLIF":
        torch.testing.assert_close(node.w.grad, w_ref.grad, rtol=1e-3, atol=1e-4)


@given(cfg=neuron_configs(), T=st.integers(1, 5), step_shape=small_shapes, dtype=st.sampled_from(FLOAT_DTYPES),
       seed=seeds)
def test_neuron_single_step_t_times_equals_multi_step(cfg, T, step_shape, dtype, seed):
    kind, sg_name, sg_params, kw = cfg
    multi = make_neuron(kind, sg_name, sg_params, kw, "m")
    single = make_neuron(kind, sg_name, sg_params, kw, "s")
    single.load_state_dict(multi.state_dict())
    x = randn(seed, (T,) + step_shape, dtype, scale=1.5, shift=0.6)
    xm = x.clone().requires_grad_(True)
    xs = x.clone().requires_grad_(True)
    out_m = multi(xm)
    out_s = torch.stack([single(xs[t]) for t in range(T)])
    assert torch.equal(out_m, out_s)
    assert torch.equal(multi.v, single.v)
    if x.numel():
        g = randn(seed + 1, x.shape)
        (out_m.float() * g).sum().backward()
        (out_s.float() * g).sum().backward()
        torch.testing.assert_close(xm.grad, xs.grad, rtol=1e-5, atol=1e-6)


# Values a user may pass for a float hyper-parameter: ordinary, extreme, non-finite and not numbers at all.
any_value = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**40, 10**40), st.none(), st.booleans(),
    st.text(max_size=3), st.sampled_from([1e39, -1e39, 1e-50, 3.4e38, 1.0, 2.0, torch.tensor(2.5), [2.0], 10**400]))


def python_float(value):
    """value as a Python float (inf for an int beyond any float), None where the checks must reject its type."""
    if isinstance(value, (bool, str, list)) or value is None:
        return None
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def float32_of(value):
    """value rounded to float32 (as a Python float; inf beyond float32's range), None as python_float."""
    v = python_float(value)
    return float(torch.tensor(v, dtype=torch.float64).float()) if v is not None and math.isfinite(v) else v


@given(kind=st.sampled_from(sorted(NEURONS)), arg=st.sampled_from(["v_threshold", "v_reset", "tau"]),
       value=any_value)
def test_neuron_hyper_parameters_accepted_or_named(kind, arg, value):
    if arg == "tau" and kind == "IF":
        return
    name = "init_tau" if (arg == "tau" and kind == "PLIF") else arg
    v32 = float32_of(value)
    if arg == "v_reset" and value is None:
        valid = True
    elif v32 is None:
        valid = False
    elif arg == "tau":
        valid = math.isfinite(v32) and v32 > 1 and (kind == "LIF" or v32 < 8e37)
    else:
        valid = math.isfinite(v32)
    try:
        node = NEURONS[kind](**{name: value}, step_mode="m")
    except Exception as e:  # noqa: BLE001 (checked)
        assert not valid, f"{kind}({name}={value!r}) raised {e!r}"
        assert_named_error(e, name)
        return
    assert valid, f"{kind}({name}={value!r}) was accepted"
    out = node(torch.full((2, 3), 0.7))  # the first forward works too
    assert out.shape == (2, 3) and bool(((out == 0) | (out == 1)).all())


@pytest.mark.parametrize("make, name", [
    (lambda v: neuron.LIFNode(tau=v), "tau"), (lambda v: neuron.IFNode(v_threshold=v), "v_threshold"),
    (lambda v: neuron.ParametricLIFNode(init_tau=v), "init_tau"), (lambda v: surrogate.ATan(alpha=v), "alpha"),
    (lambda v: surrogate.PiecewiseLeakyReLU(c=v), "c"), (lambda v: encoding.rate(torch.rand(2), 2, gain=v), "gain"),
    (lambda v: encoding.latency(torch.rand(2), 2, tau=v), "tau")])
@pytest.mark.parametrize("value", [10**400, -10**400])
def test_integer_beyond_any_float_is_named(make, name, value):
    # float(10**400) raises OverflowError, which used to escape the argument checks.
    with pytest.raises(ValueError, match=rf"{name} must be.* got an integer of 1329 bits"):
        make(value)


FLAGS = [(lambda v: neuron.IFNode(detach_reset=v), "detach_reset"),
         (lambda v: neuron.LIFNode(store_v_seq=v), "store_v_seq"),
         (lambda v: neuron.ParametricLIFNode(spike_tensor=v), "spike_tensor"),
         (lambda v: neuron.LIFNode(decay_input=v), "decay_input"),
         (lambda v: neuron.ParametricLIFNode(decay_input=v), "decay_input"),
         (lambda v: surrogate.ATan(spiking=v), "spiking"),
         (lambda v: loss.ce_count_loss(population_code=v, num_classes=1), "population_code"),
         (lambda v: loss.mse_membrane_loss(time_var_targets=v), "time_var_targets")]


@given(flag=st.sampled_from(range(len(FLAGS))),
       value=st.one_of(st.booleans(), st.integers(-2, 3), st.text(max_size=3), st.none(), st.floats(0, 1)))
def test_bool_flags_accepted_or_named(flag, value):
    """A bool argument takes True/False (or 0/1); 'no', None or 0.5 used to be read as bool(value)."""
    make, name = FLAGS[flag]
    valid = isinstance(value, bool) or (isinstance(value, int) and value in (0, 1))
    try:
        made = make(value)
    except Exception as e:  # noqa: BLE001
        assert not valid, f"{name}={value!r} raised {e!r}"
        assert_named_error(e, name)
        return
    assert valid, f"{name}={value!r} was accepted"
    assert getattr(made, name) is bool(value)


@given(threshold=any_value)
def test_delta_threshold_accepted_or_named(threshold):
    v = python_float(threshold)
    valid = v is not None and math.isfinite(v)
    try:
        encoding.delta(torch.rand(3, 2), threshold)
    except Exception as e:  # noqa: BLE001
        assert not valid, f"delta(threshold={threshold!r}) raised {e!r}"
        assert_named_error(e, "threshold")
        return
    assert valid, f"delta(threshold={threshold!r}) was accepted"


# --------------------------------------------------------------------------------------------------- surrogates

@given(cfg=surrogate_configs(), shape=st.lists(st.integers(0, 3), min_size=0, max_size=10).map(tuple),
       dtype=st.sampled_from(FLOAT_DTYPES), seed=seeds, extremes=st.booleans())
def test_surrogate_forward_and_backward_equal_reference(cfg, shape, dtype, seed, extremes):
    name, params = cfg
    assume(math.prod(shape) <= 4096)
    sg = getattr(surrogate, name)(**params)
    x = randn(seed, shape, dtype, scale=2.0)
    if extremes and x.numel():
        flat = x.view(-1)
        special = torch.tensor([math.inf, -math.inf, 1e4, -1e4, 0.0], dtype=dtype)  # NaN: the test below
        flat[: min(5, flat.numel())] = special[: min(5, flat.numel())]
    x.requires_grad_(True)
    y = sg(x)
    assert y.shape == shape and y.dtype == dtype
    assert torch.equal(y, (x.detach() >= 0).to(dtype))
    g = randn(seed + 1, shape, dtype)
    y.backward(g)
    expected = (g.double() * ref.surrogate_grad(name, x.detach(), **params)).to(dtype)
    tol = dict(DTYPE_TOL[dtype])
    if g.numel():
        tol["atol"] += ref.float32_phase_atol(name, x.detach(), **params) * float(g.abs().max())
    torch.testing.assert_close(x.grad, expected, equal_nan=True, **tol)


def test_surrogate_derivative_of_nan_is_nan():
    x = torch.tensor([math.nan], requires_grad=True)
    surrogate.Erf()(x).backward(torch.ones(1))
    assert bool(x.grad.isnan().all())


@pytest.mark.parametrize("name, alpha", [("ATan", 3e38), ("PiecewiseQuadratic", 1.9e19), ("SoftSign", 1e30)])
def test_surrogate_derivative_is_finite_for_large_alpha(name, alpha):
    x = torch.tensor([0.0, 1e-30, 1.0], requires_grad=True)
    getattr(surrogate, name)(alpha)(x).backward(torch.ones(3))
    assert bool(x.grad.isfinite().all())


PRIMITIVE_KINKS = {"PiecewiseQuadratic": lambda p: [1 / p["alpha"]], "Rect": lambda p: [0.5 / p["alpha"]],
                   "PiecewiseLeakyReLU": lambda p: [p["w"]], "PiecewiseExp": lambda p: [0.0],
                   "S2NN": lambda p: [0.0], "LeakyKReLU": lambda p: [0.0], "LogTailedReLU": lambda p: [0.0, 1.0]}
# SpikingJelly's S2NN primitive is β log(|x + 1| + 1e-5) + 1/2 on x >= 0: its derivative is β/(x + 1 + 1e-5), not
# exactly the surrogate's β/(x + 1).
PRIMITIVE_RTOL = {"S2NN": 2e-5}


@given(cfg=surrogate_configs(), seed=seeds)
def test_surrogate_primitive_derivative_is_the_surrogate(cfg, seed):
    """spiking=False returns the primitive function; its derivative is the surrogate gradient (SpikingJelly)."""
    name, params = cfg
    if name == "FakeNumericalGradient":  # always spiking (no spiking argument, as in SpikingJelly)
        with pytest.raises(TypeError):
            surrogate.FakeNumericalGradient(**params, spiking=False)
        return
    sg = getattr(surrogate, name)(**params, spiking=False)
    x = randn(seed, (64,), torch.float64, scale=2.0)
    if name in ("SuperSpike", "FastSigmoid"):
        with pytest.raises(NotImplementedError):
            sg(x)
        return
    for kink in PRIMITIVE_KINKS.get(name, lambda p: [])(params):  # the derivative jumps there
        x = x[(x.abs() - kink).abs() > 1e-6]
    x.requires_grad_(True)
    if name == "SquarewaveFourierSeries" and params["n"] == 1:  # no harmonic: the constant 1/2, no graph
        assert torch.equal(sg(x), torch.full_like(x, 0.5))
        assert torch.equal(ref.surrogate_grad(name, x.detach(), **params), torch.zeros_like(x))
        return
    sg(x).sum().backward()
    torch.testing.assert_close(x.grad, ref.surrogate_grad(name, x.detach(), **params),
                               rtol=PRIMITIVE_RTOL.get(name, 1e-6), atol=1e-9)


def _surrogate_parameter_valid(name, arg, value):
    """Whether surrogate `name` must accept `value` for its parameter `arg`."""
    if arg == "n":
        return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 2**24
    v32 = float32_of(value)
    if v32 is None or not math.isfinite(v32):
        return False
    if arg == "leak" or name in ("LogTailedReLU", "FakeNumericalGradient"):
        return True
    if name == "QPseudoSpike":
        return v32 > 1.0
    return v32 >= torch.finfo(torch.float32).tiny


@given(name=st.sampled_from([n for n in SURROGATE_NAMES if ref.SURROGATES[n][0]]), value=any_value)
def test_surrogate_parameters_accepted_or_named(name, value):
    arg = next(iter(ref.SURROGATES[name][0]))  # alpha, w, slope, leak or n
    valid = _surrogate_parameter_valid(name, arg, value)
    try:
        sg = getattr(surrogate, name)(**{arg: value})
    except Exception as e:  # noqa: BLE001
        assert not valid, f"{name}({arg}={value!r}) raised {e!r}"
        assert_named_error(e, arg)
        return
    assert valid, f"{name}({arg}={value!r}) was accepted"
    assume(abs(float(value)) <= 1e18)  # larger ones overflow inside some kernels: the test below
    x = torch.linspace(-2, 2, 9, requires_grad=True)
    sg(x).sum().backward()
    assert bool(torch.isfinite(x.grad).all())


# ----------------------------------------------------------------------------------------------------- encoding

@given(shape=small_shapes, T=st.integers(1, 6), gain=st.floats(-2, 3), offset=st.floats(-1, 1),
       first=st.integers(0, 5), exact=st.booleans(), dtype=st.sampled_from(FLOAT_DTYPES + (torch.uint8, torch.bool)),
       seed=seeds)
def test_rate(shape, T, gain, offset, first, exact, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    data = torch.rand(shape, generator=g)
    data[data < 0.3] = 0.0  # exact 0 and 1 probabilities: never / always fire
    data[data > 0.8] = 1.0
    try:
        out = encoding.rate(data, T, gain=gain, offset=offset, first_spike_time=first, dtype=dtype, exact=exact,
                            generator=g)
    except ValueError as e:
        assert first > T - 1
        assert_named_error(e, "first_spike_time")
        return
    assert first <= T - 1
    assert out.shape == (T,) + shape and out.dtype == dtype
    o = out.float()
    assert bool(((o == 0) | (o == 1)).all())
    p = (data * gain + offset).clamp(0, 1)
    assert not bool(o[:first].any())
    assert bool((o[first:][:, p == 0] == 0).all()) and bool((o[first:][:, p == 1] == 1).all())


@given(value=any_value, arg=st.sampled_from(["gain", "offset"]))
def test_rate_parameters_accepted_or_named(value, arg):
    v = python_float(value)
    valid = v is not None and math.isfinite(v)
    try:
        encoding.rate(torch.rand(3), 2, **{arg: value})
    except Exception as e:  # noqa: BLE001
        assert not valid, f"rate({arg}={value!r}) raised {e!r}"
        assert_named_error(e, arg)
        return
    assert valid, f"rate({arg}={value!r}) was accepted"


@given(shape=small_shapes, T=st.integers(1, 8), f=st.sampled_from(["linear", "log"]),
       dtype=st.sampled_from((None, torch.float32, torch.uint8)), seed=seeds)
def test_latency_encoder(shape, T, f, dtype, seed):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).float()
    if x.numel():
        x.view(-1)[0] = 0.0
        x.view(-1)[-1] = 1.0
    enc = encoding.LatencyEncoder(T, enc_function=f, dtype=dtype)
    code = enc.encode(x)
    assert code.shape == (T,) + shape and code.dtype == (dtype or x.dtype)
    assert bool((code.float().sum(0) == 1).all())  # one spike per input
    t_fire = code.float().argmax(0)
    xd = x.double()
    if f == "linear":
        expected = ((T - 1) * (1 - xd)).round()
    else:  # SpikingJelly's formula, fine in float64 for small T
        alpha = math.exp(T - 1) - 1
        raw = T - 1 - torch.log(alpha * xd + 1)
        expected = raw.round()
        near_half = ((raw - raw.floor()) - 0.5).abs() < 1e-9
        t_fire = torch.where(near_half, expected.long(), t_fire)
    assert torch.equal(t_fire, expected.long())
    # the stateful forward returns the code one step per call, T' steps per call in step_mode='m'
    steps = [enc(x) for _ in range(T + 1)]
    assert all(torch.equal(steps[t], code[t % T]) for t in range(T + 1))
    enc.reset()
    enc.step_mode = "m"
    assert torch.equal(enc(x.expand((T,) + shape)), code)


@given(shape=nonempty_shapes, T=st.integers(2, 6), threshold=st.floats(0.01, 0.5), padding=st.booleans(),
       off_spike=st.booleans(), seed=seeds)
def test_delta(shape, T, threshold, padding, off_spike, seed):
    data = torch.rand((T,) + shape, generator=torch.Generator().manual_seed(seed))
    out = encoding.delta(data, threshold, padding=padding, off_spike=off_spike)
    prev = torch.cat((data[:1] if padding else torch.zeros_like(data[:1]), data[:-1]))
    diff = data - prev
    expected = (diff >= threshold).float() - (off_spike * (diff <= -threshold)).float()
    assert torch.equal(out, expected)


@given(shape=small_shapes, dtype=st.sampled_from((None,) + FLOAT_DTYPES + (torch.uint8,)), seed=seeds)
def test_poisson_encoder(shape, dtype, seed):
    p = torch.rand(shape, generator=torch.Generator().manual_seed(seed))
    p = torch.where(p < 0.5, torch.zeros_like(p), torch.ones_like(p))  # deterministic outcomes
    out = encoding.PoissonEncoder(dtype=dtype)(p)
    assert out.dtype == (dtype or p.dtype) and torch.equal(out.float(), p)


@given(tau=any_value, threshold=st.sampled_from([0.01, 0.0, 1.0, math.nan, 0.5]),
       T=st.sampled_from([1, 4, 0, -1, 2.5, None]))
def test_latency_arguments_accepted_or_named(tau, threshold, T):
    data = torch.tensor([0.0, 0.3, 1.0])
    try:  # bypass=True without num_steps sizes the output to the latest spike: a large tau asks for terabytes
        out = encoding.latency(data, T, threshold=threshold, tau=tau, bypass=bool(T))
    except Exception as e:  # noqa: BLE001
        assert_named_error(e, "tau", "threshold", "num_steps")
        return
    assert out.dim() == 2 and out.shape[1] == 3


# ------------------------------------------------------------------------------------------------------- losses

@st.composite
def spike_outputs(draw):
    T, N, C = draw(st.integers(1, 4)), draw(st.integers(1, 5)), draw(st.integers(1, 5))
    seed = draw(seeds)
    g = torch.Generator().manual_seed(seed)
    spk = (torch.rand(T, N, C, generator=g) < 0.4).float()
    targets = torch.randint(0, C, (N,), generator=g)
    return spk, targets


@given(out=spike_outputs(), reduction=st.sampled_from(["mean", "sum", "none"]), weighted=st.booleans(),
       uint8=st.booleans())
def test_losses_equal_formulas(out, reduction, weighted, uint8):
    spk, targets = out
    T, N, C = spk.shape
    weight = torch.rand(C) + 0.5 if weighted else None
    w_of = (lambda per: per * weight[targets]) if weighted else (lambda per: per)
    red = {"mean": torch.mean, "sum": torch.sum, "none": lambda t: t}[reduction]
    given_spk = spk.to(torch.uint8) if uint8 else spk

    ce_rate = torch.stack([F.cross_entropy(spk[t], targets, reduction="none") for t in range(T)]).mean(0)
    torch.testing.assert_close(loss.ce_rate_loss(reduction, weight)(given_spk, targets), red(w_of(ce_rate)))
    ce_count = F.cross_entropy(spk.sum(0), targets, reduction="none")
    torch.testing.assert_close(loss.ce_count_loss(reduction=reduction, weight=weight)(given_spk, targets),
                               red(w_of(ce_count)))
    one_hot = F.one_hot(targets, C).float()
    sq = (spk.sum(0) - one_hot * T).square()
    sq = sq * weight[targets].unsqueeze(-1) if weighted else sq
    torch.testing.assert_close(loss.mse_count_loss(reduction=reduction, weight=weight)(given_spk, targets),
                               red(sq) / T)
    torch.testing.assert_close(loss.firing_rate_mse(given_spk, targets, C), F.mse_loss(spk.mean(0), one_hot))
    acc = (spk.sum(0).argmax(1) == targets).float().mean().item()
    assert loss.accuracy_rate(given_spk, targets) == acc


@given(out=spike_outputs(), bad=st.sampled_from(["shape", "range", "float", "length"]))
def test_loss_bad_targets_are_named(out, bad):
    spk, targets = out
    C = spk.shape[2]
    targets = {"shape": targets.view(1, -1), "range": targets + C, "float": targets.float(),
               "length": torch.cat((targets, targets[:1]))}[bad]
    for fn in (loss.ce_rate_loss(), loss.ce_count_loss(), loss.mse_count_loss(), loss.mse_membrane_loss(),
               lambda s, t: loss.firing_rate_mse(s, t, C)):
        with pytest.raises((TypeError, ValueError)) as info:
            fn(spk, targets)
        assert_named_error(info.value, "targets")


# ------------------------------------------------------------------------------------------------------- layers

@given(lead=st.lists(st.integers(0, 4), min_size=1, max_size=3).map(tuple), K=st.integers(1, 40),
       O=st.integers(1, 12), bias=st.booleans(), rate=st.floats(0.0, 1.0),
       as_spike_tensor=st.booleans(), seed=seeds)
def test_linear_on_spikes_equals_dense(lead, K, O, bias, rate, as_spike_tensor, seed):
    torch.manual_seed(seed)
    lin = layer.Linear(K, O, bias=bias)
    x = spikes01(seed, lead + (K,), rate)
    xin = SpikeTensor(x) if as_spike_tensor else x
    out = lin(xin)
    expected = F.linear(x.float(), lin.weight, lin.bias)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    if as_spike_tensor and x.numel():
        xg = SpikeTensor(x, requires_grad=True)
        g = randn(seed + 1, expected.shape)
        (lin(xg) * g).sum().backward()
        w_grad = lin.weight.grad.clone()
        lin.weight.grad = None
        xd = x.float().requires_grad_(True)
        (F.linear(xd, lin.weight, lin.bias) * g).sum().backward()
        torch.testing.assert_close(w_grad, lin.weight.grad, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(xg.grad, xd.grad, rtol=1e-5, atol=1e-5)


@st.composite
def conv_configs(draw):
    groups = draw(st.integers(1, 3))
    cin = groups * draw(st.integers(1, 3))
    cout = groups * draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    H = draw(st.integers(max(1, dilation[0] * (kh - 1) + 1 - 2 * padding[0]), 9))
    W = draw(st.integers(max(1, dilation[1] * (kw - 1) + 1 - 2 * padding[1]), 9))
    return dict(in_channels=cin, out_channels=cout, kernel_size=(kh, kw), stride=stride, padding=padding,
                dilation=dilation, groups=groups, bias=draw(st.booleans())), (H, W)


@given(cfg=conv_configs(), N=st.integers(0, 3), rate=st.floats(0.0, 1.0), step_mode=st.sampled_from("sm"),
       seed=seeds)
def test_conv2d_on_spikes_equals_dense(cfg, N, rate, step_mode, seed):
    kw, (H, W) = cfg
    torch.manual_seed(seed)
    conv = layer.Conv2d(**kw, step_mode=step_mode)
    shape = ((2,) if step_mode == "m" else ()) + (N, kw["in_channels"], H, W)
    x = spikes01(seed, shape, rate)
    out = conv(x)
    flat = x.float().flatten(0, 1) if step_mode == "m" else x.float()
    expected = F.conv2d(flat, conv.weight, conv.bias, kw["stride"], kw["padding"], kw["dilation"], kw["groups"])
    expected = expected.view(shape[:2] + expected.shape[1:]) if step_mode == "m" else expected
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


@given(N=st.integers(0, 3), C=st.integers(1, 3), H=st.integers(2, 8), W=st.integers(2, 8), k=st.integers(1, 3),
       stride=st.integers(1, 3), pad=st.integers(0, 1), step_mode=st.sampled_from("sm"), seed=seeds)
def test_pooling_of_spikes(N, C, H, W, k, stride, pad, step_mode, seed):
    assume(pad <= k // 2 and k <= min(H, W))
    shape = ((3,) if step_mode == "m" else ()) + (N, C, H, W)
    x = spikes01(seed, shape)
    mp = layer.MaxPool2d(k, stride, pad, step_mode=step_mode)
    ap = layer.AvgPool2d(k, stride, pad, step_mode=step_mode)
    flat = (lambda t: t.flatten(0, 1)) if step_mode == "m" else (lambda t: t)
    unflat = (lambda t: t.view(shape[:2] + t.shape[1:])) if step_mode == "m" else (lambda t: t)
    expected_max = unflat(F.max_pool2d(flat(x.float()), k, stride, pad))
    got = mp(SpikeTensor(x))
    assert isinstance(got, SpikeTensor) and torch.equal(got.dense(), expected_max)  # the OR of each window
    assert torch.equal(mp(x.float()), expected_max)
    torch.testing.assert_close(ap(x.float()), unflat(F.avg_pool2d(flat(x.float()), k, stride, pad)))


# ------------------------------------------------------------------------------------------------- SpikeTensor

SHAPE_OPS = {
    "reshape": (1, lambda t: t.reshape(-1)),
    "flatten": (1, lambda t: t.flatten()),
    "transpose": (1, lambda t: t.transpose(0, -1)),
    "permute": (1, lambda t: t.permute(*reversed(range(t.dim())))),
    "unsqueeze": (0, lambda t: t.unsqueeze(0)),
    "squeeze": (0, lambda t: t.squeeze()),
    "select": (1, lambda t: t[t.shape[0] // 2] if t.shape[0] else t),
    "slice": (1, lambda t: t[..., ::2]),
    "narrow": (1, lambda t: t.narrow(0, 0, t.shape[0] // 2)),
    "expand": (0, lambda t: t.expand((2,) + tuple(t.shape))),
    "clone": (0, lambda t: t.clone()),
    "contiguous": (0, lambda t: t.transpose(0, -1).contiguous() if t.dim() else t.contiguous()),
    "detach": (0, lambda t: t.detach()),
    "cat": (1, lambda t: torch.cat([t, t.flip(0)])),
    "stack": (0, lambda t: torch.stack([t, t], dim=-1)),
    "index": (1, lambda t: t[torch.tensor([0, 0]) % max(t.shape[0], 1)] if t.shape[0] else t),
    "index_select": (1, lambda t: t.index_select(0, torch.arange(t.shape[0]).flip(0))),
    "flip": (1, lambda t: t.flip(-1)),
    "roll": (1, lambda t: t.roll(1, 0)),
    "repeat": (0, lambda t: t.repeat((2,) + (1,) * t.dim())),
    "unfold": (1, lambda t: t.unfold(0, 1, 1) if t.shape[0] else t),
    "to_half": (0, lambda t: t.to(torch.float16)),
    "to_bfloat16": (0, lambda t: t.to(torch.bfloat16)),
}
MULTI_OUTPUT_OPS = {
    "unbind": lambda t: t.unbind(0),
    "split": lambda t: t.split(1),
    "chunk": lambda t: t.chunk(2),
}


@given(shape=st.lists(st.integers(0, 4), min_size=0, max_size=4).map(tuple),
       ops=st.lists(st.sampled_from(sorted(SHAPE_OPS)), min_size=1, max_size=3),
       multi=st.sampled_from([None] + sorted(MULTI_OUTPUT_OPS)),
       dtype=st.sampled_from(FLOAT_DTYPES), seed=seeds)
def test_spike_tensor_shape_ops_equal_dense(shape, ops, multi, dtype, seed):
    s = SpikeTensor(spikes01(seed, shape, 0.5), dtype)
    d = s.dense()
    with warnings.catch_warnings():
        warnings.simplefilter("error", SpikeTensorDensifyWarning)  # a shape op never densifies
        for name in ops:
            min_dim, op = SHAPE_OPS[name]
            if s.dim() < min_dim:
                continue
            s, d = op(s), op(d)
            assert isinstance(s, SpikeTensor), name
            assert s.dtype == d.dtype and s.shape == d.shape, name
            assert torch.equal(s.dense(), d), name
        if multi is not None and s.dim() >= 1:
            outs, douts = MULTI_OUTPUT_OPS[multi](s), MULTI_OUTPUT_OPS[multi](d)
            assert len(outs) == len(douts)
            for a, b in zip(outs, douts):
                assert isinstance(a, SpikeTensor) and a.dtype == b.dtype and torch.equal(a.dense(), b)


@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple),
       ops=st.lists(st.sampled_from(sorted(set(SHAPE_OPS) - {"detach"})), min_size=1, max_size=3), seed=seeds)
def test_spike_tensor_shape_ops_pass_the_gradient_as_dense(shape, ops, seed):
    """The gradient reaching float spikes through to_spike_tensor and shape ops is the dense tensor's."""
    x = spikes01(seed, shape, 0.5).float()
    xs, xd = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    s, d = to_spike_tensor(xs), xd
    for name in ops:
        min_dim, op = SHAPE_OPS[name]
        if s.dim() >= min_dim:
            s, d = op(s), op(d)
    g = randn(seed + 1, d.shape)
    (s.dense().float() * g).sum().backward()
    (d.float() * g).sum().backward()
    torch.testing.assert_close(xs.grad, xd.grad, rtol=0, atol=0)


@given(shape=small_shapes, dtype=st.sampled_from(FLOAT_DTYPES + (torch.uint8, torch.bool)), seed=seeds)
def test_to_spike_tensor_round_trip(shape, dtype, seed):
    x = spikes01(seed, shape, 0.5).to(dtype)
    s = to_spike_tensor(x)
    assert isinstance(s, SpikeTensor)
    assert s.dtype == (dtype if dtype in FLOAT_DTYPES else torch.float32)
    assert torch.equal(s.dense(), x.to(s.dtype)) and int(s.count()) == int((x != 0).sum())


# ------------------------------------------------------------------------------------------ export and runtime

@st.composite
def exportable_nets(draw):
    seed = draw(seeds)
    torch.manual_seed(seed)

    def spiking(n):
        kind = draw(st.sampled_from(sorted(NEURONS)))
        kw = dict(v_threshold=draw(st.sampled_from([0.5, 1.0, 1.5])),
                  v_reset=draw(st.sampled_from([None, 0.0, -0.25])), step_mode="m")
        if kind == "LIF":
            kw.update(tau=draw(st.sampled_from([2.0, 4.0])), decay_input=draw(st.booleans()))
        if kind == "PLIF":
            kw.update(init_tau=draw(st.sampled_from([2.0, 5.0])), decay_input=draw(st.booleans()))
        return NEURONS[kind](**kw)

    if draw(st.booleans()):
        C = draw(st.integers(1, 3))
        net = nn.Sequential(layer.Conv2d(1, C, 3, padding=1, step_mode="m"), spiking(0),
                            layer.MaxPool2d(2, step_mode="m"), layer.Flatten(step_mode="m"),
                            layer.Linear(C * 9, 4, step_mode="m"), spiking(1))
        in_shape = (1, 6, 6)
    else:
        K = draw(st.integers(1, 20))
        net = nn.Sequential(layer.Flatten(step_mode="m"), layer.Linear(K, 5, step_mode="m"), spiking(0))
        in_shape = (K,)
    with torch.no_grad():  # weights on a 1/16 grid and a strong drive: the float sums are exact in any order
        for m in net.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                m.weight.mul_(4.0)
        for p in net.parameters():
            p.copy_(torch.round(p * 16) / 16)
    return net, in_shape, draw(st.integers(1, 5)), draw(st.integers(1, 6))


@settings(max_examples=6)
@given(spec=exportable_nets(), seed=seeds)
def test_export_runtime_equals_pytorch(tmp_path_factory, spec, seed):
    net, in_shape, T, N = spec
    x = torch.round(torch.rand((N,) + in_shape, generator=torch.Generator().manual_seed(seed)) * 16) / 16
    path = tmp_path_factory.mktemp("export") / "net.spikeops"
    spikeops.export(net, path, x[:1], T=T)
    with torch.no_grad():
        expected = net(torch.stack([x] * T)).sum(0)
    functional.reset_net(net)
    scores, predictions = spikeops.runtime.load(path)(x)
    assert torch.equal(scores, expected)
    assert torch.equal(predictions, expected.argmax(1))
