"""Training speed of the two MNIST example networks: spikeops vs the same network as a plain-PyTorch eager step loop.

Part 1, lif_fc_mnist (--network fc or all):

The network is SpikingJelly's tutorial one (Flatten -> Linear 784->10 without bias -> LIF tau=2 with the ATan
surrogate), trained with Adam on the MSE between the output firing rate and the one-hot label, batch 64,
T=100 Poisson steps. One training step = encode the batch, forward, loss, backward, optimizer step, reset.
Each implementation runs the same batches in the same process; rounds are interleaved so that a noisy
machine slows all of them alike. It prints the median time per batch, the time per epoch it implies
(60,000 // batch batches) and the speed-up over the eager loop.

Rows:
- spikeops: the whole [T, N, 1, 28, 28] sequence in one multi-step call (fused LIF kernel); Poisson spikes for
  all T steps drawn at once (spikeops.encoding.rate: 15-bit probabilities, 4 spikes per 64-bit draw, and no
  draw at all for pixels that are exactly 0 or 1).
- spikeops + PoissonEncoder: the same, with SpikingJelly's exact rand <= x encoding of the whole sequence.
- spikeops uint8 spikes: 1-byte input spikes into layer.Linear (the spike GEMM), when this spikeops has it.
- eager PyTorch: the tutorial's loop, one step at a time: encode, Linear, LIF update with an ATan
  autograd.Function (what one writes without an SNN library).
- SpikingJelly (the tutorial's single-step loop, and multi-step mode) and snnTorch (Leaky, beta=0.5, reset to
  zero, atan surrogate, spikegen.rate; the idiomatic equivalent, for timing) when installed.

Part 2, csnn_mnist (--network csnn or all): snnTorch's tutorial 6 network 12C5-MP2-64C5-MP2-1024FC10 with
Leaky neurons (beta 0.5, subtractive reset, fast-sigmoid surrogate slope 25), the image fed as a direct current
at each of T=25 steps, cross-entropy at every step on the output spikes (ce_rate_loss), Adam lr 1e-2, batch 128.
All rows compute the same neuron, H = 0.5*V + X, S = (H >= 1), V = H - S (snnTorch's Leaky with
reset_delay=False), so they differ only in how the work is laid out. Rows:
- spikeops: the csnn_mnist example: every layer multi-step over [T, N, ...], fused LIF kernels, the output
  Linear on the spike GEMM (spike_input=True), channels-last convolutions with the neurons run on that memory
  as it lies, and the first conv + pool (stateless, same input every step) computed once and repeated T times.
- spikeops, NCHW: the same in the default memory order.
- eager PyTorch step loop: the tutorial's loop, one step at a time through conv1, pool, Leaky, conv2, pool,
  Leaky, fc, Leaky, the neuron written in plain PyTorch with a fast-sigmoid autograd.Function (NCHW, the default).
- eager PyTorch step loop, channels-last: the same loop with channels-last convolutions.
- snnTorch (the tutorial's nn.Sequential of snn.Leaky, reset_delay=False) when installed.
The speed-up is over the eager step loop; the convolutions are dense float32 in every row (conv2 forward and
backward alone is about 60% of the spikeops step on a 2-core CPU), so their cost bounds the ratio.

The images are MNIST when --data-dir (or $SPIKEOPS_DATA) names the IDX files, else random images with
MNIST's ink density (80% zero pixels), which costs the same.

All rows run in one process with the same allocator: by default the process calls
spikeops.tune_cpu_allocator() first (glibc keeps large buffers in the heap instead of mapping fresh pages for
every step, as jemalloc or tcmalloc would), as the examples do; --default-malloc leaves glibc as it is.

    python bench/train_mnist.py [--network all|fc|csnn] [--batches 50] [--rounds 3] [-T 100] [-b 64]
                                [--csnn-batches 10] [--csnn-T 25] [--csnn-b 128] [--data-dir DIR] [--device cpu]
                                [--default-malloc]
"""

from __future__ import annotations

import argparse
import gzip
import inspect
import math
import os
import statistics
import struct
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import spikeops
from spikeops import functional, layer, neuron, surrogate

from _common import ATanSpike, FastSigmoidSpike, cpu_model, sync  # bench/ is on sys.path when run as a script

try:  # the fast whole-sequence encoder; absent from older spikeops installs, so a copy of it follows
    from spikeops.encoding import rate as spikeops_rate
except ImportError:
    def _bernoulli_15bit(p, shape, dtype):
        thr = torch.round(p.float() * 32768).sub_(1).to(torch.int16)
        n = math.prod(shape)
        words = torch.empty((n + 3) // 4, dtype=torch.int64, device=p.device).random_(-(2 ** 63), None)
        r = words.view(torch.int16)[:n].view(shape).bitwise_and_(32767)
        return torch.le(r, thr, out=torch.empty(shape, dtype=dtype, device=p.device))

    def spikeops_rate(data, num_steps, dtype=torch.float32):
        p = data.float().clamp(0, 1)
        T, M = num_steps, p.numel()
        flat = p.reshape(M)
        active = ((flat > 0) & (flat < 1)).nonzero().squeeze(1)
        if p.device.type != "cpu" or active.numel() > M // 2:
            return _bernoulli_15bit(p, (T,) + tuple(p.shape), dtype)
        out = torch.empty((T, M), dtype=dtype)
        out.copy_((flat >= 1).to(dtype).expand(T, M))
        out.index_copy_(1, active, _bernoulli_15bit(flat[active], (T, active.numel()), dtype))
        return out.view((T,) + tuple(p.shape))

NUM_CLASSES = 10


# ---------------------------------------------------------------- data

def read_idx(path: Path) -> torch.Tensor:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    return torch.frombuffer(bytearray(raw[4 + 4 * ndim:]), dtype=torch.uint8).reshape(dims)


def load_images(data_dir, n: int, generator: torch.Generator):
    if data_dir:
        root = Path(data_dir)
        for sub in ("", "mnist"):
            for ext in ("", ".gz"):
                images = root / sub / f"train-images-idx3-ubyte{ext}"
                labels = root / sub / f"train-labels-idx1-ubyte{ext}"
                if images.is_file() and labels.is_file():
                    return read_idx(images)[:n], read_idx(labels)[:n].long(), f"MNIST from {images.parent}"
        raise SystemExit(f"--data-dir {data_dir}: no train-images-idx3-ubyte[.gz] there")
    ink = torch.rand(n, 28, 28, generator=generator) < 0.2
    images = (ink * torch.randint(128, 256, (n, 28, 28), generator=generator)).to(torch.uint8)
    labels = torch.randint(0, NUM_CLASSES, (n,), generator=generator)
    return images, labels, "random images with MNIST's ink density"


# ---------------------------------------------------------------- implementations

def spikeops_step(T: int, device, encoder: str = "rate", spike_dtype=torch.float32):
    net = nn.Sequential(
        layer.Flatten(step_mode="m"),
        layer.Linear(784, NUM_CLASSES, bias=False, step_mode="m"),
        neuron.LIFNode(tau=2.0, surrogate_function=surrogate.ATan(), step_mode="m"),
    ).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def step(img, label):
        if encoder == "rate":
            x_seq = spikeops_rate(img, num_steps=T, dtype=spike_dtype)
        else:  # SpikingJelly's PoissonEncoder on the whole sequence: rand <= x
            x_seq = torch.rand((T,) + tuple(img.shape), device=img.device).le_(img).to(spike_dtype)
        out_fr = net(x_seq).mean(0)
        loss = F.mse_loss(out_fr, F.one_hot(label, NUM_CLASSES).float())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        functional.reset_net(net)
        return loss

    return step


def eager_step(T: int, device):
    fc = nn.Linear(784, NUM_CLASSES, bias=False).to(device)
    opt = torch.optim.Adam(fc.parameters(), lr=1e-3)
    tau, v_th, v_reset = 2.0, 1.0, 0.0

    def step(img, label):
        v = torch.full((img.shape[0], NUM_CLASSES), v_reset, device=img.device)
        out_fr = 0.0
        for _ in range(T):  # the tutorial's loop: encode, layer, neuron, one step at a time
            x = (torch.rand_like(img) <= img).to(img)
            h = v + (fc(x.flatten(1)) - (v - v_reset)) / tau
            s = ATanSpike.apply(h - v_th)
            v = s * v_reset + (1.0 - s) * h
            out_fr = out_fr + s
        out_fr = out_fr / T
        loss = F.mse_loss(out_fr, F.one_hot(label, NUM_CLASSES).float())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    return step


def spikingjelly_steps(T: int, device):
    try:
        from spikingjelly.activation_based import encoding as sj_encoding
        from spikingjelly.activation_based import functional as sj_functional
        from spikingjelly.activation_based import layer as sj_layer
        from spikingjelly.activation_based import neuron as sj_neuron
        from spikingjelly.activation_based import surrogate as sj_surrogate
    except Exception:  # noqa: BLE001  (not installed, or broken in this environment)
        return {}

    def make(step_mode):
        kw = {"step_mode": step_mode}
        node_kw = dict(kw)
        if "backend" in inspect.signature(sj_neuron.LIFNode.__init__).parameters:  # SpikingJelly < 2.0
            node_kw["backend"] = "torch"
        net = nn.Sequential(
            sj_layer.Flatten(**kw), sj_layer.Linear(784, NUM_CLASSES, bias=False, **kw),
            sj_neuron.LIFNode(tau=2.0, surrogate_function=sj_surrogate.ATan(), **node_kw),
        ).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        encoder = sj_encoding.PoissonEncoder()

        def step(img, label):
            if step_mode == "s":
                out_fr = 0.0
                for _ in range(T):
                    out_fr = out_fr + net(encoder(img))
                out_fr = out_fr / T
            else:
                out_fr = net(encoder(img.unsqueeze(0).expand((T,) + tuple(img.shape)))).mean(0)
            loss = F.mse_loss(out_fr, F.one_hot(label, NUM_CLASSES).float())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sj_functional.reset_net(net)
            return loss

        return step

    return {"SpikingJelly, tutorial loop (step_mode='s')": make("s"),
            "SpikingJelly, multi-step (step_mode='m')": make("m")}


def snntorch_step(T: int, device):
    try:
        import snntorch as snn
        from snntorch import spikegen
        from snntorch import surrogate as snn_surrogate
    except Exception:  # noqa: BLE001
        return {}
    fc = nn.Linear(784, NUM_CLASSES, bias=False).to(device)
    lif = snn.Leaky(beta=0.5, spike_grad=snn_surrogate.atan(), reset_mechanism="zero").to(device)
    opt = torch.optim.Adam(fc.parameters(), lr=1e-3)

    def step(img, label):
        x_seq = spikegen.rate(img, num_steps=T)
        mem = lif.init_leaky()
        spikes = []
        for t in range(T):
            spk, mem = lif(fc(x_seq[t].flatten(1)), mem)
            spikes.append(spk)
        out_fr = torch.stack(spikes).mean(0)
        loss = F.mse_loss(out_fr, F.one_hot(label, NUM_CLASSES).float())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    return {"snnTorch (Leaky, step loop)": step}


# ---------------------------------------------------------------- CSNN (snnTorch tutorial 6)

CSNN_BETA, CSNN_SLOPE = 0.5, 25.0


def ce_rate(spikes, label):
    """snnTorch's ce_rate_loss: cross-entropy of the output spikes at every step, averaged over steps and batch."""
    return F.cross_entropy(spikes.flatten(0, 1), label.repeat(spikes.shape[0]))


class ChannelsLast(nn.Module):
    """An element-wise neuron run on a channels-last [T, N, C, H, W] sequence as its memory lies ([T, N, H, W, C])."""

    def __init__(self, node):
        super().__init__()
        self.node = node

    def forward(self, x_seq):
        if x_seq.dim() == 5 and x_seq.stride(2) == 1:
            return self.node(x_seq.permute(0, 1, 3, 4, 2)).permute(0, 1, 4, 2, 3)
        return self.node(x_seq)


def csnn_spikeops_step(T: int, device, channels_last: bool = True):
    def leaky():
        return neuron.LIFNode(tau=1 / (1 - CSNN_BETA), decay_input=False, v_reset=None,
                              surrogate_function=surrogate.FastSigmoid(CSNN_SLOPE), step_mode="m")

    wrap = ChannelsLast if channels_last else (lambda node: node)
    spike_kw = {"spike_input": True} if "spike_input" in inspect.signature(layer.Linear.__init__).parameters else {}
    net = nn.Sequential(
        layer.Conv2d(1, 12, 5, step_mode="m"), layer.MaxPool2d(2, step_mode="m"), wrap(leaky()),
        layer.Conv2d(12, 64, 5, step_mode="m"), layer.MaxPool2d(2, step_mode="m"), wrap(leaky()),
        layer.Flatten(step_mode="m"), layer.Linear(64 * 4 * 4, NUM_CLASSES, step_mode="m", **spike_kw), leaky(),
    ).to(device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2, betas=(0.9, 0.999))

    def step(img, label):
        current = net[:2](img.unsqueeze(0))          # the same at every step: computed once
        out = net[2:](current.expand((T,) + tuple(current.shape[1:])))
        loss = ce_rate(out, label)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        functional.reset_net(net)
        return loss

    return step


def csnn_eager_step(T: int, device, channels_last: bool = False):
    conv1, conv2, fc = nn.Conv2d(1, 12, 5).to(device), nn.Conv2d(12, 64, 5).to(device), nn.Linear(1024, 10).to(device)
    if channels_last:
        conv1, conv2 = conv1.to(memory_format=torch.channels_last), conv2.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam([*conv1.parameters(), *conv2.parameters(), *fc.parameters()], lr=1e-2, betas=(0.9, 0.999))

    def leaky(current, v):
        h = CSNN_BETA * v + current
        s = FastSigmoidSpike.apply(h - 1.0)
        return s, h - s                                 # subtract the threshold (1.0) where it fired

    def step(img, label):
        v1 = v2 = v3 = 0.0
        spikes = []
        for _ in range(T):  # the tutorial's loop: the image at every step, layer by layer, one step at a time
            s1, v1 = leaky(F.max_pool2d(conv1(img), 2), v1)
            s2, v2 = leaky(F.max_pool2d(conv2(s1), 2), v2)
            s3, v3 = leaky(fc(s2.flatten(1)), v3)
            spikes.append(s3)
        loss = ce_rate(torch.stack(spikes), label)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    return step


def csnn_snntorch_step(T: int, device):
    try:
        import snntorch as snn
        from snntorch import surrogate as snn_surrogate
        from snntorch import utils as snn_utils
    except Exception:  # noqa: BLE001  (not installed, or broken in this environment)
        return {}
    kw = {"beta": CSNN_BETA, "spike_grad": snn_surrogate.fast_sigmoid(slope=CSNN_SLOPE), "init_hidden": True}
    if "reset_delay" in inspect.signature(snn.Leaky.__init__).parameters:
        kw["reset_delay"] = False                       # the same neuron as the other rows
    net = nn.Sequential(
        nn.Conv2d(1, 12, 5), nn.MaxPool2d(2), snn.Leaky(**kw),
        nn.Conv2d(12, 64, 5), nn.MaxPool2d(2), snn.Leaky(**kw),
        nn.Flatten(), nn.Linear(64 * 4 * 4, NUM_CLASSES), snn.Leaky(output=True, **kw),
    ).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2, betas=(0.9, 0.999))

    def step(img, label):
        snn_utils.reset(net)
        spikes = []
        for _ in range(T):
            spk, _mem = net(img)
            spikes.append(spk)
        loss = ce_rate(torch.stack(spikes), label)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    return {"snnTorch (tutorial nn.Sequential of Leaky, step loop)": step}


# ---------------------------------------------------------------- timing

def time_batches(step, batches, device, warmup: int):
    for img, label in batches[:warmup]:
        step(img, label)
    sync(device)
    times = []
    for img, label in batches:
        t0 = time.perf_counter()
        step(img, label)
        sync(device)
        times.append(time.perf_counter() - t0)
    return times


def make_batches(args, n_batches: int, batch_size: int, device, seed: int):
    g = torch.Generator().manual_seed(seed)
    images, labels, source = load_images(args.data_dir, n_batches * batch_size, g)
    batches = [((images[i:i + batch_size].unsqueeze(1).float() / 255).to(device), labels[i:i + batch_size].to(device))
               for i in range(0, n_batches * batch_size, batch_size)]
    return batches, source


def run_rows(impls, batches, device, rounds: int, warmup: int):
    """Median seconds per batch of each implementation, rounds interleaved."""
    times = {name: [] for name in impls}
    for _ in range(rounds):
        for name, step in impls.items():
            times[name] += time_batches(step, batches, device, warmup)
    return {name: statistics.median(t) for name, t in times.items()}


def print_table(medians, baseline: str, batches_per_epoch: int):
    width = max(len(n) for n in medians)
    base = medians[baseline]
    print(f"\n{'implementation':<{width}}  {'ms/batch':>9}  {'s/epoch':>8}  {'vs eager':>8}")
    for name, med in medians.items():
        print(f"{name:<{width}}  {1e3 * med:9.2f}  {med * batches_per_epoch:8.1f}  {base / med:7.2f}x")


def bench_fc(args, device):
    batches, source = make_batches(args, args.batches, args.b, device, seed=0)
    batches_per_epoch = 60000 // args.b

    impls = {"spikeops (fused LIF, rate encoder)": spikeops_step(args.T, device)}
    impls["spikeops + exact PoissonEncoder"] = spikeops_step(args.T, device, encoder="poisson")
    if hasattr(functional, "spike_linear"):
        impls["spikeops, uint8 spikes (spike GEMM)"] = spikeops_step(args.T, device, spike_dtype=torch.uint8)
    impls["eager PyTorch step loop"] = eager_step(args.T, device)
    if not args.skip_slow:
        impls.update(spikingjelly_steps(args.T, device))
        impls.update(snntorch_step(args.T, device))

    print(f"lif_fc_mnist training step: T={args.T}, batch {args.b}, {args.batches} batches x {args.rounds} rounds; "
          f"data: {source}")
    medians = run_rows(impls, batches, device, args.rounds, args.warmup)
    print_table(medians, "eager PyTorch step loop", batches_per_epoch)
    eager, best = medians["eager PyTorch step loop"], medians["spikeops (fused LIF, rate encoder)"]
    print(f"\nlif_fc_mnist: spikeops is {eager / best:.2f}x faster per epoch than the eager PyTorch loop "
          f"(s/epoch = median ms/batch x {batches_per_epoch} batches; test pass not included)")


def bench_csnn(args, device):
    batches, source = make_batches(args, args.csnn_batches, args.csnn_b, device, seed=1)
    batches_per_epoch = 60000 // args.csnn_b
    T = args.csnn_T

    impls = {"spikeops (multi-step, channels-last)": csnn_spikeops_step(T, device)}
    impls["spikeops, NCHW"] = csnn_spikeops_step(T, device, channels_last=False)
    impls["eager PyTorch step loop"] = csnn_eager_step(T, device)
    impls["eager PyTorch step loop, channels-last"] = csnn_eager_step(T, device, channels_last=True)
    if not args.skip_slow:
        impls.update(csnn_snntorch_step(T, device))

    print(f"\ncsnn_mnist training step (12C5-MP2-64C5-MP2-1024FC10): T={T}, batch {args.csnn_b}, "
          f"{args.csnn_batches} batches x {args.rounds} rounds; data: {source}")
    medians = run_rows(impls, batches, device, args.rounds, args.warmup)
    print_table(medians, "eager PyTorch step loop", batches_per_epoch)
    eager, best = medians["eager PyTorch step loop"], medians["spikeops (multi-step, channels-last)"]
    eager_cl = medians["eager PyTorch step loop, channels-last"]
    print(f"\ncsnn_mnist: spikeops is {eager / best:.2f}x faster per epoch than the eager PyTorch loop "
          f"({eager_cl / best:.2f}x than the channels-last eager loop; s/epoch = median ms/batch x "
          f"{batches_per_epoch} batches; test pass not included)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", choices=("all", "fc", "csnn"), default="all",
                        help="which example network to time (default all)")
    parser.add_argument("--batches", type=int, default=50, help="lif_fc_mnist: timed batches per round (default 50)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("-T", type=int, default=100, help="lif_fc_mnist: time steps (default 100)")
    parser.add_argument("-b", "--batch-size", dest="b", type=int, default=64, help="lif_fc_mnist: batch (default 64)")
    parser.add_argument("--csnn-batches", type=int, default=10, help="csnn_mnist: timed batches per round (default 10)")
    parser.add_argument("--csnn-T", type=int, default=25, help="csnn_mnist: time steps (default 25)")
    parser.add_argument("--csnn-b", type=int, default=128, help="csnn_mnist: batch (default 128)")
    parser.add_argument("--data-dir", default=os.environ.get("SPIKEOPS_DATA"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-slow", action="store_true", help="leave out the SpikingJelly/snnTorch rows")
    parser.add_argument("--default-malloc", action="store_true",
                        help="do not call spikeops.tune_cpu_allocator() (every row then runs on glibc's defaults)")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    torch.manual_seed(0)
    info = spikeops.build_info()
    tuned = not args.default_malloc and spikeops.tune_cpu_allocator()
    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical cores")
    print(f"{device}, torch {torch.__version__} ({torch.get_num_threads()} threads), spikeops {info['version']} "
          f"(cpu simd {info['cpu_simd']}); CPU allocator: {'tuned (tune_cpu_allocator)' if tuned else 'default'}")
    if args.network in ("all", "fc"):
        bench_fc(args, device)
    if args.network in ("all", "csnn"):
        bench_csnn(args, device)


if __name__ == "__main__":
    main()
