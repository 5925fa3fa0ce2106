"""Inference throughput of the C++ runtime (spikeops::Model) vs the same network in PyTorch eager.

    python bench/cpp_inference.py [--network csnn|lif_fc] [--checkpoint PATH] [--runner build/.../mnist_infer]
                                  [--device cpu|cuda]

The network is one of the MNIST examples' (snnTorch's tutorial CSNN by default, T=25, direct input; or the
SpikingJelly tutorial's LIF-FC, T=100, Poisson input), with the weights of ``--checkpoint`` (the examples'
``checkpoint_max.pth``) or, without one, a fixed random initialisation scaled so that every layer fires
(the firing rates, hence the spike GEMM's work, are then not those of a trained network). It is exported with
``spikeops.export`` and run on MNIST test images at batch 1 and 64:

- ``PyTorch eager``: the spikeops modules in Python, eval mode, no_grad (the baseline);
- ``C++ runtime``: spikeops::Model on the exported file, called through ``spikeops.runtime``;
- ``C++ application``: ``examples/cpp/mnist_infer --json`` (with ``--runner``), timed inside the program
  around Model::run only.

Both sides use the same number of threads (``torch.get_num_threads()``). With ``--device cuda`` both run on
the GPU (PyTorch eager on CUDA tensors, the runtime after ``Model::to(kCUDA)``), the images starting in host
memory on both sides. Prints images per second and the ratio against PyTorch eager measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

import spikeops
from spikeops import datasets, functional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median_time, print_setup  # noqa: E402


def build(network: str, checkpoint: str | None, device: torch.device):
    from spikeops.examples import csnn_mnist, lif_fc_mnist

    if network == "csnn":
        net, T, encoding = csnn_mnist.build_net(), 25, "direct"

        def forward(x):
            return csnn_mnist.forward_direct(net, x, T)
    else:
        net, T, encoding = lif_fc_mnist.build_net(), 100, "poisson"

        def forward(x):
            return net((torch.rand((T,) + tuple(x.shape), device=x.device) <= x).float())
    if checkpoint:
        net.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=False)["net"])
    else:
        torch.manual_seed(0)
        with torch.no_grad():
            for m in net.modules():
                if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
                    m.weight.mul_(4)
    net.eval().to(device)

    def python_predict(x):
        functional.reset_net(net)
        with torch.no_grad():
            scores = forward(x.to(device)).sum(0)
        functional.reset_net(net)
        return scores.argmax(1).cpu()

    return net, T, encoding, python_predict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--network", choices=("csnn", "lif_fc"), default="csnn")
    parser.add_argument("--checkpoint", default=None, help="the examples' checkpoint_max.pth (trained weights)")
    parser.add_argument("--data-dir", default=None, help="MNIST directory (default: SPIKEOPS_DATA, cache, sample)")
    parser.add_argument("--runner", default=None, help="the built examples/cpp/mnist_infer, for the application rows")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--budget", type=float, default=2.0, help="seconds of timing per measurement")
    parser.add_argument("--device", default="cpu", help="cpu or cuda: where both sides compute")
    args = parser.parse_args()
    device = torch.device(args.device)

    print_setup(device, "float32")
    root, source = datasets.resolve_mnist_root(args.data_dir, download=False)
    test = datasets.MNIST(root, train=False)
    images = test.data.float().div(255).unsqueeze(1)  # [N, 1, 28, 28]
    labels = test.targets.long()
    net, T, encoding, python_predict = build(args.network, args.checkpoint, device)
    weights = f"weights of {args.checkpoint}" if args.checkpoint else "untrained weights (x4 init)"
    print(f"network {args.network} (T={T}, {encoding} input), {weights}; images: {source}")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{args.network}.spikeops"
        spikeops.export(net, path, images[:1], T=T, encoding=encoding)
        model = spikeops.runtime.load(path, device=device)

        n_check = min(1000, images.shape[0])
        py_pred = torch.cat([python_predict(images[i:i + 100]) for i in range(0, n_check, 100)])
        cpp_pred = model(images[:n_check])[1]
        agree = (py_pred == cpp_pred).float().mean().item()
        print(f"first {n_check} test images: accuracy PyTorch {(py_pred == labels[:n_check]).float().mean():.4f}, "
              f"C++ {(cpp_pred == labels[:n_check]).float().mean():.4f}, same prediction on {agree:.2%}")

        print(f"\n{'batch':>5}  {'implementation':<26} {'ms/batch':>10} {'images/s':>10} {'vs eager':>9}")
        for batch in args.batches:
            # cycle through different images so that firing (and the spike GEMM's work) is typical
            starts = list(range(0, images.shape[0] - batch + 1, batch))
            state = {"i": 0}

            def next_batch():
                s = starts[state["i"] % len(starts)]
                state["i"] += 1
                return images[s:s + batch]

            rows = [("PyTorch eager (spikeops)", median_time(lambda: python_predict(next_batch()), device,
                                                           budget_s=args.budget)),
                    ("C++ runtime", median_time(lambda: model(next_batch()), device, budget_s=args.budget))]
            if args.runner:
                limit = max(batch * 20, 200) if args.network == "csnn" else max(batch * 10, 100)
                out = subprocess.run([args.runner, str(path), str(root), "--batch", str(batch), "--limit",
                                      str(limit), "--threads", str(torch.get_num_threads()), "--device", args.device,
                                      "--json"],
                                     check=True, capture_output=True, text=True).stdout
                rows.append(("C++ application", batch / json.loads(out)["images_per_second"]))
            base = rows[0][1]
            for name, seconds in rows:
                print(f"{batch:>5}  {name:<26} {seconds * 1e3:>10.2f} {batch / seconds:>10.1f} {base / seconds:>8.2f}x")

        model.reset_reports()
        model(images[:256])
        print("\nC++ runtime, per image (256 test images):")
        for r in model.reports():
            rate = f"firing rate {r['firing_rate']:.4f}" if r["neuron_steps"] else ""
            ops = (f"{r['synaptic_ops'] / 256:,.0f} synaptic accumulates" if r["spike_input"] and r["synaptic_ops"]
                   else f"{r['dense_macs'] / 256:,.0f} dense MACs" if r["dense_macs"] else "")
            print(f"  {r['name']:<8} {r['type']:<11} {r['seconds'] / 256 * 1e6:>8.1f} us  {rate:<20} {ops}")


if __name__ == "__main__":
    main()
