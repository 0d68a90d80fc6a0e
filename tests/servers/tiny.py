"""A tiny test-only network and loss, registered in zoo.nets.ARCHITECTURES as "tiny", so
hub / registry / trainer tests do not depend on the real nets (written elsewhere)."""
from dataclasses import dataclass

import torch
from torch import nn

from zoo.nets import ARCHITECTURES


class TinyNet(nn.Module):
    """net(x, t) for 2D points: x (B, 2), t (B,) -> (B, 2)."""

    @dataclass
    class Config:
        dim: int = 2
        hidden: int = 16

    def __init__(self, config: "TinyNet.Config"):
        super().__init__()
        self.config = config
        self.body = nn.Sequential(nn.Linear(config.dim + 1, config.hidden), nn.SiLU(),
                                  nn.Linear(config.hidden, config.dim))

    def forward(self, x, t, **cond):
        return self.body(torch.cat([x, t[:, None]], dim=1))


def register():
    ARCHITECTURES["tiny"] = (__name__, "TinyNet")


def batch_fn(step: int, generator: torch.Generator, batch_size: int = 32):
    """Points on a noisy ring, random from the per-step generator only."""
    angle = torch.rand(batch_size, generator=generator) * 6.283
    ring = torch.stack([angle.cos(), angle.sin()], dim=1)
    return ring + 0.05 * torch.randn(batch_size, 2, generator=generator)


def loss_fn(model, x0):
    """A toy flow-matching loss (uses the global RNG, which the loop seeds per step)."""
    t = torch.rand(x0.shape[0], device=x0.device)
    eps = torch.randn_like(x0)
    xt = (1 - t[:, None]) * x0 + t[:, None] * eps
    return ((model(xt, t) - (eps - x0)) ** 2).mean()


def load_pipeline(folder, **kwargs):
    """Test pipeline builder: the loaded net and config, plus what it was called with."""
    from zoo.hub import load_checkpoint

    net, config = load_checkpoint(folder)
    return {"net": net, "config": config, "folder": folder, "kwargs": kwargs}
