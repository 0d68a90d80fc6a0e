"""Sinusoidal time features shared by every network (MLP, UNet)."""
import math

import torch


def sinusoidal_features(t: torch.Tensor, n: int, scale: float = 1000.0) -> torch.Tensor:
    """(batch,) times -> (batch, n) features [sin(scale t f_k), cos(scale t f_k)], with
    frequencies f_k geometric from 1 down to 1/10000."""
    half = n // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device, dtype=t.dtype) / max(half - 1, 1))
    angles = scale * t[:, None] * freqs
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
