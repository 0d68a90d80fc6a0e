"""A small time-conditioned CNN classifier p(y | x_t, t).

At t = 0 it is a plain image classifier (the digit-quality benchmark); trained on noisy
x_t it is the noise-aware classifier of classifier guidance (Dhariwal & Nichol 2021,
Sec. 4), whose grad log p(y | x_t) steers a diffusion sampler.
"""
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from zoo.nets.embedding import sinusoidal_features


class Classifier(nn.Module):
    @dataclass
    class Config:
        in_channels: int = 1
        image_size: int = 28
        num_classes: int = 10
        channels: int = 32  # width of the first stage; doubled at each of the 3 stages
        time_features: int = 32

        # load-time bounds (zoo.hub.validation.check_config); other integers are widths, at
        # most the largest tensor dimension in the weights file; sizes the weights do not fix are capped
        LIMITS: ClassVar[dict] = {"image_size": 256}

    def __init__(self, config: "Classifier.Config"):
        super().__init__()
        self.config = c = config
        widths = (c.channels, 2 * c.channels, 4 * c.channels)
        self.convs, self.norms, self.times = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        c_in = c.in_channels
        for w in widths:
            self.convs.append(nn.Conv2d(c_in, w, 3, padding=1))
            self.norms.append(nn.GroupNorm(8, w))
            self.times.append(nn.Linear(c.time_features, w))
            c_in = w
        self.head = nn.Linear(c_in, c.num_classes)

    def forward(self, x: torch.Tensor, t: torch.Tensor = None) -> torch.Tensor:
        """Logits (batch, num_classes); t (batch,) in [0, 1], default 0 (clean images)."""
        if t is None:
            t = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
        temb = sinusoidal_features(t.to(x.dtype), self.config.time_features)
        h = x
        for i, (conv, norm, time) in enumerate(zip(self.convs, self.norms, self.times)):
            h = F.silu(norm(conv(h)) + time(temb)[:, :, None, None])
            if i < len(self.convs) - 1:
                h = F.avg_pool2d(h, 2)
        return self.head(h.mean(dim=(2, 3)))
