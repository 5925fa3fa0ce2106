"""Small helpers for tests that build spiking networks and train them for a few steps."""

import torch
import torch.nn.functional as F

from spikeops import functional


def scale_parameters(net: torch.nn.Module, gain: float = 4.0) -> torch.nn.Module:
    """Multiply every parameter of ``net`` by ``gain`` in place: larger than the default initialisation, so that
    every layer of a freshly built network fires. Returns ``net``."""
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(gain)
    return net


def rate_mse_losses(net: torch.nn.Module, x: torch.Tensor, target: torch.Tensor, steps: int, lr: float = 1e-2):
    """Adam steps on the MSE between the output firing rate (mean over T of net(x)) and ``target``; the losses."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        functional.reset_net(net)
        loss = F.mse_loss(net(x).mean(0), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses
