"""Activation memory of training a 3-layer spiking MLP: 1-byte spikes vs float32 spikes.

Activation memory is what the training forward leaves allocated for the backward: the C heap in use after
the forward minus before it (glibc's mallinfo2, mmapped blocks included), so it counts everything the autograd
graph holds, also what a checkpoint keeps outside the saved-tensor hooks (the final neuron states and the
output, under 7 MB, are in every row). The tensors saved through torch.autograd.graph.saved_tensors_hooks are
counted too, by dtype, as a cross-check (parameters excluded; the hooks cannot see inside a checkpoint).
Networks (T=16, batch 128, 784-4096-4096-10, LIF neurons, multi-step):

  - eager torch:            nn.Linear layers and a plain-PyTorch LIF step loop (as in the tutorials),
  - spikeops float spikes:  layer.Linear + neuron.LIFNode, spikes float32 into dense nn.Linear,
  - spikeops 1-byte spikes: the same with layer.Linear(spike_input=True): the spike GEMM keeps its input
                            spikes in 1 byte for the backward (the gradient still reaches the neurons),
  - spikeops SpikeTensor:   neurons with spike_tensor=True write their spikes in 1 byte (no float spike
                            tensor at all) and the spike GEMM keeps those bytes,
  - ... + GCContainer:      each (Linear, LIF) pair in a layer.GCContainer (gradient checkpointing): the forward
                            keeps only each block's input, the backward runs the block again.

It also times one training step (forward + backward, median) of each network, in the same run.

    python bench/memory.py [--T 16] [--batch 128] [--hidden 4096] [--no-time]

Linux with glibc >= 2.33 only (mallinfo2).
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from _common import ATanSpike, median_time  # bench/ is on sys.path when run as a script
from spikeops import SpikeTensor, functional, layer, neuron, surrogate
from spikeops._allocator import mallinfo2


class EagerLIF(nn.Module):
    def forward(self, x_seq):
        v = torch.zeros_like(x_seq[0])
        out = []
        for x in x_seq:
            h = v + (x - v) / 2.0
            s = ATanSpike.apply(h - 1.0)
            v = h * (1.0 - s)
            out.append(s)
        return torch.stack(out)


def make_net(kind: str, hidden: int) -> nn.Module:
    if kind.endswith(" + GCContainer"):
        flat = list(make_net(kind.removesuffix(" + GCContainer"), hidden))
        return nn.Sequential(*[layer.GCContainer(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)])
    if kind == "eager torch":
        fc = lambda i, o: layer.SeqToANNContainer(nn.Linear(i, o))  # noqa: E731
        return nn.Sequential(fc(784, hidden), EagerLIF(), fc(hidden, hidden), EagerLIF(), fc(hidden, 10), EagerLIF())
    spike_input = kind in ("spikeops 1-byte spikes", "spikeops SpikeTensor")
    st = kind == "spikeops SpikeTensor"
    lif = lambda st=False: neuron.LIFNode(step_mode="m", surrogate_function=surrogate.ATan(),  # noqa: E731
                                          spike_tensor=st)
    return nn.Sequential(layer.Linear(784, hidden, step_mode="m"), lif(st),
                         layer.Linear(hidden, hidden, step_mode="m", spike_input=spike_input), lif(st),
                         layer.Linear(hidden, 10, step_mode="m", spike_input=spike_input), lif())


def heap_in_use() -> int:
    """Bytes of the C heap in use (glibc's mallinfo2: small blocks + mmapped blocks)."""
    info = mallinfo2()
    return info.uordblks + info.hblkhd


def kept_bytes(net: nn.Module, x: torch.Tensor) -> int:
    """Heap the training forward leaves allocated (after a first step, so that caches and lazy buffers exist)."""
    for _ in range(2):
        functional.reset_net(net)
        net.zero_grad(set_to_none=True)
        before = heap_in_use()
        out = net(x)
        kept = heap_in_use() - before
        out.float().mean().backward()
        del out
    net.zero_grad(set_to_none=True)
    return kept


def saved_bytes(net: nn.Module, x: torch.Tensor) -> tuple[int, dict]:
    params = {p.untyped_storage().data_ptr() for p in net.parameters()}
    seen, by_dtype = {}, {}

    def pack(t):
        storage = (t.spikes if isinstance(t, SpikeTensor) else t).untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in params and ptr not in seen and storage.nbytes() > 0:
            seen[ptr] = storage.nbytes()
            by_dtype[t.dtype] = by_dtype.get(t.dtype, 0) + storage.nbytes()
        return t

    functional.reset_net(net)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = net(x)
    out.float().mean().backward()  # the graph is complete and usable
    return sum(seen.values()), by_dtype


def step_seconds(net: nn.Module, x: torch.Tensor) -> float:
    def step():
        functional.reset_net(net)
        net(x).float().mean().backward()

    return median_time(step, torch.device("cpu"), min_runs=5, budget_s=3.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", type=int, default=16)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=4096)
    parser.add_argument("--no-time", action="store_true", help="memory only, no timing")
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.rand(args.T, args.batch, 784)
    print(f"3-layer spiking MLP 784-{args.hidden}-{args.hidden}-10, T={args.T}, batch={args.batch}: "
          "memory autograd keeps for the backward")
    print(f"{'network':40} {'activations MB':>15} {'vs float spikes':>16} {'step ms':>9} {'vs float':>9}  "
          "saved through the hooks, by dtype")
    kinds = ("eager torch", "spikeops float spikes", "spikeops 1-byte spikes", "spikeops SpikeTensor",
             "spikeops float spikes + GCContainer", "spikeops SpikeTensor + GCContainer")
    base = "spikeops float spikes"
    results = {}
    for kind in kinds:
        net = make_net(kind, args.hidden)
        results[kind] = (kept_bytes(net, x), saved_bytes(net, x)[1],
                         float("nan") if args.no_time else step_seconds(net, x))
        del net
    for kind, (total, by_dtype, seconds) in results.items():
        ratio = results[base][0] / total
        speed = results[base][2] / seconds
        detail = ", ".join(f"{str(d).replace('torch.', '')} {b / 2**20:.0f} MB" for d, b in sorted(
            by_dtype.items(), key=lambda kv: -kv[1])) or "-"
        print(f"{kind:40} {total / 2**20:15.1f} {ratio:15.2f}x {1e3 * seconds:9.0f} {speed:8.2f}x  {detail}")


if __name__ == "__main__":
    main()
