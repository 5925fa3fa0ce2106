"""The torch.library ops: opcheck (schema, fake tensors, autograd registration, AOT dispatch) and gradcheck on
the parts of the neuron that are smooth functions of their inputs."""

import pytest
import torch

from spikeops import _C, _ops  # noqa: F401  (registers torch.ops.spikeops)

ops = torch.ops.spikeops
IF, LIF, PLIF = 0, 1, 2
SIGMOID = int(_C.SurrogateKind.Sigmoid)
ATAN = int(_C.SurrogateKind.ATan)
PLRELU = int(_C.SurrogateKind.PiecewiseLeakyReLU)


def neuron_args(kind, T=5, N=19, dtype=torch.float32, v_reset=0.0, decay_input=True, detach_reset=False,
                spike_dtype=None, store_saved=True, store_v=False, requires_grad=True, surrogate=SIGMOID,
                alpha=4.0, beta=0.0, state_2d=False):
    """neuron_forward's arguments: (x_seq, state_init, learnable, *flags) with flags from neuron_kind on."""
    x = (torch.randn(T, N) * 1.5 + 0.6).to(dtype).requires_grad_(requires_grad)
    v = (torch.randn(1, N) if state_2d else torch.randn(N)) * 0.3
    v.requires_grad_(requires_grad)
    learnable = torch.tensor([0.4], requires_grad=requires_grad) if kind == PLIF else None
    return (x, v, learnable, kind, 1.0, v_reset, 2.0, decay_input, [], detach_reset, surrogate, alpha, beta,
            spike_dtype or dtype, store_saved, store_v)


def backward_flags(flags):
    """neuron_backward's arguments from neuron_kind to beta, out of neuron_args' flags."""
    return flags[:10]


NEURON_CASES = [
    dict(kind=IF), dict(kind=LIF), dict(kind=PLIF),
    dict(kind=LIF, v_reset=None, store_v=True), dict(kind=PLIF, decay_input=False, detach_reset=True),
    dict(kind=LIF, dtype=torch.float16), dict(kind=IF, dtype=torch.bfloat16, surrogate=ATAN, alpha=2.0),
    dict(kind=LIF, spike_dtype=torch.uint8, requires_grad=False, store_saved=False),
    dict(kind=LIF, surrogate=PLRELU, alpha=1.0, beta=0.01, store_v=True),
    dict(kind=LIF, N=0), dict(kind=IF, T=0),
    dict(kind=LIF, state_2d=True, store_v=True), dict(kind=PLIF, state_2d=True),  # state_init [S, N], S = 1
]


@pytest.mark.parametrize("case", NEURON_CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_opcheck_neuron_forward(case):
    torch.library.opcheck(ops.neuron_forward, neuron_args(**case))


@pytest.mark.parametrize("kind", [IF, LIF, PLIF])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_neuron_forward_reads_a_repeated_row_in_place(kind, dtype):
    """x_seq = row.expand(T, N) (strides (0, 1)) gives what the row copied T times gives, outputs and gradients
    (the row's gradient is the sum over the steps); opcheck with such an input."""
    row = (torch.randn(1, 37) * 1.5 + 0.6).to(dtype)
    _, v, learnable, *flags = neuron_args(kind, T=6, N=37, dtype=dtype, store_v=True)
    results = []
    for repeated in (True, False):
        r = row.clone().requires_grad_(True)
        x = r.expand(6, 37) if repeated else r.repeat(6, 1)
        assert (x.stride(0) == 0) == repeated
        v_i = v.detach().clone().requires_grad_(True)
        outs = ops.neuron_forward(x, v_i, learnable, *flags)
        (outs[0].float().sum() + (outs[1] * 0.5).sum() + outs[3].sum()).backward()
        results.append((outs, r.grad, v_i.grad))
    (outs_e, gr_e, gv_e), (outs_c, gr_c, gv_c) = results
    for a, b in zip(outs_e, outs_c):
        assert torch.equal(a, b)
    torch.testing.assert_close(gr_e, gr_c)
    assert torch.equal(gv_e, gv_c)
    torch.library.opcheck(ops.neuron_forward, (row.expand(6, 37).requires_grad_(False), v.detach(), learnable,
                                               *flags))


@pytest.mark.parametrize("kind", [IF, LIF, PLIF])
@pytest.mark.parametrize("with_v_grads", [False, True])
@pytest.mark.parametrize("with_surrogate_grad", [False, True])
@pytest.mark.parametrize("state_2d", [False, True])
def test_opcheck_neuron_backward(kind, with_v_grads, with_surrogate_grad, state_2d):
    x, v, learnable, *flags = neuron_args(kind, requires_grad=False, state_2d=state_2d)
    _, _, saved, _ = ops.neuron_forward(x, v, learnable, *flags)
    assert saved.shape == (1,) + x.shape
    grad_s = torch.randn_like(x)
    grad_v_seq = torch.randn_like(x) if with_v_grads else None
    grad_state_final = torch.randn_like(v) if with_v_grads else None
    surrogate_grad_seq = torch.rand_like(x) if with_surrogate_grad else None
    torch.library.opcheck(ops.neuron_backward, (grad_s, grad_v_seq, grad_state_final, saved, v, learnable,
                                                surrogate_grad_seq, *backward_flags(flags), torch.float32))


@pytest.mark.parametrize("kind", [IF, LIF, PLIF])
def test_neuron_backward_surrogate_grad_seq_replaces_the_kernel_surrogate(kind):
    """surrogate_grad_seq = the kernel's own σ'(u) at the saved H gives the gradients of the kernel's surrogate;
    another σ' changes them (the argument is read, not ignored)."""
    x, v, learnable, *flags = neuron_args(kind, requires_grad=False)
    _, _, saved, _ = ops.neuron_forward(x, v, learnable, *flags)
    grad_s = torch.randn_like(x)
    args = (grad_s, None, None, saved, v, learnable)
    want = ops.neuron_backward(*args, None, *backward_flags(flags), torch.float32)
    u = (saved[0] - 1.0).requires_grad_(True)  # v_threshold 1.0, sigmoid surrogate with alpha 4.0
    sg = 4.0 * torch.sigmoid(4.0 * u) * (1.0 - torch.sigmoid(4.0 * u))
    got = ops.neuron_backward(*args, sg.detach().contiguous(), *backward_flags(flags), torch.float32)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)  # σ' rounds differently in torch and the kernel
    other = ops.neuron_backward(*args, torch.full_like(x, 0.25), *backward_flags(flags), torch.float32)
    assert not torch.allclose(other[0], want[0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_opcheck_spike_fn_and_surrogate_backward(dtype):
    x = torch.randn(7, 13).to(dtype).requires_grad_(True)
    torch.library.opcheck(ops.spike_fn, (x, ATAN, 2.0, 0.0))
    g = torch.randn(7, 13).to(dtype)
    torch.library.opcheck(ops.surrogate_backward, (g, x.detach(), PLRELU, 1.0, 0.01))


def test_backward_without_saved_is_a_clear_error():
    x, v, learnable, *flags = neuron_args(LIF, store_saved=False)
    spikes, *_ = ops.neuron_forward(x, v, learnable, *flags)
    with pytest.raises(RuntimeError, match="store_saved"):
        spikes.sum().backward()


# ---- gradcheck on the smooth parts ----
#
# The spike output is a step function whose gradient is the surrogate by design, so it is not gradchecked.
# With detach_reset=True the membrane potentials v_seq and state_final are piecewise-linear functions of x,
# state_init and (ParametricLIF) the learnable decay, smooth wherever no spike flips. The kernels compute in
# float32, so the check runs in float64 through a float32 cast, with eps well inside the distance of every H to
# the threshold.

@pytest.mark.parametrize("kind", [IF, LIF, PLIF])
@pytest.mark.parametrize("v_reset", [0.0, None])
@pytest.mark.parametrize("decay_input", [True, False])
def test_gradcheck_membrane_potential(kind, v_reset, decay_input):
    if kind == IF and not decay_input:
        pytest.skip("IF has no decay_input")
    T, N = 6, 8
    x = (torch.randn(T, N, dtype=torch.float64) * 1.5 + 0.6).requires_grad_(True)
    v0 = (torch.randn(N, dtype=torch.float64) * 0.3).requires_grad_(True)
    decay = torch.tensor([0.4], dtype=torch.float64, requires_grad=True)
    flags = (kind, 1.0, v_reset, 2.0, decay_input, [], True, SIGMOID, 4.0, 0.0, torch.float32, True, True)

    def membrane(x, v0, decay):
        d = decay.float() if kind == PLIF else None
        spikes, v_final, _, v_seq = ops.neuron_forward(x.float(), v0.float(), d, *flags)
        return v_seq.double(), v_final.double()

    d = decay.detach().float() if kind == PLIF else None
    _, _, saved, _ = ops.neuron_forward(x.detach().float(), v0.detach().float(), d, *flags)
    margin = (saved[0] - 1.0).abs().min().item()  # saved[0]: H
    assert margin > 1e-4, "pick another seed: an H lies on the threshold"
    eps = min(1e-3, margin / 8)
    inputs = (x, v0, decay) if kind == PLIF else (x, v0, decay.detach())
    assert torch.autograd.gradcheck(membrane, inputs, eps=eps, atol=2e-3, rtol=2e-3)


def test_cpu_kernels_follow_torch_set_num_threads():
    from spikeops import neuron

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        neuron.LIFNode(step_mode="m")(torch.randn(3, 8))
        assert _C.cpu_threads() == 1
    finally:
        torch.set_num_threads(before)
    neuron.LIFNode(step_mode="m")(torch.randn(3, 8))
    assert _C.cpu_threads() == before
    with pytest.raises(ValueError, match="n must be >= 1"):
        _C.set_cpu_threads(0)


# ---- every neuron model: the op pair is generic over NeuronKind ----

# Valid model parameters per kind (NeuronParams::extra, in neuron_info's extra_names order), and whether the
# model has the hard reset.
MODEL_EXTRA = {"QIF": [0.8, 1.0, 0.0], "EIF": [1.0, 0.8, 0.0], "Izhikevich": [0.8, 1.0, -0.1, 2.0, 0.3, 0.2],
               "ALIF": [0.9, 0.2], "KLIF": [1.0], "CUBALIF": [0.5, 0.75]}
SOFT_ONLY = {"ComplementaryLIF", "GatedLIF"}


def model_args(kind, T=5, N=19, v_reset=0.0):
    info = _ops.neuron_info(kind)
    name, S, P = info["name"], info["states"], info["learnable"]
    x = (torch.randn(T, N) * 1.5 + 0.6).requires_grad_(True)
    state = (torch.randn(S, N) * 0.3).requires_grad_(True)
    learnable = torch.full((P,), 0.7, requires_grad=True) if P else None
    extra = MODEL_EXTRA.get(name, [])
    assert len(extra) == len(info["extra_names"]), f"add {name}'s parameters to MODEL_EXTRA"
    return (x, state, learnable, int(kind), 1.0, None if name in SOFT_ONLY else v_reset, 2.0, True, extra, False,
            SIGMOID, 4.0, 0.0, torch.float32, True, True)


@pytest.mark.parametrize("kind", list(_ops.NeuronKind), ids=lambda k: k.name)
def test_opcheck_every_model(kind):
    args = model_args(kind)
    torch.library.opcheck(ops.neuron_forward, args)
    spikes, state_final, saved, v_seq = ops.neuron_forward(*args)
    info = _ops.neuron_info(kind)
    assert saved.shape == (info["saved"], 5, 19) and state_final.shape == (info["states"], 19)
    x, state, learnable = args[:3]
    sg = torch.rand(5, 19)
    for surrogate_grad_seq in (None, sg):
        torch.library.opcheck(ops.neuron_backward, (torch.randn(5, 19), torch.randn(5, 19), torch.randn_like(state),
                                                    saved.detach(), state.detach(),
                                                    None if learnable is None else learnable.detach(),
                                                    surrogate_grad_seq, *args[3:13], torch.float32))
    # the autograd registration reaches every input that has a gradient
    (spikes.sum() + state_final.sum() + v_seq.sum()).backward()
    for t in (x, state) + ((learnable,) if learnable is not None else ()):
        assert t.grad is not None and torch.isfinite(t.grad).all()
