"""Thread safety: what may be shared between Python threads, and what each thread must own.

The ops and the runtime Model release the GIL while they compute, so these tests really run concurrently:

- the ops (spike_linear, spike_conv2d, the neuron ops, the surrogates), forward and backward, called from 4
  threads at once with different shapes give the results they give called one after another;
- a module without state (layer.Linear/Conv2d/pooling, in eval mode) may be shared by threads;
- a spiking neuron holds its membrane potential between calls, so one network with neurons must not be called
  from two threads at once (their calls would read and write the same state): give each thread its own copy
  (``copy.deepcopy(net)``), which then computes what the original computes;
- a runtime Model may be shared (test_runtime.py: its calls take turns), and separate Models run in parallel.

The CPU kernels' OpenMP thread count is per calling thread: each op call sets it to torch.get_num_threads() of
the thread that calls, so threads do not change each other's count (checked below).
"""

import copy
import threading

import torch
from torch import nn

import spikeops
from spikeops import _C, functional, layer, neuron, surrogate

N_THREADS = 4
ROUNDS = 3


def run_in_threads(work, n=N_THREADS):
    """Run work(i) in n threads started together; re-raise the first exception a thread hit."""
    errors = []
    barrier = threading.Barrier(n)

    def target(i):
        try:
            barrier.wait()
            work(i)
        except BaseException as e:  # noqa: BLE001 (re-raised in the main thread)
            errors.append(e)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def equal_all(got, expected):
    return len(got) == len(expected) and all(torch.equal(a, b) for a, b in zip(got, expected))


# --------------------------------------------------------------------------------------------------------- ops

def op_case(i):
    """The i-th thread's calls: shapes differ between threads; forward and backward of each op family."""
    g = torch.Generator().manual_seed(100 + i)
    M, K, O = 200 + 37 * i, 64 + 9 * i, 32 + 3 * i
    spikes = (torch.rand(M, K, generator=g) < 0.2).to(torch.uint8)
    weight = torch.randn(O, K, generator=g).requires_grad_(True)
    bias = torch.randn(O, generator=g)
    img = (torch.rand(2 + i, 3, 16 + i, 15 + 2 * i, generator=g) < 0.3).to(torch.uint8)
    cw = torch.randn(4, 3, 3, 3, generator=g).requires_grad_(True)
    x_seq = (torch.randn(4, 3 + i, 500 + 11 * i, generator=g) + 0.6).requires_grad_(True)
    h = torch.randn(5000 + 100 * i, generator=g).requires_grad_(True)

    def run():
        for t in (weight, cw, x_seq, h):
            t.grad = None
        y = functional.spike_linear(spikes, weight, bias)
        y.square().sum().backward()
        c = functional.spike_conv2d(img, cw, None, stride=1 + i % 2, padding=1)
        c.square().sum().backward()
        node = neuron.LIFNode(tau=2.0 + i, step_mode="m", surrogate_function=surrogate.ATan())
        s = node(x_seq)
        (s * torch.arange(s.numel()).view(s.shape)).sum().backward()
        sg = [surrogate.Sigmoid(), surrogate.Erf(), surrogate.PiecewiseQuadratic(), surrogate.FastSigmoid()][i % 4]
        z = sg(h)
        z.sum().backward()
        return [y, weight.grad, c, cw.grad, s, node.v, x_seq.grad, z, h.grad]

    return run


def test_ops_from_four_threads_equal_serial_results():
    runs = [op_case(i) for i in range(N_THREADS)]
    expected = [[t.detach().clone() for t in run()] for run in runs]
    wrong = []

    def work(i):
        for _ in range(ROUNDS):
            if not equal_all([t.detach() for t in runs[i]()], expected[i]):
                wrong.append(i)

    run_in_threads(work)
    assert wrong == []


# ----------------------------------------------------------------------------------------------------- modules

def stateless_net():
    torch.manual_seed(3)
    return nn.Sequential(layer.Conv2d(2, 6, 3, padding=1, step_mode="m"), layer.MaxPool2d(2, step_mode="m"),
                         layer.Flatten(step_mode="m"), layer.Linear(6 * 4 * 4, 10, step_mode="m")).eval()


def spiking_net():
    torch.manual_seed(4)
    net = nn.Sequential(layer.Conv2d(2, 6, 3, padding=1, step_mode="m"),
                        neuron.LIFNode(tau=2.0, step_mode="m", spike_tensor=True),
                        layer.MaxPool2d(2, step_mode="m"), layer.Flatten(step_mode="m"),
                        layer.Linear(6 * 4 * 4, 10, step_mode="m"), neuron.IFNode(step_mode="m"))
    with torch.no_grad():
        net[0].weight.mul_(3)
        net[4].weight.mul_(4)
    return net.eval()


def inputs(i, spikes):
    g = torch.Generator().manual_seed(i)
    x = torch.rand(3, 1 + 5 * i, 2, 8, 8, generator=g)
    return (x < 0.3).to(torch.uint8) if spikes else x


def test_stateless_layers_shared_between_threads():
    """One network without neurons, shared: each thread's spike and float batches give the serial results."""
    net = stateless_net()
    batches = [inputs(i, spikes=i % 2 == 0) for i in range(N_THREADS)]
    with torch.no_grad():
        expected = [net(x) for x in batches]
    wrong = []

    def work(i):
        with torch.no_grad():
            for _ in range(ROUNDS):
                if not torch.equal(net(batches[i]), expected[i]):
                    wrong.append(i)

    run_in_threads(work)
    assert wrong == []


def test_copies_of_a_spiking_network_in_threads_equal_the_original():
    """A network with neurons is not shared: each thread runs its own deepcopy, with reset_net between samples,
    and gets what the original gets (spikes and the gradient of the weights)."""
    net = spiking_net()
    batches = [inputs(i, spikes=False) for i in range(N_THREADS)]

    def run(model, x):
        model.zero_grad(set_to_none=True)
        out = model(x)
        (out * torch.linspace(-1, 1, out.shape[-1])).sum().backward()
        result = [out.detach(), model[0].weight.grad, model[4].weight.grad]
        functional.reset_net(model)
        return result

    expected = [run(net, x) for x in batches]
    assert sum(float(e[0].sum()) for e in expected) > 0  # the network fires
    copies = [copy.deepcopy(net) for _ in range(N_THREADS)]
    wrong = []

    def work(i):
        for _ in range(ROUNDS):
            if not equal_all(run(copies[i], batches[i]), expected[i]):
                wrong.append(i)

    run_in_threads(work)
    assert wrong == []


# ----------------------------------------------------------------------------------------------------- runtime

def test_separate_runtime_models_run_in_parallel(tmp_path):
    """One Model per thread, loaded from the same file: the calls do not wait for each other and agree with one
    Model called serially."""
    path = tmp_path / "net.spikeops"
    net = spiking_net()
    x = torch.rand(64, 2, 8, 8)
    spikeops.export(net, path, x[:1], T=4)
    models = [spikeops.runtime.load(path) for _ in range(N_THREADS)]
    expected = [models[0](x[: 1 + 20 * i]) for i in range(N_THREADS)]
    wrong = []

    def work(i):
        for _ in range(ROUNDS):
            scores, predictions = models[i](x[: 1 + 20 * i])
            if not (torch.equal(scores, expected[i][0]) and torch.equal(predictions, expected[i][1])):
                wrong.append(i)

    run_in_threads(work)
    assert wrong == []


# -------------------------------------------------------------------------------------------- CPU thread count

def test_cpu_thread_count_is_per_calling_thread():
    """torch.set_num_threads(1) in one thread sets that thread's kernel thread count only: a call in another
    thread still uses torch.get_num_threads() of its own, and the first thread's count is left as it was."""
    saved = torch.get_num_threads()
    torch.set_num_threads(3)  # not 1, whatever the machine, so that a thread's 1 is visible
    try:
        x = torch.randn(2, 100)
        neuron.IFNode(step_mode="m")(x)  # syncs the main thread's count
        assert _C.cpu_threads() == 3
        seen = {}

        def work(i):
            if i == 0:
                _C.set_cpu_threads(1)  # what an op call does in a thread whose torch count is 1
                seen[0] = _C.cpu_threads()
            else:
                neuron.IFNode(step_mode="m")(x)
                seen[1] = _C.cpu_threads()

        run_in_threads(work, n=2)
        assert seen == {0: 1, 1: 3}
        assert _C.cpu_threads() == 3  # the main thread's count is its own
    finally:
        torch.set_num_threads(saved)
        neuron.IFNode(step_mode="m")(torch.zeros(1, 1))  # and the kernels follow it again
