"""`sample()`: the one entry point from a denoiser to samples, for every model in the zoo."""
import math
import time
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from zoo.checks import check_choice
from zoo.diffusion.noise import NoiseSource, per_sample_seeds
from zoo.diffusion.schedules import get_schedule
from zoo.diffusion.solvers import RECORDS, SOLVERS
from zoo.diffusion.spacing import make_grid

MAX_SAMPLES = 1_000_000

# The keyword options each solver accepts (eta for ddim, snr for pc), from its record.
SOLVER_OPTIONS = {name: tuple(record.options) for name, record in RECORDS.items()}


@dataclass
class SampleOutput:
    x0: torch.Tensor
    nfe: int          # denoiser evaluations (number of function evaluations)
    seconds: float


class Counted:
    """A denoiser that counts its calls, so every solver reports its true NFE (and guided
    pipelines their network passes: CFG makes two per evaluation). `cond` goes with every
    call, beside any keyword the caller adds."""

    def __init__(self, denoiser, cond: Optional[dict] = None):
        self.denoiser, self.cond, self.calls = denoiser, cond or {}, 0

    def __call__(self, x, t, **more):
        self.calls += 1
        return self.denoiser(x, t, **self.cond, **more)


def check_solver(solver: str, options: dict) -> None:
    check_choice(solver, sorted(SOLVERS), "solver")
    unknown = set(options) - set(SOLVER_OPTIONS[solver])
    if unknown:
        allowed = ", ".join(SOLVER_OPTIONS[solver]) or "none"
        raise ValueError(f"solver {solver!r} takes options [{allowed}], got {sorted(unknown)}")
    for key, value in options.items():
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{key} must be a finite number, got {value!r}")


def _check_shape(shape) -> tuple:
    shape = tuple(shape)
    if not shape or not all(isinstance(d, int) and d >= 1 for d in shape) or shape[0] > MAX_SAMPLES:
        raise ValueError(f"shape must be (n, *dims) with positive integers and n <= {MAX_SAMPLES}, got {shape}")
    return shape


def sample_info(denoiser: Callable, shape, schedule="vp-cosine", steps: int = 20, solver: str = "dpmpp_2m",
                spacing: str = "logsnr", seed=0, callback=None, x_init: Optional[torch.Tensor] = None,
                cond: Optional[dict] = None, device=None, dtype=torch.float32, optimized_times: Optional[dict] = None,
                **options) -> SampleOutput:
    """Draw samples and report NFE and wall time. See `sample` for the arguments."""
    shape, schedule = _check_shape(shape), get_schedule(schedule)
    check_solver(solver, options)
    grid = make_grid(schedule, steps, spacing, solver=solver, optimized_times=optimized_times)
    noise = NoiseSource(per_sample_seeds(seed, shape[0]), shape[1:], device=device, dtype=dtype)
    x = schedule.prior_std() * noise.normal()  # draw 0 of every sample: its starting noise
    if x_init is not None:
        if tuple(x_init.shape) != shape:
            raise ValueError(f"x_init must have shape {shape}, got {tuple(x_init.shape)}")
        x = x_init.to(device=device, dtype=dtype)
    counted = Counted(denoiser, cond)
    start = time.perf_counter()
    with torch.no_grad():
        x0 = SOLVERS[solver](counted, x, grid, noise, callback, **options)
    return SampleOutput(x0, counted.calls, time.perf_counter() - start)


def sample(denoiser: Callable, shape, schedule="vp-cosine", steps: int = 20, solver: str = "dpmpp_2m",
           spacing: str = "logsnr", seed=0, callback=None, x_init=None, cond=None, device=None,
           dtype=torch.float32, optimized_times=None, **options) -> torch.Tensor:
    """Samples x0 of `shape` = (n, *dims) from `denoiser(x, t, **cond) -> x0_hat`.

    schedule: a Schedule or a key of SCHEDULES; solver: a key of SOLVERS; spacing: a key of
    SPACINGS; seed: int (sample i uses seed + i) or a list of n ints; callback(step, t,
    x_t, x0_hat); x_init: starting noise at t_max (default sigma(t_max) * N(0, I) from the
    seeds); optimized_times: the model's stored times {solver: {steps: times}} for spacing
    "optimized"; options: solver options (eta for ddim, snr for pc)."""
    return sample_info(denoiser, shape, schedule, steps, solver, spacing, seed, callback, x_init,
                       cond, device, dtype, optimized_times, **options).x0
