"""Time-step spacings and the sampling grid every solver walks.

A grid for `steps` steps is steps + 1 times: t_0 = t_max > ... > t_{steps-1} = t_min, then
a final *clean* point with alpha = 1, sigma = 0. The last step of every solver goes to
that clean point, which is the denoising step x_0 = D(x, t_min) (Song et al. 2021's
"denoise at the end", the same as EDM's last Euler step to sigma = 0). So first-order
solvers use exactly `steps` denoiser calls.
"""
import math
from dataclasses import dataclass

import torch

from zoo.diffusion.schedules import Schedule, get_schedule

MAX_STEPS = 10_000


def uniform_t(schedule: Schedule, n: int) -> torch.Tensor:
    """Uniform in t (DDPM / DDIM)."""
    return torch.linspace(schedule.t_max, schedule.t_min, n, dtype=torch.float64)


def uniform_log_snr(schedule: Schedule, n: int) -> torch.Tensor:
    """Uniform in log-SNR (DPM-Solver's recommended spacing, Lu et al. 2022)."""
    lo, hi = _log_snr_range(schedule)
    return schedule.t_of_log_snr(torch.linspace(lo, hi, n, dtype=torch.float64))


def karras(schedule: Schedule, n: int, rho: float = 7.0) -> torch.Tensor:
    """EDM spacing (Karras et al. 2022, Eq. 5) on the scale-free noise level
    sigma/alpha = exp(-lambda/2): sigma_i = (smax^(1/rho) + i/(n-1) (smin^(1/rho) - smax^(1/rho)))^rho."""
    lo, hi = _log_snr_range(schedule)
    s_max, s_min = math.exp(-0.5 * lo), math.exp(-0.5 * hi)
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    s = (s_max ** (1 / rho) + ramp * (s_min ** (1 / rho) - s_max ** (1 / rho))) ** rho
    return schedule.t_of_log_snr(-2 * torch.log(s))


def quadratic_t(schedule: Schedule, n: int) -> torch.Tensor:
    """Quadratic in t: t_i = (sqrt(t_max) + i/(n-1) (sqrt(t_min) - sqrt(t_max)))^2, so steps
    shrink linearly towards the data. DDIM's "quadratic" sub-sequence (Song, Meng & Ermon
    2021, Appendix D.2) and DPM-Solver's "time_quadratic" (Lu et al. 2022). With an exact
    denoiser it is the best spacing for heun and dpmpp_2m (bench/solvers.py). Its first step
    is long (vp-cosine: log-SNR -12.9 to -3.7), so it trusts x0_hat at t_max, where an eps
    network's x0_hat = (x - sigma eps_hat) / alpha multiplies its error by sigma / alpha
    (~600): with the bundled eps-prediction toy models logsnr is far better (README)."""
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    root_max, root_min = math.sqrt(schedule.t_max), math.sqrt(schedule.t_min)
    return (root_max + ramp * (root_min - root_max)) ** 2


SPACINGS = {"uniform": uniform_t, "logsnr": uniform_log_snr, "karras": karras, "quadratic": quadratic_t}


def _log_snr_range(schedule: Schedule):
    t = torch.tensor([schedule.t_max, schedule.t_min], dtype=torch.float64)
    lam = schedule.log_snr(t)
    return float(lam[0]), float(lam[1])


@dataclass
class Grid:
    """What a solver needs for each step: times and the (alpha, sigma) at them (float64).
    Index steps (the last) is the clean point alpha = 1, sigma = 0."""

    t: torch.Tensor
    alpha: torch.Tensor
    sigma: torch.Tensor
    schedule: Schedule

    @property
    def steps(self) -> int:
        return len(self.t) - 1

    def log_snr(self, i: int) -> float:
        """lambda_i; +inf at the clean point."""
        return float(2 * (torch.log(self.alpha[i]) - torch.log(self.sigma[i])))


def check_steps(steps) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"steps must be an integer in [1, {MAX_STEPS}], got {steps!r}")
    return steps


def grid_from_times(schedule, t) -> Grid:
    """The grid through explicit times t_0 > t_1 > ... (float64), then the clean point.
    make_grid builds every spacing through it; it also walks another sampler's exact
    time steps (e.g. diffusers' discrete timesteps)."""
    schedule = get_schedule(schedule)
    t = torch.as_tensor(t, dtype=torch.float64).flatten()
    if len(t) < 1 or not bool((t >= 0).all()) or not bool((t.diff() < 0).all()):
        raise ValueError(f"times must be non-negative and strictly decreasing, got {t.tolist()}")
    alpha, sigma = schedule.alpha_sigma(t)
    one, zero = torch.ones(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
    return Grid(torch.cat([t, zero]), torch.cat([alpha, one]), torch.cat([sigma, zero]), schedule)


def make_grid(schedule, steps: int, spacing: str = "uniform") -> Grid:
    """The steps + 1 point grid from t_max down to t_min, then the clean point."""
    schedule = get_schedule(schedule)
    check_steps(steps)
    if spacing not in SPACINGS:
        raise ValueError(f"spacing must be one of {sorted(SPACINGS)}, got {spacing!r}")
    t = SPACINGS[spacing](schedule, steps) if steps > 1 else torch.tensor([schedule.t_max], dtype=torch.float64)
    return grid_from_times(schedule, t)
