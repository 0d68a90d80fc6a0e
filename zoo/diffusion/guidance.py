"""Guidance: classifier-free (Ho & Salimans 2022), classifier (Dhariwal & Nichol 2021) and
autoguidance (Karras et al. 2024).

Convention, stated once: guidance strength w >= 0 with
    D_w = D(x, t | c) + w * (D(x, t | c) - D(x, t | null)),
so w = 0 is exactly the plain conditional model and w = -1 the unconditional one
(Ho & Salimans' w; the "guidance scale" of Stable Diffusion is 1 + w). Applying it to
x0_hat equals applying it to eps_hat, since at fixed (x, t) each is affine in the other.
"""
import math
from typing import Callable, Optional, Tuple

import torch
from torch import nn

from zoo.diffusion.schedules import get_schedule


W_RANGE = (-1.0, 20.0)  # guidance w: -1 is the unconditional model; past 20 every zoo model's samples saturate
SCALE_RANGE = (0.0, 20.0)  # classifier scale s: 0 is no classifier guidance
AUTOGUIDANCE_RANGE = (0.0, 4.0)  # autoguidance w: Karras et al.'s best are w <= 2.5; past 4 digits saturate


def check_guidance(w, name: str = "guidance") -> float:
    """A finite number (the guidance formulas hold for any; the ranges are the pipelines')."""
    try:
        finite = not isinstance(w, bool) and isinstance(w, (int, float)) and math.isfinite(w)
    except OverflowError:  # an int too large for a float
        finite = False
    if not finite:
        raise ValueError(f"{name} must be a finite number, got {w!r}")
    return float(w)


def check_w(w, name: str = "guidance w") -> float:
    """A guidance weight w in W_RANGE: the one check of it (pipelines; the tabs' sliders span W_RANGE)."""
    return _in_range(check_guidance(w, name), name, W_RANGE)


def check_scale(s, name: str = "classifier scale") -> float:
    """A classifier scale in SCALE_RANGE (as check_w)."""
    return _in_range(check_guidance(s, name), name, SCALE_RANGE)


def check_autoguidance_w(w, name: str = "autoguidance w") -> float:
    """An autoguidance weight in AUTOGUIDANCE_RANGE (as check_w)."""
    return _in_range(check_guidance(w, name), name, AUTOGUIDANCE_RANGE)


def _in_range(value: float, name: str, bounds: tuple) -> float:
    if not bounds[0] <= value <= bounds[1]:
        raise ValueError(f"{name} must be in [{bounds[0]:g}, {bounds[1]:g}], got {value!r}")
    return value


def check_interval(interval) -> Optional[Tuple[float, float]]:
    """None, or (t_lo, t_hi) with 0 <= t_lo <= t_hi <= 1."""
    if interval is None:
        return None
    try:
        lo, hi = (check_guidance(v, "interval bound") for v in interval)
    except (TypeError, ValueError):
        lo = hi = None
    if lo is None or not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"interval must be a pair (t_lo, t_hi) with 0 <= t_lo <= t_hi <= 1, got {interval!r}")
    return lo, hi


def guided_steps(grid_t, interval) -> int:
    """How many of a sampling grid's times (t_max .. t_min, the clean point excluded) fall
    in the guidance interval: 0 means guidance would never act (an interval such as
    [0.5, 0.5] between two grid times)."""
    interval = check_interval(interval)
    times = [float(t) for t in grid_t[:-1]]
    return len(times) if interval is None else sum(interval[0] <= t <= interval[1] for t in times)


def classifier_free_guidance(denoiser: Callable, w: float, cond: dict, uncond: dict,
                             interval: Optional[Tuple[float, float]] = None) -> Callable:
    """A denoiser D_w(x, t). Outside `interval` = (t_lo, t_hi) the conditional model alone
    is used (guidance in a limited interval, Kynkaanniemi et al. 2024), saving a call."""
    return _guided(lambda x, t: denoiser(x, t, **cond), lambda x, t: denoiser(x, t, **uncond), w, interval)


def autoguidance(denoiser: Callable, guiding: Callable, w: float,
                 interval: Optional[Tuple[float, float]] = None) -> Callable:
    """Autoguidance (Karras et al. 2024, "Guiding a Diffusion Model with a Bad Version of
    Itself"): D_w = D(x, t) + w (D(x, t) - D_bad(x, t)), this module's CFG formula with the
    unconditional model in place of the conditional one and a smaller, shorter-trained model
    of the same data and schedule (`guiding`) in place of the null condition. Needing no
    condition, it guides unconditional models; the two models' errors, alike in kind, cancel
    in the difference, which points toward where the good model is surer than the bad one."""
    return _guided(denoiser, guiding, w, interval)


def _guided(first: Callable, second: Callable, w: float, interval) -> Callable:
    """D = first + w (first - second) at times in `interval` (everywhere if None); first alone
    elsewhere and at w = 0, so guidance that does not act costs no second call."""
    w, interval = check_guidance(w), check_interval(interval)

    def guided(x, t, **_):
        x0_first = first(x, t)
        t0 = float(torch.as_tensor(t).reshape(-1)[0])
        if w == 0 or (interval is not None and not interval[0] <= t0 <= interval[1]):
            return x0_first
        return cfg_combine(x0_first, second(x, t), w)

    return guided


def cfg_combine(x0_cond: torch.Tensor, x0_uncond: torch.Tensor, w) -> torch.Tensor:
    """D_w = D(x|c) + w (D(x|c) - D(x|null)), the convention of this module; w a number or
    one per sample (a (batch,) tensor)."""
    if isinstance(w, torch.Tensor):
        w = w.to(x0_cond.dtype).reshape((-1,) + (1,) * (x0_cond.dim() - 1))
    return x0_cond + w * (x0_cond - x0_uncond)


def per_sample_guidance(denoiser: Callable, w: torch.Tensor, cond: dict, uncond: dict) -> Callable:
    """Classifier-free guidance with one w per sample (a (batch,) tensor), the teacher of a
    student trained over a range of w (Meng et al. 2023, Sec. 4.1). The same D_w as
    classifier_free_guidance, always two calls."""
    def guided(x, t, **_):
        return cfg_combine(denoiser(x, t, **cond), denoiser(x, t, **uncond), w)

    return guided


def classifier_guidance(denoiser: Callable, log_prob_grad: Callable, scale: float,
                        schedule) -> Callable:
    """Classifier guidance in denoiser form: the guided score adds
    scale * grad_x log p(y | x_t), and by Tweedie x0_hat = (x + sigma^2 score) / alpha,
    so x0_hat gains scale * sigma^2 / alpha * grad (Dhariwal & Nichol 2021, Algorithm 1)."""
    scale, schedule = check_guidance(scale, "classifier scale"), get_schedule(schedule)

    def guided(x, t, **cond):
        x0 = denoiser(x, t, **cond)
        if scale == 0:
            return x0
        alpha, sigma = schedule.alpha_sigma(torch.as_tensor(t, dtype=torch.float64))
        shape = (-1,) + (1,) * (x.dim() - 1)
        factor = (sigma**2 / alpha).to(x.dtype).reshape(shape)
        return x0 + scale * factor * log_prob_grad(x, t)

    return guided


def classifier_log_prob_grad(classifier: Callable, labels: torch.Tensor) -> Callable:
    """grad_x log softmax(classifier(x, t))[y] by autograd, for a noise-aware classifier;
    `labels` holds one label per sample, or one label for every sample."""

    def grad(x, t):
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            log_p = torch.log_softmax(classifier(x_in, t), dim=-1)
            picked = log_p.gather(1, labels.reshape(-1, 1).to(x.device).expand(x.shape[0], 1)).sum()
            return torch.autograd.grad(picked, x_in)[0]

    return grad


class NoisyClassifier(nn.Module):
    """log p(y | x_t) logits of a network trained on noisy x_t of one schedule: the
    noise-aware classifier of classifier guidance (Dhariwal & Nichol 2021, Sec. 4). Like
    the Denoiser, it feeds the net x_t * c_in, c_in = 1 / sqrt(alpha^2 + sigma^2), so VE's
    large sigma reaches it at unit scale; training and guidance both go through here."""

    def __init__(self, net: nn.Module, schedule):
        super().__init__()
        self.net, self.schedule = net, get_schedule(schedule)

    def forward(self, x: torch.Tensor, t) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).expand(x.shape[0])
        alpha, sigma = self.schedule.alpha_sigma(t.to(torch.float64))
        c_in = torch.rsqrt(alpha**2 + sigma**2).to(x.dtype).reshape((-1,) + (1,) * (x.dim() - 1))
        return self.net(x * c_in, t)
