"""Time-step spacings and the sampling grid every solver walks.

A grid for `steps` steps is steps + 1 times: t_0 = t_max > ... > t_{steps-1} = t_min, then
a final *clean* point with alpha = 1, sigma = 0. The last step of every solver goes to
that clean point, which is the denoising step x_0 = D(x, t_min) (Song et al. 2021's
"denoise at the end", the same as EDM's last Euler step to sigma = 0). So first-order
solvers use exactly `steps` denoiser calls.

`optimized` is not a formula: it is the times a model carries in its config.json
("sampling" section), found per solver and step count by zoo.diffusion.optimize_steps.
make_grid takes them as `optimized_times` ({solver: {steps: times}}) and refuses a solver or
step count the model holds no times for, naming what it has: no silent fallback, so a user
who chose "optimized" knows when they would not get it.
"""
import math
from dataclasses import dataclass
from typing import Optional

import torch

from zoo.checks import check_choice
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


FIXED_SPACINGS = {"uniform": uniform_t, "logsnr": uniform_log_snr, "karras": karras, "quadratic": quadratic_t}
OPTIMIZED = "optimized"


def _needs_stored_times(schedule: Schedule, n: int):
    raise ValueError("the 'optimized' spacing uses a model's stored times: pass optimized_times "
                     "(python -m trainers.optimize_steps MODEL computes them)")


SPACINGS = {**FIXED_SPACINGS, OPTIMIZED: _needs_stored_times}
# What each spacing is, for the tabs' text (Markdown with $...$ math); one entry per spacing.
SPACING_FORMULAS = {
    "uniform": r"uniform in $t$",
    "logsnr": r"uniform in $\lambda$ (DPM-Solver)",
    "karras": r"Karras $\rho = 7$ on $\sigma/\alpha$ (EDM)",
    "quadratic": r"$t$ quadratic in the step index (DDIM's quadratic sub-sequence, DPM-Solver's time_quadratic)",
    OPTIMIZED: r"the times a model stores in its config.json, found per solver and step count by "
               r"`python -m trainers.optimize_steps`",
}


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


def make_grid(schedule, steps: int, spacing: str = "uniform", solver: Optional[str] = None,
              optimized_times: Optional[dict] = None) -> Grid:
    """The steps + 1 point grid from t_max down to t_min, then the clean point. With spacing
    "optimized", the times stored for (solver, steps) in `optimized_times` (a model's
    {solver: {steps: times}}, see check_optimized_times)."""
    schedule = get_schedule(schedule)
    check_steps(steps)
    check_choice(spacing, sorted(SPACINGS), "spacing")
    if steps == 1:
        t = torch.tensor([schedule.t_max], dtype=torch.float64)
    elif spacing == OPTIMIZED:
        t = stored_times(optimized_times, solver, steps)
    else:
        t = SPACINGS[spacing](schedule, steps)
    return grid_from_times(schedule, t)


def stored_summary(table: Optional[dict]) -> str:
    """What a model stores, for messages: "dpmpp_2m at 5, 10 steps; heun at 5 steps" ("none")."""
    table = table or {}
    return "; ".join(f"{solver} at {', '.join(str(k) for k in sorted(by_steps))} steps"
                     for solver, by_steps in sorted(table.items())) or "none"


def stored_times(optimized_times: Optional[dict], solver: Optional[str], steps: int) -> torch.Tensor:
    """The stored optimized times for (solver, steps), or a ValueError naming what is stored."""
    table = optimized_times or {}
    found = table.get(solver, {}).get(steps)
    if found is None:
        raise ValueError(f"no optimized times for solver {solver!r} at {steps} steps in this model "
                         f"(it has: {stored_summary(table)}); choose one of those, another spacing, or compute "
                         "them with python -m trainers.optimize_steps MODEL")
    return torch.as_tensor(found, dtype=torch.float64)


def check_optimized_times(table, schedule, solvers) -> dict:
    """A model's stored times, as read from config.json ({solver: {"steps": [t_0, ...]}}),
    checked and parsed to {solver: {steps: tuple}}: solvers among `solvers`, step counts
    integers in [2, MAX_STEPS], each list `steps` finite times, strictly decreasing, within
    [t_min, t_max] of the schedule. ValueError naming the entry otherwise."""
    schedule = get_schedule(schedule)
    if not isinstance(table, dict):
        raise ValueError(f"optimized_times must be a JSON object {{solver: {{steps: times}}}}, "
                         f"got {type(table).__name__}")
    parsed = {}
    for solver, by_steps in table.items():
        if solver not in solvers:
            raise ValueError(f"optimized_times: solver must be one of {sorted(solvers)}, got {str(solver)[:40]!r}")
        if not isinstance(by_steps, dict):
            raise ValueError(f"optimized_times.{solver} must be a JSON object {{steps: times}}")
        parsed[solver] = {_steps_key(solver, k): _checked_times(solver, k, v, schedule) for k, v in by_steps.items()}
    return parsed


def _steps_key(solver: str, key) -> int:
    text = str(key)
    if not text.isdigit() or not 2 <= int(text) <= MAX_STEPS:
        raise ValueError(f"optimized_times.{solver}: step count must be an integer in [2, {MAX_STEPS}], "
                         f"got {text[:20]!r}")
    return int(text)


def _checked_times(solver: str, key, times, schedule: Schedule) -> tuple:
    where = f"optimized_times.{solver}.{key}"
    if not isinstance(times, list) or len(times) != int(key):
        raise ValueError(f"{where}: expected a list of {int(key)} times, got {str(times)[:60]}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in times):
        raise ValueError(f"{where}: every time must be a finite number, got {str(times)[:80]}")
    lo, hi = schedule.t_min, schedule.t_max
    if any(b >= a for a, b in zip(times, times[1:])):
        raise ValueError(f"{where}: times must be strictly decreasing, got {str(times)[:80]}")
    if abs(times[0] - hi) > 1e-9:
        raise ValueError(f"{where}: the first time must be t_max = {hi} (where sampling starts), got {times[0]!r}")
    if not all(lo - 1e-9 <= v <= hi + 1e-9 for v in times):
        raise ValueError(f"{where}: times must lie in [t_min, t_max] = [{lo}, {hi}] of {schedule.name}, "
                         f"got {str(times)[:80]}")
    return tuple(float(v) for v in times)
