"""Sampling times optimised for one model, solver and step count.

The criterion is the solver's own discretisation error, measured: the mean distance of the
few-step solution to a many-step solution of the same probability-flow ODE from the same
starting noise, over a fixed set of noise draws (common random numbers, so the criterion is
a deterministic function of the times). This is the "distance to a reference trajectory"
objective of DPM-Solver-v3-style step searches; Align Your Steps (Sabour et al. 2024)
optimises a bound on the same discretisation error.

The times are parameterised monotonically: t_0 = t_max is fixed (sampling starts there), and
the log-SNR of t_1 .. t_{n-1} is lambda(t_max) + (lambda(t_min) - lambda(t_max)) times the
cumulative softmax of n logits (the last logit, fixed at 0, is the slack left before t_min),
so every parameter vector gives strictly decreasing times in [t_min, t_max]. The search
starts from the best fixed spacing and runs Nelder-Mead (derivative-free, so any solver and
any network work as they are), so the result is never worse than that spacing on the
optimisation draws; held-out draws report whether it generalises, and where it does not (worse
than the starting spacing on them) the starting spacing's times are kept.
"""
import math
from dataclasses import dataclass, field

import torch

from zoo.diffusion.noise import NoiseSource, per_sample_seeds
from zoo.diffusion.schedules import get_schedule
from zoo.diffusion.solvers import DETERMINISTIC, SOLVERS
from zoo.diffusion.spacing import FIXED_SPACINGS, grid_from_times, make_grid

STEP_COUNTS = (5, 8, 10, 15)


@dataclass
class OptimizeConfig:
    """How hard to look. The defaults cost about nfe x (iterations + 8) denoiser calls on
    `draws` samples per (solver, steps): seconds for the toy MLPs and the exact mixture."""

    draws: int = 256              # noise draws the criterion averages over
    holdout: int = 256            # fresh draws the result is reported on
    reference_steps: int = 500    # dpmpp_3m steps (logsnr) of the reference ODE solution
    iterations: int = 300         # Nelder-Mead function evaluations
    seed: int = 0
    dtype: torch.dtype = field(default=torch.float32)


@dataclass
class OptimizedTimes:
    solver: str
    steps: int
    times: tuple          # t_0 = t_max > ... > t_{steps-1}
    error: float          # criterion on the optimisation draws
    holdout_error: float  # criterion on held-out draws
    fixed_errors: dict    # {spacing: held-out criterion} of every fixed spacing
    evaluations: int


def times_from_logits(schedule, z: torch.Tensor) -> torch.Tensor:
    """n - 1 free logits -> n strictly decreasing times from t_max (see the module docstring)."""
    schedule = get_schedule(schedule)
    lam_hi, lam_lo = _log_snr_ends(schedule)
    inc = torch.softmax(torch.cat([z.to(torch.float64), torch.zeros(1, dtype=torch.float64)]), 0)
    lam = lam_hi + (lam_lo - lam_hi) * torch.cat([torch.zeros(1, dtype=torch.float64), inc.cumsum(0)[:-1]])
    t = schedule.t_of_log_snr(lam).clamp(schedule.t_min, schedule.t_max)
    t[0] = schedule.t_max
    return t


def logits_from_times(schedule, t: torch.Tensor) -> torch.Tensor:
    """The inverse of times_from_logits (the slack before t_min floored at 1e-6 of the range)."""
    schedule = get_schedule(schedule)
    lam_hi, lam_lo = _log_snr_ends(schedule)
    lam = schedule.log_snr(torch.as_tensor(t, dtype=torch.float64))
    lam[0] = lam_hi
    inc = torch.cat([lam.diff(), (lam_lo - lam[-1:]).clamp_min(1e-6 * (lam_lo - lam_hi))]).clamp_min(1e-9)
    logits = torch.log(inc)
    return logits[:-1] - logits[-1]


def _log_snr_ends(schedule):
    ends = schedule.log_snr(torch.tensor([schedule.t_max, schedule.t_min], dtype=torch.float64))
    return float(ends[0]), float(ends[1])


def starting_noise(schedule, n: int, dim_shape: tuple, seed: int, dtype=torch.float32) -> torch.Tensor:
    """sigma(t_max) N(0, I) with per-sample seeds, as sample() draws it."""
    schedule = get_schedule(schedule)
    noise = NoiseSource(per_sample_seeds(seed, n), tuple(dim_shape), dtype=dtype)
    return schedule.prior_std() * noise.normal()


def solve(denoiser, schedule, solver: str, t, x: torch.Tensor) -> torch.Tensor:
    """A deterministic solver from x at t[0] through the times t, then the clean point."""
    with torch.no_grad():
        return SOLVERS[solver](denoiser, x, grid_from_times(schedule, t), None, None)


def path_error(x: torch.Tensor, ref: torch.Tensor) -> float:
    """Mean Euclidean distance per sample: the criterion."""
    return float((x - ref).flatten(1).norm(dim=1).mean())


def reference(denoiser, schedule, x: torch.Tensor, steps: int) -> torch.Tensor:
    """A many-step DPM-Solver++(3M) solution (logsnr spacing) of the PF-ODE from x."""
    return solve(denoiser, schedule, "dpmpp_3m", make_grid(schedule, steps, "logsnr").t[:-1], x)


def check_request(solver: str, steps) -> None:
    if solver not in DETERMINISTIC:
        raise ValueError(f"optimized times are for the deterministic solvers {list(DETERMINISTIC)}, got {solver!r} "
                         "(a stochastic solver's error is not a path to a reference solution)")
    if isinstance(steps, bool) or not isinstance(steps, int) or not 2 <= steps <= 1000:
        raise ValueError(f"steps must be an integer in [2, 1000] to optimise times, got {steps!r}")


def _nelder_mead(f, z0: torch.Tensor, iterations: int):
    """(best logits, best value, evaluations): scipy's Nelder-Mead from a simplex of unit-ish
    moves around z0 (a logit move of 0.7 about doubles or halves one step)."""
    import numpy as np
    from scipy.optimize import minimize

    start = z0.numpy()
    simplex = np.vstack([start, start + 0.7 * np.eye(len(start))])
    res = minimize(lambda z: f(torch.from_numpy(z)), start, method="Nelder-Mead",
                   options={"maxfev": iterations, "initial_simplex": simplex, "xatol": 1e-4, "fatol": 0.0})
    return torch.from_numpy(res.x), float(res.fun), int(res.nfev)


@dataclass
class Draws:
    """The noise draws of one criterion, with their reference solutions (computed once and
    shared by every solver and step count of a run: they are most of a pixel model's cost)."""

    denoiser: object      # denoiser(x, t) -> x0_hat for these draws (a guided model: their conditions bound)
    x: torch.Tensor       # starting noise at t_max
    ref: torch.Tensor     # the many-step solution from x


def make_draws(denoiser, schedule, n: int, sample_shape: tuple, seed: int, config: OptimizeConfig) -> Draws:
    x = starting_noise(schedule, n, sample_shape, seed, config.dtype)
    return Draws(denoiser, x, reference(denoiser, schedule, x, config.reference_steps))


def default_draws(denoiser_for, schedule, sample_shape: tuple, config: OptimizeConfig) -> tuple:
    """(optimisation draws, held-out draws) of the config. denoiser_for(n, seed) gives the
    denoiser for n draws: a guided model binds one condition per draw, chosen by the seed."""
    held_seed = config.seed + 10**7
    return (make_draws(denoiser_for(config.draws, config.seed), schedule, config.draws, sample_shape, config.seed,
                       config),
            make_draws(denoiser_for(config.holdout, held_seed), schedule, config.holdout, sample_shape, held_seed,
                       config))


def optimize_times(denoiser, schedule, solver: str, steps: int, sample_shape: tuple,
                   config: OptimizeConfig = OptimizeConfig(), draws: tuple = None) -> OptimizedTimes:
    """The times for `solver` at `steps` steps minimising the mean distance to the reference
    solution (module docstring), for a denoiser(x, t) -> x0_hat of samples of `sample_shape`;
    `draws`: precomputed (optimisation, held-out) Draws (default_draws) to reuse across calls."""
    check_request(solver, steps)
    schedule = get_schedule(schedule)
    train, held = draws or default_draws(lambda n, seed: denoiser, schedule, sample_shape, config)

    def criterion(t, on: Draws = train) -> float:
        if not bool((torch.as_tensor(t).diff() < 0).all()):  # extreme logits can merge times in float64
            return math.inf
        err = path_error(solve(on.denoiser, schedule, solver, t, on.x), on.ref)
        return err if math.isfinite(err) else math.inf

    fixed = {sp: make_grid(schedule, steps, sp).t[:-1] for sp in FIXED_SPACINGS}
    fixed_train = {sp: criterion(t) for sp, t in fixed.items()}
    best = min(fixed_train, key=fixed_train.get)
    z, value, evaluations = _nelder_mead(lambda z: criterion(times_from_logits(schedule, z)),
                                         logits_from_times(schedule, fixed[best]), config.iterations)
    times = times_from_logits(schedule, z) if value < fixed_train[best] else fixed[best]
    fixed_held = {sp: criterion(t, held) for sp, t in fixed.items()}
    held_error = criterion(times, held)
    if held_error > fixed_held[best]:  # the search fitted its draws, not the model: keep the spacing it began from
        times, value, held_error = fixed[best], fixed_train[best], fixed_held[best]
    return OptimizedTimes(solver, steps, tuple(float(v) for v in times), min(value, fixed_train[best]), held_error,
                          fixed_held, evaluations)
