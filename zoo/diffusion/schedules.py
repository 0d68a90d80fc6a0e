"""Noise schedules in continuous time t in [0, 1].

Every schedule is the pair x_t = alpha(t) * x_0 + sigma(t) * eps, eps ~ N(0, I).
The log signal-to-noise ratio lambda(t) = log(alpha^2 / sigma^2) decreases in t, and each
schedule gives its closed-form inverse t(lambda), which the step spacings and the
DPM-Solver need.

`t_min` / `t_max` bound where samplers start and where they hand over to the final
denoising step: at t_max the state is (almost) pure noise; at t_min the sample is
resolved below the data's scale. Both keep lambda finite.
"""
import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from zoo.checks import check_choice


def _as_tensor(t) -> torch.Tensor:
    return t if torch.is_tensor(t) else torch.as_tensor(t, dtype=torch.float64)


class Schedule:
    """Base class: subclasses define `alpha_sigma(t)` and `t_of_log_snr(lam)`."""

    name: str = ""
    # how the schedule describes itself (the Noise schedules tab and its plot are written from these)
    alpha_text: ClassVar[str] = ""  # alpha(t), LaTeX
    sigma_text: ClassVar[str] = ""  # sigma(t), LaTeX
    source: ClassVar[str] = ""  # the paper
    color: ClassVar[str] = "tab:purple"  # matplotlib colour; a model's own (discrete) schedule keeps this one
    t_min: float = 1e-3
    t_max: float = 1.0
    variance_preserving: bool = True

    def alpha_sigma(self, t):  # pragma: no cover - abstract
        raise NotImplementedError

    def alpha(self, t):
        return self.alpha_sigma(t)[0]

    def sigma(self, t):
        return self.alpha_sigma(t)[1]

    def log_snr(self, t):
        """lambda(t) = log(alpha^2 / sigma^2)."""
        alpha, sigma = self.alpha_sigma(t)
        return 2 * (torch.log(alpha) - torch.log(sigma))

    def t_of_log_snr(self, lam):  # pragma: no cover - abstract
        raise NotImplementedError

    def derivatives(self, t):
        """(d alpha/dt, d sigma/dt) by autograd: exact, and one code path for all schedules."""
        t = _as_tensor(t).detach().clone().requires_grad_(True)
        with torch.enable_grad():
            alpha, sigma = self.alpha_sigma(t)
            d_alpha = torch.autograd.grad(alpha.sum(), t, retain_graph=True)[0]
            d_sigma = torch.autograd.grad(sigma.sum(), t)[0]
        return d_alpha.detach(), d_sigma.detach()

    def prior_std(self) -> float:
        """Std of the Gaussian the samplers start from, N(0, sigma(t_max)^2 I)."""
        return float(self.sigma(torch.tensor(self.t_max, dtype=torch.float64)))

    def curves(self, n: int = 400, t=None) -> dict:
        """t, alpha, sigma and log-SNR on n points of [t_min, t_max] (or at the times t) in
        float64 numpy arrays (log-SNR clamped to +-25 where a schedule reaches infinity), for plots."""
        t = torch.linspace(self.t_min, self.t_max, n, dtype=torch.float64) if t is None else _as_tensor(t)
        alpha, sigma = self.alpha_sigma(t)
        return {"t": t.numpy(), "alpha": alpha.numpy(), "sigma": sigma.numpy(),
                "log_snr": self.log_snr(t).clamp(-25, 25).numpy()}

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r})"


@dataclass(repr=False)
class VPLinear(Schedule):
    """DDPM (Ho et al. 2020) linear betas in continuous form (Song et al. 2021, VP SDE):
    beta(t) = beta_min + t (beta_max - beta_min) with beta_min = 1e-4 * 1000 and
    beta_max = 0.02 * 1000, so alpha(t)^2 = exp(-beta_min t - (beta_max - beta_min) t^2 / 2)."""

    beta_min: float = 0.1
    beta_max: float = 20.0
    name: str = "vp-linear"
    alpha_text: ClassVar[str] = r"$\exp(-\tfrac14 t^2(\beta_{max}-\beta_{min}) - \tfrac12 t\beta_{min})$"
    sigma_text: ClassVar[str] = r"$\sqrt{1-\alpha^2}$"
    source: ClassVar[str] = "DDPM betas $10^{-4}..0.02$ over 1000 steps (Ho et al. 2020), VP SDE (Song et al. 2021)"
    color: ClassVar[str] = "tab:blue"
    t_min: float = 1e-3
    t_max: float = 1.0

    def _neg_log_alpha2(self, t):
        t = _as_tensor(t)
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2

    def alpha_sigma(self, t):
        m = self._neg_log_alpha2(t)
        return torch.exp(-0.5 * m), torch.sqrt(-torch.expm1(-m))

    def log_snr(self, t):
        m = self._neg_log_alpha2(t)
        return -torch.log(torch.expm1(m))

    def t_of_log_snr(self, lam):
        # -log alpha^2 = softplus(-lambda); solve the quadratic in t.
        m = torch.nn.functional.softplus(-_as_tensor(lam))
        d = self.beta_max - self.beta_min
        return (-self.beta_min + torch.sqrt(self.beta_min**2 + 2 * d * m)) / d


@dataclass(repr=False)
class VPCosine(Schedule):
    """Cosine schedule (Nichol & Dhariwal 2021): alpha_bar(t) = f(t) / f(0),
    f(t) = cos^2((t + s) / (1 + s) * pi / 2). t_max stops short of alpha = 0."""

    s: float = 0.008
    name: str = "vp-cosine"
    alpha_text: ClassVar[str] = (r"$\sqrt{\bar\alpha(t)}$, "
                                 r"$\bar\alpha = \cos^2(\tfrac{t+s}{1+s}\tfrac\pi2)/\cos^2(\tfrac{s}{1+s}\tfrac\pi2)$")
    sigma_text: ClassVar[str] = r"$\sqrt{1-\alpha^2}$"
    source: ClassVar[str] = "Nichol & Dhariwal 2021"
    color: ClassVar[str] = "tab:orange"
    t_min: float = 1e-3
    t_max: float = 0.999

    def _f(self, t):
        return torch.cos((_as_tensor(t) + self.s) / (1 + self.s) * math.pi / 2) ** 2

    def alpha_sigma(self, t):
        alpha_bar = (self._f(t) / self._f(0.0)).clamp(0.0, 1.0)
        return torch.sqrt(alpha_bar), torch.sqrt(1 - alpha_bar)

    def t_of_log_snr(self, lam):
        alpha_bar = torch.sigmoid(_as_tensor(lam))
        inner = torch.sqrt(alpha_bar * self._f(0.0)).clamp(max=1.0)
        return torch.arccos(inner) * 2 / math.pi * (1 + self.s) - self.s


@dataclass(repr=False)
class VE(Schedule):
    """Variance exploding (NCSN / SMLD, Song & Ermon 2019; Song et al. 2021):
    alpha = 1 and geometric noise levels sigma(t) = sigma_min (sigma_max / sigma_min)^t."""

    sigma_min: float = 0.01
    sigma_max: float = 50.0
    name: str = "ve"
    alpha_text: ClassVar[str] = r"$1$"
    sigma_text: ClassVar[str] = r"$\sigma_{min}(\sigma_{max}/\sigma_{min})^t$"
    source: ClassVar[str] = "NCSN / SMLD (Song & Ermon 2019)"
    color: ClassVar[str] = "tab:green"
    t_min: float = 0.0
    t_max: float = 1.0
    variance_preserving: bool = False

    def alpha_sigma(self, t):
        t = _as_tensor(t)
        sigma = self.sigma_min * (self.sigma_max / self.sigma_min) ** t
        return t * 0 + 1, sigma  # written through t so autograd sees d alpha/dt = 0

    def t_of_log_snr(self, lam):
        sigma = torch.exp(-0.5 * _as_tensor(lam))
        return torch.log(sigma / self.sigma_min) / math.log(self.sigma_max / self.sigma_min)


@dataclass(repr=False)
class Flow(Schedule):
    """Rectified flow / flow matching (Liu et al. 2022; Lipman et al. 2022):
    alpha = 1 - t, sigma = t, a straight line from data to noise."""

    name: str = "flow"
    alpha_text: ClassVar[str] = r"$1-t$"
    sigma_text: ClassVar[str] = r"$t$"
    source: ClassVar[str] = "rectified flow (Liu et al. 2022)"
    color: ClassVar[str] = "tab:red"
    t_min: float = 1e-3
    t_max: float = 0.999
    variance_preserving: bool = False

    def alpha_sigma(self, t):
        t = _as_tensor(t)
        return 1 - t, t

    def t_of_log_snr(self, lam):
        return torch.sigmoid(-0.5 * _as_tensor(lam))


SCHEDULES = {s.name: s for s in (VPLinear(), VPCosine(), VE(), Flow())}


def get_schedule(schedule) -> Schedule:
    """Accept a Schedule or its name; a clear ValueError otherwise."""
    if isinstance(schedule, Schedule):
        return schedule
    check_choice(schedule, sorted(SCHEDULES), "schedule")
    return SCHEDULES[schedule]


def ddpm_discretisation(schedule, T: int):
    """Discrete DDPM quantities for T steps (Ho et al. 2020, Eq. 4):
    alpha_bar_i = alpha(i / T)^2 and beta_i = 1 - alpha_bar_i / alpha_bar_{i-1}, i = 1..T.
    For vp-linear and T = 1000 this recovers betas linear in 1e-4..0.02. Betas are clipped
    at 0.999 as Nichol & Dhariwal do, since the cosine schedule reaches alpha = 0 at t = 1."""
    if not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be an integer >= 1, got {T!r}")
    schedule = get_schedule(schedule)
    t = torch.arange(0, T + 1, dtype=torch.float64) / T
    alpha_bar = schedule.alpha(t) ** 2
    betas = (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=0.999)
    return betas, torch.cumprod(1 - betas, 0)
