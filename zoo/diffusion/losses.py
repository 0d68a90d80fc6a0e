"""Training objective: regress the network on its parameterisation's target at a random t.

Denoising score matching (Vincent 2011; Song & Ermon 2019) and the DDPM simple loss
(Ho et al. 2020, Algorithm 1) are this loss with the eps / score targets; flow matching
(Lipman et al. 2022) is the flow target under the flow schedule.
"""
import torch

from zoo.diffusion.params import loss_weight, target

T_SAMPLINGS = ("uniform", "logit-normal")


def sample_t(n: int, schedule, how: str = "uniform", generator=None, device=None) -> torch.Tensor:
    """Training times in [t_min, t_max]: uniform (DDPM), or logit-normal(0, 1)
    (Esser et al. 2024, SD3), which concentrates on the middle of the path."""
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
    goal = target(x0, eps, c, denoiser.parameterisation)
    err = (pred - goal).pow(2).flatten(1).mean(1)
    return (loss_weight(c, denoiser.parameterisation).flatten() * err).mean()
