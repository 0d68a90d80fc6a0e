"""Training objective: regress the network on its parameterisation's target at a random t.

Denoising score matching (Vincent 2011; Song & Ermon 2019) and the DDPM simple loss
(Ho et al. 2020, Algorithm 1) are this loss with the eps / score targets; flow matching
(Lipman et al. 2022) is the flow target under the flow schedule.
"""
import math

import torch

from zoo.diffusion.params import loss_weight, target

T_SAMPLINGS = ("uniform", "logit-normal", "edm-lognormal", "sd3-shift")
# EDM's training noise levels (Karras et al. 2022, Table 1): ln(sigma / alpha) ~ N(P_mean, P_std^2)
EDM_P_MEAN, EDM_P_STD = -1.2, 1.2
# SD3's timestep shift (Esser et al. 2024, section 5.3.2), the value of its 1024^2 training
SD3_SHIFT = 3.0


def sample_t(n: int, schedule, how: str = "uniform", generator=None, device=None) -> torch.Tensor:
    """Training times in [t_min, t_max]: uniform (DDPM), logit-normal(0, 1) (Esser et al.
    2024, SD3), which concentrates on the middle of the path, or edm-lognormal: EDM's
    ln s ~ N(-1.2, 1.2^2) for s = sigma / alpha, i.e. log-SNR = -2 ln s ~ N(2.4, 2.4^2),
    mapped to t by the schedule's inverse (any schedule; clamped to [t_min, t_max]), or
    sd3-shift: uniform t moved toward noise by SD3's shift s, t' = s t / (1 + (s - 1) t) on
    the rectified flow, which is log-SNR lowered by 2 ln s on any schedule (more training
    where the layout of an image is decided)."""
    if how == "sd3-shift":
        t = sample_t(n, schedule, "uniform", generator, device)
        return schedule.t_of_log_snr(schedule.log_snr(t) - 2 * math.log(SD3_SHIFT)).clamp(schedule.t_min,
                                                                                            schedule.t_max)
    if how == "edm-lognormal":
        ln_s = EDM_P_MEAN + EDM_P_STD * torch.randn(n, generator=generator, device=device, dtype=torch.float64)
        return schedule.t_of_log_snr(-2 * ln_s).clamp(schedule.t_min, schedule.t_max)
    if how == "uniform":
        u = torch.rand(n, generator=generator, device=device, dtype=torch.float64)
    elif how == "logit-normal":
        u = torch.sigmoid(torch.randn(n, generator=generator, device=device, dtype=torch.float64))
    else:
        raise ValueError(f"t_sampling must be one of {list(T_SAMPLINGS)}, got {how!r}")
    return schedule.t_min + (schedule.t_max - schedule.t_min) * u


def diffuse(x0: torch.Tensor, schedule, t_sampling: str = "uniform", generator=None):
    """A forward-process draw x_t = alpha(t) x0 + sigma(t) eps at random times: (x_t, t, eps)."""
    t = sample_t(x0.shape[0], schedule, t_sampling, generator, x0.device).to(x0.dtype)
    eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    alpha, sigma = schedule.alpha_sigma(t.to(torch.float64))
    shape = (-1,) + (1,) * (x0.dim() - 1)
    return alpha.to(x0.dtype).reshape(shape) * x0 + sigma.to(x0.dtype).reshape(shape) * eps, t, eps


def diffusion_loss(denoiser, x0: torch.Tensor, t_sampling: str = "uniform", generator=None, **cond):
    """Mean weighted squared error between the net's prediction and its target.

    `denoiser` is a zoo.diffusion.Denoiser; `generator` (torch.Generator) makes t and eps
    reproducible, which the trainers need to resume exactly."""
    x_t, t, eps = diffuse(x0, denoiser.schedule, t_sampling, generator)
    pred, c = denoiser.raw(x_t, t, **cond)
    return sample_errors(denoiser, pred, c, x0, eps).mean()


def sample_errors(denoiser, pred, c, x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """(n,) weighted squared errors of the net's predictions `pred` (at coefficients c) on
    the targets of the draws x_t = alpha x0 + sigma eps: the loss of each sample."""
    goal = target(x0, eps, c, denoiser.parameterisation)
    err = (pred - goal).pow(2).flatten(1).mean(1)
    return loss_weight(c, denoiser.parameterisation).flatten() * err
