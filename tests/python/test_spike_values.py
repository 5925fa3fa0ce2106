"""What values the spike ops take and what they compute for them (issue 19 items 3, 5, 6): every kernel equals
the dense product on the spikes as floats, inf and NaN included, at every firing rate; signed spikes -1/0/+1
are subtracted; any other value raises an error naming the function, the argument and the value."""

import pytest
import torch
import torch.nn.functional as F

from spikeops import SpikeTensor, _ops, encoding, functional, layer, to_spike_tensor

ops = torch.ops.spikeops
INF, NAN = float("inf"), float("nan")
RATES = [0.0, 0.01, 0.2, 1.0]


def kernels(device="cpu"):
    return ["auto", "events", "dense"] + (["tiled", "tensor_core"] if device == "cuda" else [])


def assert_same(got, want, tol=1e-4):
    """Equal NaN positions, equal infinities, finite values close."""
    got, want = got.double(), want.double()
    assert torch.equal(torch.isnan(got), torch.isnan(want)), (torch.isnan(got).sum(), torch.isnan(want).sum())
    finite = torch.isfinite(want)
    assert torch.equal(got[~finite & ~torch.isnan(want)], want[~finite & ~torch.isnan(want)])
    torch.testing.assert_close(got[finite], want[finite], rtol=tol, atol=tol)


def nonfinite_weight(N, K):
    w = torch.randn(N, K)
    w[1, K // 2] = NAN
    w[2, K - 1] = INF
    if N > 3:
        w[3, 0] = -INF
    return w


@pytest.mark.parametrize("kernel", kernels())
@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("M,K,N", [(5, 7, 4), (33, 130, 65), (1, 300, 130), (200, 130, 130), (300, 70, 40)])
def test_spike_linear_nonfinite_weights_as_dense(kernel, rate, M, K, N):
    s = (torch.rand(M, K) < rate).to(torch.uint8)
    w = nonfinite_weight(N, K)
    b = torch.randn(N)
    b[0] = NAN
    want = F.linear(s.float(), w, b)
    assert_same(functional.spike_linear(s, w, b, kernel=kernel), want)
    assert_same(functional.spike_linear(s.float(), w, b, kernel=kernel), want)
    assert_same(functional.spike_linear(to_spike_tensor(s), w, b, kernel=kernel), want)


@pytest.mark.parametrize("kernel", kernels())
@pytest.mark.parametrize("rate", RATES)
def test_spike_linear_weight_gradient_with_nonfinite_output_gradient(kernel, rate):
    s = (torch.rand(40, 130) < rate).float()
    w = torch.randn(70, 130, requires_grad=True)
    g = torch.randn(40, 70)
    g[3, 5] = NAN
    g[0, 6] = INF
    functional.spike_linear(s, w, kernel=kernel).backward(g)
    assert_same(w.grad, g.t() @ s)


@pytest.mark.parametrize("kernel", ["auto", "events", "dense"])
@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("stride,groups", [(1, 1), (2, 2)])
def test_spike_conv2d_nonfinite_weights_and_gradients_as_dense(kernel, rate, stride, groups):
    x = (torch.rand(2, 4, 9, 8) < rate).to(torch.uint8)
    w = torch.randn(6, 4 // groups, 3, 3, requires_grad=True)
    with torch.no_grad():
        w[1, 0, 2, 2] = NAN
        w[2, 1, 0, 1] = INF
    b = torch.randn(6)
    y = functional.spike_conv2d(to_spike_tensor(x), w, b, stride=stride, padding=1, groups=groups, kernel=kernel)
    # the zero-padded input, explicitly: torch's own convolution multiplies the padding in some algorithms only
    padded = F.pad(x.float(), (1, 1, 1, 1))
    assert_same(y, F.conv2d(padded, w.detach(), b, stride=stride, groups=groups))
    g = torch.randn(y.shape)
    g[1, 3, 2, 1] = NAN
    g[0, 4, 0, 0] = -INF
    w.grad = None
    y.backward(g)
    assert_same(w.grad, torch.nn.grad.conv2d_weight(padded, w.shape, g, stride=stride, groups=groups))


def signed_spikes(shape, rate):
    r = torch.rand(shape)
    return torch.where(r < rate / 2, -1.0, torch.where(r < rate, 1.0, 0.0))


@pytest.mark.parametrize("kernel", kernels())
@pytest.mark.parametrize("rate", [0.05, 0.5])
def test_signed_spikes_linear_forward_and_backward(kernel, rate):
    s = signed_spikes((30, 140), rate).requires_grad_(True)
    w = torch.randn(70, 140, requires_grad=True)
    b = torch.randn(70, requires_grad=True)
    y = functional.spike_linear(s, w, b, kernel=kernel)
    s_ref, w_ref, b_ref = (t.detach().clone().requires_grad_(True) for t in (s, w, b))
    y_ref = F.linear(s_ref, w_ref, b_ref)
    torch.testing.assert_close(y, y_ref, rtol=1e-4, atol=1e-4)
    g = torch.randn(y.shape)
    y.backward(g)
    y_ref.backward(g)
    for got, want in ((s.grad, s_ref.grad), (w.grad, w_ref.grad), (b.grad, b_ref.grad)):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kernel", kernels())
def test_signed_spikes_with_nonfinite_weights_as_dense(kernel):
    s = signed_spikes((20, 50), 0.5)
    w = nonfinite_weight(8, 50)
    assert_same(functional.spike_linear(s, w, kernel=kernel), F.linear(s, w))


def test_signed_spikes_from_the_delta_encoder_reach_layer_linear():
    x = torch.randn(6, 4, 30).cumsum(0)
    spikes = encoding.delta(x, threshold=0.5, off_spike=True)
    assert (spikes == -1).any()
    lin = layer.Linear(30, 5, spike_input=True)
    torch.testing.assert_close(lin(spikes), F.linear(spikes, lin.weight, lin.bias), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernel", ["auto", "events", "dense"])
def test_signed_spikes_conv2d_forward_and_weight_gradient(kernel):
    x = signed_spikes((2, 3, 7, 7), 0.4)
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    y = ops.spike_conv2d(x, w, None, [1, 1], [1, 1], [1, 1], 1, kernel)
    torch.testing.assert_close(y, F.conv2d(x, w.detach(), padding=1), rtol=1e-4, atol=1e-4)
    g = torch.randn(y.shape)
    y.backward(g)
    torch.testing.assert_close(w.grad, torch.nn.grad.conv2d_weight(x, w.shape, g, padding=1), rtol=1e-4, atol=1e-4)


BAD_FLOATS = [0.5, 2.0, -2.0, NAN, INF]


@pytest.mark.parametrize("value", BAD_FLOATS)
def test_float_values_that_are_not_spikes_raise(value):
    s = torch.zeros(3, 8)
    s[1, 2] = value
    w = torch.randn(4, 8)
    shown = str(value)
    with pytest.raises(ValueError, match=rf"spike_linear: spikes must be spikes 0 or 1 .*e\.g\. {shown}"):
        functional.spike_linear(s, w)
    with pytest.raises(ValueError, match=rf"spike_linear: spikes must be spikes 0 or 1 .*e\.g\. {shown}"):
        ops.spike_linear(s, w, None, "events")
    with pytest.raises(ValueError, match="spike_linear: spikes .*spike_input=False"):
        layer.Linear(8, 4, spike_input=True)(s)
    x = torch.zeros(1, 2, 4, 4)
    x[0, 1, 2, 3] = value
    with pytest.raises(ValueError, match=rf"spike_conv2d: spikes must be spikes 0 or 1 .*e\.g\. {shown}"):
        ops.spike_conv2d(x, torch.randn(3, 2, 3, 3), None, [1, 1], [0, 0], [1, 1], 1, "auto")


@pytest.mark.parametrize("byte", [2, 255])
def test_bytes_above_one_raise(byte):
    s = torch.zeros(3, 8, dtype=torch.uint8)
    s[2, 7] = byte
    with pytest.raises(ValueError, match=f"spike_linear: spikes must be spikes, bytes of 0 or 1, found a byte of "
                                         f"{byte}; .*encode"):
        layer.Linear(8, 4)(s)  # raw pixels into a layer
    for kernel in ("events", "dense"):
        with pytest.raises(ValueError, match=f"found a byte of {byte}"):
            ops.spike_linear(s, torch.randn(4, 8), None, kernel)
        with pytest.raises(ValueError, match=f"spike_accumulate_rows_t: spikes .*found a byte of {byte}"):
            ops.spike_accumulate_rows_t(s, torch.randn(8, 5), torch.float32, kernel)
    x = torch.zeros(1, 2, 4, 4, dtype=torch.uint8)
    x[0, 0, 1, 1] = byte
    with pytest.raises(ValueError, match=f"spike_conv2d: spikes must be spikes, bytes of 0 or 1, found a byte of {byte}"):
        functional.spike_conv2d(x, torch.randn(3, 2, 3, 3))
    with pytest.raises(ValueError, match=f"spike_conv2d_weight_grad: spikes .*found a byte of {byte}"):
        ops.spike_conv2d_weight_grad(x, torch.randn(1, 3, 2, 2), [3, 2, 3, 3], [1, 1], [0, 0], [1, 1], 1,
                                     torch.float32, "events")


def test_spike_tensor_from_bytes_above_one_raises_at_construction():
    with pytest.raises(ValueError, match="SpikeTensor: spikes must be bytes of 0 or 1, found a byte of 2"):
        SpikeTensor(torch.tensor([[0, 2, 1]], dtype=torch.uint8))
    SpikeTensor(torch.tensor([[0, 1, 1]], dtype=torch.uint8))  # 0/1: fine
    assert to_spike_tensor(torch.tensor([0, 2], dtype=torch.uint8)).spikes.tolist() == [0, 1]  # explicit conversion


def test_spike_tensor_bytes_are_not_read_again_by_the_ops(monkeypatch):
    """A SpikeTensor's bytes were checked when it was made: the ops take them without another pass."""
    s = to_spike_tensor((torch.rand(6, 20) < 0.3).float())
    w = torch.randn(5, 20, requires_grad=True)
    calls = []
    original = _ops.spike_values.spike_operand

    def counting(spikes, fn, arg="spikes"):
        out = original(spikes, fn, arg)
        calls.append(out.positive is spikes)  # the bytes as they are: nothing read or converted
        return out

    monkeypatch.setattr(_ops.spike_linear, "spike_operand", counting)
    functional.spike_linear(s, w).sum().backward()
    assert calls == [True, True]
    user_bytes = torch.zeros(6, 20, dtype=torch.uint8)
    with pytest.raises(ValueError, match="found a byte of 3"):
        user_bytes[0, 0] = 3
        functional.spike_linear(user_bytes, w)


@pytest.mark.parametrize("op", ["stack", "cat"])
def test_stack_and_cat_of_spike_tensors_promote_dtypes(op):
    a = to_spike_tensor(torch.tensor([[0.0, 1.0]]), torch.bfloat16)
    b = to_spike_tensor(torch.tensor([[1.0, 1.0]]), torch.float32)
    fn = getattr(torch, op)
    for pair in ((a, b), (b, a)):
        out = fn(pair)
        dense = fn([t.dense() for t in pair])
        assert isinstance(out, SpikeTensor) and out.dtype == dense.dtype == torch.float32
        assert torch.equal(out.dense(), dense)
    assert fn((a, a)).dtype == torch.bfloat16
