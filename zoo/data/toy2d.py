"""2D point-cloud data sets for the toy tab, seeded and normalised to unit scale.

Each raw generator draws points from a torch.Generator; `sample_toy` then applies a fixed
affine map (subtract the mean, divide by one overall std, so shapes keep their aspect)
measured once on a large reference sample. The Gaussian mixture 'gmm' is not rescaled:
its parameters (GMM_PARAMS) are the exact ones, so its exact denoiser applies.

The generators follow the usual toy sets of the literature: two moons and circles as in
scikit-learn, checkerboard / pinwheel / 8 gaussians / swiss roll as in FFJORD
(Grathwohl et al. 2019).
"""
import math
from functools import lru_cache

import numpy as np
import torch
from zoo.checks import check_choice

# A 3-component mixture with unequal weights and component stds between 0.2 and 0.5:
# the data of the 'gmm' toy set, the solver benchmark and the core tests.
GMM_PARAMS = {
    "weights": torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64),
    "means": torch.tensor([[-1.0, 0.3], [1.0, 0.6], [0.1, -1.1]], dtype=torch.float64),
    "covs": torch.tensor([[[0.09, 0.0], [0.0, 0.09]],
                          [[0.16, 0.05], [0.05, 0.0625]],
                          [[0.25, 0.0], [0.0, 0.0625]]], dtype=torch.float64),
}


def _uniform(n, g):
    return torch.rand(n, generator=g, dtype=torch.float64)


def _normal(n, g, d=2):
    return torch.randn(n, d, generator=g, dtype=torch.float64)


def moons(n, g):
    """Two interleaving half circles with Gaussian noise."""
    upper = _uniform(n, g) < 0.5
    angle = math.pi * _uniform(n, g)
    x = torch.where(upper, torch.cos(angle), 1 - torch.cos(angle))
    y = torch.where(upper, torch.sin(angle), 0.5 - torch.sin(angle))
    return torch.stack([x, y], 1) + 0.06 * _normal(n, g)


def swissroll(n, g):
    """A 2D spiral: radius proportional to the angle, 1.5 pi to 4.5 pi."""
    angle = 1.5 * math.pi * (1 + 2 * _uniform(n, g))
    return torch.stack([angle * torch.cos(angle), angle * torch.sin(angle)], 1) + 0.4 * _normal(n, g)


def eight_gaussians(n, g):
    """Eight small Gaussians evenly spaced on a circle."""
    k = torch.randint(8, (n,), generator=g).to(torch.float64)
    centre = torch.stack([torch.cos(k * math.pi / 4), torch.sin(k * math.pi / 4)], 1)
    return 2.0 * centre + 0.15 * _normal(n, g)


def checkerboard(n, g):
    """Uniform on the black squares of a 4 x 4 board."""
    x1 = 4 * _uniform(n, g) - 2
    x2 = _uniform(n, g) - 2 * torch.randint(2, (n,), generator=g).to(torch.float64)
    x2 = x2 + torch.floor(x1) % 2  # floor(x1) + floor(x2) is even: the black squares
    return torch.stack([x1, x2], 1)


def pinwheel(n, g, arms=5, radial_std=0.3, tangential_std=0.08, rate=0.25):
    """Five curved arms: stretched Gaussians rotated by an angle growing with the radius."""
    arm = torch.randint(arms, (n,), generator=g).to(torch.float64)
    feats = _normal(n, g) * torch.tensor([radial_std, tangential_std], dtype=torch.float64)
    feats[:, 0] += 1.0
    angle = 2 * math.pi * arm / arms + rate * torch.exp(feats[:, 0])
    cos, sin = torch.cos(angle), torch.sin(angle)
    return torch.stack([cos * feats[:, 0] - sin * feats[:, 1], sin * feats[:, 0] + cos * feats[:, 1]], 1)


def circles(n, g):
    """Two concentric circles (radii 1 and 0.5) with Gaussian noise."""
    radius = 0.5 + 0.5 * (_uniform(n, g) < 0.5).to(torch.float64)
    angle = 2 * math.pi * _uniform(n, g)
    return radius[:, None] * torch.stack([torch.cos(angle), torch.sin(angle)], 1) + 0.04 * _normal(n, g)


def gaussian_mixture(n, g):
    """Draws from GMM_PARAMS (exact parameters, never rescaled)."""
    comp = torch.multinomial(GMM_PARAMS["weights"], n, replacement=True, generator=g)
    chol = torch.linalg.cholesky(GMM_PARAMS["covs"])[comp]
    return GMM_PARAMS["means"][comp] + (chol @ _normal(n, g)[..., None])[..., 0]


TOY_DATASETS = {
    "moons": moons,
    "swissroll": swissroll,
    "8gaussians": eight_gaussians,
    "checkerboard": checkerboard,
    "pinwheel": pinwheel,
    "circles": circles,
    "gmm": gaussian_mixture,
}


def check_dataset(name: str) -> str:
    check_choice(name, sorted(TOY_DATASETS), "dataset")
    return name


@lru_cache(maxsize=None)
def normalisation(name: str) -> tuple:
    """(mean, scale) of the raw generator from 200,000 reference points; identity for gmm."""
    if check_dataset(name) == "gmm":
        return torch.zeros(2, dtype=torch.float64), 1.0
    x = TOY_DATASETS[name](200_000, torch.Generator().manual_seed(2024))
    mean = x.mean(0)
    return mean, float((x - mean).pow(2).sum(1).mean().div(2).sqrt())


def sample_toy(name: str, n: int, seed: int = 0) -> torch.Tensor:
    """n points (float32, shape (n, 2)) of data set `name`, zero mean and unit std per axis
    on average; the same seed gives the same points."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    mean, scale = normalisation(check_dataset(name))
    x = TOY_DATASETS[name](n, torch.Generator().manual_seed(int(seed) % 2**63))
    return ((x - mean) / scale).to(torch.float32)


@lru_cache(maxsize=32)
def toy_density_image(name: str, lim: float = 3.0, bins: int = 120, n: int = 60_000, seed: int = 0) -> np.ndarray:
    """The data density on a bins x bins grid over [-lim, lim]^2, indexed [x, y]: the exact
    density for the mixture, a normalised histogram of n points otherwise."""
    if name == "gmm":
        from zoo.diffusion import GaussianMixture

        return GaussianMixture(**GMM_PARAMS).density_grid(lim, bins).numpy()
    points = sample_toy(name, n, seed).numpy()
    hist, *_ = np.histogram2d(points[:, 0], points[:, 1], bins=bins, range=[[-lim, lim], [-lim, lim]], density=True)
    return hist
