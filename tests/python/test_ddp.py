"""DistributedDataParallel: a spiking network on the custom ops (fused neurons, a ParametricLIF's learned decay,
1-byte SpikeTensor spikes into the spike GEMM, float spikes into a dense layer) trained by two processes (gloo,
CPU), each on half of every batch, ends with the parameters of one process trained on the whole batches:
DDP averages the gradients of the per-half mean losses, which is the gradient of the whole batch's mean."""

import os
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from spikeops import functional, layer, neuron

T, BATCH, STEPS, WORLD = 4, 8, 3, 2


def make_net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(
        layer.Linear(12, 32, step_mode="m"),
        neuron.ParametricLIFNode(init_tau=2.0, step_mode="m", spike_tensor=True),
        layer.Linear(32, 16, step_mode="m"),                     # SpikeTensor in: the spike GEMM
        neuron.LIFNode(tau=2.0, step_mode="m"),
        layer.Linear(16, 4, step_mode="m", spike_input=True),    # float spikes as spikes
        neuron.IFNode(step_mode="m"))
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(3.0)  # every layer fires
    return net


def data():
    g = torch.Generator().manual_seed(1)
    return [(torch.rand(T, BATCH, 12, generator=g) * 2, torch.rand(BATCH, 4, generator=g)) for _ in range(STEPS)]


def train(net: nn.Module, batches, rows: slice) -> list:
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    losses = []
    for x, target in batches:
        functional.reset_net(net)
        loss = F.mse_loss(net(x[:, rows]).mean(0), target[rows])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        net = nn.parallel.DistributedDataParallel(make_net())
        half = BATCH // WORLD
        losses = train(net, data(), slice(rank * half, (rank + 1) * half))
        torch.save({"params": [p.detach() for p in net.module.parameters()], "losses": losses},
                   os.path.join(out_dir, f"rank{rank}.pt"))
        # DDP's reducer goes before the process group, and no rank tears the group down while another still
        # uses it: without these, one process now and then hung at exit in gloo.
        del net
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed (gloo)")
def test_ddp_matches_single_process_training(tmp_path):
    ctx = mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=False)
    deadline = time.monotonic() + 120
    while not ctx.join(timeout=1):  # raises if a process failed
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail("the two DDP processes did not finish within 120 s")
    single = make_net()
    losses = train(single, data(), slice(0, BATCH))
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    for r in ranks:  # the replicas agree, and equal the single process's parameters
        for p, q in zip(r["params"], single.parameters()):
            torch.testing.assert_close(p, q.detach(), rtol=1e-4, atol=1e-5)
    # The mean of the two halves' losses is the whole batch's loss, step by step.
    for step, loss in enumerate(losses):
        assert abs((ranks[0]["losses"][step] + ranks[1]["losses"][step]) / 2 - loss) < 1e-5
    moved = max((p - q).abs().max().item() for p, q in zip(ranks[0]["params"], make_net().parameters()))
    assert moved > 1e-3  # the training changed the parameters (a test of something)
