"""The accumulate-only spike GEMM (functional.spike_linear, layer.Linear on spikes) against F.linear on the
same spikes as floats."""

import random

import pytest
import torch
import torch.nn.functional as F

from spikeops import _C, _ops, functional, layer, neuron, surrogate
from train_util import rate_mse_losses

ops = torch.ops.spikeops
TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float16: dict(rtol=2e-3, atol=2e-3),
       torch.bfloat16: dict(rtol=1.6e-2, atol=1.6e-2)}


@pytest.fixture(params=["events", "dense"])
def kernel(request):
    """Run each test through the core's accumulate kernel at every rate, and through torch's dense GEMM."""
    return request.param


def spikes_at(shape, rate, dtype=torch.uint8):
    return (torch.rand(shape) < rate).to(dtype)


def reference(spikes, weight, bias):
    # F.linear in float32 on the spikes as floats, rounded once to the weight's dtype.
    b = None if bias is None else bias.float()
    return F.linear(spikes.float(), weight.float(), b).to(weight.dtype)


SHAPES = [(1, 1, 1), (5, 7, 3), (33, 65, 63), (16, 64, 64), (7, 130, 129), (64, 300, 200), (3, 1000, 70)]


@pytest.mark.parametrize("rate", [0.0, 0.01, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("M,K,N", SHAPES)
def test_matches_dense(kernel, M, K, N, rate):
    s = spikes_at((M, K), rate)
    w = torch.randn(N, K)
    b = torch.randn(N)
    # Sums of up to K float32 terms in another order than BLAS: the rounding error grows with K.
    tol = dict(rtol=1e-5, atol=1e-6 * max(K, 10))
    torch.testing.assert_close(functional.spike_linear(s, w, b, kernel=kernel), reference(s, w, b), **tol)
    torch.testing.assert_close(functional.spike_linear(s, w, kernel=kernel), reference(s, w, None), **tol)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_weight_dtypes(kernel, dtype):
    s = spikes_at((2, 9, 40), 0.2)
    w = torch.randn(70, 40).to(dtype)
    b = torch.randn(70).to(dtype)
    y = functional.spike_linear(s, w, b, kernel=kernel)
    assert y.dtype == dtype and y.shape == (2, 9, 70)
    torch.testing.assert_close(y, reference(s, w, b), **TOL[dtype])


def test_integer_weights_are_exact(kernel):
    s = spikes_at((40, 500), 0.3)
    w = torch.randint(-50, 50, (90, 500)).float()
    assert torch.equal(functional.spike_linear(s, w, kernel=kernel), F.linear(s.float(), w))


@pytest.mark.parametrize("shape", [(0, 5), (3, 0), (0, 0)])
def test_empty(kernel, shape):
    M, K = shape
    s = torch.zeros(M, K, dtype=torch.uint8)
    w = torch.randn(4, K)
    b = torch.randn(4)
    torch.testing.assert_close(functional.spike_linear(s, w, b, kernel=kernel), reference(s, w, b))
    assert functional.spike_linear(s, torch.randn(0, K), kernel=kernel).shape == (M, 0)


def test_non_contiguous_inputs(kernel):
    s = spikes_at((50, 30), 0.2).t()  # [30, 50], transposed view
    w = torch.randn(50, 20).t()       # [20, 50], transposed view
    torch.testing.assert_close(functional.spike_linear(s, w, kernel=kernel), reference(s, w, None), **TOL[torch.float32])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("rate", [0.05, 0.5])
def test_gradients(kernel, dtype, rate):
    spikes = spikes_at((4, 6, 75), rate, dtype).requires_grad_(True)
    w = torch.randn(66, 75).to(dtype).requires_grad_(True)
    b = torch.randn(66).to(dtype).requires_grad_(True)
    g = torch.randn(4, 6, 66).to(dtype)
    grads = torch.autograd.grad(functional.spike_linear(spikes, w, b, kernel=kernel), (spikes, w, b), g)
    s_ref, w_ref, b_ref = (t.detach().clone().requires_grad_(True) for t in (spikes, w, b))
    ref_grads = torch.autograd.grad(F.linear(s_ref, w_ref, b_ref), (s_ref, w_ref, b_ref), g)
    for got, want in zip(grads, ref_grads):
        assert got.dtype == want.dtype and got.shape == want.shape
        torch.testing.assert_close(got, want, **TOL[dtype])


def test_uint8_spikes_give_weight_gradients():
    s = spikes_at((8, 30), 0.3)
    w = torch.randn(5, 30, requires_grad=True)
    functional.spike_linear(s, w).sum().backward()
    torch.testing.assert_close(w.grad, s.float().sum(0).expand(5, 30))


def test_saved_tensors_are_one_byte():
    x = torch.randn(6, 40, requires_grad=True)
    spikes = neuron.IFNode(step_mode="m")(x)  # float32 0/1, in the graph
    w = torch.randn(10, 40, requires_grad=True)
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = functional.spike_linear(spikes, w)
    spike_sized = [t for t in saved if t.numel() == spikes.numel()]
    # 1 byte each (int8: float spikes may be signed, -1/0/1)
    assert spike_sized and all(t.element_size() == 1 for t in spike_sized), [t.dtype for t in saved]
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0, "the gradient must reach the neuron"


def test_firing_rate_estimate():
    for M in (1, 63, 1000):
        for rate in (0.05, 0.9):
            s = spikes_at((M, 512), rate)
            for view in (s, s.t()):  # and the weight gradient's view
                assert abs(_ops.firing_rate_estimate(view) - rate) < 0.1


def spy(monkeypatch, owner, name, calls):
    """Record calls of owner.name (observes; the call goes through unchanged)."""
    f = getattr(owner, name)
    monkeypatch.setattr(owner, name, lambda *a, **k: (calls.append(name), f(*a, **k))[1])


def test_dense_dispatch_follows_the_policy(monkeypatch):
    """With kernel="auto", the core's kernel runs at or below the policy's rates and torch's dense GEMM above them
    (the weight gradient's threshold is lower); products under the policy's minimum size are not estimated."""
    calls = []
    spy(monkeypatch, _C, "spike_accumulate", calls)
    spy(monkeypatch, _ops.spike_linear, "firing_rate_estimate", calls)
    K, N = 1024, 256
    M = _C.SPIKE_GEMM_RATE_MIN_MACS // (K * N)  # the smallest product the policy estimates the rate for
    assert _C.CPU_DENSE_ABOVE_RATE_WEIGHT_GRADIENT < 0.38 < _C.CPU_DENSE_ABOVE_RATE
    w = torch.randint(-4, 5, (N, K)).float().requires_grad_(True)
    for rate, forward_core, grad_core in ((0.05, True, True), (0.38, True, False), (0.9, False, False)):
        s = spikes_at((M, K), rate)
        calls.clear()
        y = functional.spike_linear(s, w)
        assert calls == ["firing_rate_estimate"] + ["spike_accumulate"] * forward_core, rate
        calls.clear()
        dy = torch.randint(-2, 3, (M, N)).float()
        (gw,) = torch.autograd.grad(y, w, dy)
        assert calls == ["firing_rate_estimate"] + ["spike_accumulate"] * grad_core, rate
        assert torch.equal(y, F.linear(s.float(), w.detach()))
        assert torch.equal(gw, dy.t() @ s.float())
    calls.clear()
    small = spikes_at((M, K - 1), 0.9)
    functional.spike_linear(small, torch.randn(N, K - 1))
    assert calls == ["spike_accumulate"]  # no estimate, the core's kernel at every rate


def test_nonzero_as_keeps_dense_layouts():
    """The float (or byte) copy of spikes that the dense paths take: 0/1 wherever the input is nonzero, t's
    strides for any dense layout (computed in memory order), contiguous for the rest."""
    s = spikes_at((40, 30), 0.5)
    s[s.bool()] = torch.randint(1, 256, (int(s.sum()),), dtype=torch.uint8)
    dense = [s, s.t(), torch.rand(4, 5, 6).permute(2, 0, 1), spikes_at((3, 1, 4), 0.5).transpose(0, 1),
             spikes_at((2, 6, 5, 7), 0.5).contiguous(memory_format=torch.channels_last),
             torch.randn(3, 0, 4).transpose(0, 2), torch.tensor(2.0)]
    for t in dense + [s[:, ::2], s.t()[::3]]:
        for dtype in (torch.float32, torch.bfloat16, torch.uint8):
            got = _ops._nonzero_as(t, dtype)
            assert got.dtype == dtype and torch.equal(got, (t != 0).to(dtype))
            dense_layout = any(t is d for d in dense)
            assert got.stride() == (t.stride() if dense_layout else torch.empty(t.shape).stride())


@pytest.mark.parametrize("K,N", [(1, 1), (5, 64), (7, 130), (1024, 4096)])
def test_pack_rows_is_pack_weight_of_the_transpose(K, N):
    rows = torch.randn(K, N)
    assert torch.equal(_ops._pack_rows(rows), _ops.pack_weight(rows.t()))
    assert torch.equal(_ops._pack_rows(rows.bfloat16()), _ops.pack_weight(rows.bfloat16().t()))


def test_cached_weight_follows_in_place_updates():
    s = spikes_at((5, 12), 0.5)
    w = torch.randn(3, 12)
    with torch.no_grad():
        first = functional.spike_linear(s, w)
        w.mul_(2.0)  # bumps w._version: the packed copy must be rebuilt
        second = functional.spike_linear(s, w)
    torch.testing.assert_close(second, 2.0 * first)
    lin = layer.Linear(12, 3, bias=False)
    opt = torch.optim.SGD(lin.parameters(), lr=0.5)
    before = lin(s).detach()
    lin(s).sum().backward()
    opt.step()
    torch.testing.assert_close(lin(s), F.linear(s.float(), lin.weight))
    assert not torch.equal(lin(s), before)


def test_errors():
    w = torch.randn(4, 6)
    with pytest.raises(TypeError, match="spikes"):
        functional.spike_linear(torch.zeros(2, 6, dtype=torch.float64), w)
    with pytest.raises(TypeError, match="spikes"):
        functional.spike_linear(torch.zeros(2, 6, dtype=torch.int32), w)
    with pytest.raises(TypeError, match="weight"):
        functional.spike_linear(torch.zeros(2, 6, dtype=torch.uint8), w.double())
    with pytest.raises(ValueError, match="K = weight.shape"):
        functional.spike_linear(torch.zeros(2, 5, dtype=torch.uint8), w)
    with pytest.raises(ValueError, match="weight must be"):
        functional.spike_linear(torch.zeros(2, 6, dtype=torch.uint8), torch.randn(6))
    with pytest.raises(ValueError, match="bias"):
        functional.spike_linear(torch.zeros(2, 6, dtype=torch.uint8), w, torch.randn(5))
    with pytest.raises(ValueError, match="weight is on meta but spikes are on cpu"):
        functional.spike_linear(torch.zeros(2, 6, dtype=torch.uint8), torch.empty(4, 6, device="meta"))
    with pytest.raises(TypeError, match="Linear"):
        layer.Linear(6, 4)(torch.zeros(2, 6, dtype=torch.int64))


# ---- layers ----

@pytest.mark.parametrize("step_mode", ["s", "m"])
def test_linear_layer_routes_spikes(kernel, step_mode):
    lin = layer.Linear(30, 11, step_mode=step_mode, kernel=kernel)
    x = spikes_at((4, 5, 30) if step_mode == "m" else (5, 30), 0.2)
    torch.testing.assert_close(lin(x), F.linear(x.float(), lin.weight, lin.bias))
    assert lin(x).dtype == torch.float32


def test_spike_input_layer_trains_like_dense():
    torch.manual_seed(1)

    def make(spike_input):
        torch.manual_seed(2)
        return torch.nn.Sequential(
            layer.Linear(20, 64, step_mode="m"), neuron.LIFNode(step_mode="m", surrogate_function=surrogate.ATan()),
            layer.Linear(64, 5, step_mode="m", spike_input=spike_input),
            neuron.LIFNode(step_mode="m", surrogate_function=surrogate.ATan()))

    x = torch.rand(8, 16, 20) * 4
    target = F.one_hot(torch.arange(16) % 5, 5).float()
    losses = {spike_input: rate_mse_losses(make(spike_input), x, target, steps=5) for spike_input in (False, True)}
    assert losses[True][-1] < losses[True][0]
    torch.testing.assert_close(torch.tensor(losses[True]), torch.tensor(losses[False]), rtol=1e-4, atol=1e-5)


def test_uint8_spiking_network_matches_float_inference():
    torch.manual_seed(3)
    net_f = torch.nn.Sequential(layer.Linear(10, 40, step_mode="m"), neuron.LIFNode(step_mode="m"),
                                layer.Linear(40, 7, step_mode="m"), neuron.LIFNode(step_mode="m"))
    net_u8 = torch.nn.Sequential(layer.Linear(10, 40, step_mode="m"),
                                 neuron.LIFNode(step_mode="m", spike_dtype=torch.uint8),
                                 layer.Linear(40, 7, step_mode="m"), neuron.LIFNode(step_mode="m"))
    net_u8.load_state_dict(net_f.state_dict())
    x = torch.rand(6, 3, 10) * 3
    with torch.no_grad():
        hidden_f, hidden_u8 = net_f[:2](x), net_u8[:2](x)
        assert hidden_u8.dtype == torch.uint8 and 0 < hidden_u8.sum() < hidden_u8.numel()
        assert torch.equal(hidden_f, hidden_u8.float())
        functional.reset_net(net_f)
        functional.reset_net(net_u8)
        assert torch.equal(net_f(x), net_u8(x))


@pytest.mark.parametrize("kernel", ["auto", "events", "dense"])
def test_compile_fullgraph_spike_input(kernel):
    """The kernel is an argument of the ops' schemas, so torch.compile traces it (no global to bake in), and
    the compiled network gives the eager result and gradients with that kernel."""
    torch._dynamo.reset()
    torch.manual_seed(5)
    net = torch.nn.Sequential(layer.Linear(8, 32, step_mode="m"), neuron.LIFNode(step_mode="m"),
                              layer.Linear(32, 4, step_mode="m", spike_input=True, kernel=kernel))
    x = torch.rand(5, 3, 8) * 3
    functional.reset_net(net)
    eager = net(x)
    eager.sum().backward()
    g_eager = net[2].weight.grad.clone()
    net.zero_grad()
    compiled = torch.compile(net, fullgraph=True, backend="aot_eager")
    functional.reset_net(net)
    out = compiled(x)
    out.sum().backward()
    torch.testing.assert_close(out, eager)
    torch.testing.assert_close(net[2].weight.grad, g_eager)


# ---- opcheck ----

@pytest.mark.parametrize("spike_dtype", [torch.uint8, torch.float32], ids=str)
@pytest.mark.parametrize("with_bias", [False, True])
def test_opcheck_spike_linear(spike_dtype, with_bias):
    s = spikes_at((9, 70), 0.3, spike_dtype)
    if spike_dtype != torch.uint8:
        s.requires_grad_(True)
    w = torch.randn(65, 70, requires_grad=True)
    b = torch.randn(65, requires_grad=True) if with_bias else None
    torch.library.opcheck(ops.spike_linear, (s, w, b))


def test_opcheck_spike_accumulate_rows_t():
    torch.library.opcheck(ops.spike_accumulate_rows_t, (spikes_at((30, 9), 0.3), torch.randn(9, 70),
                                                        torch.bfloat16))
    # the weight gradient's input: a transposed view of the forward's spikes
    torch.library.opcheck(ops.spike_accumulate_rows_t, (spikes_at((9, 30), 0.3).t(), torch.randn(9, 70),
                                                        torch.float32))


@pytest.mark.parametrize("M,K,N", [(2048, 64, 1024), (2047, 64, 1030), (2050, 3, 1100)])
@pytest.mark.parametrize("out_dtype", [torch.float32, torch.bfloat16])
def test_large_transposed_outputs(M, K, N, out_dtype):
    """Transposed float32 outputs of 8 MB and more are written with streaming stores where rows are 16-byte
    aligned (M % 4 == 0) and the usual way elsewhere; both must give the exact sums."""
    s = spikes_at((K, M), 0.05)
    rows = torch.randint(-8, 9, (K, N)).float()
    expected = (s.t().double() @ rows.double()).t().to(out_dtype)
    torch.testing.assert_close(ops.spike_accumulate_rows_t(s.t(), rows, out_dtype), expected, rtol=0, atol=0)


@pytest.mark.parametrize("threads", [1, 2, 3, 8])
@pytest.mark.parametrize("N", [1, 10, 16, 17, 40, 64])
def test_narrow_outputs_over_many_rows(N, threads):
    """Outputs of one column tile (a classifier's): the CPU kernel adds the spikes of each row as it reads their
    masks (row-major spikes), or scatters each tile row to the rows its spikes reach (column-major spikes, the
    weight gradient's transposed view), in parts of rows split between the threads (multiples of 64, the last
    partial), with only the vectors that hold the columns. Integer weights, so exact in any order: the
    forward, and the weight gradient's transposed output (rows: the K inputs) from the transposed view and
    from a strided one (copied row-major)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for M, K, rate in ((300, 257, 0.3), (1000, 64, 0.5), (129, 1000, 0.05), (64, 700, 1.0)):
            s = spikes_at((M, K), rate)
            w = torch.randint(-8, 9, (N, K)).float()
            b = torch.randint(-8, 9, (N,)).float()
            assert torch.equal(functional.spike_linear(s, w, b, kernel="events"), F.linear((s != 0).float(), w, b))
            dy = torch.randint(-8, 9, (M, N)).float()
            expected = ((s != 0).t().double() @ dy.double()).t().float()  # [N, K]
            assert torch.equal(ops.spike_accumulate_rows_t(s.t(), dy, torch.float32, "events"), expected), (M, K)
            strided = torch.zeros(M, 2 * K, dtype=torch.uint8)
            strided[:, ::2] = s
            assert torch.equal(ops.spike_accumulate_rows_t(strided[:, ::2].t(), dy, torch.float32, "events"), expected)
    finally:
        torch.set_num_threads(saved)


@pytest.mark.parametrize("M,K", [(30, 9), (1, 40), (40, 1), (257, 129)])
@pytest.mark.parametrize("rate", [0.0, 0.05, 0.5, 1.0])
def test_rows_t_reads_transposed_views(kernel, M, K, rate):
    """S^T . dY from a transposed view of S [K, M] (read in place on the CPU) and from a strided one (copied)."""
    s = spikes_at((K, M), rate)
    rows = torch.randn(K, 70).round()  # integers: exact sums in any order
    for view in (s.t(), s.t().contiguous(), spikes_at((K, 2 * M), rate)[:, ::2].t()):
        expected = (view.float() @ rows).t()
        torch.testing.assert_close(ops.spike_accumulate_rows_t(view, rows, torch.float32, kernel), expected, rtol=0, atol=0)


# ---- convolution ----

CONV_CASES = [  # N, C, H, W, C_out, kernel, stride, padding, dilation, groups
    (2, 3, 9, 8, 4, 3, 1, 1, 1, 1), (1, 4, 11, 7, 6, 3, 2, 0, 2, 2), (3, 1, 28, 28, 12, 5, 1, 0, 1, 1),
    (2, 4, 6, 6, 4, 1, 1, 0, 1, 4), (2, 6, 10, 9, 9, (3, 2), (2, 1), (1, 0), (1, 2), 3), (1, 2, 3, 3, 2, 3, 1, 0, 1, 1),
    # more than 64 input channels per group (several mask words) and more than 128 outputs (several register
    # chunks), outputs not a multiple of 16, a row of 19 bytes (8-byte steps and a tail), one sample with many
    # output rows (rows in parallel) and many samples (a sample per thread)
    (3, 130, 5, 19, 200, 3, 1, 1, 1, 1), (1, 70, 12, 12, 17, 3, 1, 2, 2, 1), (5, 128, 4, 4, 130, 2, 2, 1, 1, 2),
    (4, 8, 7, 7, 40, 7, 1, 3, 1, 1), (0, 3, 5, 5, 4, 3, 1, 1, 1, 1),
    # a kernel row's taps x channels of exactly 64 bits (one piece of the row's bit string, crossing words),
    # 13 channels per group in two groups, and 65 bits (not one piece)
    (2, 16, 9, 20, 20, (3, 4), (1, 2), (1, 2), 1, 1), (1, 26, 7, 11, 8, 2, 1, 1, 1, 2), (2, 13, 6, 9, 5, 5, 1, 2, 1, 1),
    # 64 channels with a 1x1 kernel and 32 with a 1x2 one: 64 bits per kernel row, row strings with 64 channels
    (1, 64, 5, 7, 17, 1, 1, 0, 1, 1), (2, 32, 6, 9, 20, (1, 2), 1, 0, 1, 1),
]


@pytest.fixture(params=["events", "dense"])
def conv_kernel(request):
    """The core's event-driven kernels at every rate, and torch's dense convolution."""
    return request.param


def conv_args(case):
    N, C, H, W, C_out, k, s, p, d, g = case
    kh, kw = (k, k) if isinstance(k, int) else k
    return (N, C, H, W, C_out, kh, kw), dict(stride=s, padding=p, dilation=d, groups=g)


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("rate", [0.0, 0.03, 0.3, 1.0])
@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_spike_conv2d_is_exact_on_integers(conv_kernel, case, rate, layout):
    """Output, weight and bias gradients against F.conv2d on the spikes as floats, in float64: integer weights
    and gradients make every sum exact in any order. Channels-last spikes give a channels-last output."""
    (N, C, H, W, C_out, kh, kw), kw_args = conv_args(case)
    x = spikes_at((N, C, H, W), rate)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    w = torch.randint(-8, 9, (C_out, C // kw_args["groups"], kh, kw)).float().requires_grad_(True)
    b = torch.randint(-8, 9, (C_out,)).float().requires_grad_(True)
    y = functional.spike_conv2d(x, w, b, **kw_args, kernel=conv_kernel)
    w64, b64 = w.detach().double().requires_grad_(True), b.detach().double().requires_grad_(True)
    y_ref = F.conv2d(x.double(), w64, b64, **kw_args)
    torch.testing.assert_close(y, y_ref.float(), rtol=0, atol=0)
    if layout == "channels_last" and not x.is_contiguous():
        assert y.is_contiguous(memory_format=torch.channels_last)
    else:
        assert y.is_contiguous()
    g = torch.randint(-4, 5, y.shape).float()
    y.backward(g)
    y_ref.backward(g.double())
    torch.testing.assert_close(w.grad, w64.grad.float(), rtol=0, atol=0)
    torch.testing.assert_close(b.grad, b64.grad.float(), rtol=0, atol=0)


def test_spike_conv2d_random_geometries():
    """The event-driven kernels' paths (a word per tap, bit strings from words or from row pieces, per-tap
    loops for more than 64 channels) over random geometries: exact against F.conv2d in float64."""
    rng = random.Random(3)
    for n in range(150):
        g = rng.choice([1, 1, 2, 3])
        Cg, Og = rng.choice([1, 3, 12, 13, 16, 21, 32, 63, 64, 65]), rng.choice([1, 15, 16, 17, 33, 129])
        (kh, kw), (sh, sw) = (rng.randint(1, 5), rng.randint(1, 6)), (rng.randint(1, 3), rng.randint(1, 3))
        (dh, dw), (ph, pw) = (rng.choice([1, 1, 2]), rng.choice([1, 1, 2])), (rng.randint(0, 3), rng.randint(0, 3))
        H = rng.randint(max(1, dh * (kh - 1) + 1 - 2 * ph), 12)
        W = rng.randint(max(1, dw * (kw - 1) + 1 - 2 * pw), 30)
        N = rng.choice([1, 2, 3])
        x = spikes_at((N, Cg * g, H, W), rng.choice([0.02, 0.2, 1.0]))
        if rng.random() < 0.5:
            x = x.contiguous(memory_format=torch.channels_last)
        w = torch.randint(-8, 9, (Og * g, Cg, kh, kw)).float()
        conv = dict(stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw), groups=g)
        y = functional.spike_conv2d(x, w, None, **conv, kernel="events")
        assert torch.equal(y.double(), F.conv2d(x.double(), w.double(), None, **conv)), (n, x.shape, w.shape, conv)
        dy = torch.randint(-4, 5, y.shape).float()
        gw = ops.spike_conv2d_weight_grad(x, dy, list(w.shape), [sh, sw], [ph, pw], [dh, dw], g, torch.float32,
                                          "events")
        want = torch.nn.grad.conv2d_weight(x.double(), w.shape, dy.double(), **conv)
        assert torch.equal(gw.double(), want), (n, x.shape, w.shape, conv)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_spike_conv2d_dtypes(conv_kernel, dtype):
    x = spikes_at((3, 20, 9, 9), 0.2)
    w = torch.randn(24, 10, 3, 3).to(dtype).requires_grad_(True)
    b = torch.randn(24).to(dtype).requires_grad_(True)
    y = functional.spike_conv2d(x, w, b, padding=1, groups=2, kernel=conv_kernel)
    w_ref, b_ref = w.detach().float().requires_grad_(True), b.detach().float().requires_grad_(True)
    y_ref = F.conv2d(x.float(), w_ref, b_ref, padding=1, groups=2)
    assert y.dtype == dtype
    torch.testing.assert_close(y, y_ref.to(dtype), **TOL[dtype])
    g = torch.randn(y.shape).to(dtype)
    y.backward(g)
    y_ref.backward(g.float())
    assert w.grad.dtype == dtype and b.grad.dtype == dtype
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else dict(rtol=2e-2, atol=0.1)
    torch.testing.assert_close(w.grad.float(), w_ref.grad, **tol)
    torch.testing.assert_close(b.grad.float(), b_ref.grad, **tol)


def test_spike_conv2d_weight_gradient_and_layer(conv_kernel):
    conv = layer.Conv2d(3, 5, 3, padding=1, stride=2, step_mode="m", kernel=conv_kernel)
    x = spikes_at((4, 2, 3, 9, 9), 0.3)
    y = conv(x)
    y.square().sum().backward()
    w_ref = conv.weight.detach().clone().requires_grad_(True)
    b_ref = conv.bias.detach().clone().requires_grad_(True)
    y_ref = F.conv2d(x.flatten(0, 1).float(), w_ref, b_ref, 2, 1).view(y.shape)
    y_ref.square().sum().backward()
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(conv.weight.grad, w_ref.grad, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(conv.bias.grad, b_ref.grad, rtol=1e-4, atol=1e-4)


def test_spike_conv2d_strided_operands(conv_kernel):
    """A non-contiguous weight and bias, and the expanded gradient of .sum(), are copied before the kernels."""
    x = spikes_at((2, 6, 8, 7), 0.3)
    w = torch.randn(3, 3, 3, 4).permute(3, 0, 1, 2).requires_grad_(True)  # [4, 3, 3, 3], strided
    b = torch.randn(8)[::2]
    w_ref = w.detach().clone().requires_grad_(True)
    y = functional.spike_conv2d(x, w, b, padding=1, groups=2, kernel=conv_kernel)
    y_ref = F.conv2d(x.float(), w_ref, b, padding=1, groups=2)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    y.sum().backward()
    y_ref.sum().backward()
    torch.testing.assert_close(w.grad, w_ref.grad, rtol=1e-5, atol=1e-5)


def test_spike_conv2d_no_output_channels(conv_kernel):
    x = spikes_at((2, 3, 6, 6), 0.4)
    w = torch.zeros(0, 3, 3, 3, requires_grad=True)
    y = functional.spike_conv2d(x, w, None, padding=1, kernel=conv_kernel)
    assert y.shape == (2, 0, 6, 6)
    y.sum().backward()
    assert w.grad.shape == w.shape


def test_spike_conv2d_dispatch(monkeypatch):
    """With kernel="auto", the CPU's kernels run at or below the policy's rates and torch's dense convolution
    above them (the weight gradient's threshold is lower); a forced kernel runs whatever the rate."""
    calls = []
    for name in ("spike_conv2d", "spike_conv2d_weight_grad"):
        spy(monkeypatch, _C, name, calls)
    assert _C.CPU_CONV_DENSE_ABOVE_RATE_WEIGHT_GRADIENT < 0.175 < _C.CPU_CONV_DENSE_ABOVE_RATE
    w = torch.randn(8, 4, 3, 3, requires_grad=True)
    both = ["spike_conv2d", "spike_conv2d_weight_grad"]
    cases = [(0.02, "auto", both), (0.175, "auto", ["spike_conv2d"]), (0.9, "auto", []), (0.9, "events", both),
             (0.02, "dense", [])]
    for rate, kernel, expected in cases:
        calls.clear()
        x = spikes_at((8, 4, 32, 32), rate)
        y = functional.spike_conv2d(x, w, None, padding=1, kernel=kernel)
        y.sum().backward()
        assert calls == expected, (rate, kernel)
        torch.testing.assert_close(y, F.conv2d(x.float(), w, None, padding=1), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("with_bias", [False, True])
def test_opcheck_spike_conv2d(conv_kernel, with_bias, layout):
    x = spikes_at((2, 4, 7, 6), 0.3)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    w = torch.randn(6, 2, 3, 2, requires_grad=True)
    b = torch.randn(6, requires_grad=True) if with_bias else None
    torch.library.opcheck(ops.spike_conv2d, (x, w, b, [2, 1], [1, 1], [1, 2], 2, conv_kernel))
    torch.library.opcheck(ops.spike_conv2d_weight_grad, (x, torch.randn(2, 6, 4, 6), [6, 2, 3, 2], [2, 1], [1, 1],
                                                         [1, 2], 2, torch.float32, conv_kernel))


def test_spike_conv2d_errors():
    w = torch.randn(4, 3, 3, 3)
    x = torch.zeros(1, 3, 5, 5, dtype=torch.uint8)
    with pytest.raises(TypeError, match="spikes must be a uint8"):
        functional.spike_conv2d(torch.zeros(1, 3, 5, 5), w)
    with pytest.raises(ValueError, match="input channels"):
        functional.spike_conv2d(torch.zeros(1, 2, 5, 5, dtype=torch.uint8), w)
    with pytest.raises(ValueError, match="groups"):
        functional.spike_conv2d(x, w, groups=2)
    with pytest.raises(ValueError, match="does not fit"):
        functional.spike_conv2d(torch.zeros(1, 3, 2, 2, dtype=torch.uint8), w)
    with pytest.raises(TypeError, match="weight must have dtype float32/float16/bfloat16"):
        functional.spike_conv2d(x, w.double())
    with pytest.raises(ValueError, match="bias must be \\[C_out\\] = \\[4\\]"):
        functional.spike_conv2d(x, w, torch.zeros(3))
    with pytest.raises(ValueError, match="bias must be .*torch.float32 on cpu \\(the weight's\\), got shape "
                                         "\\(4,\\), torch.float16"):
        functional.spike_conv2d(x, w, torch.zeros(4, dtype=torch.float16))
    with pytest.raises(ValueError, match="spike_conv2d: stride must be ints from 1"):
        functional.spike_conv2d(x, w, stride=0)
    with pytest.raises(ValueError, match="zero padding"):
        layer.Conv2d(3, 4, 3, padding=1, padding_mode="reflect")(x)
    # The core checks too (it is used without Python).
    out = torch.empty(1, 4, 3, 3)
    v = _ops._view
    with pytest.raises(ValueError, match="spike_conv2d: out must have shape \\[1, 4, 3, 3\\]"):
        _C.spike_conv2d(v(x, "s"), v(w, "w"), _C.TensorView(), v(torch.empty(1, 4, 3, 4), "o"), [1, 1], [0, 0],
                        [1, 1], 1)
    with pytest.raises(ValueError, match="spike_conv2d: conv.groups must be a positive divisor"):
        _C.spike_conv2d(v(x, "s"), v(w, "w"), _C.TensorView(), v(out, "o"), [1, 1], [0, 0], [1, 1], 2)
    with pytest.raises(ValueError, match="spike_conv2d: conv.stride must be >= 1"):
        _C.spike_conv2d(v(x, "s"), v(w, "w"), _C.TensorView(), v(out, "o"), [0, 1], [0, 0], [1, 1], 1)
    with pytest.raises(ValueError, match="spike_conv2d: conv.dilation must be >= 1 and below 2\\^31"):
        _C.spike_conv2d(v(x, "s"), v(w, "w"), _C.TensorView(), v(out, "o"), [1, 1], [0, 0], [2**63 - 1, 1], 1)
    with pytest.raises(ValueError, match="the zero-padded plane"):  # refused before any allocation
        _C.spike_conv2d(v(torch.ones(2, 1, 1, 1, dtype=torch.uint8), "s"), v(torch.ones(1, 1, 1, 1), "w"),
                        _C.TensorView(), v(torch.empty(2, 1, 1, 1), "o"), [2**31 - 1] * 2, [2**29] * 2, [1, 1], 1)
    with pytest.raises(ValueError, match="spike_conv2d: spikes must have dtype uint8"):
        _C.spike_conv2d(v(x.float(), "s"), v(w, "w"), _C.TensorView(), v(out, "o"), [1, 1], [0, 0], [1, 1], 1)
    with pytest.raises(ValueError, match="spike_conv2d_weight_grad: grad_out must have shape \\[1, 4, 3, 3\\]"):
        _C.spike_conv2d_weight_grad(v(x, "s"), v(torch.empty(1, 4, 2, 3), "g"), v(torch.empty_like(w), "gw"),
                                    [1, 1], [0, 0], [1, 1], 1)


def test_cuda_only_kernels_are_refused_on_the_cpu():
    s, rows = spikes_at((3, 5), 0.5), torch.randn(5, 4)
    out = torch.empty(3, 4)
    row_major = _C.RowsLayout.row_major
    for kernel in (_C.SpikeGemmKernel.tiled_events, _C.SpikeGemmKernel.tensor_core):
        with pytest.raises(ValueError, match="kernel kTiledEvents and kTensorCore run on CUDA tensors only"):
            _C.spike_accumulate(_ops._view(s, "spikes"), _ops._view(rows, "rows"), row_major, _C.TensorView(),
                                _ops._view(out, "out"), False, kernel, -1.0)
    with pytest.raises(ValueError, match="firing_rate must be at most 1"):
        _C.spike_accumulate(_ops._view(s, "spikes"), _ops._view(rows, "rows"), row_major, _C.TensorView(),
                            _ops._view(out, "out"), False, _C.SpikeGemmKernel.auto, float("nan"))
    with pytest.raises(ValueError, match="kernel kDense has no CPU kernel in the core"):
        _C.spike_accumulate(_ops._view(s, "spikes"), _ops._view(rows, "rows"), row_major, _C.TensorView(),
                            _ops._view(out, "out"), False, _C.SpikeGemmKernel.dense, -1.0)
    # Asked for through the API, a CUDA kernel on CPU tensors is an error, not a silent substitution.
    for kernel in ("tiled", "tensor_core"):
        message = f"spike_linear: kernel='{kernel}' runs on CUDA tensors only"
        with pytest.raises(ValueError, match=message):
            functional.spike_linear(s, rows.t(), kernel=kernel)
        with pytest.raises(ValueError, match=message):
            ops.spike_linear(s, rows.t(), None, kernel)
        with pytest.raises(ValueError, match=f"spike_accumulate_rows_t: kernel='{kernel}' runs on CUDA"):
            ops.spike_accumulate_rows_t(s.t(), torch.randn(3, 4), torch.float32, kernel)
        with pytest.raises(ValueError, match=f"spike_linear: kernel=.{kernel}. runs on CUDA tensors only"):
            layer.Linear(5, 4, kernel=kernel)(s)
