"""CUDA kernels against the CPU kernels and the reference. Skipped unless a GPU and a CUDA build are present."""

import itertools

import pytest
import torch

import reference as ref
import spikeops
from spikeops import _C, layer, neuron, surrogate
from test_runtime import dyadic_, exported_csnn, mixed_net

pytestmark = pytest.mark.cuda
ops = torch.ops.spikeops

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
# N chosen around the vector widths (1, 4, 8 neurons per thread) and block sizes.
SHAPES = [(1, 1), (3, 7), (5, 8), (4, 255), (2, 4097), (257, 33), (16, 3, 1000), (3, 0)]


def run(kind, x, device, **kw):
    cls = {"IF": neuron.IFNode, "LIF": neuron.LIFNode, "PLIF": neuron.ParametricLIFNode}[kind]
    node = cls(step_mode="m", store_v_seq=True, **kw).to(device)
    xd = x.detach().to(device).requires_grad_(True)
    spikes = node(xd)
    g = torch.ones_like(spikes) * 0.5 + torch.arange(spikes.numel(), device=device).view(spikes.shape) % 3
    ((spikes.float() * g).sum() + node.v_seq.sum() + node.v.sum()).backward()
    w_grad = node.w.grad.cpu() if kind == "PLIF" else None
    return spikes.cpu(), node.v_seq.cpu(), node.v.cpu(), xd.grad.cpu(), w_grad


@pytest.mark.parametrize("kind,v_reset,decay_input,detach_reset",
                         [c for c in itertools.product(("IF", "LIF", "PLIF"), (0.0, None, -0.3), (True, False),
                                                       (False, True)) if not (c[0] == "IF" and not c[2])])
def test_branches_cuda_equals_cpu(kind, v_reset, decay_input, detach_reset):
    kw = dict(v_reset=v_reset, detach_reset=detach_reset)
    if kind != "IF":
        kw["decay_input"] = decay_input
    x = torch.randn(8, 2, 300) * 1.5 + 0.6
    cpu = run(kind, x, "cpu", **kw)
    gpu = run(kind, x, "cuda", **kw)
    assert torch.equal(cpu[0], gpu[0])
    assert torch.equal(cpu[1], gpu[1]) and torch.equal(cpu[2], gpu[2])  # same float32 ops, no FMA
    torch.testing.assert_close(gpu[3], cpu[3], rtol=1e-5, atol=1e-6)
    if kind == "PLIF":
        torch.testing.assert_close(gpu[4], cpu[4], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("kind", ("IF", "LIF", "PLIF"))
def test_shapes_and_dtypes_cuda_equals_cpu_and_reference(kind, dtype, shape):
    x = (torch.randn(shape) * 1.5 + 0.6).to(dtype)
    cpu = run(kind, x, "cpu")
    gpu = run(kind, x, "cuda")
    assert gpu[0].dtype == dtype and torch.equal(cpu[0], gpu[0])
    assert torch.equal(cpu[1], gpu[1])
    torch.testing.assert_close(gpu[3], cpu[3], rtol=1e-2 if dtype != torch.float32 else 1e-5, atol=1e-5)
    w = neuron.ParametricLIFNode().w.detach() if kind == "PLIF" else None
    s_ref, v_ref, _ = ref.neuron_multistep(x, kind, w=w)
    assert torch.equal(gpu[0], s_ref.to(dtype))
    torch.testing.assert_close(gpu[1], v_ref.detach(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("spike_dtype", [torch.uint8, torch.bfloat16], ids=str)
def test_spike_dtype_cuda(spike_dtype):
    x = torch.randn(6, 1001) + 0.5
    a = neuron.LIFNode(step_mode="m", spike_dtype=spike_dtype)(x)
    b = neuron.LIFNode(step_mode="m", spike_dtype=spike_dtype).cuda()(x.cuda())
    assert b.dtype == spike_dtype and torch.equal(a, b.cpu())


@pytest.mark.parametrize("name", list(ref.SURROGATES))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_surrogates_cuda(name, dtype):
    params = ref.SURROGATES[name][0]
    sg = getattr(surrogate, name)(**params)
    x = (torch.randn(4099) * 2).to(dtype)
    outs = []
    for device in ("cpu", "cuda"):
        xd = x.to(device).requires_grad_(True)
        y = sg(xd)
        y.backward(torch.ones_like(y))
        outs.append((y.cpu(), xd.grad.cpu()))
    assert torch.equal(outs[0][0], outs[1][0])
    # exp/expf differ by an ulp or so between the CPU's vectorized exp and CUDA's expf.
    torch.testing.assert_close(outs[1][1], outs[0][1], rtol=1e-5 if dtype == torch.float32 else 1e-2, atol=1e-6)


def test_opcheck_cuda():
    x = torch.randn(5, 37, device="cuda", requires_grad=True)
    v = torch.zeros(37, device="cuda", requires_grad=True)
    decay = torch.tensor([0.4], device="cuda", requires_grad=True)
    for kind, d in ((0, None), (1, None), (2, decay)):
        flags = (kind, 1.0, 0.0, 2.0, True, [], False, int(_C.SurrogateKind.Sigmoid), 4.0, 0.0)
        torch.library.opcheck(ops.neuron_forward, (x, v, d, *flags, torch.float32, True, True))
        _, _, saved, _ = ops.neuron_forward(x.detach(), v.detach(), None if d is None else d.detach(), *flags,
                                            torch.float32, True, False)
        for sg_seq in (None, torch.rand(5, 37, device="cuda")):
            torch.library.opcheck(ops.neuron_backward, (torch.randn(5, 37, device="cuda"), None, None, saved,
                                                        v.detach(), None if d is None else d.detach(), sg_seq,
                                                        *flags, torch.float32))
    torch.library.opcheck(ops.spike_fn, (x, int(_C.SurrogateKind.ATan), 2.0, 0.0))


def test_runs_on_the_current_stream():
    x = torch.randn(16, 1 << 16, device="cuda") + 0.5
    expected = neuron.LIFNode(step_mode="m")(x)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        got = neuron.LIFNode(step_mode="m")(x)
    torch.cuda.current_stream().wait_stream(stream)
    assert torch.equal(expected, got)


def test_mixed_devices_are_rejected():
    node = neuron.LIFNode(step_mode="m")
    node(torch.randn(2, 5))
    with pytest.raises(ValueError, match="reset_net"):
        node(torch.randn(2, 5, device="cuda"))


# ---- spike GEMM ----

@pytest.mark.parametrize("rate", [0.0, 0.01, 0.2, 1.0])
@pytest.mark.parametrize("M,K,N", [(1, 1, 1), (5, 7, 3), (33, 1025, 129), (300, 2000, 64), (70000, 16, 8)])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_spike_linear_cuda_equals_cpu(M, K, N, rate, dtype):
    from spikeops import functional

    s = (torch.rand(M, K) < rate).to(torch.uint8)
    w = torch.randn(N, K).to(dtype)
    b = torch.randn(N).to(dtype)
    cpu = functional.spike_linear(s, w, b)
    gpu = functional.spike_linear(s.cuda(), w.cuda(), b.cuda())
    assert gpu.dtype == dtype
    tol = dict(rtol=1e-5, atol=1e-6 * max(K, 10)) if dtype == torch.float32 else dict(rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(gpu.cpu(), cpu, **tol)


def test_spike_linear_gradients_cuda():
    from spikeops import functional

    s = (torch.rand(4, 9, 300) < 0.1).float()
    w = torch.randn(70, 300)
    grads = []
    for device in ("cpu", "cuda"):
        sd = s.to(device).requires_grad_(True)
        wd = w.to(device).requires_grad_(True)
        functional.spike_linear(sd, wd).square().sum().backward()
        grads.append((sd.grad.cpu(), wd.grad.cpu()))
    torch.testing.assert_close(grads[1][0], grads[0][0], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(grads[1][1], grads[0][1], rtol=1e-4, atol=1e-4)


def test_opcheck_spike_linear_cuda():
    s = (torch.rand(9, 70, device="cuda") < 0.3).to(torch.uint8)
    w = torch.randn(65, 70, device="cuda", requires_grad=True)
    torch.library.opcheck(ops.spike_linear, (s, w, None))


KERNELS = ["events", "tiled", "tensor_core", "dense"]  # "dense" on CUDA: the tensor-core kernel
# Tails of the 64 x 64 x 32 tiles, K off and on the 16-byte spike loads (48: a last, partial K step after full
# ones), more row tiles than a grid's 65535 (the kernels stride over them), and an empty K.
KERNEL_SHAPES = [(1, 1, 1), (5, 7, 3), (33, 1025, 129), (64, 64, 64), (130, 48, 70), (65, 96, 200),
                 (300, 2000, 64), (4_200_000, 2, 3), (7, 0, 5)]


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("M,K,N", KERNEL_SHAPES)
@pytest.mark.parametrize("rate", [0.0, 0.03, 0.5, 1.0])
def test_each_spike_gemm_kernel_is_exact_on_integers(kernel, M, K, N, rate):
    """Integer rows and bias: every partial sum is exact in float32, so each kernel must equal the float64
    reference bit for bit, in both rows layouts, with and without bias, transposed or not, in float32 and
    (rounded once) float16 / bfloat16."""
    from spikeops import _ops

    if M * K > 1e6 and rate != 0.5:
        pytest.skip("one rate is enough for the grid-stride shape")
    g = torch.Generator().manual_seed(M * 31 + K * 7 + N)
    s = (torch.rand(M, K, generator=g) < rate).to(torch.uint8)
    s[s.bool()] = torch.randint(1, 256, (int(s.sum()),), generator=g).to(torch.uint8)  # any nonzero byte: 1 spike
    w = torch.randint(-8, 9, (N, K), generator=g).float()
    b = torch.randint(-8, 9, (N,), generator=g).float()
    product = (s != 0).double() @ w.double().t()
    sd = s.cuda()
    for packed in (True, False):
        rows = (_ops.pack_weight(w) if packed else w.t().contiguous()).cuda()
        layout = _C.RowsLayout.packed if packed else _C.RowsLayout.row_major
        for bias in (b, None):
            want = (product if bias is None else product + bias.double()).float()
            for transposed in (False, True):
                for out_dtype in DTYPES:
                    got = _ops._accumulate(sd, rows, layout, None if bias is None else bias.cuda(), N, out_dtype,
                                           kernel, -1.0, out_transposed=transposed)
                    got = (got.t() if transposed else got).cpu()
                    assert torch.equal(got, want.to(out_dtype)), (packed, bias is None, transposed, out_dtype)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("rate", [0.0, 0.02, 0.3, 1.0])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_spike_linear_each_kernel_cuda_equals_cpu(kernel, rate, dtype):
    """Random weights through spike_linear with the kernel forced, forward and both gradients (the weight
    gradient goes through the same kernel with a transposed output): float32 weights need all three bf16 terms
    on the tensor cores, float16 ones two, bfloat16 ones one."""
    from spikeops import functional

    s = (torch.rand(3, 67, 530) < rate).float()
    w = torch.randn(130, 530).to(dtype)
    b = torch.randn(130).to(dtype)
    results = []
    for device in ("cpu", "cuda"):
        sd = s.to(device).requires_grad_(True)
        wd, bd = w.to(device).requires_grad_(True), b.to(device).requires_grad_(True)
        y = functional.spike_linear(sd, wd, bd, kernel=kernel if device == "cuda" else "events")
        (y.float() * torch.linspace(-1, 1, y.numel(), device=device).view(y.shape)).sum().backward()
        results.append([t.float().cpu() for t in (y, sd.grad, wd.grad, bd.grad)])
    # float32: the sums of up to 530 (forward) or 201 (weight gradient) terms differ in order between kernels
    tol = dict(rtol=1e-5, atol=1e-6 * 530) if dtype == torch.float32 else dict(rtol=2e-2, atol=2e-2)
    for gpu, cpu in zip(*results[::-1]):
        torch.testing.assert_close(gpu, cpu, **tol)


def test_spike_gemm_kernel_dispatch_cuda(monkeypatch):
    """With kernel="auto" the rate estimate reaches the core on CUDA (which picks with the policy), and every rate
    gives the CPU's result, whichever kernel runs; a small product passes no estimate."""
    from spikeops import functional

    seen = []
    accumulate = _C.spike_accumulate
    monkeypatch.setattr(_C, "spike_accumulate", lambda *a: (seen.append((a[6], a[7])), accumulate(*a))[1])
    K, N = 1024, 256
    M = _C.SPIKE_GEMM_RATE_MIN_MACS // (K * N)
    w = torch.randint(-4, 5, (N, K)).float()
    for rate in (0.0, 0.01, _C.CUDA_TILED_ABOVE_RATE + 0.03, _C.CUDA_TENSOR_CORE_ABOVE_RATE + 0.1, 1.0):
        s = (torch.rand(M, K) < rate).to(torch.uint8)
        seen.clear()
        got = functional.spike_linear(s.cuda(), w.cuda()).cpu()
        assert len(seen) == 1 and seen[0][0] == _C.SpikeGemmKernel.auto and abs(seen[0][1] - rate) < 0.05
        assert torch.equal(got, functional.spike_linear(s, w, kernel="events"))
    seen.clear()
    functional.spike_linear((torch.rand(30, 40) < 0.5).to(torch.uint8).cuda(), torch.randn(20, 40).cuda())
    assert seen == [(_C.SpikeGemmKernel.auto, -1.0)]


def test_spike_tensor_network_cuda_equals_cpu():
    """SpikeTensors on the GPU: neuron bytes, max pooling (on a half copy there), conv and spike GEMM backward."""
    from spikeops import SpikeTensor, layer

    def make():
        torch.manual_seed(11)
        return torch.nn.Sequential(
            layer.Conv2d(1, 6, 3, padding=1, step_mode="m"), neuron.LIFNode(step_mode="m", spike_tensor=True),
            layer.MaxPool2d(2, step_mode="m"), layer.Conv2d(6, 8, 3, step_mode="m"),
            neuron.IFNode(step_mode="m", spike_tensor=True), layer.Flatten(step_mode="m"),
            layer.Linear(8 * 2 * 2, 5, step_mode="m"), neuron.LIFNode(step_mode="m"))

    x = torch.rand(4, 3, 1, 8, 8) * 6
    results = []
    for device in ("cpu", "cuda"):
        net = make().to(device)
        hidden = net[:3](x.to(device))
        assert isinstance(hidden, SpikeTensor) and hidden.spikes.device.type == device
        for m in net:
            if hasattr(m, "reset"):
                m.reset()
        out = net(x.to(device))
        out.sum().backward()
        results.append((hidden.spikes.cpu(), out.detach().cpu(), [p.grad.cpu() for p in net.parameters()]))
    (h_cpu, o_cpu, g_cpu), (h_gpu, o_gpu, g_gpu) = results
    assert torch.equal(h_cpu, h_gpu)
    torch.testing.assert_close(o_gpu, o_cpu)
    for a, b in zip(g_gpu, g_cpu):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_spike_conv2d_cuda_equals_cpu(layout):
    """spike_conv2d on CUDA (the core's accumulate-only kernels) against the CPU's event-driven kernels: integer
    weights and gradients, so every sum is exact; the layout of the spikes is kept; opcheck on the GPU."""
    from spikeops import functional

    torch.manual_seed(5)
    x = (torch.rand(3, 6, 9, 8) < 0.2).to(torch.uint8)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    w = torch.randint(-4, 5, (8, 3, 3, 3)).float()
    b = torch.randint(-4, 5, (8,)).float()
    results = []
    for device in ("cpu", "cuda"):
        wd = w.to(device).requires_grad_(True)
        y = functional.spike_conv2d(x.to(device), wd, b.to(device), 2, 1, 1, 2)
        assert y.is_contiguous(memory_format=torch.channels_last if layout == "channels_last" else
                               torch.contiguous_format)
        g = torch.randint(-3, 4, y.shape, generator=torch.Generator().manual_seed(1)).float()
        y.backward(g.to(device))
        results.append((y.detach().cpu(), wd.grad.cpu()))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=0, atol=0)
    torch.testing.assert_close(results[1][1], results[0][1], rtol=0, atol=0)
    torch.library.opcheck(torch.ops.spikeops.spike_conv2d, (x.cuda(), w.cuda().requires_grad_(True), b.cuda(),
                                                            [2, 1], [1, 1], [1, 2], 2))


# ---- The C++ runtime (spikeops::Model) on the GPU against the same runtime on the CPU ----

def assert_runtime_same_on_gpu(net, x, T, encoding, path, batches):
    """Export `net`, run it with the C++ runtime on the CPU and on the GPU for each (seed, batch size):
    identical scores, predictions and report counters (with dyadic weights and inputs every sum is exact)."""
    spikeops.export(net, path, x[:1], T=T, encoding=encoding)
    cpu = spikeops.runtime.load(path)
    gpu = spikeops.runtime.load(path, device="cuda")
    assert gpu.device == torch.device("cuda", torch.cuda.current_device())
    for seed, n in batches:
        s_cpu, p_cpu = cpu(x[:n], seed=seed)
        s_gpu, p_gpu = gpu(x[:n], seed=seed)
        assert s_cpu.abs().sum() > 0
        assert torch.equal(s_cpu, s_gpu) and torch.equal(p_cpu, p_gpu)
    keys = ("synaptic_ops", "dense_macs", "spikes", "neuron_steps")
    assert [[r[k] for k in keys] for r in cpu.reports()] == [[r[k] for k in keys] for r in gpu.reports()]


@pytest.mark.parametrize("encoding", ["direct", "poisson"])
def test_runtime_cuda_equals_cpu(tmp_path, encoding):
    """Every layer kind; the Poisson encoder draws the same spikes on both devices. One sample first: the
    device buffers grow, then are reused."""
    torch.manual_seed(1)
    net = dyadic_(mixed_net("m"), gain=4)
    x = torch.randint(0, 17, (33, 2, 13, 11)).float() / 16
    assert_runtime_same_on_gpu(net, x, 6, encoding, tmp_path / "mixed.spikeops", ((0, 1), (0, 33), (5, 33)))


@pytest.mark.parametrize("encoding", ["direct", "poisson"])
def test_runtime_cuda_layer_combinations(tmp_path, encoding):
    """The combinations the mixed network lacks: a neuron fed the (Poisson) input directly, max pooling of real
    values, average pooling of spikes, a linear layer on real values at every step, a real-valued last layer."""
    torch.manual_seed(3)
    net = torch.nn.Sequential(
        neuron.IFNode(v_threshold=0.5, step_mode="m"),
        layer.Conv2d(2, 4, 3, padding=1, step_mode="m"),
        layer.MaxPool2d(2, step_mode="m"),
        neuron.LIFNode(tau=2.0, step_mode="m"),
        layer.AvgPool2d(2, step_mode="m"),
        layer.Flatten(step_mode="m"),
        layer.Linear(4 * 2 * 2, 6, step_mode="m"),
    )
    dyadic_(net, gain=4)
    x = torch.randint(0, 17, (20, 2, 9, 8)).float() / 16
    assert_runtime_same_on_gpu(net, x, 5, encoding, tmp_path / "combos.spikeops", ((1, 3), (1, 20)))


def test_runtime_cuda_csnn_equals_python(tmp_path):
    path, x, expected = exported_csnn(tmp_path, 40)
    scores, predictions = spikeops.runtime.load(path, device="cuda")(x)
    assert expected.sum() > 0
    torch.testing.assert_close(scores, expected, rtol=0, atol=0)
    assert torch.equal(predictions, expected.argmax(1))


def test_neuron_backward_refuses_surrogate_grad_seq_on_another_device():
    saved = torch.randn(1, 3, 4, device="cuda")
    with pytest.raises(ValueError, match=r"spikeops::neuron_backward: .*surrogate_grad_seq"):
        ops.neuron_backward(torch.ones(3, 4, device="cuda"), None, None, saved, torch.zeros(4, device="cuda"), None,
                            torch.ones(3, 4), 1, 1.0, 0.0, 2.0, True, [], False, int(_C.SurrogateKind.Sigmoid), 4.0,
                            0.0, torch.float32)
