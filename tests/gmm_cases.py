"""Shared analytic test data: the 'gmm' toy set's 2D Gaussian mixture (unequal weights,
component stds between 0.2 and 0.5; the benchmark's mixture too), and a helper."""
import torch

from zoo.data.toy2d import GMM_PARAMS
from zoo.diffusion import GaussianMixture


def mixture() -> GaussianMixture:
    return GaussianMixture(**GMM_PARAMS)


def responsibilities(gmm: GaussianMixture, x: torch.Tensor) -> torch.Tensor:
    """p(k | x) under the clean mixture; their mean over x ~ p estimates the weights."""
    return gmm.responsibilities(x)
