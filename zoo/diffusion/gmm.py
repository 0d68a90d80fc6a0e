"""Gaussian-mixture data: the one case with an exact denoiser, used as the oracle.

If x0 ~ sum_k w_k N(mu_k, S_k) and x_t = alpha x0 + sigma eps, then
  x_t ~ sum_k w_k N(alpha mu_k, C_k),  C_k = alpha^2 S_k + sigma^2 I,
  E[x0 | x_t] = sum_k r_k(x_t) (mu_k + alpha S_k C_k^{-1} (x_t - alpha mu_k)),
with responsibilities r_k proportional to w_k N(x_t; alpha mu_k, C_k) (Bishop 2006, Sec. 2.3.3).
All arithmetic in float64, so solver error is never hidden by rounding.
"""
import math

import torch

from zoo.diffusion.denoiser import broadcast_t
from zoo.diffusion.guidance import classifier_log_prob_grad
from zoo.diffusion.schedules import get_schedule


class GaussianMixture:
    def __init__(self, weights, means, covs):
        self.weights = torch.as_tensor(weights, dtype=torch.float64)
        self.means = torch.as_tensor(means, dtype=torch.float64)
        self.covs = torch.as_tensor(covs, dtype=torch.float64)
        k, d = self.means.shape
        if self.weights.shape != (k,) or self.covs.shape != (k, d, d):
            raise ValueError("weights (K,), means (K, D) and covs (K, D, D) must agree")
        if not torch.allclose(self.weights.sum(), torch.tensor(1.0, dtype=torch.float64)):
            raise ValueError("mixture weights must sum to 1")
        self.dim = d

    def mean(self) -> torch.Tensor:
        return self.weights @ self.means

    def covariance(self) -> torch.Tensor:
        centred = self.means - self.mean()
        outer = centred[:, :, None] * centred[:, None, :]
        return (self.weights[:, None, None] * (self.covs + outer)).sum(0)

    def sample(self, n: int, generator=None, return_components: bool = False):
        comp = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        chol = torch.linalg.cholesky(self.covs)[comp]
        z = torch.randn(n, self.dim, 1, generator=generator, dtype=torch.float64)
        x = self.means[comp] + (chol @ z)[..., 0]
        return (x, comp) if return_components else x

    def component(self, k: int) -> "GaussianMixture":
        """Component k alone: the exact class-conditional law p(x0 | k)."""
        if not 0 <= k < len(self.weights):
            raise ValueError(f"component must be in [0, {len(self.weights) - 1}], got {k!r}")
        return GaussianMixture([1.0], self.means[k:k + 1], self.covs[k:k + 1])

    def density_grid(self, lim: float, bins: int) -> torch.Tensor:
        """p(x) on a bins x bins grid of cell centres over [-lim, lim]^2 (2D), indexed [x, y]."""
        centres = (torch.arange(bins, dtype=torch.float64) + 0.5) / bins * 2 * lim - lim
        grid = torch.stack(torch.meshgrid(centres, centres, indexing="ij"), -1).reshape(-1, 2)
        return self.log_prob(grid).exp().reshape(bins, bins)

    def noisy_logits(self, schedule):
        """The exact noisy classifier as logits(x_t, t) = log w_k N(x_t; alpha mu_k, C_k),
        shape (B, K): their softmax is p_t(k | x_t). Called as the solvers call a denoiser:
        one t for the whole batch."""
        schedule = get_schedule(schedule)

        def logits(x, t):
            t = broadcast_t(t, x)
            if not bool((t == t[0]).all()):
                raise ValueError("the exact noisy classifier takes one t for the whole batch")
            alpha, sigma = (float(v) for v in schedule.alpha_sigma(t[0].to(torch.float64)))
            mean, precision, logdet = self._noisy(alpha, sigma)
            return self._log_resp(x.to(torch.float64)[:, None, :] - mean, precision, logdet)

        return logits

    def class_log_prob_grad(self, k: int, schedule):
        """grad_x log p_t(k | x_t = x): what classifier guidance (Dhariwal & Nichol 2021)
        needs, from the exact noisy classifier."""
        self.component(k)  # checks k
        return classifier_log_prob_grad(self.noisy_logits(schedule), torch.tensor([k]))

    def _noisy(self, alpha: float, sigma: float):
        """Means, precisions C_k^{-1} and log-determinants of the components of p_t."""
        eye = torch.eye(self.dim, dtype=torch.float64)
        cov = alpha**2 * self.covs + sigma**2 * eye
        return alpha * self.means, torch.linalg.inv(cov), torch.linalg.slogdet(cov)[1]

    def _log_resp(self, diff, precision, logdet):
        """log w_k N(x; mean_k, C_k) for every sample and component, given diff = x - mean_k."""
        maha = (diff * torch.einsum("kij,bkj->bki", precision, diff)).sum(-1)
        return torch.log(self.weights) - 0.5 * (maha + logdet + self.dim * math.log(2 * math.pi))

    def log_prob(self, x, alpha: float = 1.0, sigma: float = 0.0) -> torch.Tensor:
        """log p_t(x) for the law of alpha x0 + sigma eps (p_0 by default)."""
        x = x.to(torch.float64).reshape(-1, self.dim)
        mean, precision, logdet = self._noisy(alpha, sigma)
        return torch.logsumexp(self._log_resp(x[:, None, :] - mean, precision, logdet), dim=1)

    def responsibilities(self, x, alpha: float = 1.0, sigma: float = 0.0) -> torch.Tensor:
        """p(k | x_t = x), shape (B, K); p(k | x) at t = 0 by default."""
        x = x.to(torch.float64).reshape(-1, self.dim)
        mean, precision, logdet = self._noisy(alpha, sigma)
        return torch.softmax(self._log_resp(x[:, None, :] - mean, precision, logdet), dim=1)

    def posterior_mean(self, x, alpha: float, sigma: float) -> torch.Tensor:
        """E[x0 | x_t = x] for one (alpha, sigma)."""
        mean, precision, logdet = self._noisy(alpha, sigma)
        diff = x[:, None, :] - mean
        resp = torch.softmax(self._log_resp(diff, precision, logdet), dim=1)
        gain = alpha * self.covs @ precision                              # (K, D, D)
        comp_mean = self.means + torch.einsum("kij,bkj->bki", gain, diff)
        return (resp[..., None] * comp_mean).sum(1)

    def denoiser(self, schedule):
        """The exact D(x_t, t) = E[x0 | x_t] under `schedule`, as a solver-ready callable."""
        schedule = get_schedule(schedule)

        def exact_denoiser(x, t, **cond):
            t = broadcast_t(t, x).to(torch.float64)
            flat = x.to(torch.float64).reshape(x.shape[0], self.dim)
            if bool((t == t[0]).all()):  # solvers call with one t for the whole batch
                alpha, sigma = (float(v) for v in schedule.alpha_sigma(t[0]))
                return self.posterior_mean(flat, alpha, sigma).to(x.dtype).reshape(x.shape)
            out = torch.empty_like(flat)
            for value in torch.unique(t):
                rows = t == value
                alpha, sigma = (float(v) for v in schedule.alpha_sigma(value))
                out[rows] = self.posterior_mean(flat[rows], alpha, sigma)
            return out.to(x.dtype).reshape(x.shape)

        return exact_denoiser


def isotropic_gaussian(mean, std: float) -> GaussianMixture:
    """A single Gaussian N(mean, std^2 I): the simplest analytic test case."""
    mean = torch.as_tensor(mean, dtype=torch.float64)
    d = mean.numel()
    return GaussianMixture([1.0], mean.reshape(1, d), (std**2 * torch.eye(d, dtype=torch.float64))[None])
