"""Classify MNIST with one fully connected layer of LIF neurons: SpikingJelly's ``lif_fc_mnist`` tutorial on spikeops.

The network and recipe are the tutorial's: Flatten -> Linear(784, 10, bias=False) -> LIFNode(tau=2.0,
surrogate ATan), Poisson-encoded images over T=100 steps, loss = MSE between the output firing rate and the
one-hot label, Adam with lr 1e-3, batch 64, the network reset after every batch. The whole sequence
[T, N, 1, 28, 28] runs in multi-step mode, through the fused LIF kernel, in one call per batch.

    python -m spikeops.examples.lif_fc_mnist                       # whatever MNIST is available
    python -m spikeops.examples.lif_fc_mnist --data-dir DIR -N 5   # the four IDX files in DIR
    python -m spikeops.examples.lif_fc_mnist --help

Data: --data-dir, else $SPIKEOPS_DATA, else the download cache, else a download from the MNIST mirrors,
else the 2,000/1,000-digit sample shipped in the package (the program says which it uses).

Encoding: ``--encoder rate`` (default) draws all T steps at once with :func:`spikeops.encoding.rate`, the same
Bernoulli(x) spikes as SpikingJelly's PoissonEncoder with probabilities quantised to 2^-15; ``--encoder
poisson`` uses :class:`spikeops.encoding.PoissonEncoder` (``rand <= x``, float precision), slower.
Differences from the tutorial: the default is 5 epochs instead of 100 (it is within 1% of its final accuracy
by then), and the seed is fixed (``--seed``).
"""

from __future__ import annotations

import argparse
import time
from typing import Optional, Sequence

import torch
from torch import nn

import spikeops
from spikeops import encoding, functional, layer, loss, neuron, surrogate
from spikeops.examples import _training

NUM_CLASSES = 10


def build_net(tau: float = 2.0) -> nn.Sequential:
    """The tutorial network, multi-step: [T, N, 1, 28, 28] -> spikes [T, N, 10]."""
    return nn.Sequential(
        layer.Flatten(step_mode="m"),
        layer.Linear(28 * 28, NUM_CLASSES, bias=False, step_mode="m"),
        neuron.LIFNode(tau=tau, surrogate_function=surrogate.ATan(), step_mode="m"),
    )


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m spikeops.examples.lif_fc_mnist",
        description="LIF MNIST training (SpikingJelly's lif_fc_mnist tutorial on spikeops kernels)",
        epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    _training.add_common_args(parser, T=100, batch_size=64, epochs=5, lr=1e-3, name="lif_fc_mnist")
    parser.add_argument("--tau", "-tau", type=float, default=2.0, help="membrane time constant of the LIF neurons")
    parser.add_argument("--encoder", choices=("rate", "poisson"), default="rate",
                        help="rate: all T steps in one draw (default); poisson: PoissonEncoder, rand <= x")
    parser.add_argument("--spikes", choices=("float32", "uint8"), default="float32",
                        help="dtype of the input spikes; uint8 sends 1-byte spikes to the Linear layer "
                             "(the accumulate-only spike GEMM)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Run the example; returns the summary dict (also written by --summary-json)."""
    parser = make_parser()
    args = _training.finish_args(parser.parse_args(argv), parser)
    if args.tau <= 1.0:
        parser.error("--tau must be > 1")
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    spike_dtype = torch.uint8 if args.spikes == "uint8" else torch.float32

    info = spikeops.build_info()
    allocator = _training.setup_allocator(args, device)
    print(f"spikeops {info['version']} on {device} (cpu simd {info['cpu_simd']}, threads "
          f"{torch.get_num_threads()}, cuda {info['cuda_available']}, {allocator})")
    train_set, test_set, source = _training.load_mnist(args)

    net = build_net(args.tau).to(device)
    print(net)
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr)
    poisson = encoding.PoissonEncoder(dtype=spike_dtype)
    T = args.T

    def step(x: torch.Tensor, y: torch.Tensor):
        if args.encoder == "rate":
            x_seq = encoding.rate(x, num_steps=T, dtype=spike_dtype)      # [T, N, 1, 28, 28]
        else:
            x_seq = poisson(x.unsqueeze(0).expand((T,) + tuple(x.shape)))
        out_spikes = net(x_seq)                                            # [T, N, 10]
        return loss.firing_rate_mse(out_spikes, y, NUM_CLASSES), out_spikes.mean(0)

    print(f"T={T}, batch {args.b}, Adam lr {args.lr:g}, tau {args.tau}, {args.epochs} epoch(s), encoder "
          f"{args.encoder}, {args.spikes} spikes; logs in {args.log_dir}")
    t0 = time.perf_counter()
    summary = _training.fit(args, net, optimizer, step, lambda: functional.reset_net(net), train_set, test_set,
                            source, encoding="poisson")  # both encoders draw Bernoulli(x) spikes
    print(f"total {time.perf_counter() - t0:.1f} s")
    return summary


if __name__ == "__main__":
    _training.run(main)
