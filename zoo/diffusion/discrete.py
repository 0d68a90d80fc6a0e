"""A schedule from a discrete beta sequence: the DDPM family's T training steps
(Ho et al. 2020) in this project's continuous time t in [0, 1].

Discrete timestep i (0..T-1) was trained at alpha_bar_i = prod_{j<=i} (1 - beta_j); it
sits at t = (i + 1) / T, so t_max = 1 is timestep T-1 and t_min = 1/T is timestep 0
(the last noisy step before the clean point, as in DDPM's sampler). Between knots the
log-SNR lambda = log(alpha_bar / (1 - alpha_bar)) is linear in the timestep, which is
k-diffusion's DiscreteSchedule (Crowson) interpolating log sigma = -lambda / 2 linearly:
at the knots the schedule is exactly the trained one, in between it is monotone, and
`t_of_log_snr` inverts it exactly. Outside [t_min, t_max] the end segments extend
linearly; the network never saw those times, so samplers stay inside.

Betas follow diffusers' scheduler configs (`beta_schedule`, `beta_start`, `beta_end`,
`num_train_timesteps`, `trained_betas`), computed in float64.
"""
import math

import torch

from zoo.diffusion.schedules import Schedule, _as_tensor

BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")

# diffusers' defaults for the beta fields, shared by DDPMScheduler, DDIMScheduler,
# PNDMScheduler, the DPM-Solver, Euler, LMS, DEIS and UniPC schedulers.
BETA_DEFAULTS = {"num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear"}


def cosine_betas(T: int, max_beta: float = 0.999) -> torch.Tensor:
    """Nichol & Dhariwal (2021) cosine schedule, Eq. 17, as diffusers' betas_for_alpha_bar:
    beta_i = min(1 - f((i + 1) / T) / f(i / T), max_beta), f(t) = cos^2((t + 0.008) / 1.008 pi / 2)."""
    def f(t):
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    return torch.tensor([min(1 - f((i + 1) / T) / f(i / T), max_beta) for i in range(T)], dtype=torch.float64)


def betas_from_config(config: dict) -> torch.Tensor:
    """The T betas a diffusers scheduler config describes (float64)."""
    if config.get("rescale_betas_zero_snr"):
        raise ValueError("rescale_betas_zero_snr is not supported: zero terminal SNR puts lambda = -inf at t_max")
    if config.get("trained_betas") is not None:
        betas = torch.tensor(config["trained_betas"], dtype=torch.float64)
        if config.get("num_train_timesteps", len(betas)) != len(betas):
            raise ValueError(f"trained_betas has {len(betas)} values but num_train_timesteps is "
                             f"{config['num_train_timesteps']}")
        return betas
    c = {**BETA_DEFAULTS, **{k: v for k, v in config.items() if k in BETA_DEFAULTS and v is not None}}
    T, kind = c["num_train_timesteps"], c["beta_schedule"]
    if isinstance(T, bool) or not isinstance(T, int) or T < 2:
        raise ValueError(f"num_train_timesteps must be an integer >= 2, got {T!r}")
    if kind == "linear":
        return torch.linspace(c["beta_start"], c["beta_end"], T, dtype=torch.float64)
    if kind == "scaled_linear":
        return torch.linspace(c["beta_start"] ** 0.5, c["beta_end"] ** 0.5, T, dtype=torch.float64) ** 2
    if kind == "squaredcos_cap_v2":
        return cosine_betas(T)
    raise ValueError(f"beta_schedule must be one of {list(BETA_SCHEDULES)} (or trained_betas given), got {kind!r}")


class DiscreteSchedule(Schedule):
    """alpha(t), sigma(t) interpolating T discrete training steps in log-SNR (see module doc)."""

    variance_preserving = True
    t_max = 1.0

    def __init__(self, betas, name: str = ""):
        betas = torch.as_tensor(betas, dtype=torch.float64).flatten()
        if len(betas) < 2 or not bool(((betas > 0) & (betas < 1)).all()):
            raise ValueError("betas must be at least 2 values, each in (0, 1)")
        self.betas = betas
        self.alphas_cumprod = torch.cumprod(1 - betas, 0)
        self.T = len(betas)
        self.t_min = 1.0 / self.T
        self.name = name or f"discrete-{self.T}"
        # lambda_i = log(alpha_bar_i / (1 - alpha_bar_i)), strictly decreasing in i.
        self.knots = torch.log(self.alphas_cumprod) - torch.log1p(-self.alphas_cumprod)

    @classmethod
    def from_scheduler_config(cls, config: dict) -> "DiscreteSchedule":
        """From a diffusers scheduler_config.json dict; named e.g. "discrete-linear-1000"."""
        betas = betas_from_config(config)
        kind = "trained" if config.get("trained_betas") is not None else config.get("beta_schedule") or "linear"
        return cls(betas, name=f"discrete-{kind}-{len(betas)}")

    def timestep(self, t):
        """The (fractional) discrete timestep at continuous time t: t T - 1."""
        return _as_tensor(t) * self.T - 1

    def log_snr(self, t):
        s = self.timestep(t)
        knots = self.knots.to(s.device)
        # The segment index carries no gradient; d lambda / dt comes from the linear weight.
        i = torch.floor(s.detach()).clamp(0, self.T - 2).long()
        lam0, lam1 = knots[i], knots[i + 1]
        return lam0 + (s - i) * (lam1 - lam0)

    def alpha_sigma(self, t):
        lam = self.log_snr(t)
        return torch.sqrt(torch.sigmoid(lam)), torch.sqrt(torch.sigmoid(-lam))

    def t_of_log_snr(self, lam):
        lam = _as_tensor(lam).to(torch.float64)
        knots = self.knots.to(lam.device)
        # searchsorted needs ascending values: -lambda increases with the timestep.
        i = (torch.searchsorted(-knots, -lam.detach().contiguous()) - 1).clamp(0, self.T - 2)
        lam0, lam1 = knots[i], knots[i + 1]
        s = i + (lam - lam0) / (lam1 - lam0)
        return (s + 1) / self.T
