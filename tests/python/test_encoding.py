"""spikeops.encoding against plain re-statements of SpikingJelly's encoders and snnTorch's spikegen."""

import math

import pytest
import torch

from spikeops import encoding, functional


# ---------------------------------------------------------------- references (written for clarity)

def ref_latency_snntorch(data, num_steps, threshold=0.01, tau=1.0, first_spike_time=0, on_target=1.0,
                         off_target=0.0, clip=False, normalize=False, linear=False, bypass=False):
    """snnTorch spikegen.latency (no interpolate), element by element; spikes after num_steps - 1 are dropped
    (what bypass=True allows)."""
    flat = data.flatten().tolist()
    times = []
    for x in flat:
        if linear:
            t_tau = (num_steps - 1 - first_spike_time) if normalize else tau
            t = min(-t_tau * (x - 1), -t_tau * (threshold - 1)) + first_spike_time
        else:
            xc = max(x, threshold + 1e-7)
            t = tau * math.log(xc / (xc - threshold)) + first_spike_time
        times.append(t)
    if normalize and not linear:
        top = max(t - first_spike_time for t in times)
        times = [(t - first_spike_time) * (num_steps - first_spike_time - 1) / top + first_spike_time for t in times]
    out = torch.zeros((num_steps, len(flat)))
    for i, (x, t) in enumerate(zip(flat, times)):
        step = round(min(t, num_steps - 1))  # Python's round is half-to-even, like torch.round
        if round(t) > num_steps - 1 or (clip and x < threshold):
            continue
        out[step, i] = 1.0
    out = torch.clamp(out * on_target, min=off_target)
    return out.view((num_steps,) + tuple(data.shape))


def ref_delta(data, threshold=0.1, padding=False, off_spike=False):
    out = torch.zeros_like(data)
    for t in range(data.shape[0]):
        prev = (data[0] if padding else torch.zeros_like(data[0])) if t == 0 else data[t - 1]
        d = data[t] - prev
        out[t] = (d >= threshold).float() - ((d <= -threshold).float() if off_spike else 0)
    return out


# ---------------------------------------------------------------- PoissonEncoder

def test_poisson_encoder_is_rand_le_x():
    x = torch.rand(4, 1, 5, 5)
    enc = encoding.PoissonEncoder()
    torch.manual_seed(3)
    expected = (torch.rand_like(x) <= x).to(x)
    torch.manual_seed(3)
    got = enc(x)
    assert got.dtype == torch.float32 and torch.equal(got, expected)


def test_poisson_encoder_dtypes_and_extremes():
    x = torch.tensor([0.0, 1.0, 0.0, 1.0], dtype=torch.float64)
    assert encoding.PoissonEncoder()(x).dtype == torch.float64
    out = encoding.PoissonEncoder(dtype=torch.uint8)(x)
    assert out.dtype == torch.uint8 and out.tolist() == [0, 1, 0, 1]
    assert encoding.PoissonEncoder(step_mode="m")(torch.ones(3, 2, 2)).sum() == 12
    with pytest.raises(TypeError, match="floating-point"):
        encoding.PoissonEncoder()(torch.ones(3, dtype=torch.uint8))
    with pytest.raises(ValueError, match="step_mode"):
        encoding.PoissonEncoder(step_mode="x")


def test_poisson_encoder_rate():
    x = torch.full((200_000,), 0.3)
    assert abs(encoding.PoissonEncoder()(x).mean().item() - 0.3) < 0.005


# ---------------------------------------------------------------- LatencyEncoder

@pytest.mark.parametrize("enc_function", ["linear", "log"])
def test_latency_encoder_matches_spikingjelly_formula(enc_function):
    T = 9
    x = torch.cat([torch.tensor([0.0, 1.0, 0.5]), torch.rand(20)]).view(23)
    if enc_function == "linear":
        t_f = ((T - 1.0) * (1.0 - x)).round().long()
    else:
        # SpikingJelly's formula, evaluated in float64 (the encoder's precision)
        alpha = math.exp(T - 1.0) - 1.0
        t_f = (T - 1.0 - torch.log(alpha * x.double() + 1.0)).round().long()
    expected = torch.nn.functional.one_hot(t_f, T).to(x).permute(1, 0)
    enc = encoding.LatencyEncoder(T, enc_function)
    assert torch.equal(enc.encode(x), expected)
    assert t_f[0] == T - 1 and t_f[1] == 0  # x = 0 fires last, x = 1 first
    got = torch.stack([enc(x) for _ in range(T + 3)])  # stateful: cycles with period T
    assert torch.equal(got[:T], expected) and torch.equal(got[T:], expected[:3])
    enc.reset()  # the next call encodes its input anew: zeros all fire at the last step
    steps = torch.stack([enc(torch.zeros_like(x)) for _ in range(T)])
    assert steps[:-1].sum() == 0 and torch.equal(steps[-1], torch.ones_like(x))


def test_latency_encoder_state_and_multistep():
    T = 5
    x = torch.rand(3, 4)
    enc = encoding.LatencyEncoder(T, step_mode="m", dtype=torch.uint8)
    seq = enc(x.expand(T, 3, 4))
    assert seq.dtype == torch.uint8 and seq.shape == (T, 3, 4)
    assert torch.equal(seq.sum(0), torch.ones(3, 4, dtype=torch.long))  # one spike per input
    assert torch.equal(seq, enc.encode(x))
    enc.t = 2
    net = torch.nn.Sequential(enc)
    functional.reset_net(net)  # a MemoryModule: reset_net clears it
    assert enc.t == 0 and enc.spike is None
    with pytest.raises(ValueError, match="T must be"):
        encoding.LatencyEncoder(0)
    with pytest.raises(ValueError, match="enc_function"):
        encoding.LatencyEncoder(4, "exp")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        encoding.LatencyEncoder(4).encode(torch.tensor([1.5]))


@pytest.mark.parametrize("T", [90, 711, 1000, 100000])
def test_latency_encoder_log_code_for_large_T(T):
    # alpha = exp(T - 1) - 1 overflows float32 from T = 90 and float64 from T = 711; the code must not.
    x = torch.tensor([0.0, 1.0, math.exp(-3.0), math.exp(-10.3), 1e-30, 0.5])
    enc = encoding.LatencyEncoder(T, "log")
    code = enc.encode(x)
    assert code.shape == (T, 6) and torch.equal(code.sum(0), torch.ones(6))  # one spike per input
    # t_f = T - 1 - ln(alpha x + 1) = -ln(x + (1 - x) e^(1 - T)) ~ -ln(x) once e^(1 - T) is negligible
    assert code.argmax(0).tolist() == [T - 1, 0, 3, 10, round(30 * math.log(10)), 1]


def test_latency_encoder_log_code_agrees_with_spikingjelly_where_it_is_finite():
    x = torch.rand(1000, dtype=torch.float64)
    for T in (2, 5, 20, 100, 700):
        alpha = math.exp(T - 1.0) - 1.0
        t_f = (T - 1.0 - torch.log(alpha * x + 1.0)).round().long()
        assert torch.equal(encoding.LatencyEncoder(T, "log").encode(x).argmax(0), t_f), T


@pytest.mark.parametrize("step_mode", ["s", "m"])
def test_latency_encoder_rejects_a_batch_of_another_shape(step_mode):
    # SpikingJelly keeps the first input's code until reset() (later inputs are ignored); an input of another
    # shape must not silently get the old code.
    T = 4
    enc = encoding.LatencyEncoder(T, step_mode=step_mode)
    first, other = torch.rand(3, 2), torch.rand(5, 2)
    if step_mode == "m":
        first, other = first.expand(T, 3, 2), other.expand(T, 5, 2)
    enc(first)
    with pytest.raises(ValueError, match=r"LatencyEncoder: x has shape \(5, 2\).*reset\(\)"):
        enc(other)
    enc.reset()
    assert enc(other).shape == other.shape


def test_latency_encoder_keeps_spikingjelly_state_for_same_shape_inputs():
    T = 4
    enc = encoding.LatencyEncoder(T)
    x = torch.rand(3)
    code = enc.encode(x)
    assert torch.equal(enc(x), code[0])
    assert torch.equal(enc(torch.rand(3)), code[1])  # ignored, as in SpikingJelly
    assert torch.equal(enc(None), code[2])  # SpikingJelly also accepts no input after the first call


# ---------------------------------------------------------------- rate

@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.uint8,
                                   torch.bool])
def test_rate_shape_dtype_extremes(dtype):
    x = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]])
    out = encoding.rate(x, num_steps=7, dtype=dtype)
    assert out.shape == (7, 2, 3) and out.dtype == dtype
    assert torch.equal(out.float(), x.expand(7, 2, 3))  # p = 0 never fires, p = 1 always does


def test_rate_uint8_equals_float():
    x = torch.rand(3, 50)
    a = encoding.rate(x, 20, generator=torch.Generator().manual_seed(1))
    b = encoding.rate(x, 20, dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b.float()) and 0.2 < a.mean() < 0.8


@pytest.mark.parametrize("exact", [False, True])
def test_rate_statistics(exact):
    p = torch.tensor([0.0, 0.001, 0.1, 0.25, 0.5, 0.77, 0.999, 1.0])
    T, n = 2000, 64
    out = encoding.rate(p.expand(n, 8), num_steps=T, exact=exact, generator=torch.Generator().manual_seed(0))
    rate = out.mean(dim=(0, 1))
    std = (p * (1 - p) / (T * n)).sqrt()
    assert torch.all((rate - p).abs() <= 5 * std + 2e-5), (rate, p)
    # independent in time: consecutive steps are uncorrelated at p = 0.5
    s = out[:, :, 4]
    assert abs((s[1:] * s[:-1]).mean().item() - 0.25) < 0.01


@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8, torch.bool])
def test_rate_sparse_input_statistics(dtype):
    # mostly-zero input (as MNIST) takes the path that draws only for 0 < p < 1
    g = torch.Generator().manual_seed(4)
    p = torch.zeros(64, 100)
    p[:, :10] = 1.0
    p[:, 10:20] = 0.3
    p[:, 20:25] = 0.9
    out = encoding.rate(p, num_steps=500, dtype=dtype, generator=g)
    assert out.shape == (500, 64, 100) and out.dtype == dtype
    out = out.float()
    assert out[:, :, 25:].sum() == 0 and out[:, :, :10].min() == 1
    assert abs(out[:, :, 10:20].mean().item() - 0.3) < 0.005 and abs(out[:, :, 20:25].mean().item() - 0.9) < 0.005
    s = out[:, 0, 12]  # independent in time
    assert abs((s[1:] * s[:-1]).mean().item() - 0.09) < 0.05


def test_rate_random_bits_are_uniform():
    # every one of the 15 bits used per spike must be fair, whatever its position in the 64-bit word
    for p in (2 ** -k for k in (1, 2, 3, 15)):
        out = encoding.rate(torch.full((4 * 1024,), p), num_steps=64, generator=torch.Generator().manual_seed(5))
        by_lane = out.view(64, 1024, 4).mean(dim=(0, 1))  # the 4 int16 lanes of each 64-bit draw
        std = math.sqrt(p * (1 - p) / (64 * 1024))
        assert torch.all((by_lane - p).abs() < 6 * std + 1e-6), (p, by_lane)


def test_rate_quantisation():
    # P(spike) = round(p * 2^15) / 2^15 exactly: p just below 2^-16 rounds to 0 and never fires
    out = encoding.rate(torch.full((1000,), 2.0 ** -16 * 0.99), num_steps=100)
    assert out.sum() == 0


def test_rate_options():
    x = torch.full((2, 3), 0.5)
    assert encoding.rate(x, 5, gain=2).sum() == 30  # 0.5 * 2 = 1
    assert encoding.rate(x, 5, gain=1, offset=-0.5).sum() == 0
    out = encoding.rate(torch.ones(2, 3), 6, first_spike_time=2)
    assert out[:2].sum() == 0 and out[2:].sum() == 4 * 6
    seq = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    out = encoding.rate(seq, time_var_input=True)
    assert torch.equal(out, seq)
    out = encoding.rate(seq, time_var_input=True, first_spike_time=2, dtype=torch.uint8)
    assert out.shape == (5, 2) and out[:2].sum() == 0 and torch.equal(out[2:], seq.to(torch.uint8))
    odd = encoding.rate(torch.ones(3, 5, 7), 3)  # numel not a multiple of 4
    assert odd.shape == (3, 3, 5, 7) and odd.sum() == 3 * 105
    assert encoding.rate(torch.empty(0, 4), 3).shape == (3, 0, 4)
    assert encoding.rate(torch.tensor([255, 0], dtype=torch.uint8), 2).tolist() == [[1.0, 0.0], [1.0, 0.0]]


def test_rate_reproducible_with_generator():
    x = torch.rand(8, 10)
    a = encoding.rate(x, 10, generator=torch.Generator().manual_seed(7))
    b = encoding.rate(x, 10, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_rate_errors():
    with pytest.raises(ValueError, match="num_steps"):
        encoding.rate(torch.rand(3))
    with pytest.raises(ValueError, match="num_steps"):
        encoding.rate(torch.rand(3), 0)
    with pytest.raises(ValueError, match="first_spike_time"):
        encoding.rate(torch.rand(3), 3, first_spike_time=3)
    with pytest.raises(ValueError, match="time_var_input"):
        encoding.rate(torch.rand(3, 2), 3, time_var_input=True)
    with pytest.raises(ValueError, match="NaN"):
        encoding.rate(torch.tensor([float("nan")]), 3)
    with pytest.raises(TypeError, match="Tensor"):
        encoding.rate([0.5], 3)



@pytest.mark.parametrize("name, value", [("gain", math.nan), ("gain", math.inf), ("offset", math.nan),
                                         ("offset", -math.inf)])
def test_rate_names_non_finite_gain_and_offset(name, value):
    # A NaN gain used to be reported as "data contains NaN".
    with pytest.raises(ValueError, match=rf"rate: {name} must be a finite number"):
        encoding.rate(torch.rand(3), 3, **{name: value})


@pytest.mark.parametrize("name, value", [("tau", math.nan), ("tau", math.inf), ("tau", 0.0), ("epsilon", math.nan),
                                         ("epsilon", 0.0), ("threshold", math.nan), ("on_target", math.nan),
                                         ("off_target", math.inf)])
def test_latency_names_bad_hyper_parameters(name, value):
    # NaN/Inf tau used to fail with "cannot convert float NaN to integer".
    with pytest.raises(ValueError, match=rf"latency: {name} must be"):
        encoding.latency(torch.rand(3), 5, **{name: value})


@pytest.mark.parametrize("kwargs", [dict(tau=3e37), dict(tau=3e37, bypass=True), dict(tau=1e300, linear=True),
                                    dict(tau=2.0, epsilon=1e-300, bypass=True)])
def test_latency_spike_times_beyond_float32_are_named(kwargs):
    # A finite tau whose float32 spike times overflow used to raise OverflowError ("cannot convert float infinity
    # to integer"), or, for the linear code, a RuntimeError from torch's clamp.
    data = torch.tensor([0.0, 0.01, 0.5, 1.0])
    with pytest.raises(ValueError, match=r"latency: tau(=| must fit float32)"):
        encoding.latency(data, 5, **kwargs)


def test_latency_output_sized_beyond_any_tensor_is_named():
    # bypass=True without num_steps sizes the output to the latest spike: tau=1e30 used to raise OverflowError
    # from torch.arange.
    with pytest.raises(ValueError, match=r"latency: tau=1e\+30 gives spike times up to"):
        encoding.latency(torch.tensor([0.0, 0.5]), tau=1e30, bypass=True)


# ---------------------------------------------------------------- latency

def test_latency_docstring_examples_of_snntorch():
    a = torch.tensor([0.02, 0.5, 1.0])
    expected = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    assert torch.equal(encoding.latency(a, num_steps=5, normalize=True, linear=True), expected)
    # log code, normalised: spike times 4.0, 0.1166, 0.0580 -> steps 4, 0, 0
    out = encoding.latency(a, num_steps=5, normalize=True)
    assert out.argmax(0).tolist() == [4, 0, 0] and out.sum() == 3


@pytest.mark.parametrize("kwargs", [
    {"bypass": True}, {"linear": True}, {"normalize": True}, {"linear": True, "normalize": True},
    {"tau": 3.0, "threshold": 0.2, "bypass": True}, {"tau": 2.0, "first_spike_time": 2, "normalize": True},
    {"clip": True, "threshold": 0.3, "normalize": True}, {"linear": True, "tau": 4.0, "clip": True, "threshold": 0.25},
    {"on_target": 1.5, "off_target": 0.25, "linear": True, "normalize": True},
])
def test_latency_matches_reference(kwargs):
    g = torch.Generator().manual_seed(2)
    data = torch.cat([torch.rand(3, 7, generator=g).flatten(), torch.tensor([0.0, 1.0, 0.005])]).view(4, 6)
    got = encoding.latency(data, num_steps=12, **kwargs)
    assert got.shape == (12, 4, 6)
    assert torch.allclose(got, ref_latency_snntorch(data, 12, **kwargs))


def test_latency_dtypes_and_bypass():
    data = torch.rand(5, 4)
    f = encoding.latency(data, num_steps=10, normalize=True, linear=True)
    u = encoding.latency(data, num_steps=10, normalize=True, linear=True, dtype=torch.uint8)
    assert u.dtype == torch.uint8 and torch.equal(f, u.float())
    with pytest.raises(ValueError, match="beyond num_steps"):
        encoding.latency(data, num_steps=3, tau=5, linear=True)
    dropped = encoding.latency(data, num_steps=3, tau=5, linear=True, bypass=True)
    assert dropped.shape == (3, 5, 4) and dropped.sum() <= 20
    sized = encoding.latency(torch.tensor([0.0, 0.5, 1.0]), tau=4, linear=True, bypass=True)
    assert sized.shape[0] == 5  # latest spike time round(4 * 0.99) = 4
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        encoding.latency(torch.tensor([1.2]), num_steps=3)
    with pytest.raises(ValueError, match="num_steps must be given"):
        encoding.latency(torch.tensor([0.2]))
    with pytest.raises(ValueError, match="on_target"):
        encoding.latency(data, num_steps=10, normalize=True, on_target=2.0, dtype=torch.uint8)


# ---------------------------------------------------------------- delta

def test_delta_docstring_examples_of_snntorch():
    a = torch.tensor([1.0, 2.0, 2.9, 3.0, 3.9])
    assert encoding.delta(a, threshold=1).tolist() == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert encoding.delta(a, threshold=1, padding=True).tolist() == [0.0, 1.0, 0.0, 0.0, 0.0]
    b = torch.tensor([1.0, 2.0, 0.0, 2.0, 2.9])
    assert encoding.delta(b, threshold=1, off_spike=True).tolist() == [1.0, 1.0, -1.0, 1.0, 0.0]
    assert encoding.delta(b, threshold=1, padding=True, off_spike=True).tolist() == [0.0, 1.0, -1.0, 1.0, 0.0]


@pytest.mark.parametrize("padding", [False, True])
@pytest.mark.parametrize("off_spike", [False, True])
def test_delta_matches_reference(padding, off_spike):
    data = torch.rand(9, 3, 4)
    expected = ref_delta(data, 0.2, padding, off_spike)
    assert torch.equal(encoding.delta(data, 0.2, padding, off_spike), expected)
    dtype = torch.int8 if off_spike else torch.uint8
    assert torch.equal(encoding.delta(data, 0.2, padding, off_spike, dtype=dtype), expected.to(dtype))


def test_delta_errors_and_empty():
    with pytest.raises(ValueError, match="int8"):
        encoding.delta(torch.rand(3, 2), off_spike=True, dtype=torch.uint8)
    assert encoding.delta(torch.empty(0, 3)).shape == (0, 3)
