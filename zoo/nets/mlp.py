"""A time-conditioned MLP for low-dimensional data (the toy 2D tab).

Time enters through sinusoidal features of t (the Transformer / DDPM embedding, Vaswani
et al. 2017; Ho et al. 2020, applied to 1000 t so one unit of the embedding is one DDPM
step), projected and added to every residual block, so each layer knows the noise level.
The output layer starts at zero: the initial prediction is 0, a safe start for every
parameterisation.
"""
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from zoo.nets.embedding import sinusoidal_features


class ResidualBlock(nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.fc1, self.fc2 = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)

    def forward(self, h: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        return h + self.fc2(nn.functional.silu(self.fc1(nn.functional.silu(self.norm(h) + temb))))


class MLP(nn.Module):
    @dataclass
    class Config:
        dim: int = 2  # data dimension
        hidden: int = 128
        depth: int = 3  # residual blocks
        time_features: int = 32

        # load-time bounds (zoo.hub.validation.check_config); other integers are widths, at
        # most the largest tensor dimension in the weights file; sizes the weights do not fix are capped
        LIMITS: ClassVar[dict] = {"depth": "count"}

    def __init__(self, config: "MLP.Config"):
        super().__init__()
        self.config = config
        c = config
        self.time = nn.Sequential(nn.Linear(c.time_features, c.hidden), nn.SiLU(), nn.Linear(c.hidden, c.hidden))
        self.inp = nn.Linear(c.dim, c.hidden)
        self.blocks = nn.ModuleList(ResidualBlock(c.hidden) for _ in range(c.depth))
        self.out = nn.Linear(c.hidden, c.dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, **cond) -> torch.Tensor:
        if cond:
            raise TypeError(f"MLP is unconditional; got conditioning {sorted(cond)}")
        temb = self.time(sinusoidal_features(t.to(x.dtype), self.config.time_features))
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, temb)
        return self.out(nn.functional.silu(h))
