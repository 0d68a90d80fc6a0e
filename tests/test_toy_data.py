"""Toy data sets: seeded, normalised, the mixture exactly as its parameters say."""
import numpy as np
import pytest
import torch

from tests.gmm_cases import mixture
from zoo.data.toy2d import TOY_DATASETS, sample_toy, toy_density_image


@pytest.mark.parametrize("name", sorted(TOY_DATASETS))
def test_seeded_float32_unit_scale(name):
    x = sample_toy(name, 20_000, seed=3)
    assert x.shape == (20_000, 2) and x.dtype == torch.float32 and torch.isfinite(x).all()
    assert torch.equal(x, sample_toy(name, 20_000, seed=3))
    assert not torch.equal(x, sample_toy(name, 20_000, seed=4))
    if name != "gmm":  # the mixture keeps its exact parameters (next test)
        # zero mean, unit average variance (3 standard errors at n = 20,000 are about 0.03)
        assert x.mean(0).abs().max() < 0.04
        assert abs(float(x.pow(2).sum(1).mean() / 2) - 1) < 0.04


def test_gmm_samples_have_the_stated_moments():
    gmm, x = mixture(), sample_toy("gmm", 200_000, seed=0).double()
    assert torch.allclose(x.mean(0), gmm.mean(), atol=0.01)
    assert torch.allclose(torch.cov(x.T), gmm.covariance(), atol=0.02)


@pytest.mark.parametrize("name", ["moons", "gmm"])
def test_density_image_is_a_density(name):
    img = toy_density_image(name, lim=3.0, bins=60, n=20_000)
    cell = (6.0 / 60) ** 2
    assert img.shape == (60, 60) and np.all(img >= 0)
    assert abs(img.sum() * cell - 1) < 0.02  # almost all mass lies inside [-3, 3]^2


def test_bad_arguments_name_the_allowed_values():
    with pytest.raises(ValueError, match="dataset must be one of"):
        sample_toy("spiral-galaxy", 10)
    for n in (0, -5, 2.5):
        with pytest.raises(ValueError, match="positive integer"):
            sample_toy("moons", n)


def test_checkerboard_fills_only_the_black_squares():
    from zoo.data.toy2d import checkerboard

    x = checkerboard(20_000, torch.Generator().manual_seed(0))
    cells = torch.floor(x).long()
    assert torch.all((cells.sum(1) % 2) == 0)
    assert len({tuple(c) for c in cells.tolist()}) == 8  # all 8 black squares of the 4 x 4 board
