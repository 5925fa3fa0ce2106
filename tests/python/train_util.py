"""A few training steps of a multi-step spiking network, for tests that compare two ways of running it."""

import torch
import torch.nn.functional as F

from spikeops import functional


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
