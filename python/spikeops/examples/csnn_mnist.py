"""Classify MNIST with a convolutional SNN: snnTorch's tutorial 6 network (12C5-MP2-64C5-MP2-1024FC10) on spikeops.

The network and recipe are the tutorial's: Conv2d(1, 12, 5) -> MaxPool2d(2) -> Leaky -> Conv2d(12, 64, 5) ->
MaxPool2d(2) -> Leaky -> Flatten -> Linear(64*4*4, 10) -> Leaky, Leaky neurons with beta 0.5 and the fast-sigmoid
surrogate (slope 25), the static image fed as a direct current at every step, loss ``ce_rate_loss`` (cross-entropy
of the output spikes at every step), Adam with betas (0.9, 0.999), batch 128; the learning rate is 2e-3 instead
of the tutorial's 1e-2 (see below). Every layer runs in
multi-step mode, [T, N, ...] in one call; the Linear layer reads the spikes of the layer before it through the
accumulate-only spike GEMM.

    python -m spikeops.examples.csnn_mnist                       # whatever MNIST is available, one epoch
    python -m spikeops.examples.csnn_mnist --data-dir DIR -N 3   # the four IDX files in DIR
    python -m spikeops.examples.csnn_mnist --help

Data: --data-dir, else $SPIKEOPS_DATA, else the download cache, else a download from the MNIST mirrors,
else the 2,000/1,000-digit sample shipped in the package (the program says which it uses).

The neuron: spikeops' ``LIFNode(tau=1/(1-beta), decay_input=False, v_reset=None)`` computes H = beta*V + X,
spikes where H reaches the threshold and then subtracts the threshold. That is snnTorch's ``Leaky(beta)`` with
its subtractive reset and ``reset_delay=False``, exactly: spikes, membrane and gradients (while the membrane
stays below twice the threshold, and except for a membrane landing exactly on the threshold, where snnTorch
fires only above it; tests/python/test_examples.py checks it step by step). The tutorial's Leaky has snnTorch's
default ``reset_delay=True``, which subtracts the threshold one step later, after the decay: each neuron's
first spike comes at the same step, but after a spike spikeops' membrane is higher by (1-beta)*threshold (the
subtracted threshold decays with it), so later spikes can differ.

Input: ``--encoder direct`` (default, the tutorial's) gives the image itself at every step. The first
convolution and pooling keep no state, so their output is the same at every step: it is computed once and
repeated T times (the gradient sums over the steps exactly as the tutorial's step loop does). ``--encoder
rate`` feeds Bernoulli spikes instead (:func:`spikeops.encoding.rate`, snnTorch's ``spikegen.rate``).

Speed: the convolutions run in channels-last memory order (oneDNN's fast layout on CPU); the neurons update
each element independently, so they run on that memory as it lies (:class:`ChannelsLast`) instead of copying
it to NCHW and back. ``--memory-format contiguous`` uses NCHW throughout.

Differences from the tutorial: T=25 steps by default (the tutorial uses 50; ``-T 50``), Adam's learning rate
2e-3 (the tutorial's 1e-2 reaches 97.5% after 3 epochs on the full MNIST, 2e-3 reaches 98.6%; ``--lr 1e-2``
gives the tutorial's), the test pass covers the whole test set after every epoch (the tutorial tests every 50
iterations), the neuron's reset as above, and the seed is fixed (``--seed``).
"""

from __future__ import annotations

import argparse
import time
from typing import Optional, Sequence

import torch
from torch import Tensor, nn

import spikeops
from spikeops import encoding, functional, layer, loss, neuron, surrogate
from spikeops.examples import _training

NUM_CLASSES = 10


class ChannelsLast(nn.Module):
    """Runs an element-wise neuron on a channels-last [T, N, C, H, W] sequence in the order its memory lies.

    Channels-last memory is [T, N, H, W, C] in order; the neuron gets that view (each element's update depends
    only on its own history, so the order does not matter) and its spikes go back out as a channels-last
    [T, N, C, H, W] view, ready for the next convolution: no copy to NCHW and back, forward or backward.
    Any other input goes to the neuron unchanged.

    Args:
        node (nn.Module): a multi-step neuron, e.g. ``neuron.LIFNode(step_mode='m')``.
    """

    def __init__(self, node: nn.Module):
        super().__init__()
        self.node = node

    def forward(self, x_seq: Tensor) -> Tensor:
        if x_seq.dim() == 5 and x_seq.stride(2) == 1:  # channels innermost: channels-last (or a view of it)
            return self.node(x_seq.permute(0, 1, 3, 4, 2)).permute(0, 1, 4, 2, 3)
        return self.node(x_seq)

    def _spikeops_export_children(self) -> list:
        """For :func:`spikeops.export`: only the memory order changes here, the computation is the neuron's."""
        return [self.node]


def leaky(beta: float = 0.5, slope: float = 25.0, spike_tensor: bool = False) -> neuron.LIFNode:
    """snnTorch's ``Leaky(beta, spike_grad=fast_sigmoid(slope))`` as a spikeops multi-step neuron.

    H = beta*V + X, S = (H >= 1), V = H - S: ``LIFNode`` with ``1 - 1/tau = beta``, the input not decayed and the
    soft (subtractive) reset. Equal to ``snn.Leaky(beta, reset_delay=False)``, not to the default
    ``reset_delay=True``; see the module docstring. ``spike_tensor``: the spikes as 1-byte
    :class:`spikeops.SpikeTensor` (see :func:`build_net`).
    """
    if not 0.0 < beta < 1.0:
        raise ValueError(f"leaky: beta must be in (0, 1), got {beta}")
    return neuron.LIFNode(tau=1.0 / (1.0 - beta), decay_input=False, v_reset=None,
                          surrogate_function=surrogate.FastSigmoid(slope=slope), step_mode="m",
                          spike_tensor=spike_tensor)


def build_net(beta: float = 0.5, slope: float = 25.0, channels_last: bool = True,
              spike_tensor: bool = False) -> nn.Sequential:
    """The tutorial network, multi-step: [T, N, 1, 28, 28] -> output spikes [T, N, 10].

    With ``channels_last`` the convolution weights are stored channels-last and the two convolutional
    neuron layers are wrapped in :class:`ChannelsLast`; the parameters and their names are the same either way.
    With ``spike_tensor`` those two neuron layers write 1-byte :class:`spikeops.SpikeTensor` spikes, so the second
    convolution runs on the event-driven spike convolution and the saved activations between them are bytes;
    the numbers are the same (up to float32 summation order).
    """
    wrap = ChannelsLast if channels_last else (lambda node: node)
    net = nn.Sequential(
        layer.Conv2d(1, 12, 5, step_mode="m"),                        # 28x28 -> 12 x 24x24
        layer.MaxPool2d(2, step_mode="m"),                            # -> 12 x 12x12
        wrap(leaky(beta, slope, spike_tensor)),
        layer.Conv2d(12, 64, 5, step_mode="m"),                       # -> 64 x 8x8
        layer.MaxPool2d(2, step_mode="m"),                            # -> 64 x 4x4
        wrap(leaky(beta, slope, spike_tensor)),
        layer.Flatten(step_mode="m"),                                 # -> 1024
        layer.Linear(64 * 4 * 4, NUM_CLASSES, step_mode="m", spike_input=True),  # spikes in: spike GEMM
        leaky(beta, slope),
    )
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    return net


def forward_direct(net: nn.Sequential, x: Tensor, T: int) -> Tensor:
    """The tutorial's direct input: the image ``x`` [N, 1, 28, 28] at each of T steps -> spikes [T, N, 10].

    The first convolution and pooling (``net[:2]``) keep no state, so they give the same current at every step:
    it is computed once and repeated T times; the rest of the network runs on the [T, N, ...] sequence.
    """
    current = net[:2](x.unsqueeze(0))                                 # [1, N, 12, 12, 12]
    return net[2:](current.expand((T,) + tuple(current.shape[1:])))


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m spikeops.examples.csnn_mnist",
        description="Convolutional SNN MNIST training (snnTorch's tutorial 6 network on spikeops kernels)",
        epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    _training.add_common_args(parser, T=25, batch_size=128, epochs=1, lr=2e-3, name="csnn_mnist")
    parser.add_argument("--beta", type=float, default=0.5, help="membrane decay of the Leaky neurons (default 0.5)")
    parser.add_argument("--slope", type=float, default=25.0,
                        help="slope of the fast-sigmoid surrogate gradient (default 25)")
    parser.add_argument("--encoder", choices=("direct", "rate"), default="direct",
                        help="direct: the image as input current at every step (default, the tutorial's); "
                             "rate: Bernoulli spikes with the pixel intensities as probabilities")
    parser.add_argument("--memory-format", choices=("channels_last", "contiguous"), default="channels_last",
                        help="memory order of the convolutions (default channels_last)")
    parser.add_argument("--spike-tensor", action="store_true",
                        help="the convolutional neurons write 1-byte SpikeTensor spikes: the second convolution "
                             "runs event-driven and the spikes kept for the backward take 1 byte (on the CPU "
                             "not faster once the network is trained, ~10%% firing; see docs/performance.md)")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Run the example; returns the summary dict (also written by --summary-json)."""
    parser = make_parser()
    args = _training.finish_args(parser.parse_args(argv), parser)
    if not 0.0 < args.beta < 1.0:
        parser.error("--beta must be in (0, 1)")
    if not args.slope > 0:
        parser.error("--slope must be > 0")
    torch.manual_seed(args.seed)
    device = torch.device(args.device)

    info = spikeops.build_info()
    allocator = _training.setup_allocator(args, device)
    print(f"spikeops {info['version']} on {device} (cpu simd {info['cpu_simd']}, threads "
          f"{torch.get_num_threads()}, cuda {info['cuda_available']}, {allocator})")
    train_set, test_set, source = _training.load_mnist(args)

    net = build_net(args.beta, args.slope, channels_last=args.memory_format == "channels_last",
                    spike_tensor=args.spike_tensor).to(device)
    print(net)
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr, betas=(0.9, 0.999))
    loss_fn = loss.ce_rate_loss()
    T = args.T

    def step(x: torch.Tensor, y: torch.Tensor):
        if args.encoder == "direct":
            out_spikes = forward_direct(net, x, T)                          # [T, N, 10]
        else:
            out_spikes = net(encoding.rate(x, num_steps=T))
        return loss_fn(out_spikes, y), out_spikes.sum(0)                    # scores: spike counts

    print(f"T={T}, batch {args.b}, Adam lr {args.lr:g}, beta {args.beta}, surrogate slope {args.slope}, "
          f"{args.epochs} epoch(s), encoder {args.encoder}, {args.memory_format}"
          f"{', SpikeTensor spikes' if args.spike_tensor else ''}; logs in {args.log_dir}")
    t0 = time.perf_counter()
    summary = _training.fit(args, net, optimizer, step, lambda: functional.reset_net(net), train_set, test_set,
                            source, encoding="direct" if args.encoder == "direct" else "poisson")
    print(f"total {time.perf_counter() - t0:.1f} s")
    return summary


if __name__ == "__main__":
    _training.run(main)
