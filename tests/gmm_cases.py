"""Shared analytic test data: a 2D Gaussian mixture with unequal weights and component
stds between 0.2 and 0.5 (the benchmark's mixture too), and a few helpers."""
import torch

from zoo.diffusion import GaussianMixture


def mixture() -> GaussianMixture:
    covs = torch.tensor([[[0.09, 0.0], [0.0, 0.09]],
                         [[0.16, 0.05], [0.05, 0.04 + 0.0225]],
                         [[0.25, 0.0], [0.0, 0.0625]]], dtype=torch.float64)
    means = torch.tensor([[-1.0, 0.3], [1.0, 0.6], [0.1, -1.1]], dtype=torch.float64)
    return GaussianMixture(torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64), means, covs)


def responsibilities(gmm: GaussianMixture, x: torch.Tensor) -> torch.Tensor:
    """p(k | x) under the clean mixture; their mean over x ~ p estimates the weights."""
    return gmm.responsibilities(x)
