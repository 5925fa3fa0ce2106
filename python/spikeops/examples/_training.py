"""Shared machinery of the MNIST examples: command line, data, the epoch loop, progress, checkpoints, logs, plots.

Optional extras, each used only when importable (the examples say so when one is missing):
tqdm (progress bars), tensorboard (TensorBoard logs), matplotlib (accuracy/loss curves as PNG).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import torch
from torch import Tensor, nn

import spikeops
from spikeops import datasets
from spikeops._files import atomic_write

# ------------------------------------------------------------------------------------------------ command line


def default_device() -> str:
    try:
        cuda = bool(spikeops.build_info()["cuda_available"])
    except Exception:  # noqa: BLE001  (an unusual build must not stop the example)
        cuda = False
    return "cuda:0" if cuda else "cpu"


def add_common_args(parser: argparse.ArgumentParser, *, T: int, batch_size: int, epochs: int, lr: float,
                    name: str) -> None:
    """The options both MNIST examples share (SpikingJelly's tutorial names; its 2.0 single-dash spellings such
    as ``-device`` and ``-epochs`` are accepted too)."""
    parser.add_argument("-T", type=int, default=T, help=f"simulation time steps (default {T})")
    parser.add_argument("--device", "-device", default=default_device(),
                        help="torch device, e.g. cpu or cuda:0 (default: cuda:0 when spikeops has CUDA, else cpu)")
    parser.add_argument("-b", "--batch-size", dest="b", type=int, default=batch_size,
                        help=f"batch size (default {batch_size})")
    parser.add_argument("-j", "--workers", dest="j", type=int, default=0,
                        help="data-loading workers: accepted for compatibility and unused (batches are sliced "
                             "from in-memory tensors, which is faster than a DataLoader here)")
    parser.add_argument("-N", "--epochs", "-epochs", dest="epochs", type=int, default=epochs,
                        help=f"number of epochs (default {epochs})")
    parser.add_argument("--lr", "-lr", type=float, default=lr, help=f"Adam learning rate (default {lr:g})")
    parser.add_argument("--dataset-dir", "--data-dir", "-data-dir", dest="data_dir", default=None,
                        help="directory with the MNIST IDX files (gzipped or not). Default: $SPIKEOPS_DATA, "
                             "else the download cache, else a download, else the sample embedded in the package")
    parser.add_argument("--no-download", action="store_true",
                        help="never try to download MNIST (fall back to the embedded sample)")
    default_out = f"./logs/{name}"
    parser.add_argument("--log-dir", default=None,
                        help=f"TensorBoard logs, curves PNG and run arguments (default {default_out})")
    parser.add_argument("--model-output-dir", default=None,
                        help="checkpoints: checkpoint_latest.pth every epoch, checkpoint_max.pth at the best test "
                             "accuracy (default: the log dir)")
    parser.add_argument("--resume", "-resume", nargs="?", const="latest", default=None, metavar="CHECKPOINT",
                        help="continue from a checkpoint (without a path: checkpoint_latest.pth in the model "
                             "output dir)")
    parser.add_argument("--summary-json", default=None, metavar="PATH",
                        help='write {"epochs", "train_acc", "test_acc", "seconds_per_epoch", "device", '
                             '"data_source", ...} to PATH at the end')
    parser.add_argument("--export", default=None, metavar="PATH",
                        help="after training, write the network with the best test accuracy (checkpoint_max.pth; "
                             "the current one if no epoch has run) to PATH as a spikeops model file for the C++ "
                             "runtime (docs/model_format.md), with this run's -T and input encoding; its input is "
                             "the image as float32 [N, 1, 28, 28] in [0, 1] (pixel / 255)")
    parser.add_argument("--max-batches", type=int, default=None,
                        help="stop each training and test pass after this many batches (smoke tests)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (one line per epoch)")
    parser.add_argument("--no-tensorboard", action="store_true", help="do not write TensorBoard logs")
    parser.add_argument("--no-plot", action="store_true", help="do not draw the curves PNG")
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave the C library's allocator as it is (by default, on the CPU, large buffers are "
                             "kept in the heap between steps: spikeops.tune_cpu_allocator)")
    parser.set_defaults(_example_name=name)


def finish_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Validate numbers and fill in the output directories."""
    for field, low in (("T", 1), ("b", 1), ("epochs", 0)):
        if getattr(args, field) < low:
            parser.error(f"{'-' + field if len(field) == 1 else '--' + field} must be >= {low}")
    if args.max_batches is not None and args.max_batches < 1:
        parser.error("--max-batches must be >= 1")
    if not (args.lr > 0 and math.isfinite(args.lr)):
        parser.error("--lr must be a positive number")
    if args.log_dir is None:
        args.log_dir = f"./logs/{args._example_name}"
    if args.model_output_dir is None:
        args.model_output_dir = args.log_dir
    return args


def setup_allocator(args: argparse.Namespace, device: torch.device) -> str:
    """Training on the CPU: keep the large multi-step buffers in the heap (spikeops.tune_cpu_allocator) unless
    --default-malloc. Returns what was done, for the header line."""
    if device.type != "cpu" or args.default_malloc:
        return "default allocator"
    if spikeops.tune_cpu_allocator():
        return "large buffers kept in the heap"
    return "default allocator (not glibc)"


# ------------------------------------------------------------------------------------------------ data

def load_mnist(args: argparse.Namespace) -> Tuple[datasets.MNIST, datasets.MNIST, str]:
    """Both MNIST splits from wherever :func:`spikeops.datasets.resolve_mnist_root` finds them; says which."""
    root, source = datasets.resolve_mnist_root(args.data_dir, download=not args.no_download)
    train = datasets.MNIST(root, train=True)
    test = datasets.MNIST(root, train=False)
    print(f"data: {source}: {len(train):,} train / {len(test):,} test digits")
    if Path(root).resolve() == datasets.SAMPLE_DIR.resolve():
        print(f"note: this is only a sample; {datasets.FULL_DATA_HINT}")
    return train, test, source


def batches(images: Tensor, labels: Tensor, batch_size: int, shuffle: bool, drop_last: bool,
            generator: Optional[torch.Generator] = None, max_batches: Optional[int] = None
            ) -> Iterator[Tuple[Tensor, Tensor]]:
    """Mini-batches sliced straight from the in-memory tensors (a random permutation when ``shuffle``)."""
    n = images.shape[0]
    order = torch.randperm(n, generator=generator).to(images.device) if shuffle else None
    stop = n - n % batch_size if drop_last else n
    count = 0
    for start in range(0, stop, batch_size):
        if max_batches is not None and count >= max_batches:
            return
        if order is None:
            yield images[start:start + batch_size], labels[start:start + batch_size]
        else:
            idx = order[start:start + batch_size]
            yield images[idx], labels[idx]
        count += 1


def num_batches(n: int, batch_size: int, drop_last: bool, max_batches: Optional[int]) -> int:
    count = n // batch_size if drop_last else -(-n // batch_size)
    return count if max_batches is None else min(count, max_batches)


# ------------------------------------------------------------------------------------------------ extras

class Progress:
    """A tqdm bar when tqdm is installed and wanted, else a plain line every ~10% of the batches."""

    def __init__(self, total: int, desc: str, enabled: bool = True):
        self.total, self.desc, self.count = total, desc, 0
        self.bar = None
        self.enabled = enabled
        if enabled:
            try:
                from tqdm import tqdm
                self.bar = tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True)
            except ImportError:
                pass
        self.every = max(1, total // 10)

    def update(self, **metrics: float) -> None:
        self.count += 1
        text = {k: f"{v:.4f}" for k, v in metrics.items()}
        if self.bar is not None:
            self.bar.update(1)
            if self.count % 10 == 0 or self.count == self.total:
                self.bar.set_postfix(text, refresh=False)
        elif self.enabled and (self.count % self.every == 0 or self.count == self.total):
            print(f"  {self.desc} {self.count}/{self.total} " + " ".join(f"{k} {v}" for k, v in text.items()),
                  flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def optional_extras_notice(args: argparse.Namespace) -> None:
    """Say which optional extras are missing, once, up front."""
    missing = []
    if not args.no_progress:
        try:
            import tqdm  # noqa: F401
        except ImportError:
            missing.append("tqdm not installed: plain progress lines instead of progress bars")
    if not args.no_plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            missing.append("matplotlib not installed: no plot")
    for line in missing:
        print(line + " (pip install 'spikeops[examples]')")


def make_tensorboard_writer(args: argparse.Namespace, purge_step: int):
    if args.no_tensorboard:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        print("tensorboard not installed: no TensorBoard logs (pip install tensorboard)")
        return None
    return SummaryWriter(args.log_dir, purge_step=purge_step)


def plot_curves(history: List[Dict[str, float]], path: Path) -> bool:
    """Accuracy and loss per epoch as a PNG; False (and nothing written) without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    epochs = [h["epoch"] + 1 for h in history]
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("train_acc", "train"), ("test_acc", "test")):
        ax_acc.plot(epochs, [100 * h[key] for h in history], marker="o", label=label)
    for key, label in (("train_loss", "train"), ("test_loss", "test")):
        ax_loss.plot(epochs, [h[key] for h in history], marker="o", label=label)
    from matplotlib.ticker import MaxNLocator
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    for ax in (ax_acc, ax_loss):
        ax.grid(True, alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend()
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)
    return True


def save_checkpoint(state: dict, path: Path) -> None:
    atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(path: Path) -> dict:
    """A checkpoint written by :func:`save_checkpoint` (``net``, ``optimizer``, ``epoch``, ...), on the CPU."""
    return torch.load(path, map_location="cpu", weights_only=False)


def write_json(path: Path, obj: dict) -> None:
    atomic_write(path, lambda f: f.write((json.dumps(obj, indent=2) + "\n").encode()))


# ------------------------------------------------------------------------------------------------ the loop

StepFn = Callable[[Tensor, Tensor], Tuple[Tensor, Tensor]]


def _run_epoch(step_fn: StepFn, reset_fn: Callable[[], None], images: Tensor, labels: Tensor, args,
               optimizer: Optional[torch.optim.Optimizer], generator: Optional[torch.Generator],
               desc: str) -> Tuple[float, float, int]:
    train = optimizer is not None
    total = num_batches(images.shape[0], args.b, drop_last=train, max_batches=args.max_batches)
    progress = Progress(total, desc, enabled=not args.no_progress)
    loss_sum, correct, seen = 0.0, 0, 0
    try:
        with torch.set_grad_enabled(train):
            for x_u8, y in batches(images, labels, args.b, shuffle=train, drop_last=train, generator=generator,
                                   max_batches=args.max_batches):
                x = x_u8.unsqueeze(1).float().div_(255.0)        # [N, 1, 28, 28] in [0, 1]
                loss, scores = step_fn(x, y)
                if train:
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                reset_fn()                                       # clear the neurons' state after each batch
                n = y.shape[0]
                loss_sum += loss.item() * n
                correct += int((scores.argmax(1) == y).sum())
                seen += n
                progress.update(loss=loss_sum / seen, acc=correct / seen)
    finally:
        progress.close()
    if seen == 0:
        return float("nan"), float("nan"), 0
    return loss_sum / seen, correct / seen, seen


def fit(args: argparse.Namespace, net: nn.Module, optimizer: torch.optim.Optimizer, step_fn: StepFn,
        reset_fn: Callable[[], None], train_set: datasets.MNIST, test_set: datasets.MNIST,
        data_source: str, *, encoding: str) -> dict:
    """Train for ``args.epochs`` epochs with a test pass after each; checkpoints, logs, plots, summary, and the
    model file of ``--export``.

    ``step_fn(x, y)`` gets a batch (float images [N, 1, 28, 28] in [0, 1] and labels [N], on the device) and
    returns ``(loss, scores [N, C])``; ``reset_fn()`` runs after every batch. ``encoding`` says how ``step_fn``
    feeds the image to ``net`` over the T steps, in :func:`spikeops.export`'s terms: ``"direct"`` (the image
    at every step) or ``"poisson"`` (Bernoulli spikes with the pixel intensities as probabilities).
    """
    device = torch.device(args.device)
    log_dir, model_dir = Path(args.log_dir), Path(args.model_output_dir)
    latest_path, best_path = model_dir / "checkpoint_latest.pth", model_dir / "checkpoint_max.pth"

    start_epoch, max_test_acc, history = 0, -1.0, []
    if args.resume:
        path = latest_path if args.resume == "latest" else Path(args.resume)
        if not path.is_file():
            raise SystemExit(f"--resume: no checkpoint at {path}")
        ckpt = load_checkpoint(path)
        net.load_state_dict(ckpt["net"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start_epoch = ckpt["epoch"] + 1
        max_test_acc = ckpt["max_test_acc"]
        history = list(ckpt.get("history", []))
        print(f"resumed from {path}: epoch {ckpt['epoch'] + 1} done, best test accuracy {100 * max_test_acc:.2f}%")

    log_dir.mkdir(parents=True, exist_ok=True)
    model_dir.mkdir(parents=True, exist_ok=True)
    run_args = {k: v for k, v in vars(args).items() if not k.startswith("_")}
    write_json(log_dir / "args.json", {**run_args, "argv": sys.argv, "data_source": data_source})
    optional_extras_notice(args)
    writer = make_tensorboard_writer(args, purge_step=start_epoch)

    train_x, train_y = train_set.data.to(device), train_set.targets.to(device)
    test_x, test_y = test_set.data.to(device), test_set.targets.to(device)
    generator = torch.Generator().manual_seed(args.seed + start_epoch)
    epoch_seconds: List[float] = []
    plotted = False
    epoch = start_epoch
    try:
        for epoch in range(start_epoch, args.epochs):
            t0 = time.perf_counter()
            net.train()
            train_loss, train_acc, n_train = _run_epoch(step_fn, reset_fn, train_x, train_y, args, optimizer,
                                                        generator, f"epoch {epoch + 1}/{args.epochs} train")
            t1 = time.perf_counter()
            net.eval()
            test_loss, test_acc, n_test = _run_epoch(step_fn, reset_fn, test_x, test_y, args, None, None,
                                                     f"epoch {epoch + 1}/{args.epochs} test")
            t2 = time.perf_counter()
            epoch_seconds.append(t2 - t0)
            record = {"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc, "test_loss": test_loss,
                      "test_acc": test_acc, "train_seconds": t1 - t0, "test_seconds": t2 - t1}
            history.append(record)
            improved = test_acc > max_test_acc
            max_test_acc = max(max_test_acc, test_acc)
            state = {"net": net.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                     "max_test_acc": max_test_acc, "history": history, "args": run_args,
                     "data_source": data_source}
            save_checkpoint(state, latest_path)
            if improved:
                save_checkpoint(state, best_path)
            if writer is not None:
                for key in ("train_loss", "train_acc", "test_loss", "test_acc"):
                    writer.add_scalar(key, record[key], epoch)
                writer.flush()
            if not args.no_plot:
                plotted = plot_curves(history, log_dir / "curves.png") or plotted
            print(f"epoch {epoch + 1}/{args.epochs}: train loss {train_loss:.4f} acc {100 * train_acc:.2f}% "
                  f"({n_train} samples, {t1 - t0:.1f} s, {n_train / max(t1 - t0, 1e-9):.0f} img/s) | "
                  f"test loss {test_loss:.4f} acc {100 * test_acc:.2f}% ({n_test} samples, {t2 - t1:.1f} s) | "
                  f"best {100 * max_test_acc:.2f}%", flush=True)
    except KeyboardInterrupt:
        done = history[-1]["epoch"] + 1 if history else 0
        where = f"{latest_path} (after epoch {done})" if latest_path.is_file() else "none written yet"
        print(f"\ninterrupted during epoch {epoch + 1}; the last checkpoint is intact: {where}. "
              f"Continue with --resume.", flush=True)
        raise
    finally:
        if writer is not None:
            writer.close()

    if not args.no_plot and plotted:
        print(f"curves: {log_dir / 'curves.png'}")
    if args.export:
        images = test_x if test_x.shape[0] else train_x
        export_model(args, net, best_path if history and best_path.is_file() else None,
                     images[:1].unsqueeze(1).float().div_(255.0), encoding)
    last = history[-1] if history else {}
    summary = {
        "epochs": len(history),
        "train_acc": last.get("train_acc"),
        "test_acc": last.get("test_acc"),
        "max_test_acc": max_test_acc if history else None,
        "seconds_per_epoch": (sum(epoch_seconds) / len(epoch_seconds)) if epoch_seconds else None,
        "train_seconds_per_epoch": (sum(h["train_seconds"] for h in history[-len(epoch_seconds):]) /
                                    len(epoch_seconds)) if epoch_seconds else None,
        "device": str(device),
        "data_source": data_source,
        "T": args.T,
        "batch_size": args.b,
        "lr": args.lr,
        "max_batches": args.max_batches,
        "checkpoint": str(best_path) if best_path.is_file() else None,
        "export": args.export,
        "history": history,
    }
    if history:
        print(f"final: test accuracy {100 * last['test_acc']:.2f}% after {len(history)} epoch(s) "
              f"(best {100 * max_test_acc:.2f}%); checkpoints in {model_dir}")
    if args.summary_json:
        write_json(Path(args.summary_json), summary)
        print(f"summary: {args.summary_json}")
    return summary


def export_model(args: argparse.Namespace, net: nn.Module, checkpoint: Optional[Path], example_input: Tensor,
                 encoding: str) -> None:
    """``--export``: the weights of ``checkpoint`` (the best test accuracy) loaded into ``net``, or ``net`` as it
    is when there is none, written with :func:`spikeops.export` (T = ``args.T``)."""
    which = "the current network (no checkpoint yet)"
    if checkpoint is not None:
        net.load_state_dict(load_checkpoint(checkpoint)["net"])
        which = f"the best checkpoint, {checkpoint}"
    spikeops.export(net, args.export, example_input, T=args.T, encoding=encoding)
    print(f"exported {which} to {args.export} (T={args.T}, {encoding} encoding)")


def run(main) -> None:
    """Run an example's main() as a program: Ctrl-C exits with 130 (the last checkpoint is intact), missing or
    corrupt data exits with the message that names the file and why."""
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
