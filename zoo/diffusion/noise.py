"""Per-sample, batch-size-invariant Gaussian noise.

EDM gives every sample its own torch.Generator so that sample i is the same whatever
the batch. That costs one Python-level generator call per sample per step, which at
batch 4096 is slower than the network. Here the noise is a pure function of
(seed_i, draw number, element index), computed for the whole batch with integer ops:
a counter-based generator in the spirit of Philox (Salmon et al. 2011), built from
the `lowbias32` integer hash (C. Wellons, "Prospecting for hash functions", 2018) and a
Box-Muller transform. It gives the same numbers on every device and batch size.
"""
import math
from typing import Sequence

import torch

_MASK = 0xFFFFFFFF


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """lowbias32 on uint32 values held in int64 lanes (products wrap mod 2^64;
    the mask keeps the exact low 32 bits)."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _MASK
    return x ^ (x >> 16)


def _uniform(key: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Uniform in (0, 1) for every (key, index) pair, in float64."""
    bits = _hash32(key ^ _hash32(index))
    return (bits.to(torch.float64) + 0.5) / 2**32


class NoiseSource:
    """Draws N(0, I) tensors of shape (batch, *sample_shape); draw k of sample i depends
    only on (seed_i, k). Solvers draw in a fixed order, so a run is reproducible."""

    def __init__(self, seeds: Sequence[int], sample_shape, device=None, dtype=torch.float32):
        seeds = torch.as_tensor(list(seeds), dtype=torch.int64)
        lo, hi = seeds & _MASK, (seeds >> 32) & _MASK
        self.keys = _hash32(lo ^ _hash32(hi ^ 0x9E3779B9)).to(device)
        self.sample_shape = tuple(sample_shape)
        self.numel = math.prod(self.sample_shape)
        self.device, self.dtype = device, dtype
        self.draws = 0

    def normal(self) -> torch.Tensor:
        """The next draw: one standard normal tensor for the whole batch."""
        draw_key = _hash32(self.keys ^ _hash32(torch.tensor(self.draws * 0x85EBCA6B & _MASK)))
        self.draws += 1
        index = torch.arange(self.numel, dtype=torch.int64, device=self.device) * 2
        k = draw_key[:, None]
        u1, u2 = _uniform(k, index), _uniform(k, index + 1)
        z = torch.sqrt(-2 * torch.log(u1)) * torch.cos(2 * math.pi * u2)
        return z.to(self.dtype).reshape(len(self.keys), *self.sample_shape)


def per_sample_seeds(seed, n: int) -> list:
    """`seed` as an int means seeds seed, seed+1, ..., seed+n-1 (EDM's convention);
    a sequence of n ints is taken as given."""
    if isinstance(seed, bool):
        raise ValueError(f"seed must be an integer or a list of {n} integers, got {seed!r}")
    if isinstance(seed, int):
        if not 0 <= seed < 2**62:
            raise ValueError(f"seed must be in [0, 2**62), got {seed}")
        return [seed + i for i in range(n)]
    seeds = list(seed)
    if len(seeds) != n or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise ValueError(f"seed must be an integer or a list of {n} non-negative integers")
    return seeds
