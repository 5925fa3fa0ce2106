"""Training speed of the lif_fc_mnist network: spikeops vs the same network as a plain-PyTorch eager step loop.

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

The images are MNIST when --data-dir (or $SPIKEOPS_DATA) names the IDX files, else random images with
MNIST's ink density (80% zero pixels), which costs the same.

    python bench/train_mnist.py [--batches 50] [--rounds 3] [-T 100] [-b 64] [--data-dir DIR] [--device cpu]
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

from _common import sync  # bench/ is on sys.path when run as a script

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


class ATanSpike(torch.autograd.Function):
    """Heaviside forward, SpikingJelly's ATan surrogate (alpha = 2) backward."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (x >= 0).to(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        alpha = 2.0
        return grad * (alpha / 2) / (1 + (math.pi / 2 * alpha * x).square())


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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=50, help="timed batches per round (default 50)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("-T", type=int, default=100)
    parser.add_argument("-b", "--batch-size", dest="b", type=int, default=64)
    parser.add_argument("--data-dir", default=os.environ.get("SPIKEOPS_DATA"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-slow", action="store_true", help="leave out the SpikingJelly/snnTorch rows")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    images, labels, source = load_images(args.data_dir, args.batches * args.b, g)
    batches = [((images[i:i + args.b].unsqueeze(1).float() / 255).to(device), labels[i:i + args.b].to(device))
               for i in range(0, args.batches * args.b, args.b)]
    batches_per_epoch = 60000 // args.b

    impls = {"spikeops (fused LIF, rate encoder)": spikeops_step(args.T, device)}
    impls["spikeops + exact PoissonEncoder"] = spikeops_step(args.T, device, encoder="poisson")
    if hasattr(functional, "spike_linear"):
        impls["spikeops, uint8 spikes (spike GEMM)"] = spikeops_step(args.T, device, spike_dtype=torch.uint8)
    impls["eager PyTorch step loop"] = eager_step(args.T, device)
    if not args.skip_slow:
        impls.update(spikingjelly_steps(args.T, device))
        impls.update(snntorch_step(args.T, device))

    info = spikeops.build_info()
    print(f"lif_fc_mnist training step: T={args.T}, batch {args.b}, {args.batches} batches x {args.rounds} rounds, "
          f"{device}, torch {torch.__version__} ({torch.get_num_threads()} threads), spikeops {info['version']} "
          f"(cpu simd {info['cpu_simd']}); data: {source}")
    times = {name: [] for name in impls}
    for _ in range(args.rounds):
        for name, step in impls.items():
            times[name] += time_batches(step, batches, device, args.warmup)

    eager = statistics.median(times["eager PyTorch step loop"])
    width = max(len(n) for n in impls)
    print(f"\n{'implementation':<{width}}  {'ms/batch':>9}  {'s/epoch':>8}  {'vs eager':>8}")
    for name in impls:
        med = statistics.median(times[name])
        print(f"{name:<{width}}  {1e3 * med:9.2f}  {med * batches_per_epoch:8.1f}  {eager / med:7.2f}x")
    best = statistics.median(times["spikeops (fused LIF, rate encoder)"])
    print(f"\nspikeops is {eager / best:.2f}x faster per epoch than the eager PyTorch loop "
          f"(s/epoch = median ms/batch x {batches_per_epoch} batches; test pass not included)")


if __name__ == "__main__":
    main()
