"""Every registered op (torch.ops.spikeops.*) called directly with one bad argument: the error has the expected
type and names the op and the argument, in eager mode, under FakeTensorMode (what torch.compile traces with) and,
for a few ops, under torch.compile itself.

Users and torch.compile call the ops without the friendly wrappers (functional, layer, neuron, surrogate), so
each op checks its own arguments. Arguments of the wrong Python type for the op's schema (stride=1.5, tau=None)
are refused by torch's dispatcher before the op runs, with a RuntimeError that names the op and the argument.
"""

import math
import re

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

import spikeops  # noqa: F401  (registers the ops)
from spikeops import _C
from spikeops._ops import NeuronKind

ops = torch.ops.spikeops
SIGMOID = int(_C.SurrogateKind.Sigmoid)
PLRELU = int(_C.SurrogateKind.PiecewiseLeakyReLU)
META = "meta"  # a device the ops never run on: a tensor there beside cpu tensors is a device mismatch


def u8(*shape):
    return torch.zeros(shape, dtype=torch.uint8)


def meta(t):
    return t.to(META)


# A well-formed call of each op; each case below changes one argument (a callable gets the base argument).
BASE = {
    "spike_linear": lambda: dict(spikes=u8(5, 7), weight=torch.randn(3, 7), bias=torch.randn(3), kernel="auto"),
    "spike_accumulate_rows_t": lambda: dict(spikes=u8(4, 5), rows=torch.randn(5, 3), out_dtype=torch.float32,
                                            kernel="auto"),
    "spike_conv2d": lambda: dict(spikes=u8(2, 4, 6, 6), weight=torch.randn(6, 2, 3, 3), bias=torch.randn(6),
                                 stride=[1, 1], padding=[1, 1], dilation=[1, 1], groups=2, kernel="auto"),
    "spike_conv2d_weight_grad": lambda: dict(spikes=u8(2, 4, 6, 6), grad_out=torch.randn(2, 6, 6, 6),
                                             weight_shape=[6, 2, 3, 3], stride=[1, 1], padding=[1, 1],
                                             dilation=[1, 1], groups=2, out_dtype=torch.float32, kernel="auto"),
    "neuron_forward": lambda: dict(x_seq=torch.randn(3, 4), state_init=torch.zeros(4), learnable=None,
                                   neuron_kind=1, v_threshold=1.0, v_reset=0.0, tau=2.0, decay_input=True, extra=[],
                                   detach_reset=False, surrogate_kind=SIGMOID, alpha=4.0, beta=0.0,
                                   spike_dtype=torch.float32, store_saved=True, store_v_seq=False),
    "neuron_backward": lambda: dict(grad_spike_seq=torch.ones(3, 4), grad_v_seq=None, grad_state_final=None,
                                    saved=torch.randn(1, 3, 4), state_init=torch.zeros(4), learnable=None,
                                    surrogate_grad_seq=None, neuron_kind=1, v_threshold=1.0, v_reset=0.0, tau=2.0,
                                    decay_input=True, extra=[], detach_reset=False, surrogate_kind=SIGMOID,
                                    alpha=4.0, beta=0.0, grad_x_dtype=torch.float32),
    "spike_fn": lambda: dict(x=torch.randn(3, 4), surrogate_kind=SIGMOID, alpha=4.0, beta=0.0),
    "surrogate_backward": lambda: dict(grad_spike=torch.ones(3, 4), x=torch.randn(3, 4), surrogate_kind=SIGMOID,
                                       alpha=4.0, beta=0.0),
}

# (op, changed arguments, expected exception, the argument the message must name). RuntimeError: the dispatcher's.
CASES = [
    # spike_linear
    ("spike_linear", dict(spikes=torch.zeros(5, 7, dtype=torch.int32)), TypeError, "spikes"),
    ("spike_linear", dict(spikes=torch.zeros(5, 7, dtype=torch.float64)), TypeError, "spikes"),
    ("spike_linear", dict(spikes=u8(7)), ValueError, "spikes"),
    ("spike_linear", dict(spikes=u8(2, 5, 7)), ValueError, "spikes"),
    ("spike_linear", dict(spikes=u8(5, 6)), ValueError, "spikes"),
    ("spike_linear", dict(weight=torch.randn(3, 7, dtype=torch.float64)), TypeError, "weight"),
    ("spike_linear", dict(weight=torch.ones(3, 7, dtype=torch.int64)), TypeError, "weight"),
    ("spike_linear", dict(weight=torch.randn(7)), ValueError, "weight"),
    ("spike_linear", dict(weight=meta(torch.randn(3, 7)), bias=None), ValueError, "weight"),
    ("spike_linear", dict(bias=torch.randn(4)), ValueError, "bias"),
    ("spike_linear", dict(bias=torch.randn(3, 1)), ValueError, "bias"),
    ("spike_linear", dict(bias=torch.ones(3, dtype=torch.int64)), TypeError, "bias"),
    ("spike_linear", dict(bias=meta(torch.randn(3))), ValueError, "bias"),
    ("spike_linear", dict(kernel="fast"), ValueError, "kernel"),
    ("spike_linear", dict(kernel="tiled"), ValueError, "kernel"),  # CUDA only
    ("spike_linear", dict(kernel=3), RuntimeError, "kernel"),
    ("spike_linear", dict(weight=None), TypeError, "weight"),
    # spike_accumulate_rows_t
    ("spike_accumulate_rows_t", dict(spikes=torch.zeros(4, 5)), TypeError, "spikes"),
    ("spike_accumulate_rows_t", dict(spikes=u8(4, 5, 1)), ValueError, "spikes"),
    ("spike_accumulate_rows_t", dict(rows=torch.randn(6, 3)), ValueError, "rows"),
    ("spike_accumulate_rows_t", dict(rows=torch.randn(5)), ValueError, "rows"),
    ("spike_accumulate_rows_t", dict(rows=torch.ones(5, 3, dtype=torch.int32)), TypeError, "rows"),
    ("spike_accumulate_rows_t", dict(rows=meta(torch.randn(5, 3))), ValueError, "rows"),
    ("spike_accumulate_rows_t", dict(out_dtype=torch.int32), TypeError, "out_dtype"),
    ("spike_accumulate_rows_t", dict(out_dtype=torch.float64), TypeError, "out_dtype"),
    ("spike_accumulate_rows_t", dict(kernel="nope"), ValueError, "kernel"),
    # spike_conv2d
    ("spike_conv2d", dict(stride=[0, 1]), ValueError, "stride"),
    ("spike_conv2d", dict(stride=[1, -2]), ValueError, "stride"),
    ("spike_conv2d", dict(stride=[2**40, 1]), ValueError, "stride"),
    ("spike_conv2d", dict(stride=[1, 1, 1]), TypeError, "stride"),
    ("spike_conv2d", dict(stride=[1]), TypeError, "stride"),
    ("spike_conv2d", dict(stride=[1.5, 1]), RuntimeError, "stride"),
    ("spike_conv2d", dict(stride=1), RuntimeError, "stride"),
    ("spike_conv2d", dict(padding=[-1, 0]), ValueError, "padding"),
    ("spike_conv2d", dict(padding=[2**40, 0]), ValueError, "padding"),
    ("spike_conv2d", dict(dilation=[0, 1]), ValueError, "dilation"),
    ("spike_conv2d", dict(dilation=[5, 1]), ValueError, "dilation"),  # the dilated kernel does not fit
    ("spike_conv2d", dict(groups=0), ValueError, "groups"),
    ("spike_conv2d", dict(groups=-1), ValueError, "groups"),
    ("spike_conv2d", dict(groups=3), ValueError, "groups"),
    ("spike_conv2d", dict(groups="a"), RuntimeError, "groups"),
    ("spike_conv2d", dict(spikes=u8(4, 6, 6)), ValueError, "spikes"),
    ("spike_conv2d", dict(spikes=u8(2, 4, 0, 6), padding=[1, 1]), ValueError, "spikes"),  # as torch's conv2d
    ("spike_conv2d", dict(spikes=u8(2, 4, 6, 0), padding=[1, 1]), ValueError, "spikes"),
    ("spike_conv2d", dict(spikes=torch.zeros(2, 4, 6, 6, dtype=torch.int32)), TypeError, "spikes"),
    ("spike_conv2d", dict(spikes=torch.zeros(2, 4, 6, 6, dtype=torch.float64)), TypeError, "spikes"),
    ("spike_conv2d", dict(weight=torch.randn(6, 3, 3, 3)), ValueError, "weight"),
    ("spike_conv2d", dict(weight=torch.randn(6, 2, 3)), ValueError, "weight"),
    ("spike_conv2d", dict(weight=torch.randn(6, 2, 3, 3, dtype=torch.float64)), TypeError, "weight"),
    ("spike_conv2d", dict(weight=meta(torch.randn(6, 2, 3, 3)), bias=None), ValueError, "weight"),
    ("spike_conv2d", dict(bias=torch.randn(5)), ValueError, "bias"),
    ("spike_conv2d", dict(bias=torch.randn(6, dtype=torch.float16)), ValueError, "bias"),
    ("spike_conv2d", dict(bias=meta(torch.randn(6))), ValueError, "bias"),
    ("spike_conv2d", dict(kernel="tiled"), ValueError, "kernel"),
    ("spike_conv2d", dict(kernel=3), RuntimeError, "kernel"),
    # spike_conv2d_weight_grad
    ("spike_conv2d_weight_grad", dict(stride=[0, 1]), ValueError, "stride"),
    ("spike_conv2d_weight_grad", dict(padding=[0, -1]), ValueError, "padding"),
    ("spike_conv2d_weight_grad", dict(dilation=[1, 0]), ValueError, "dilation"),
    ("spike_conv2d_weight_grad", dict(stride=[1, 1, 1]), TypeError, "stride"),
    ("spike_conv2d_weight_grad", dict(groups=0), ValueError, "groups"),
    ("spike_conv2d_weight_grad", dict(weight_shape=[6, 2, 3]), TypeError, "weight_shape"),
    ("spike_conv2d_weight_grad", dict(weight_shape=[-6, 2, 3, 3]), ValueError, "weight_shape"),
    ("spike_conv2d_weight_grad", dict(weight_shape=[6, 3, 3, 3]), ValueError, "weight_shape"),
    ("spike_conv2d_weight_grad", dict(weight_shape=[6, 2, 9, 3]), ValueError, "dilation"),  # does not fit
    ("spike_conv2d_weight_grad", dict(grad_out=torch.randn(2, 6, 5, 6)), ValueError, "grad_out"),
    ("spike_conv2d_weight_grad", dict(grad_out=torch.randn(2, 6, 6)), ValueError, "grad_out"),
    ("spike_conv2d_weight_grad", dict(grad_out=torch.ones(2, 6, 6, 6, dtype=torch.int32)), TypeError, "grad_out"),
    ("spike_conv2d_weight_grad", dict(grad_out=meta(torch.randn(2, 6, 6, 6))), ValueError, "grad_out"),
    ("spike_conv2d_weight_grad", dict(spikes=u8(2, 4, 6)), ValueError, "spikes"),
    ("spike_conv2d_weight_grad", dict(spikes=u8(2, 4, 0, 6), grad_out=torch.randn(2, 6, 0, 6)), ValueError,
     "spikes"),
    ("spike_conv2d_weight_grad", dict(out_dtype=torch.int32), TypeError, "out_dtype"),
    ("spike_conv2d_weight_grad", dict(kernel="x"), ValueError, "kernel"),
    # neuron_forward
    ("neuron_forward", dict(x_seq=torch.ones(3, 4, dtype=torch.int32)), TypeError, "x_seq"),
    ("neuron_forward", dict(x_seq=torch.randn(3, 4, dtype=torch.float64)), TypeError, "x_seq"),
    ("neuron_forward", dict(x_seq=torch.randn(2, 3, 4)), ValueError, "x_seq"),
    ("neuron_forward", dict(state_init=torch.zeros(5)), ValueError, "state_init"),
    ("neuron_forward", dict(state_init=torch.zeros(2, 4)), ValueError, "state_init"),  # S = 1 for LIF
    ("neuron_forward", dict(state_init=torch.zeros(1, 5)), ValueError, "state_init"),
    ("neuron_forward", dict(state_init=torch.zeros(4, dtype=torch.float16)), TypeError, "state_init"),
    ("neuron_forward", dict(state_init=meta(torch.zeros(4))), ValueError, "state_init"),
    ("neuron_forward", dict(neuron_kind=2), ValueError, "learnable"),
    ("neuron_forward", dict(neuron_kind=2, learnable=torch.full((2,), 0.5)), ValueError, "learnable"),
    ("neuron_forward", dict(neuron_kind=2, learnable=torch.full((1, 1), 0.5)), ValueError, "learnable"),
    ("neuron_forward", dict(neuron_kind=2, learnable=torch.full((1,), 0.5, dtype=torch.float64)), TypeError,
     "learnable"),
    ("neuron_forward", dict(neuron_kind=2, learnable=meta(torch.full((1,), 0.5))), ValueError, "learnable"),
    ("neuron_forward", dict(learnable=torch.full((1,), 0.5)), ValueError, "learnable"),  # LIF has none
    ("neuron_forward", dict(neuron_kind=0, learnable=torch.full((1,), 0.5)), ValueError, "learnable"),
    ("neuron_forward", dict(extra=[1.0]), ValueError, "extra"),
    ("neuron_forward", dict(neuron_kind=2, learnable=torch.full((1,), 0.5), extra=[0.0, 1.0]), ValueError,
     "extra"),
    ("neuron_forward", dict(spike_dtype=torch.int32), TypeError, "spike_dtype"),
    ("neuron_forward", dict(neuron_kind=max(NeuronKind) + 1), ValueError, "neuron_kind"),
    ("neuron_forward", dict(neuron_kind=-1), ValueError, "neuron_kind"),
    ("neuron_forward", dict(surrogate_kind=99), ValueError, "surrogate_kind"),
    ("neuron_forward", dict(tau=0.5), ValueError, "tau"),
    ("neuron_forward", dict(tau=None), RuntimeError, "tau"),
    ("neuron_forward", dict(v_threshold="abc"), RuntimeError, "v_threshold"),
    ("neuron_forward", dict(v_threshold=1e39), ValueError, "v_threshold"),
    ("neuron_forward", dict(v_reset=math.nan), ValueError, "v_reset"),
    ("neuron_forward", dict(alpha=1e-50), ValueError, "alpha"),
    ("neuron_forward", dict(surrogate_kind=PLRELU, beta=math.inf), ValueError, "beta"),
    # neuron_backward
    ("neuron_backward", dict(grad_spike_seq=torch.ones(3, 5)), ValueError, "grad_spike_seq"),
    ("neuron_backward", dict(grad_spike_seq=torch.ones(3, 4, dtype=torch.float64)), TypeError, "grad_spike_seq"),
    ("neuron_backward", dict(grad_spike_seq=meta(torch.ones(3, 4))), ValueError, "grad_spike_seq"),
    ("neuron_backward", dict(grad_v_seq=torch.ones(2, 4)), ValueError, "grad_v_seq"),
    ("neuron_backward", dict(grad_saved=torch.ones(1, 2, 4)), ValueError, "grad_saved"),
    ("neuron_backward", dict(grad_saved=torch.ones(1, 3, 4, dtype=torch.float16)), TypeError, "grad_saved"),
    ("neuron_backward", dict(neuron_kind=3, extra=[0.8, 1.0, 0.0], v_reset=-0.1, grad_saved=torch.ones(1, 3, 4)),
     ValueError, "grad_saved"),  # QIF's saved values are not an output
    ("neuron_backward", dict(grad_state_final=torch.ones(4, dtype=torch.float16)), TypeError, "grad_state_final"),
    ("neuron_backward", dict(grad_state_final=torch.ones(5)), ValueError, "grad_state_final"),
    ("neuron_backward", dict(grad_state_final=torch.ones(1, 4)), ValueError, "grad_state_final"),  # not state_init's
    ("neuron_backward", dict(saved=torch.ones(1, 3, 4, dtype=torch.float16)), TypeError, "saved"),
    ("neuron_backward", dict(saved=torch.ones(12)), ValueError, "saved"),
    ("neuron_backward", dict(saved=torch.ones(3, 4)), ValueError, "saved"),  # the old [T, N] h_seq
    ("neuron_backward", dict(saved=torch.ones(2, 3, 4)), ValueError, "saved"),  # LIF saves K = 1
    ("neuron_backward", dict(state_init=torch.zeros(5)), ValueError, "state_init"),
    ("neuron_backward", dict(state_init=torch.zeros(2, 4)), ValueError, "state_init"),
    ("neuron_backward", dict(state_init=meta(torch.zeros(4))), ValueError, "state_init"),
    ("neuron_backward", dict(state_init=None), TypeError, "state_init"),  # required for every model
    ("neuron_backward", dict(neuron_kind=2), ValueError, "learnable"),
    ("neuron_backward", dict(neuron_kind=2, learnable=torch.full((2,), 0.5)), ValueError, "learnable"),
    ("neuron_backward", dict(neuron_kind=2, learnable=meta(torch.full((1,), 0.5))), ValueError, "learnable"),
    ("neuron_backward", dict(learnable=torch.full((1,), 0.5)), ValueError, "learnable"),  # LIF has none
    ("neuron_backward", dict(surrogate_grad_seq=torch.ones(2, 4)), ValueError, "surrogate_grad_seq"),
    ("neuron_backward", dict(surrogate_grad_seq=torch.ones(3, 4, 1)), ValueError, "surrogate_grad_seq"),
    ("neuron_backward", dict(surrogate_grad_seq=torch.ones(3, 4, dtype=torch.float16)), TypeError,
     "surrogate_grad_seq"),
    ("neuron_backward", dict(surrogate_grad_seq=torch.ones(3, 4, dtype=torch.float64)), TypeError,
     "surrogate_grad_seq"),
    ("neuron_backward", dict(surrogate_grad_seq=meta(torch.ones(3, 4))), ValueError, "surrogate_grad_seq"),
    ("neuron_backward", dict(extra=[2.0]), ValueError, "extra"),
    ("neuron_backward", dict(grad_x_dtype=torch.int32), TypeError, "grad_x_dtype"),
    ("neuron_backward", dict(tau=0.5), ValueError, "tau"),
    ("neuron_backward", dict(alpha=math.nan), ValueError, "alpha"),
    # spike_fn
    ("spike_fn", dict(x=torch.ones(3, dtype=torch.int32)), TypeError, "x"),
    ("spike_fn", dict(x=torch.ones(3, dtype=torch.float64)), TypeError, "x"),
    ("spike_fn", dict(x=[0.5]), RuntimeError, "x"),
    ("spike_fn", dict(alpha=math.nan), ValueError, "alpha"),
    ("spike_fn", dict(alpha=1e-50), ValueError, "alpha"),
    ("spike_fn", dict(surrogate_kind=99), ValueError, "surrogate_kind"),
    ("spike_fn", dict(alpha="x"), RuntimeError, "alpha"),
    # surrogate_backward
    ("surrogate_backward", dict(grad_spike=torch.ones(4, 3)), ValueError, "grad_spike"),
    ("surrogate_backward", dict(grad_spike=torch.ones(3, 4, dtype=torch.int32)), TypeError, "grad_spike"),
    ("surrogate_backward", dict(grad_spike=meta(torch.ones(3, 4))), ValueError, "grad_spike"),
    ("surrogate_backward", dict(x=torch.ones(3, 4, dtype=torch.float64)), TypeError, "x"),
    ("surrogate_backward", dict(surrogate_kind=PLRELU, beta=math.inf), ValueError, "beta"),
    ("surrogate_backward", dict(alpha=0.0), ValueError, "alpha"),
]


def case_id(case):
    op, kw, exc, arg = case
    parts = []
    for k, v in kw.items():
        if isinstance(v, torch.Tensor):
            v = f"{list(v.shape)}{str(v.dtype).replace('torch.', '')}{'@meta' if v.device.type == 'meta' else ''}"
        parts.append(f"{k}={v}")
    return f"{op}-{','.join(parts)}"


def call(op, kw, fake_mode=None):
    args = BASE[op]()
    args.update(kw)
    if fake_mode is not None:
        args = {k: fake_mode.from_tensor(v) if isinstance(v, torch.Tensor) else v for k, v in args.items()}
    with torch.no_grad():
        return getattr(ops, op)(**args)


def check_message(message, op, arg):
    assert re.search(rf"spikeops::{op}\b", message), message
    assert re.search(rf"(?<![\w.]){arg}(?!\w)", message), message


def test_the_well_formed_calls_run():
    # The baseline every case perturbs one argument of.
    for op in BASE:
        call(op, {})
    assert set(BASE) == {name for name in dir(ops) if not name.startswith("_") and
                         isinstance(getattr(ops, name), torch._ops.OpOverloadPacket)}, "a registered op has no cases"


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_op_rejects_bad_argument(case):
    op, kw, exc, arg = case
    with pytest.raises(exc) as info:
        call(op, kw)
    assert type(info.value) is exc
    check_message(str(info.value), op, arg)


@pytest.mark.parametrize("case", [c for c in CASES if c[2] is not RuntimeError], ids=case_id)
def test_op_rejects_bad_argument_under_fake_tensors(case):
    # FakeTensorMode runs the op's fake implementation (what torch.compile traces): the same check, the same error.
    op, kw, exc, arg = case
    with FakeTensorMode() as mode, pytest.raises(exc) as info:
        call(op, kw, mode)
    assert type(info.value) is exc
    check_message(str(info.value), op, arg)


def test_all_op_cases_have_every_op():
    assert {c[0] for c in CASES} == set(BASE)


@pytest.mark.parametrize("op, kw, exc, arg", [
    ("spike_conv2d", dict(stride=[0, 1]), ValueError, "stride"),
    ("spike_conv2d", dict(groups=3), ValueError, "groups"),
    ("spike_linear", dict(spikes=u8(5, 6)), ValueError, "spikes"),
    ("neuron_forward", dict(state_init=torch.zeros(5)), ValueError, "state_init"),
    ("neuron_backward", dict(surrogate_grad_seq=torch.ones(2, 4)), ValueError, "surrogate_grad_seq"),
    ("surrogate_backward", dict(grad_spike=torch.ones(4, 3)), ValueError, "grad_spike"),
], ids=["conv-stride", "conv-groups", "linear-K", "neuron-state_init",
    "neuron-surrogate_grad_seq", "surrogate-shape"])
def test_op_rejects_bad_argument_under_torch_compile(op, kw, exc, arg):
    # Traced with fake tensors: the error surfaces while compiling, wrapped by Dynamo in a TorchRuntimeError whose
    # message carries the op's exception and message.
    torch._dynamo.reset()
    args = BASE[op]()
    args.update(kw)
    tensors = {k: v for k, v in args.items() if isinstance(v, torch.Tensor)}
    others = {k: v for k, v in args.items() if not isinstance(v, torch.Tensor)}

    def f(**t):
        return getattr(ops, op)(**t, **others)

    with pytest.raises(Exception) as info:
        torch.compile(f, fullgraph=True, backend="eager")(**tensors)
    assert re.search(rf"{exc.__name__}\(.spikeops::{op}: {arg} ", str(info.value)), str(info.value)
    # The same call without torch.compile raises the op's exception itself.
    with pytest.raises(exc, match=rf"spikeops::{op}: {arg} "):
        f(**tensors)


@pytest.mark.parametrize("kernel", ["auto", "events", "dense"])
def test_conv_on_empty_planes_is_refused_whatever_the_kernel(kernel):
    # torch's convolution (the dense path) refuses an input of zero height or width; the event kernel would return
    # the bias: the same call must not depend on which path the policy picks. An empty batch is still fine.
    with pytest.raises(ValueError, match=r"spikeops::spike_conv2d: spikes must have H and W > 0"):
        ops.spike_conv2d(u8(1, 1, 0, 0), torch.randn(1, 1, 1, 1), None, [1, 1], [1, 1], [1, 1], 1, kernel)
    out = ops.spike_conv2d(u8(0, 1, 0, 0), torch.randn(2, 1, 1, 1), None, [1, 1], [1, 1], [1, 1], 1, kernel)
    assert out.shape == (0, 2, 2, 2)
