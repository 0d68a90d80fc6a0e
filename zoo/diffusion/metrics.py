"""Distances between sample sets."""
import torch


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, projections: int = 256, seed: int = 0) -> float:
    """Sliced Wasserstein-1 distance (Rabin et al. 2011; Bonneel et al. 2015): the mean over
    random unit directions of the 1D Wasserstein-1 distance between the projected sets,
    which for equal-size sets is the mean gap between their sorted projections. Sets of
    unequal size are compared on a common quantile grid."""
    a, b = a.double().flatten(1), b.double().flatten(1)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"sample sets must have the same dimension, got {a.shape[1]} and {b.shape[1]}")
    gen = torch.Generator().manual_seed(seed)
    dirs = torch.randn(a.shape[1], projections, generator=gen, dtype=torch.float64)
    dirs = dirs / dirs.norm(dim=0, keepdim=True)
    pa, pb = (a @ dirs).sort(0).values, (b @ dirs).sort(0).values
    if len(pa) != len(pb):
        q = torch.linspace(0, 1, min(len(pa), len(pb)), dtype=torch.float64)
        pa, pb = torch.quantile(pa, q, dim=0), torch.quantile(pb, q, dim=0)
    return float((pa - pb).abs().mean())
