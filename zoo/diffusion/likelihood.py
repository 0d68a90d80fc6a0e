"""Likelihoods: the variational bound (Ho et al. 2020; Kingma et al. 2021, VDM) and the
exact probability-flow ODE NLL (Song et al. 2021, Sec. D.2; Grathwohl et al. 2019, FFJORD).
Both return nats per sample; `bits_per_dim` converts."""
import math

import torch

from zoo.diffusion.schedules import get_schedule
from zoo.diffusion.spacing import make_grid


def bits_per_dim(nats: torch.Tensor, dim: int, bin_width: float = 0.0) -> torch.Tensor:
    """nats / (dim ln 2). For 8-bit images scaled to [-1, 1] pass bin_width = 2 / 255: the
    discrete probability of a pixel bin is density * bin width (uniform dequantisation)."""
    offset = -dim * math.log(bin_width) if bin_width else 0.0
    return (nats + offset) / (dim * math.log(2))


def _flat_norm2(x):
    return x.flatten(1).pow(2).sum(1)


def vlb_nats(denoiser, x0: torch.Tensor, schedule, steps: int = 1000, spacing: str = "logsnr",
             seed: int = 0, n_terms=None) -> torch.Tensor:
    """Negative ELBO of a `steps`-step discretisation (the DDPM bound, Ho et al. Eq. 5):
      prior KL(q(x_T | x0) || N(0, sigma_T^2 I)) = alpha_T^2 ||x0||^2 / (2 sigma_T^2)
      + sum_i KL(q(x_s | x_t, x0) || p(x_s | x_t)) = 1/2 (SNR(s) - SNR(t)) ||x0 - x0_hat(x_t)||^2
        (VDM Eq. 13; it holds for any alpha, sigma)
      + decoder -log N(x0; x0_hat(x_{t_min}), (sigma / alpha)^2_{t_min} I).
    With log-SNR spacing the terms are of similar size (each ~ dim * d lambda / 2 once the
    SNR is high), so `n_terms` can evaluate a systematic sample of them: every k-th term
    from a random offset, times k (unbiased, and low-variance for a smooth profile)."""
    schedule = get_schedule(schedule)
    grid = make_grid(schedule, steps, spacing)
    gen = torch.Generator().manual_seed(seed)
    snr = (grid.alpha / grid.sigma) ** 2
    nats = (grid.alpha[0] / grid.sigma[0]) ** 2 * _flat_norm2(x0).double() / 2
    stride = max(1, math.ceil((grid.steps - 1) / n_terms)) if n_terms else 1
    offset = int(torch.randint(stride, (1,), generator=gen))
    pairs, weight = range(offset, grid.steps - 1, stride), stride
    with torch.no_grad():
        for i in pairs:
            err = _flat_norm2(x0 - _denoise_noisy(denoiser, x0, grid, i, gen)).double()
            nats = nats + weight * 0.5 * (snr[i + 1] - snr[i]) * err
        last = grid.steps - 1
        var = float((grid.sigma[last] / grid.alpha[last]) ** 2)
        err = _flat_norm2(x0 - _denoise_noisy(denoiser, x0, grid, last, gen)).double()
        d = x0[0].numel()
        nats = nats + 0.5 * err / var + 0.5 * d * math.log(2 * math.pi * var)
    return nats


def _denoise_noisy(denoiser, x0, grid, i, gen):
    """x0_hat(x_t) for x_t ~ q(x_t | x0) at grid step i."""
    eps = torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
    x_t = float(grid.alpha[i]) * x0 + float(grid.sigma[i]) * eps
    return denoiser(x_t, torch.full((x0.shape[0],), float(grid.t[i]), dtype=x0.dtype))


def _velocity_and_divergence(denoiser, schedule, x, t: float, probes):
    """PF-ODE velocity v = alpha' x0_hat + sigma' eps_hat and its divergence
    div v = D sigma'/sigma + (alpha' - sigma' alpha / sigma) div x0_hat, with div x0_hat
    exact (one backward pass per dimension) or by Hutchinson's estimator (`probes`)."""
    t64 = torch.tensor(t, dtype=torch.float64)
    alpha, sigma = (float(v) for v in schedule.alpha_sigma(t64))
    d_alpha, d_sigma = (float(v) for v in schedule.derivatives(t64))
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        x0 = denoiser(x, torch.full((x.shape[0],), t, dtype=x.dtype))
        flat_x0, dim = x0.flatten(1), x[0].numel()
        if probes is None:
            div = sum(torch.autograd.grad(flat_x0[:, j].sum(), x, retain_graph=True)[0].flatten(1)[:, j]
                      for j in range(dim))
        else:
            div = sum((torch.autograd.grad((flat_x0 * z).sum(), x, retain_graph=True)[0].flatten(1) * z).sum(1)
                      for z in probes) / len(probes)
    v = d_alpha * x0 + d_sigma * (x - alpha * x0) / sigma
    return v.detach(), (dim * d_sigma / sigma + (d_alpha - d_sigma * alpha / sigma) * div).detach()


def ode_nll(denoiser, x0: torch.Tensor, schedule, steps: int = 100, exact_trace=None,
            hutchinson_probes: int = 1, seed: int = 0) -> torch.Tensor:
    """-log p(x0) in nats by the instantaneous change of variables along the PF-ODE:
    log p_{t_min}(x0) = log N(x_T; 0, sigma_T^2 I) + int_{t_min}^{t_max} div v dt,
    integrated with classical RK4 on a log-SNR-uniform grid. Exact trace when
    `exact_trace` (default: dimension <= 16), else Rademacher Hutchinson probes held fixed
    along the path."""
    schedule = get_schedule(schedule)
    ts = make_grid(schedule, steps + 1, "logsnr").t[:-1].flip(0).tolist()  # t_min -> t_max
    dim = x0[0].numel()
    exact = dim <= 16 if exact_trace is None else exact_trace
    gen = torch.Generator().manual_seed(seed)
    probes = None if exact else [
        (torch.randint(0, 2, x0.flatten(1).shape, generator=gen) * 2 - 1).to(x0.dtype)
        for _ in range(hutchinson_probes)]
    f = lambda x, t: _velocity_and_divergence(denoiser, schedule, x, t, probes)
    x, delta = x0.detach(), torch.zeros(x0.shape[0], dtype=torch.float64)
    for t, t_next in zip(ts[:-1], ts[1:]):
        h = t_next - t
        (k1, d1) = f(x, t)
        (k2, d2) = f(x + h / 2 * k1, t + h / 2)
        (k3, d3) = f(x + h / 2 * k2, t + h / 2)
        (k4, d4) = f(x + h * k3, t_next)
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        delta = delta + h / 6 * (d1 + 2 * d2 + 2 * d3 + d4).double()
    s_T = schedule.prior_std()
    log_prior = -0.5 * _flat_norm2(x).double() / s_T**2 - 0.5 * dim * math.log(2 * math.pi * s_T**2)
    return -(log_prior + delta)
