"""The kernel-choice policy of the core (kernel_policy.hpp) through the bindings, and the explicit ``kernel``
argument that forces a kernel: its validation, torch.library.opcheck of the ops with it, torch.compile with it."""

import math

import pytest
import torch
import torch.nn.functional as F

from spikeops import _C, _ops, functional, layer

ops = torch.ops.spikeops
GEMM = _C.SpikeGemmKernel
CONV = _C.SpikeConvKernel
CPU, CUDA = _C.Device.cpu, _C.Device.cuda


def spikes_at(shape, rate, dtype=torch.uint8):
    return (torch.rand(shape) < rate).to(dtype)


def above(x):
    return math.nextafter(x, 2.0)


def gemm_problem(device, weight_gradient=False, n=None):
    """The smallest product whose kernel depends on the rate (K = M = 1024)."""
    n = _C.SPIKE_GEMM_RATE_MIN_MACS // (1024 * 1024) if n is None else n
    return _C.SpikeGemmProblem(1024, 1024, n, weight_gradient, device)


# ---- the policy ----

def test_thresholds_are_ordered_rates():
    for name in ("CPU_DENSE_ABOVE_RATE", "CPU_DENSE_ABOVE_RATE_WEIGHT_GRADIENT", "CUDA_TILED_ABOVE_RATE",
                 "CUDA_TENSOR_CORE_ABOVE_RATE", "CPU_CONV_DENSE_ABOVE_RATE", "CPU_CONV_DENSE_ABOVE_RATE_WEIGHT_GRADIENT"):
        assert 0.0 < getattr(_C, name) < 1.0, name
    assert _C.CUDA_TILED_ABOVE_RATE < _C.CUDA_TENSOR_CORE_ABOVE_RATE
    assert isinstance(_C.SPIKE_GEMM_RATE_MIN_MACS, int) and _C.SPIKE_GEMM_RATE_MIN_MACS > 0


@pytest.mark.parametrize("device", [CPU, CUDA], ids=str)
def test_spike_gemm_needs_a_rate_from_the_minimum_size_on(device):
    assert _C.spike_gemm_needs_firing_rate(gemm_problem(device))
    smaller = gemm_problem(device)
    smaller.N -= 1
    assert not _C.spike_gemm_needs_firing_rate(smaller)
    assert not _C.spike_gemm_needs_firing_rate(_C.SpikeGemmProblem(0, 1 << 20, 1 << 20, False, device))
    # M * K * N beyond int64 is large, not negative
    assert _C.spike_gemm_needs_firing_rate(_C.SpikeGemmProblem(1 << 40, 1 << 40, 1 << 40, False, device))


def test_spike_gemm_cpu_boundaries():
    for weight_gradient, threshold in ((False, _C.CPU_DENSE_ABOVE_RATE),
                                       (True, _C.CPU_DENSE_ABOVE_RATE_WEIGHT_GRADIENT)):
        p = gemm_problem(CPU, weight_gradient)
        assert _C.choose_spike_gemm_kernel(p, threshold) == GEMM.events
        assert _C.choose_spike_gemm_kernel(p, above(threshold)) == GEMM.dense
        assert _C.choose_spike_gemm_kernel(p, -1.0) == GEMM.events  # unknown
        assert _C.choose_spike_gemm_kernel(gemm_problem(CPU, weight_gradient, n=255), 1.0) == GEMM.events  # small
    assert _C.CPU_DENSE_ABOVE_RATE_WEIGHT_GRADIENT < _C.CPU_DENSE_ABOVE_RATE


def test_spike_gemm_cuda_boundaries():
    p = gemm_problem(CUDA)
    assert _C.choose_spike_gemm_kernel(p, _C.CUDA_TILED_ABOVE_RATE) == GEMM.events
    assert _C.choose_spike_gemm_kernel(p, above(_C.CUDA_TILED_ABOVE_RATE)) == GEMM.tiled_events
    assert _C.choose_spike_gemm_kernel(p, _C.CUDA_TENSOR_CORE_ABOVE_RATE) == GEMM.tiled_events
    assert _C.choose_spike_gemm_kernel(p, above(_C.CUDA_TENSOR_CORE_ABOVE_RATE)) == GEMM.tensor_core
    p.tensor_cores = False  # a GPU without them: the tiled kernel at every rate above its threshold
    assert _C.choose_spike_gemm_kernel(p, 1.0) == GEMM.tiled_events
    assert _C.choose_spike_gemm_kernel(gemm_problem(CUDA, n=255), 1.0) == GEMM.events


def test_spike_conv2d_boundaries():
    for weight_gradient, threshold in ((False, _C.CPU_CONV_DENSE_ABOVE_RATE),
                                       (True, _C.CPU_CONV_DENSE_ABOVE_RATE_WEIGHT_GRADIENT)):
        p = _C.SpikeConv2dProblem(2, 3, 8, 8, 4, 3, 3, weight_gradient, CPU)
        assert _C.spike_conv2d_needs_firing_rate(p)
        assert _C.choose_spike_conv2d_kernel(p, threshold) == CONV.events
        assert _C.choose_spike_conv2d_kernel(p, above(threshold)) == CONV.dense
        assert _C.choose_spike_conv2d_kernel(p, -1.0) == CONV.events
    empty = _C.SpikeConv2dProblem(0, 3, 8, 8, 4, 3, 3, False, CPU)
    assert not _C.spike_conv2d_needs_firing_rate(empty)
    # CUDA: the core's accumulate-only kernel at every rate
    cuda = _C.SpikeConv2dProblem(2, 3, 8, 8, 4, 3, 3, False, CUDA)
    assert not _C.spike_conv2d_needs_firing_rate(cuda)
    assert _C.choose_spike_conv2d_kernel(cuda, 1.0) == CONV.events


def test_policy_refuses_bad_arguments():
    with pytest.raises(ValueError, match="spike_gemm_needs_firing_rate: problem.M must be non-negative, got -1"):
        _C.spike_gemm_needs_firing_rate(_C.SpikeGemmProblem(-1, 4, 4))
    with pytest.raises(ValueError, match="choose_spike_gemm_kernel: problem.N must be non-negative"):
        _C.choose_spike_gemm_kernel(_C.SpikeGemmProblem(4, 4, -4), 0.5)
    with pytest.raises(ValueError, match="choose_spike_gemm_kernel: firing_rate must be at most 1"):
        _C.choose_spike_gemm_kernel(gemm_problem(CPU), 1.5)
    with pytest.raises(ValueError, match="firing_rate must be at most 1"):
        _C.choose_spike_gemm_kernel(gemm_problem(CUDA), float("nan"))
    with pytest.raises(ValueError, match="choose_spike_conv2d_kernel: problem.kw must be non-negative"):
        _C.choose_spike_conv2d_kernel(_C.SpikeConv2dProblem(1, 1, 4, 4, 1, 3, -3), 0.1)
    with pytest.raises(ValueError, match="spike_conv2d_needs_firing_rate: problem.C must be non-negative"):
        _C.spike_conv2d_needs_firing_rate(_C.SpikeConv2dProblem(1, -1, 4, 4, 1, 3, 3))
    with pytest.raises(ValueError, match="choose_spike_conv2d_kernel: firing_rate must be at most 1"):
        _C.choose_spike_conv2d_kernel(_C.SpikeConv2dProblem(1, 1, 4, 4, 1, 3, 3), 2.0)


# ---- the kernel argument ----

def test_unknown_kernels_are_refused_naming_the_argument():
    s, w = spikes_at((3, 5), 0.5), torch.randn(4, 5)
    x, wc = spikes_at((1, 2, 5, 5), 0.5), torch.randn(3, 2, 3, 3)
    gemm_values = "'auto', 'events', 'tiled', 'tensor_core', 'dense'"
    conv_values = "'auto', 'events', 'dense'"
    for bad in ("fast", "", "Events", "tiled_events"):
        with pytest.raises(ValueError, match=f"spike_linear: kernel must be one of {gemm_values}, got '{bad}'"):
            functional.spike_linear(s, w, kernel=bad)
        with pytest.raises(ValueError, match=f"spike_linear: kernel must be one of {gemm_values}"):
            ops.spike_linear(s, w, None, bad)
        with pytest.raises(ValueError, match=f"spike_accumulate_rows_t: kernel must be one of {gemm_values}"):
            ops.spike_accumulate_rows_t(s, torch.randn(5, 2), torch.float32, bad)
        with pytest.raises(ValueError, match=f"Linear: kernel must be one of {gemm_values}"):
            layer.Linear(5, 4, kernel=bad)
        with pytest.raises(ValueError, match=f"spike_conv2d: kernel must be one of {conv_values}, got '{bad}'"):
            functional.spike_conv2d(x, wc, kernel=bad)
        with pytest.raises(ValueError, match=f"spike_conv2d: kernel must be one of {conv_values}"):
            ops.spike_conv2d(x, wc, None, [1, 1], [0, 0], [1, 1], 1, bad)
        with pytest.raises(ValueError, match=f"spike_conv2d_weight_grad: kernel must be one of {conv_values}"):
            ops.spike_conv2d_weight_grad(x, torch.randn(1, 3, 3, 3), [3, 2, 3, 3], [1, 1], [0, 0], [1, 1], 1,
                                         torch.float32, bad)
        with pytest.raises(ValueError, match=f"Conv2d: kernel must be one of {conv_values}"):
            layer.Conv2d(2, 3, 3, kernel=bad)
    with pytest.raises(ValueError, match="spike_conv2d: kernel must be one of"):
        functional.spike_conv2d(x, wc, kernel="tiled")  # a GEMM kernel, not a convolution's


@pytest.mark.parametrize("kernel", ["auto", "events", "dense"])
def test_forced_kernels_give_the_same_result(kernel):
    """Integer weights: every kernel's sums are exact, so all equal F.linear / F.conv2d bit for bit, forward and
    weight gradient (which runs with the forward's kernel)."""
    s = spikes_at((37, 300), 0.3)
    w = torch.randint(-8, 9, (70, 300)).float().requires_grad_(True)
    y = functional.spike_linear(s, w, kernel=kernel)
    assert torch.equal(y, F.linear(s.float(), w.detach()))
    dy = torch.randint(-3, 4, y.shape).float()
    y.backward(dy)
    assert torch.equal(w.grad, dy.t() @ s.float())
    x = spikes_at((2, 4, 9, 9), 0.3)
    wc = torch.randint(-8, 9, (6, 4, 3, 3)).float().requires_grad_(True)
    yc = functional.spike_conv2d(x, wc, padding=1, kernel=kernel)
    assert torch.equal(yc, F.conv2d(x.float(), wc.detach(), padding=1))
    yc.sum().backward()
    assert torch.equal(wc.grad, torch.nn.grad.conv2d_weight(x.float(), wc.shape, torch.ones_like(yc), padding=1))


def test_layers_pass_their_kernel(monkeypatch):
    lin = layer.Linear(20, 6, kernel="dense", step_mode="m")
    conv = layer.Conv2d(2, 3, 3, kernel="events")
    assert lin.kernel == "dense" and "kernel='dense'" in repr(lin)
    assert conv.kernel == "events" and "kernel='events'" in repr(conv)
    seen = []  # the kernel each op plans with (observed, passed on unchanged)
    gemm_plan, conv_plan = _ops.spike_linear._plan, _ops.spike_conv._conv_plan
    monkeypatch.setattr(_ops.spike_linear, "_plan", lambda *a: (seen.append(a[3]), gemm_plan(*a))[1])
    monkeypatch.setattr(_ops.spike_conv, "_conv_plan", lambda *a: (seen.append(a[4]), conv_plan(*a))[1])
    x = spikes_at((3, 4, 20), 0.2)
    torch.testing.assert_close(lin(x), F.linear(x.float(), lin.weight, lin.bias))
    xc = spikes_at((2, 2, 5, 5), 0.2)
    torch.testing.assert_close(conv(xc), F.conv2d(xc.float(), conv.weight, conv.bias))
    assert seen == ["dense", "events"]


@pytest.mark.parametrize("kernel", ["auto", "events", "dense"])
@pytest.mark.parametrize("spike_dtype", [torch.uint8, torch.float32], ids=str)
def test_opcheck_spike_linear_with_kernel(kernel, spike_dtype):
    s = spikes_at((9, 70), 0.3, spike_dtype)
    if spike_dtype != torch.uint8:
        s.requires_grad_(True)
    w = torch.randn(65, 70, requires_grad=True)
    b = torch.randn(65, requires_grad=True)
    torch.library.opcheck(ops.spike_linear, (s, w, b, kernel))
    torch.library.opcheck(ops.spike_accumulate_rows_t, (spikes_at((9, 30), 0.3).t(), torch.randn(9, 70),
                                                        torch.float32, kernel))


    def conv(x, w):
        return functional.spike_conv2d(x, w, padding=1, kernel=kernel)

    xs, wc = spikes_at((2, 3, 6, 6), 0.3), torch.randn(4, 3, 3, 3)
    torch.testing.assert_close(torch.compile(conv, fullgraph=True, backend="aot_eager")(xs, wc), conv(xs, wc))
