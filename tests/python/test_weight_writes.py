"""The spike GEMM always computes with the weight's current values (issue 19, item 2).

Writes that bypass autograd's version counter (``w.data.mul_``, numpy views, hand-written update rules) and
weights created under ``torch.inference_mode()`` (no version counter at all) must give the same forward and
backward as ``F.linear`` on the weight as it is at the call, through every entry point and every kernel.
"""

import pytest
import torch
import torch.nn.functional as F

from spikeops import SpikeTensor, functional, layer

from conftest import CUDA_OK

M, K, N = 40, 96, 72  # two column tiles of the CPU kernel, the second partial
KERNELS = ("events", "dense", "auto")
ENTRIES = ("functional", "layer", "spike_tensor")


def _write_data_mul(w):
    w.data.mul_(2)


def _write_numpy(w):
    w.detach().numpy()[:] = 0.25


def _write_no_grad(w):
    with torch.no_grad():
        w.mul_(-3).add_(0.5)


def _write_optimizer(w):
    w.grad = torch.ones_like(w)
    torch.optim.SGD([w], lr=0.5).step()
    w.grad = None


def _write_detach(w):
    w.detach().copy_(torch.randn_like(w))


def _write_set(w):  # replaces the storage: a new data_ptr
    w.data = torch.randn_like(w)


WRITES = {"data_mul": _write_data_mul, "numpy": _write_numpy, "no_grad": _write_no_grad,
          "optimizer": _write_optimizer, "detach": _write_detach, "set_data": _write_set}


def _spikes(device="cpu", rate=0.3, requires_grad=False):
    s = (torch.rand(M, K) < rate).float().to(device)
    return s.requires_grad_(requires_grad)


def _call(entry, spikes, weight, bias, kernel, module=None):
    """spike_linear through ``entry``; spikes are float 0/1."""
    if entry == "functional":
        return functional.spike_linear(spikes, weight, bias, kernel=kernel)
    if entry == "spike_tensor":
        st = SpikeTensor(spikes.detach().to(torch.uint8), spikes.dtype, requires_grad=spikes.requires_grad)
        return functional.spike_linear(st, weight, bias, kernel=kernel)
    return module(spikes)


def _make(entry, kernel, device="cpu"):
    """(weight, bias, module or None) for ``entry``."""
    if entry == "layer":
        module = layer.Linear(K, N, spike_input=True, kernel=kernel).to(device)
        return module.weight, module.bias, module
    w = torch.nn.Parameter(torch.randn(N, K, device=device) / K**0.5)
    b = torch.nn.Parameter(torch.randn(N, device=device))
    return w, b, None


def _check(entry, kernel, write, device="cpu"):
    weight, bias, module = _make(entry, kernel, device)
    spikes = _spikes(device)
    with torch.no_grad():
        _call(entry, spikes, weight, bias, kernel, module)  # a first call, as a training loop or inference makes
    write(weight)
    spikes.requires_grad_(entry != "spike_tensor")
    y = _call(entry, spikes, weight, bias, kernel, module)
    ref_w = weight.detach().clone().requires_grad_(True)
    ref_s = spikes.detach().clone().requires_grad_(True)
    ref = F.linear(ref_s, ref_w, bias.detach())
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(ref)
    y.backward(grad)
    ref.backward(grad)
    torch.testing.assert_close(weight.grad, ref_w.grad, rtol=1e-5, atol=1e-5)
    if entry != "spike_tensor":
        torch.testing.assert_close(spikes.grad, ref_s.grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("write", sorted(WRITES))
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("entry", ENTRIES)
def test_a_write_to_the_weight_is_seen_by_the_next_call(entry, kernel, write):
    _check(entry, kernel, WRITES[write])


@pytest.mark.parametrize("write", ["data_mul", "no_grad", "optimizer", "set_data"])
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("entry", ENTRIES)
def test_a_write_to_the_weight_is_seen_on_cuda(entry, kernel, write):
    if not CUDA_OK:
        pytest.skip("needs a CUDA GPU and a spikeops built with CUDA")
    _check(entry, kernel, WRITES[write], device="cuda")


@pytest.mark.parametrize("rate", [0.2, 0.005])  # 0.005: so few spikes that the CPU kernel gathers from the weight
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("kernel", KERNELS)
def test_repeated_in_place_updates_between_forwards(kernel, dtype, rate):
    """A hand-written update rule (STDP-like) between forwards of one layer in no_grad: every forward sees it."""
    w = torch.randn(N, K, dtype=dtype) / K**0.5
    spikes = (torch.rand(M, K) < rate).to(torch.uint8)
    spikes[0, :2] = 1
    for step in range(4):
        y = functional.spike_linear(spikes, w, None, kernel=kernel)
        torch.testing.assert_close(y.float(), F.linear(spikes.float(), w.float()), rtol=2e-2, atol=2e-2)
        w.data.add_(0.1 * (step + 1)).clamp_(-0.3, 0.3)


@pytest.mark.parametrize("kernel", KERNELS)
def test_weight_created_under_inference_mode(kernel):
    with torch.inference_mode():
        w = torch.randn(N, K) / K**0.5
        b = torch.randn(N)
        module = layer.Linear(K, N, spike_input=True, kernel=kernel)
    spikes = _spikes()
    with torch.inference_mode():
        y = functional.spike_linear(spikes, w, b, kernel=kernel)
        torch.testing.assert_close(y, F.linear(spikes, w, b), rtol=1e-5, atol=1e-5)
        w.mul_(2)  # inference tensors have no version counter at all
        y = functional.spike_linear(spikes, w, b, kernel=kernel)
        torch.testing.assert_close(y, F.linear(spikes, w, b), rtol=1e-5, atol=1e-5)
        y = module(spikes)
        torch.testing.assert_close(y, F.linear(spikes, module.weight, module.bias), rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # an inference-mode weight used outside inference mode
        y = functional.spike_linear(spikes.to(torch.uint8), w, b, kernel=kernel)
        torch.testing.assert_close(y, F.linear(spikes, w, b), rtol=1e-5, atol=1e-5)
        y = module(SpikeTensor(spikes.to(torch.uint8)))
        torch.testing.assert_close(y, F.linear(spikes, module.weight, module.bias), rtol=1e-5, atol=1e-5)
