"""Bad arguments give a clear Python exception that names the argument, never a crash; empty tensors are not
errors.

Three layers are checked: the modules (friendly checks in Python), the surrogates and ``functional`` helpers,
and the raw ``torch.ops.spikeops`` ops, whose arguments the C++ core validates again (``spikeops::Error``
derives from ``std::invalid_argument`` and reaches Python as ``ValueError``).
"""

import math

import pytest
import torch
from torch import nn

from spikeops import _ops, functional, layer, neuron, surrogate

ops = torch.ops.spikeops

NODE_CLASSES = (neuron.IFNode, neuron.LIFNode, neuron.ParametricLIFNode)
NODE_IDS = ("IF", "LIF", "PLIF")
SURROGATE_CLASSES = (surrogate.Sigmoid, surrogate.ATan, surrogate.PiecewiseQuadratic, surrogate.PiecewiseExp,
                     surrogate.SoftSign, surrogate.SuperSpike, surrogate.Erf, surrogate.Rect,
                     surrogate.PiecewiseLeakyReLU, surrogate.FastSigmoid)
# The name of each surrogate's first constructor argument (the one the kernels receive as alpha).
SURROGATE_FIRST_ARG = {surrogate.PiecewiseLeakyReLU: "w", surrogate.FastSigmoid: "slope"}
BAD_POSITIVE = (0.0, -1.0, math.nan, math.inf, -math.inf)
SIGMOID = int(surrogate.Sigmoid.kind)
PLRELU = int(surrogate.PiecewiseLeakyReLU.kind)


def arg_of(step_mode):
    return "x" if step_mode == "s" else "x_seq"


def input_of(step_mode, dtype=torch.float32):
    shape = (3, 4) if step_mode == "s" else (2, 3, 4)
    return torch.ones(shape).to(dtype)


# ---------------------------------------------------------------------------------------------------------
# Neuron modules: input
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", NODE_CLASSES, ids=NODE_IDS)
@pytest.mark.parametrize("step_mode", ["s", "m"])
@pytest.mark.parametrize("dtype", [torch.int32, torch.int64, torch.float64, torch.bool, torch.uint8])
def test_neuron_rejects_non_float_input(cls, step_mode, dtype):
    node = cls(step_mode=step_mode)
    dtype_name = str(dtype).replace("torch.", "")
    message = rf": {arg_of(step_mode)} must have dtype float32/float16/bfloat16, got {dtype_name}"
    with pytest.raises(TypeError, match=message):
        node(input_of(step_mode, dtype))
    # The failed call left no state behind.
    assert node.v == node.v_init_value


@pytest.mark.parametrize("cls", NODE_CLASSES, ids=NODE_IDS)
@pytest.mark.parametrize("step_mode", ["s", "m"])
@pytest.mark.parametrize("bad", [[1.0, 2.0], 1.5, None, "x"], ids=["list", "float", "None", "str"])
def test_neuron_rejects_non_tensor_input(cls, step_mode, bad):
    node = cls(step_mode=step_mode)
    with pytest.raises(TypeError, match=rf": {arg_of(step_mode)} must be a torch.Tensor, got {type(bad).__name__}"):
        node(bad)


@pytest.mark.parametrize("cls", NODE_CLASSES, ids=NODE_IDS)
def test_multi_step_rejects_0_dim_input(cls):
    node = cls(step_mode="m")
    with pytest.raises(ValueError, match=r"x_seq must be \[T, N, \*\], got shape \(\)"):
        node(torch.tensor(0.5))


@pytest.mark.parametrize("cls", NODE_CLASSES, ids=NODE_IDS)
@pytest.mark.parametrize("step_mode", ["s", "m"])
def test_stored_state_shape_mismatch_asks_for_reset_net(cls, step_mode):
    node = cls(step_mode=step_mode)
    first = (3, 4) if step_mode == "s" else (2, 3, 4)
    second = (3, 5) if step_mode == "s" else (2, 3, 5)
    node(torch.rand(first) * 2)
    with pytest.raises(ValueError, match=r"membrane potential has shape \(3, 4\).*needs \(3, 5\).*reset_net"):
        node(torch.rand(second) * 2)
    functional.reset_net(node)
    out = node(torch.rand(second) * 2)
    assert out.shape == second
    assert node.v.shape == (3, 5)


def test_stored_state_shape_mismatch_inside_network():
    net = nn.Sequential(layer.Linear(4, 6, step_mode="m"), neuron.LIFNode(step_mode="m"))
    net(torch.rand(2, 3, 4))
    with pytest.raises(ValueError, match="reset_net"):
        net(torch.rand(2, 5, 4))  # a different batch size
    functional.reset_net(net)
    assert net(torch.rand(2, 5, 4)).shape == (2, 5, 6)


# ---------------------------------------------------------------------------------------------------------
# Neuron modules: constructor arguments
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("tau", [1.0, 0.5, 0.0, -2.0, math.nan, math.inf])
def test_lif_rejects_bad_tau(tau):
    with pytest.raises(ValueError, match=r"LIFNode: tau must be a finite number > 1"):
        neuron.LIFNode(tau=tau)


@pytest.mark.parametrize("init_tau", [1.0, 0.5, 0.0, -2.0, math.nan, math.inf])
def test_parametric_lif_rejects_bad_init_tau(init_tau):
    with pytest.raises(ValueError, match=r"ParametricLIFNode: init_tau must be a finite number > 1"):
        neuron.ParametricLIFNode(init_tau=init_tau)


@pytest.mark.parametrize("cls", NODE_CLASSES, ids=NODE_IDS)
@pytest.mark.parametrize("name", ["v_threshold", "v_reset"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_neuron_rejects_non_finite_threshold_and_reset(cls, name, value):
    with pytest.raises(ValueError, match=rf"{cls.__name__}: {name} must be finite"):
        cls(**{name: value})


@pytest.mark.parametrize("cls", NODE_CLASSES, ids=NODE_IDS)
@pytest.mark.parametrize("step_mode", ["x", "M", "", None, "multi"])
def test_neuron_rejects_unknown_step_mode(cls, step_mode):
    with pytest.raises(ValueError, match=rf"{cls.__name__}: step_mode must be 's' .* or 'm'"):
        cls(step_mode=step_mode)


@pytest.mark.parametrize("cls", NODE_CLASSES, ids=NODE_IDS)
def test_neuron_rejects_unknown_step_mode_assignment(cls):
    node = cls(step_mode="m")
    with pytest.raises(ValueError, match="step_mode must be"):
        node.step_mode = "x"
    assert node.step_mode == "m"


LAYER_FACTORIES = {
    "Linear": lambda sm: layer.Linear(2, 3, step_mode=sm),
    "Conv2d": lambda sm: layer.Conv2d(1, 1, 3, step_mode=sm),
    "Flatten": lambda sm: layer.Flatten(step_mode=sm),
    "MaxPool2d": lambda sm: layer.MaxPool2d(2, step_mode=sm),
    "AvgPool2d": lambda sm: layer.AvgPool2d(2, step_mode=sm),
    "BatchNorm2d": lambda sm: layer.BatchNorm2d(2, step_mode=sm),
    "Dropout": lambda sm: layer.Dropout(step_mode=sm),
}


@pytest.mark.parametrize("name", list(LAYER_FACTORIES))
def test_layer_rejects_unknown_step_mode(name):
    with pytest.raises(ValueError, match=rf"{name}: step_mode must be 's'"):
        LAYER_FACTORIES[name]("x")
    assert LAYER_FACTORIES[name]("m").step_mode == "m"


def test_set_step_mode_rejects_unknown_mode_and_changes_nothing():
    net = nn.Sequential(layer.Linear(4, 3), neuron.LIFNode(), nn.Sequential(neuron.IFNode()))
    with pytest.raises(ValueError, match=r"set_step_mode: step_mode must be 's' .*got 'x'"):
        functional.set_step_mode(net, "x")
    assert [m.step_mode for m in (net[0], net[1], net[2][0])] == ["s", "s", "s"]


@pytest.mark.parametrize("cls", NODE_CLASSES, ids=NODE_IDS)
@pytest.mark.parametrize("backend", ["cuda", "Torch", "", "inductor"])
def test_neuron_rejects_unknown_backend(cls, backend):
    with pytest.raises(ValueError, match=rf"{cls.__name__}: backend must be one of"):
        cls(backend=backend)


@pytest.mark.parametrize("cls", NODE_CLASSES, ids=NODE_IDS)
@pytest.mark.parametrize("backend", ["torch", "cupy", "triton", "spikeops"])
def test_neuron_accepts_spikingjelly_backends(cls, backend):
    node = cls(backend=backend, step_mode="m")
    assert node(torch.full((2, 3), 2.0)).shape == (2, 3)


@pytest.mark.parametrize("cls", NODE_CLASSES, ids=NODE_IDS)
@pytest.mark.parametrize("spike_dtype", [torch.int32, torch.int64, torch.float64, torch.bool, torch.int8])
def test_neuron_rejects_bad_spike_dtype(cls, spike_dtype):
    with pytest.raises(ValueError, match=rf"{cls.__name__}: spike_dtype must be None.*got {spike_dtype}"):
        cls(spike_dtype=spike_dtype)


@pytest.mark.parametrize("cls", NODE_CLASSES, ids=NODE_IDS)
@pytest.mark.parametrize("sg", ["ATan", 1.0], ids=["str", "float"])
def test_neuron_rejects_non_callable_surrogate(cls, sg):
    # Any callable is a surrogate (it runs in the step loop, tests/python/test_custom_neurons.py); others are not.
    with pytest.raises(TypeError, match=rf"{cls.__name__}: surrogate_function must be callable"):
        cls(surrogate_function=sg)


# ---------------------------------------------------------------------------------------------------------
# Surrogates
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", [c for c in SURROGATE_CLASSES if c not in SURROGATE_FIRST_ARG],
                         ids=lambda c: c.__name__)
@pytest.mark.parametrize("alpha", BAD_POSITIVE)
def test_surrogate_rejects_bad_alpha(cls, alpha):
    with pytest.raises(ValueError, match=rf"{cls.__name__}: alpha must be a finite number > 0"):
        cls(alpha=alpha)


@pytest.mark.parametrize("cls", list(SURROGATE_FIRST_ARG), ids=lambda c: c.__name__)
@pytest.mark.parametrize("value", [0.0, math.nan])
def test_surrogate_rejects_bad_first_argument(cls, value):
    # Rejected (the message names the parameter the kernels call alpha).
    with pytest.raises(ValueError, match=rf"{cls.__name__}: \w+ must be a finite number > 0"):
        cls(value)


@pytest.mark.parametrize("cls", list(SURROGATE_FIRST_ARG), ids=lambda c: c.__name__)
def test_surrogate_bad_first_argument_is_named_as_the_user_wrote_it(cls):
    name = SURROGATE_FIRST_ARG[cls]
    with pytest.raises(ValueError, match=rf"{cls.__name__}: {name} must be"):
        cls(**{name: 0.0})


@pytest.mark.parametrize("c", [math.nan, math.inf, -math.inf])
def test_piecewise_leaky_relu_rejects_non_finite_c(c):
    with pytest.raises(ValueError, match=r"PiecewiseLeakyReLU: c must be finite"):
        surrogate.PiecewiseLeakyReLU(c=c)


@pytest.mark.parametrize("cls", SURROGATE_CLASSES, ids=lambda c: c.__name__)
@pytest.mark.parametrize("dtype", [torch.int32, torch.int64, torch.bool, torch.float64])
def test_surrogate_rejects_non_float_input(cls, dtype):
    x = torch.tensor([-1, 0, 1]).to(dtype)
    dtype_name = str(dtype).replace("torch.", "")
    message = rf"{cls.__name__}: x must have dtype float32/float16/bfloat16, got {dtype_name}"
    with pytest.raises(TypeError, match=message):
        cls()(x)


@pytest.mark.parametrize("cls", [surrogate.SuperSpike, surrogate.FastSigmoid], ids=lambda c: c.__name__)
def test_surrogate_without_primitive_raises_not_implemented(cls):
    x = torch.randn(5)
    with pytest.raises(NotImplementedError, match=rf"{cls.__name__} has no primitive function"):
        cls(spiking=False)(x)
    sg = cls()
    assert torch.equal(sg(x), (x >= 0).float())
    sg.set_spiking_mode(False)
    with pytest.raises(NotImplementedError, match="spiking=True"):
        sg(x)


# ---------------------------------------------------------------------------------------------------------
# functional helpers and layers
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fn, args", [(functional.reset_net, ()), (functional.detach_net, ()),
                                      (functional.set_step_mode, ("m",))],
                         ids=["reset_net", "detach_net", "set_step_mode"])
@pytest.mark.parametrize("net", [None, [neuron.IFNode()], "net", neuron.IFNode],
                         ids=["None", "list", "str", "class"])
def test_functional_rejects_non_module(fn, args, net):
    with pytest.raises(TypeError, match=rf"{fn.__name__}: net must be a torch.nn.Module"):
        fn(net, *args)


@pytest.mark.parametrize("module", [layer.Linear(4, 3, step_mode="m"), layer.Flatten(step_mode="m"),
                                    layer.SeqToANNContainer(nn.Linear(4, 3))],
                         ids=["Linear", "Flatten", "SeqToANNContainer"])
def test_multi_step_layer_rejects_input_without_time_dimension(module):
    with pytest.raises(ValueError, match=r"must be \[T, N, \*\], got shape \(4,\)"):
        module(torch.randn(4))


# ---------------------------------------------------------------------------------------------------------
# Raw ops
# ---------------------------------------------------------------------------------------------------------

# One past the core's last model (more models are added over time, so no fixed number).
UNKNOWN_KIND = max(_ops.NeuronKind) + 1


def neuron_forward(x_seq, state_init=None, learnable=None, neuron_kind=1, v_threshold=1.0, v_reset=0.0, tau=2.0,
                   decay_input=True, extra=(), detach_reset=False, surrogate_kind=SIGMOID, alpha=4.0, beta=0.0,
                   spike_dtype=torch.float32, store_saved=True, store_v_seq=False):
    if state_init is None:
        state_init = torch.zeros(x_seq.shape[1])
    return ops.neuron_forward(x_seq, state_init, learnable, neuron_kind, v_threshold, v_reset, tau, decay_input,
                              list(extra), detach_reset, surrogate_kind, alpha, beta, spike_dtype, store_saved,
                              store_v_seq)


def neuron_backward(grad_spike_seq, saved, grad_v_seq=None, grad_state_final=None, state_init=None,
                    learnable=None, surrogate_grad_seq=None, neuron_kind=1, v_threshold=1.0, v_reset=0.0, tau=2.0,
                    decay_input=True, extra=(), detach_reset=False, surrogate_kind=SIGMOID, alpha=4.0, beta=0.0,
                    grad_x_dtype=torch.float32):
    if state_init is None:
        state_init = torch.zeros(saved.shape[-1])
    return ops.neuron_backward(grad_spike_seq, grad_v_seq, grad_state_final, saved, state_init, learnable,
                               surrogate_grad_seq, neuron_kind, v_threshold, v_reset, tau, decay_input, list(extra),
                               detach_reset, surrogate_kind, alpha, beta, grad_x_dtype)


def test_raw_neuron_forward_accepts_the_well_formed_call():
    # The baseline the error tests below perturb one argument of.
    spikes, state_final, saved, v_seq = neuron_forward(torch.full((3, 4), 1.5))
    assert spikes.shape == (3, 4) and saved.shape == (1, 3, 4)  # LIF saves K = 1 value (H) per neuron-step
    assert state_final.shape == (4,) and v_seq.shape == (0,)
    assert spikes.sum() > 0
    # A one-state model's state may also be given as [S, N] = [1, N]: the same result, in that shape.
    spikes_2d, state_final_2d, saved_2d, _ = neuron_forward(torch.full((3, 4), 1.5), state_init=torch.zeros(1, 4))
    assert state_final_2d.shape == (1, 4)
    assert torch.equal(spikes_2d, spikes) and torch.equal(state_final_2d[0], state_final)
    assert torch.equal(saved_2d, saved)


@pytest.mark.parametrize("state_init", [torch.zeros(5), torch.zeros(3), torch.zeros(2, 4), torch.zeros(1, 5),
                                        torch.zeros(4, 1), torch.zeros(1, 1, 4), torch.zeros(())],
                         ids=["N+1", "N-1", "S=2", "1xN+1", "Nx1", "3-D", "0-D"])
def test_raw_neuron_forward_rejects_state_init_of_wrong_shape(state_init):
    # LIF has S = 1 state: [1, N] or [N].
    with pytest.raises(ValueError, match=r"spikeops::neuron_forward: state_init must have shape \[1, 4\]"):
        neuron_forward(torch.randn(3, 4), state_init=state_init)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_raw_neuron_forward_rejects_state_init_of_wrong_dtype(dtype):
    with pytest.raises(TypeError, match=r"spikeops::neuron_forward: state_init must have dtype float32, got"):
        neuron_forward(torch.randn(3, 4), state_init=torch.zeros(4, dtype=dtype))


def test_raw_neuron_forward_rejects_non_contiguous_x_seq():
    x = torch.randn(4, 3).t()  # [T=3, N=4], strides (1, 3)
    assert not x.is_contiguous()
    with pytest.raises(ValueError, match=r"neuron_multistep_forward: x_seq must be contiguous"):
        neuron_forward(x)
    # The same values, contiguous, are fine.
    assert neuron_forward(x.contiguous())[0].shape == (3, 4)


def test_raw_neuron_forward_rejects_float64_x_seq():
    with pytest.raises(TypeError, match=r"x_seq must have dtype float32/float16/bfloat16, got float64"):
        neuron_forward(torch.randn(3, 4, dtype=torch.float64))


def test_raw_neuron_forward_rejects_integer_x_seq():
    with pytest.raises(TypeError, match=r"int64"):
        neuron_forward(torch.ones(3, 4, dtype=torch.int64))


@pytest.mark.parametrize("case", ["x_seq", "spike_dtype"])
def test_raw_neuron_forward_unsupported_dtype_names_the_argument(case):
    kw = {"x_seq": torch.ones(3, 4, dtype=torch.int64)} if case == "x_seq" else \
        {"x_seq": torch.ones(3, 4), "spike_dtype": torch.int32}
    with pytest.raises((TypeError, ValueError), match=case):
        neuron_forward(**kw)


@pytest.mark.parametrize("shape", [(2, 3, 4), (4,)], ids=["3-D", "1-D"])
def test_raw_neuron_forward_wrong_ndim_names_x_seq(shape):
    with pytest.raises(ValueError, match="x_seq"):
        ops.neuron_forward(torch.randn(shape), torch.zeros(4), None, 1, 1.0, 0.0, 2.0, True, [], False, SIGMOID,
                           4.0, 0.0, torch.float32, True, False)


@pytest.mark.parametrize("tau", [1.0, 0.5, -1.0, math.nan, math.inf])
def test_raw_neuron_forward_rejects_bad_tau_for_lif(tau):
    with pytest.raises(ValueError, match=r"tau must be a finite number > 1"):
        neuron_forward(torch.randn(3, 4), neuron_kind=1, tau=tau)


def test_raw_neuron_forward_ignores_tau_for_if():
    # IF has no time constant: a tau the LIF would reject is not an error there.
    spikes_bad_tau = neuron_forward(torch.full((3, 4), 0.6), neuron_kind=0, tau=0.5)[0]
    spikes = neuron_forward(torch.full((3, 4), 0.6), neuron_kind=0, tau=2.0)[0]
    assert torch.equal(spikes_bad_tau, spikes)


def test_raw_neuron_forward_parametric_lif_needs_learnable():
    with pytest.raises(ValueError, match=r"spikeops::neuron_forward: learnable is required for ParametricLIF"):
        neuron_forward(torch.randn(3, 4), neuron_kind=2, learnable=None)
    with pytest.raises(ValueError, match=r"learnable must have shape \[1\], got \[2\]"):
        neuron_forward(torch.randn(3, 4), neuron_kind=2, learnable=torch.full((2,), 0.5))
    with pytest.raises(TypeError, match=r"learnable must have dtype float32"):
        neuron_forward(torch.randn(3, 4), neuron_kind=2, learnable=torch.full((1,), 0.5, dtype=torch.float16))
    assert neuron_forward(torch.randn(3, 4), neuron_kind=2, learnable=torch.full((1,), 0.5))[0].shape == (3, 4)


@pytest.mark.parametrize("neuron_kind, name", [(0, "IF"), (1, "LIF")])
def test_raw_neuron_forward_refuses_learnable_for_a_model_without_one(neuron_kind, name):
    with pytest.raises(ValueError, match=rf"spikeops::neuron_forward: {name} has no learnable scalars, so "
                                         r"learnable must be None"):
        neuron_forward(torch.randn(3, 4), neuron_kind=neuron_kind, learnable=torch.full((1,), 0.5))


@pytest.mark.parametrize("neuron_kind", [0, 1, 2])
@pytest.mark.parametrize("extra", [[1.0], [0.0, 0.0]], ids=["1", "2"])
def test_raw_neuron_ops_refuse_extra_of_the_wrong_length(neuron_kind, extra):
    # IF, LIF and ParametricLIF take no extra parameters.
    learnable = torch.full((1,), 0.5) if neuron_kind == 2 else None
    with pytest.raises(ValueError, match=r"spikeops::neuron_forward: extra must be a list of 0 floats"):
        neuron_forward(torch.randn(3, 4), neuron_kind=neuron_kind, learnable=learnable, extra=extra)
    with pytest.raises(ValueError, match=r"spikeops::neuron_backward: extra must be a list of 0 floats"):
        neuron_backward(torch.ones(3, 4), torch.randn(1, 3, 4), neuron_kind=neuron_kind, learnable=learnable,
                        extra=extra)


@pytest.mark.parametrize("kw, name", [
    (dict(v_threshold=math.nan), "v_threshold"),
    (dict(v_threshold=math.inf), "v_threshold"),
    (dict(v_threshold=1e39), "v_threshold"),  # finite in Python, inf in float32
    (dict(v_reset=math.nan), "v_reset"),
    (dict(v_reset=-math.inf), "v_reset"),
    (dict(v_reset=-1e39), "v_reset"),
    (dict(tau=1e39), "tau"),
    (dict(alpha=math.nan), "alpha"),
    (dict(alpha=math.inf), "alpha"),
    (dict(alpha=0.0), "alpha"),
    (dict(alpha=-4.0), "alpha"),
    (dict(alpha=1e-50), "alpha"),  # 0 in float32
    (dict(alpha=1e-40), "alpha"),  # a float32 subnormal: 1/(2 alpha) overflows
    (dict(surrogate_kind=PLRELU, beta=math.nan), "beta"),
    (dict(surrogate_kind=PLRELU, beta=math.inf), "beta"),
    (dict(neuron_kind=UNKNOWN_KIND), "neuron_kind"),
    (dict(neuron_kind=-1), "neuron_kind"),
    (dict(surrogate_kind=99), "surrogate_kind must be one of"),
], ids=lambda v: str(v) if isinstance(v, str) else None)
@pytest.mark.parametrize("store_saved", [True, False])
def test_raw_neuron_forward_rejects_bad_hyper_parameters(kw, name, store_saved):
    # Checked even for inference (store_saved=False), where the surrogate is never evaluated; the op is public
    # (torch.ops.spikeops.neuron_forward), so the message names it and the argument.
    with pytest.raises(ValueError, match=rf"spikeops::neuron_forward: {name}"):
        neuron_forward(torch.randn(3, 4), store_saved=store_saved, **kw)


def test_raw_neuron_forward_soft_reset_ignores_v_reset_value():
    # v_reset=None selects the soft reset: nothing to validate.
    assert neuron_forward(torch.full((3, 4), 1.5), v_reset=None)[0].sum() > 0


def test_raw_neuron_backward_accepts_the_well_formed_call():
    grad_x, grad_state_init, grad_learnable = neuron_backward(torch.ones(3, 4), torch.randn(1, 3, 4))
    assert grad_x.shape == (3, 4) and grad_state_init.shape == (4,) and grad_learnable.shape == (0,)
    assert torch.isfinite(grad_x).all()
    # ParametricLIF: one learnable scalar, its gradient per neuron [P, N].
    grads = neuron_backward(torch.ones(3, 4), torch.randn(1, 3, 4), neuron_kind=2, learnable=torch.full((1,), 0.5))
    assert grads[2].shape == (1, 4) and torch.isfinite(grads[2]).all()
    # state_init as [S, N] = [1, N]: grad_state_init in that shape, the same values.
    grads_2d = neuron_backward(torch.ones(3, 4), torch.randn(1, 3, 4).fill_(0.3), state_init=torch.zeros(1, 4))
    grads_1d = neuron_backward(torch.ones(3, 4), torch.randn(1, 3, 4).fill_(0.3), state_init=torch.zeros(4))
    assert grads_2d[1].shape == (1, 4) and torch.equal(grads_2d[1][0], grads_1d[1])
    assert torch.equal(grads_2d[0], grads_1d[0])


@pytest.mark.parametrize("kw, name", [
    (dict(grad_spike_seq=torch.ones(3, 5)), r"grad_spike_seq must have shape \[3, 4\], got \[3, 5\]"),
    (dict(grad_spike_seq=torch.ones(2, 4)), r"grad_spike_seq must have shape \[3, 4\], got \[2, 4\]"),
    (dict(grad_spike_seq=torch.ones(12)), r"grad_spike_seq must be a 2-D tensor"),
    (dict(grad_v_seq=torch.ones(2, 4)), r"grad_v_seq must have shape \[3, 4\]"),
    (dict(grad_state_final=torch.ones(5)), r"grad_state_final must have shape \[4\]"),
    (dict(saved=torch.ones(2, 3, 4)), r"saved must have shape \[1, 3, 4\], got \[2, 3, 4\]"),
    (dict(saved=torch.ones(3, 4)), r"saved must be a 3-D tensor"),
    (dict(state_init=torch.zeros(2, 4)), r"state_init must have shape \[1, 4\]"),
    (dict(learnable=torch.full((1,), 0.5)), r"LIF has no learnable scalars, so learnable must be None"),
    (dict(surrogate_grad_seq=torch.ones(3, 5)), r"surrogate_grad_seq must have shape \[3, 4\], got \[3, 5\]"),
    (dict(surrogate_grad_seq=torch.ones(4, 3)), r"surrogate_grad_seq must have shape \[3, 4\], got \[4, 3\]"),
    (dict(surrogate_grad_seq=torch.ones(12)), r"surrogate_grad_seq must have shape \[3, 4\], got \[12\]"),
    (dict(tau=0.5), r"tau must be a finite number > 1"),
    (dict(alpha=math.nan), r"alpha"),
    (dict(neuron_kind=2, learnable=None), r"learnable is required"),
], ids=lambda v: v.split(" ")[0] if isinstance(v, str) else None)
def test_raw_neuron_backward_rejects_bad_arguments(kw, name):
    args = dict(grad_spike_seq=torch.ones(3, 4), saved=torch.randn(1, 3, 4))
    args.update(kw)
    with pytest.raises(ValueError, match=name):
        neuron_backward(**args)


@pytest.mark.parametrize("kw, name", [
    (dict(grad_spike_seq=torch.ones(3, 4, dtype=torch.float64)), r"grad_spike_seq must have dtype"),
    (dict(grad_state_final=torch.ones(4, dtype=torch.float16)), r"grad_state_final must have dtype float32"),
    (dict(saved=torch.ones(1, 3, 4, dtype=torch.float16)), r"saved must have dtype float32"),
    (dict(state_init=torch.zeros(4, dtype=torch.float64)), r"state_init must have dtype float32"),
    (dict(surrogate_grad_seq=torch.ones(3, 4, dtype=torch.float16)), r"surrogate_grad_seq must have dtype float32"),
    (dict(surrogate_grad_seq=torch.ones(3, 4, dtype=torch.int32)), r"surrogate_grad_seq must have dtype float32"),
], ids=lambda v: v.split(" ")[0] if isinstance(v, str) else None)
def test_raw_neuron_backward_rejects_bad_dtypes(kw, name):
    args = dict(grad_spike_seq=torch.ones(3, 4), saved=torch.randn(1, 3, 4))
    args.update(kw)
    with pytest.raises(TypeError, match=rf"spikeops::neuron_backward: {name}"):
        neuron_backward(**args)


def test_raw_neuron_forward_without_saved_cannot_be_differentiated():
    x = torch.randn(3, 4, requires_grad=True)
    spikes = neuron_forward(x, store_saved=False)[0]
    with pytest.raises(RuntimeError, match="store_saved=True"):
        spikes.sum().backward()


def test_raw_spike_fn_rejects_bad_input():
    with pytest.raises(TypeError, match=r"spikeops::spike_fn: x must have dtype float32/float16/bfloat16, got float64"):
        ops.spike_fn(torch.randn(3, dtype=torch.float64), SIGMOID, 4.0, 0.0)
    with pytest.raises((TypeError, RuntimeError), match=r"spike_fn.*argument 'x'"):  # the dispatcher's check
        ops.spike_fn([0.5], SIGMOID, 4.0, 0.0)


def test_raw_spike_fn_takes_any_strides():
    x = torch.randn(4, 3).t()
    assert torch.equal(ops.spike_fn(x, SIGMOID, 4.0, 0.0), (x >= 0).float())


@pytest.mark.parametrize("kw, name", [(dict(alpha=math.nan), "alpha"), (dict(alpha=0.0), "alpha"),
                                      (dict(beta=math.inf, surrogate_kind=PLRELU), "beta"),
                                      (dict(alpha=1e-50), "alpha"), (dict(beta=1e39), "beta"),
                                      (dict(surrogate_kind=99), "surrogate_kind")],
                         ids=["alpha-nan", "alpha-0", "beta-inf", "alpha-1e-50", "beta-1e39", "kind-99"])
def test_raw_surrogate_backward_rejects_bad_hyper_parameters(kw, name):
    args = dict(surrogate_kind=SIGMOID, alpha=4.0, beta=0.0)
    args.update(kw)
    with pytest.raises(ValueError, match=rf"spikeops::surrogate_backward: {name}"):
        ops.surrogate_backward(torch.ones(3), torch.randn(3), args["surrogate_kind"], args["alpha"], args["beta"])


def test_raw_surrogate_backward_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"surrogate_backward: grad_spike must have the shape of x \[3\], got \[4\]"):
        ops.surrogate_backward(torch.ones(4), torch.randn(3), SIGMOID, 4.0, 0.0)


SPIKE_FN_BAD = [(dict(alpha=math.nan), "alpha"), (dict(alpha=-1.0), "alpha"), (dict(alpha=1e-50), "alpha"),
                (dict(beta=math.nan, surrogate_kind=PLRELU), "beta"), (dict(surrogate_kind=99), "surrogate_kind")]
SPIKE_FN_BAD_IDS = ["alpha-nan", "alpha-neg", "alpha-1e-50", "beta-nan", "kind-99"]


def spike_fn_args(kw):
    args = dict(surrogate_kind=SIGMOID, alpha=4.0, beta=0.0)
    args.update(kw)
    return args["surrogate_kind"], args["alpha"], args["beta"]


@pytest.mark.parametrize("kw, name", SPIKE_FN_BAD, ids=SPIKE_FN_BAD_IDS)
def test_raw_spike_fn_bad_hyper_parameters_never_reach_the_kernels(kw, name):
    # Rejected at the call or, at the latest, by the backward (surrogate_backward validates them).
    x = torch.randn(3, requires_grad=True)
    with pytest.raises(ValueError, match=rf"spikeops::spike_fn: {name}"):
        ops.spike_fn(x, *spike_fn_args(kw)).sum().backward()


@pytest.mark.parametrize("kw, name", SPIKE_FN_BAD, ids=SPIKE_FN_BAD_IDS)
def test_raw_spike_fn_rejects_bad_hyper_parameters_at_the_call(kw, name):
    with torch.no_grad(), pytest.raises(ValueError, match=name):
        ops.spike_fn(torch.randn(3), *spike_fn_args(kw))


# ---------------------------------------------------------------------------------------------------------
# Empty tensors are not errors
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", NODE_CLASSES, ids=NODE_IDS)
@pytest.mark.parametrize("shape", [(3, 0), (0, 5), (0, 0), (3, 0, 4), (0, 2, 3)])
def test_multi_step_neuron_on_empty_input(cls, shape):
    node = cls(step_mode="m", store_v_seq=True)
    x = torch.randn(shape, requires_grad=True)
    spikes = node(x)
    assert spikes.shape == shape and spikes.dtype == torch.float32
    assert node.v.shape == shape[1:]
    assert node.v_seq.shape == shape
    spikes.sum().backward()
    assert x.grad is not None and x.grad.shape == shape
    if cls is neuron.ParametricLIFNode:
        assert node.w.grad is not None and node.w.grad.item() == 0.0


@pytest.mark.parametrize("cls", NODE_CLASSES, ids=NODE_IDS)
def test_single_step_neuron_on_empty_batch(cls):
    node = cls(step_mode="s", spike_dtype=torch.uint8)
    out = node(torch.randn(0, 3))
    assert out.shape == (0, 3) and out.dtype == torch.uint8
    assert node.v.shape == (0, 3)


@pytest.mark.parametrize("cls", NODE_CLASSES, ids=NODE_IDS)
def test_zero_steps_keep_state_and_gradient(cls):
    """A T=0 call between two calls changes neither the membrane potential nor the gradients."""
    x0 = torch.rand(2, 5) * 3
    grads, vs = [], []
    for with_empty_call in (False, True):
        node = cls(step_mode="m", v_reset=0.3)
        x = x0.clone().requires_grad_(True)
        spikes = node(x)
        if with_empty_call:
            v_before = node.v.detach().clone()
            assert node(torch.randn(0, 5)).shape == (0, 5)
            assert torch.equal(node.v, v_before)
        (spikes.sum() + 2.0 * node.v.sum()).backward()
        grads.append(x.grad)
        vs.append(node.v.detach())
    assert torch.equal(vs[0], vs[1])
    assert torch.equal(grads[0], grads[1])
    assert grads[0].abs().sum() > 0


@pytest.mark.parametrize("v_reset, expected", [(0.0, 0.0), (0.3, 0.3), (None, 0.0)])
def test_zero_steps_from_reset_give_initial_potential(v_reset, expected):
    node = neuron.LIFNode(step_mode="m", v_reset=v_reset)
    node(torch.randn(0, 5))
    assert torch.equal(node.v, torch.full((5,), expected))


@pytest.mark.parametrize("shape", [(3, 0), (0, 5)])
def test_raw_neuron_ops_on_empty_input(shape):
    T, N = shape
    state_init = torch.full((N,), 0.25)
    spikes, state_final, saved, v_seq = neuron_forward(torch.randn(shape), state_init=state_init, store_v_seq=True)
    assert spikes.shape == v_seq.shape == shape and saved.shape == (1,) + shape
    assert torch.equal(state_final, state_init)
    grad_x, grad_state_init, _ = neuron_backward(torch.ones(shape), saved, grad_state_final=torch.ones(N),
                                                 surrogate_grad_seq=torch.ones(shape))
    assert grad_x.shape == shape and grad_state_init.shape == (N,)


# ---------------------------------------------------------------------------------------------------------
# Issue 19: values finite in Python but not in float32, any rank for elementwise ops, the ops' argument types
# ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", NODE_CLASSES, ids=NODE_IDS)
@pytest.mark.parametrize("name, value", [("v_threshold", 1e39), ("v_threshold", -1e39), ("v_reset", 1e39)])
def test_neuron_rejects_values_beyond_float32_at_construction(cls, name, value):
    # They used to pass the constructor and fail only at the first forward ("neuron params: ... got inf").
    with pytest.raises(ValueError, match=rf"{cls.__name__}: {name} must be finite and fit float32"):
        cls(**{name: value})


def test_lif_rejects_tau_beyond_float32():
    with pytest.raises(ValueError, match=r"LIFNode: tau must be a finite number > 1 that fits float32"):
        neuron.LIFNode(tau=1e39)
    assert neuron.LIFNode(tau=1e38).tau == 1e38  # the largest values float32 holds stay valid


@pytest.mark.parametrize("init_tau", [1e39, 1e50, 1e300])
def test_parametric_lif_rejects_init_tau_beyond_float32(init_tau):
    with pytest.raises(ValueError, match=r"ParametricLIFNode: init_tau must be a finite number > 1"):
        neuron.ParametricLIFNode(init_tau=init_tau)


@pytest.mark.parametrize("init_tau", [9e37, 1e38, 3e38])
def test_parametric_lif_rejects_init_tau_whose_decay_underflows(init_tau):
    # k = sigmoid(w) is below float32's normal range there; k = 0 made the backward's dH/dk = (H - V) / k NaN.
    with pytest.raises(ValueError, match=r"ParametricLIFNode: init_tau=.* gives a decay 1/tau that underflows"):
        neuron.ParametricLIFNode(init_tau=init_tau)


@pytest.mark.parametrize("init_tau", [2.0, 1e6, 1e20, 8e37])
def test_parametric_lif_gradient_is_finite_for_every_accepted_init_tau(init_tau):
    node = neuron.ParametricLIFNode(init_tau=init_tau, step_mode="m")
    x = torch.rand(4, 3, requires_grad=True)
    (node(x).sum() + node.v.sum()).backward()
    assert torch.isfinite(node.w.grad).all() and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("cls", [c for c in SURROGATE_CLASSES if c not in SURROGATE_FIRST_ARG],
                         ids=lambda c: c.__name__)
@pytest.mark.parametrize("alpha", [1e-50, 1e-40, 1e39])  # 0, a subnormal, inf in float32
def test_surrogate_rejects_alpha_beyond_float32_at_construction(cls, alpha):
    with pytest.raises(ValueError, match=rf"{cls.__name__}: alpha must be a finite number > 0 that float32 holds"):
        cls(alpha=alpha)


@pytest.mark.parametrize("cls", list(SURROGATE_FIRST_ARG), ids=lambda c: c.__name__)
def test_surrogate_first_argument_beyond_float32_is_named(cls):
    name = SURROGATE_FIRST_ARG[cls]
    with pytest.raises(ValueError, match=rf"{cls.__name__}: {name} must be a finite number > 0"):
        cls(**{name: 1e-50})


def test_piecewise_leaky_relu_rejects_c_beyond_float32():
    with pytest.raises(ValueError, match=r"PiecewiseLeakyReLU: c must be finite and fit float32"):
        surrogate.PiecewiseLeakyReLU(c=-1e39)


@pytest.mark.parametrize("cls", [neuron.LIFNode, surrogate.Sigmoid], ids=["LIFNode", "Sigmoid"])
def test_constructors_name_non_numeric_arguments(cls):
    name = "tau" if cls is neuron.LIFNode else "alpha"
    with pytest.raises(TypeError, match=rf"{cls.__name__}: {name} must be a number, got 'abc'"):
        cls(**{name: "abc"})


@pytest.mark.parametrize("ndim", [9, 12])
def test_elementwise_ops_take_any_rank(ndim):
    # More than the core's 8 described dimensions: the elementwise ops flatten before describing the tensor.
    shape = (2, 1, 3) + (1,) * (ndim - 4) + (2,)
    x = torch.randn(shape, requires_grad=True)
    spikes = ops.spike_fn(x, SIGMOID, 4.0, 0.0)
    assert spikes.shape == shape and torch.equal(spikes, (x >= 0).float())
    g = torch.randn(shape)
    spikes.backward(g)
    s = torch.sigmoid(4.0 * x.detach())
    torch.testing.assert_close(x.grad, g * 4.0 * s * (1 - s))
    grad = ops.surrogate_backward(g, x.detach(), SIGMOID, 4.0, 0.0)
    torch.testing.assert_close(grad, x.grad)
    assert surrogate.ATan()(x.detach()).shape == shape


def test_surrogate_backward_checks_shapes_before_flattening():
    # [2, 3] and [3, 2] have the same number of elements: only the unflattened shapes tell them apart.
    with pytest.raises(ValueError, match=r"surrogate_backward: grad_spike must have the shape of x \[2, 3\]"):
        ops.surrogate_backward(torch.ones(3, 2), torch.randn(2, 3), SIGMOID, 4.0, 0.0)


@pytest.mark.parametrize("kw, name", [(dict(v_threshold="abc"), "v_threshold"), (dict(tau=None), "tau"),
                                      (dict(alpha="x"), "alpha"), (dict(v_reset="0"), "v_reset")],
                         ids=["v_threshold-str", "tau-None", "alpha-str", "v_reset-str"])
def test_registered_neuron_op_names_argument_of_wrong_type(kw, name):
    # torch.ops.spikeops.* is public (users, torch.compile): wrong types name the op and the argument.
    with pytest.raises((TypeError, RuntimeError), match=rf"neuron_forward.*\b{name}\b"):
        neuron_forward(torch.randn(3, 4), **kw)


@pytest.mark.parametrize("kw, name", [(dict(v_threshold=1e39), "v_threshold"), (dict(alpha=1e-40), "alpha"),
                                      (dict(neuron_kind=UNKNOWN_KIND), "neuron_kind"), (dict(tau=0.5), "tau")],
                         ids=["v_threshold", "alpha", "neuron_kind", "tau"])
def test_registered_neuron_backward_names_itself(kw, name):
    with pytest.raises(ValueError, match=rf"spikeops::neuron_backward: {name}"):
        neuron_backward(torch.ones(3, 4), torch.randn(1, 3, 4), **kw)
