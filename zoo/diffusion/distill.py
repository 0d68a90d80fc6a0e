"""Distillation math, model-agnostic: few-step students of a diffusion teacher.

* Progressive distillation (Salimans & Ho 2022, Algorithm 2): a student sampled with DDIM
  on N steps learns to match two DDIM steps of its teacher on the 2N-step grid; each round
  halves N. The grid is uniform in t down to the clean point, so halving nests
  (`nested_times`). The target is written in x0 space and weighted by 1 + SNR, which is the
  v-space loss ("SNR+1" weighting of the paper).
* Consistency distillation (Song et al. 2023, Algorithm 2): f(x_t, t) maps every point of a
  PF-ODE path to its origin; c_skip / c_out (EDM's, shifted by s_min) make f(x, t_min) = x
  exactly; the target is an EMA copy of f at the teacher's one ODE step back.
* Reflow (Liu et al. 2022): couplings (z, x = ODE_teacher(z)) retrain a rectified flow whose
  paths are straighter; `path_curvature` measures it (their straightness S(Z), normalised).

Every formula holds for x_t = alpha x0 + sigma eps. Knows nothing about networks.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from zoo.diffusion.guidance import W_RANGE
from zoo.diffusion.noise import NoiseSource, per_sample_seeds
from zoo.diffusion.sampling import SampleOutput
from zoo.diffusion.schedules import get_schedule
from zoo.diffusion.solvers import SOLVERS
from zoo.diffusion.spacing import grid_from_times, karras

DISTILL_METHODS = ("progressive", "consistency", "reflow")
# the sampler each method's students use (for the card and the UI)
STUDENT_SAMPLERS = {"progressive": "ddim on the nested uniform grid", "consistency": "consistency multistep (Alg. 1)",
                    "reflow": "any solver (a rectified flow)"}
MAX_STUDENT_STEPS = 1024


@dataclass
class DistillConfig:
    """The 'distill' section of a student's config.json (checked at load by
    zoo.hub.validation.check_config with these LIMITS)."""

    teacher: str = ""               # registry name or Hub repo id of the teacher (its public name)
    method: str = "progressive"     # key of DISTILL_METHODS
    rounds: int = 1                 # progressive: halvings from the teacher's step count
    steps: tuple = ()               # step counts the student supports; () = any (reflow)
    teacher_steps: int = 0          # the teacher's step count the first round distilled
    guidance_input: bool = False    # a guided teacher's w is an input of the student
    guidance_min: float = 0.0       # the w range the student was distilled over (guidance_input)
    guidance_max: float = 0.0
    teacher_solver: str = "ddim"    # the teacher's ODE solver in the targets / couplings

    LIMITS: ClassVar[dict] = {"teacher": 200, "method": DISTILL_METHODS, "rounds": 16,
                              "steps": MAX_STUDENT_STEPS, "teacher_steps": 100_000,
                              "guidance_min": W_RANGE, "guidance_max": W_RANGE,
                              "teacher_solver": tuple(SOLVERS)}


def check_student_steps(steps, supported, name: str = "this student") -> int:
    """A student samples only with the step counts it was distilled for."""
    if supported and steps not in supported:
        raise ValueError(f"{name} was distilled for {list(supported)} step(s) only; got steps={steps!r}. "
                         f"Choose one of {list(supported)}.")
    return steps


def _col(v, like):
    return v.to(like.dtype).reshape((-1,) + (1,) * (like.dim() - 1))


def alpha_sigma(schedule, t, like):
    """(alpha, sigma) at t (batch,), shaped to broadcast against `like`; t = 0 is clean."""
    a, s = get_schedule(schedule).alpha_sigma(t.to(torch.float64))
    a, s = torch.where(t == 0, 1.0, a), torch.where(t == 0, 0.0, s)
    return _col(a, like), _col(s, like)


def ddim_step(x, x0_hat, a_t, s_t, a_s, s_s):
    """DDIM with eta = 0 (Song, Meng & Ermon 2021, Eq. 12): x_s = alpha_s x0_hat + sigma_s eps_hat."""
    return a_s * x0_hat + s_s * (x - a_t * x0_hat) / s_t


# ----------------------------------------------------------------------------- progressive


def nested_times(schedule, steps: int) -> torch.Tensor:
    """t_i = t_max (1 - i / steps), i = 0..steps-1 (then the clean point): the N-step grid is
    every other point of the 2N-step grid, as progressive distillation needs."""
    t_max = get_schedule(schedule).t_max
    return t_max * (1 - torch.arange(steps, dtype=torch.float64) / steps)


def progressive_target(teacher, x_t, t, dt, schedule):
    """Salimans & Ho 2022, Algorithm 2: two teacher DDIM steps t -> t - dt/2 -> t - dt, then
    the x0 that one student DDIM step t -> t - dt must predict to land on the same point:
    x~ = (z'' - (sigma''/sigma) z_t) / (alpha'' - (sigma''/sigma) alpha_t)."""
    a_t, s_t = alpha_sigma(schedule, t, x_t)
    t1, t2 = (t - dt / 2).clamp(min=0), (t - dt).clamp(min=0)
    (a1, s1), (a2, s2) = alpha_sigma(schedule, t1, x_t), alpha_sigma(schedule, t2, x_t)
    x1 = ddim_step(x_t, teacher(x_t, t), a_t, s_t, a1, s1)
    x0_mid = teacher(x1, t1)
    x2 = torch.where(s1 > 0, ddim_step(x1, x0_mid, a1, s1, a2, s2), x0_mid)
    ratio = s2 / s_t
    return (x2 - ratio * x_t) / (a2 - ratio * a_t)


def progressive_loss(student, teacher, x0, steps: int, schedule):
    """One progressive-distillation loss: t on the student's N-step grid, weight 1 + SNR."""
    sch = get_schedule(schedule)
    i = torch.randint(0, steps, (x0.shape[0],), device=x0.device)
    t = (sch.t_max * (1 - i.double() / steps)).to(x0.dtype)
    a, s = alpha_sigma(sch, t, x0)
    x_t = a * x0 + s * torch.randn_like(x0)
    with torch.no_grad():
        goal = progressive_target(teacher, x_t, t, sch.t_max / steps, sch)
    weight = 1 + (a / s) ** 2
    return (weight * (student(x_t, t) - goal) ** 2).flatten(1).sum(1).mean()


def sample_on_times(denoiser, shape, schedule, times, seed=0, callback=None, device=None,
                    dtype=torch.float32) -> SampleOutput:
    """DDIM (eta 0) through explicit times then the clean point: a progressive student's sampler."""
    grid = grid_from_times(schedule, times)
    noise = NoiseSource(per_sample_seeds(seed, shape[0]), shape[1:], device=device, dtype=dtype)
    x, calls = get_schedule(schedule).prior_std() * noise.normal(), [0]

    def counted(x, t):
        calls[0] += 1
        return denoiser(x, t)

    start = time.perf_counter()
    with torch.no_grad():
        x0 = SOLVERS["ddim"](counted, x, grid, noise, callback)
    return SampleOutput(x0, calls[0], time.perf_counter() - start)


# ----------------------------------------------------------------------------- consistency


def consistency_coeffs(a, s, s_min: float, sigma_data: float):
    """(c_skip, c_out) of Song et al. 2023 (Appendix C, after EDM) on the scale-free level
    s = sigma / alpha: c_skip = sd^2 / ((s - s_min)^2 + sd^2), c_out = sd (s - s_min) / sqrt(sd^2 + s^2),
    so that f(x, t_min) = x~ exactly (the boundary condition)."""
    level = s / a
    sd2 = sigma_data**2
    c_skip = sd2 / ((level - s_min) ** 2 + sd2)
    c_out = sigma_data * (level - s_min) / torch.sqrt(sd2 + level**2)
    return c_skip, c_out


class ConsistencyFunction(nn.Module):
    """f(x_t, t) = c_skip x~ + c_out F(c_in x_t, t), x~ = x_t / alpha, an estimate of the path's
    origin x0; called like any denoiser, so every view of the zoo can draw it."""

    def __init__(self, net: nn.Module, schedule, sigma_data: float = 1.0):
        super().__init__()
        self.net, self.schedule, self.sigma_data = net, get_schedule(schedule), float(sigma_data)
        t_min = torch.tensor(self.schedule.t_min, dtype=torch.float64)
        a, s = self.schedule.alpha_sigma(t_min)
        self.s_min = float(s / a)

    def forward(self, x, t, **cond):
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device).expand(x.shape[0])
        a, s = alpha_sigma(self.schedule, t, x)
        c_skip, c_out = consistency_coeffs(a, s, self.s_min, self.sigma_data)
        c_in = torch.rsqrt(a**2 * self.sigma_data**2 + s**2)
        return c_skip * x / a + c_out * self.net(x * c_in, t, **cond)


def consistency_times(schedule, intervals: int) -> torch.Tensor:
    """The N + 1 boundaries t_max > ... > t_min of consistency distillation: Karras et al.'s
    rho = 7 spacing, as Song et al. 2023 use."""
    return karras(get_schedule(schedule), intervals + 1)


def consistency_loss(student, target, teacher, x0, times, schedule):
    """Song et al. 2023, Algorithm 2 (L2 metric): x_{n+1} = alpha x0 + sigma eps, one teacher
    DDIM step to t_n, loss |f(x_{n+1}, t_{n+1}) - f^-(x^_n, t_n)|^2 with f^- the EMA target."""
    times = times.to(x0.device)
    n = torch.randint(0, len(times) - 1, (x0.shape[0],), device=x0.device)
    t_hi, t_lo = times[n].to(x0.dtype), times[n + 1].to(x0.dtype)
    a_hi, s_hi = alpha_sigma(schedule, t_hi, x0)
    a_lo, s_lo = alpha_sigma(schedule, t_lo, x0)
    x_hi = a_hi * x0 + s_hi * torch.randn_like(x0)
    with torch.no_grad():
        x_lo = ddim_step(x_hi, teacher(x_hi, t_hi), a_hi, s_hi, a_lo, s_lo)
        goal = target(x_lo, t_lo)
    return ((student(x_hi, t_hi) - goal) ** 2).flatten(1).sum(1).mean()


def consistency_sample_times(schedule, steps: int) -> torch.Tensor:
    """Times of a k-step consistency sampler: the first k of k + 1 Karras points (t_max first)."""
    return karras(get_schedule(schedule), steps + 1)[:steps] if steps > 1 else \
        torch.tensor([get_schedule(schedule).t_max], dtype=torch.float64)


def consistency_sample(f, shape, schedule, times, seed=0, callback=None, device=None,
                       dtype=torch.float32) -> SampleOutput:
    """Multistep consistency sampling (Song et al. 2023, Algorithm 1): x = f(x_T, T), then at
    each next time re-noise x_t = alpha x + sigma z and map back, x = f(x_t, t)."""
    sch = get_schedule(schedule)
    noise = NoiseSource(per_sample_seeds(seed, shape[0]), shape[1:], device=device, dtype=dtype)
    x_t, x0, start = sch.prior_std() * noise.normal(), None, time.perf_counter()
    with torch.no_grad():
        for i, t in enumerate(times.tolist()):
            if i > 0:
                a, s = (float(v) for v in sch.alpha_sigma(torch.tensor(t, dtype=torch.float64)))
                x_t = a * x0 + s * noise.normal()
            x0 = f(x_t, torch.full((shape[0],), t, dtype=dtype, device=device))
            if callback is not None:
                callback(i, t, x_t, x0)
    return SampleOutput(x0, len(times), time.perf_counter() - start)


# ----------------------------------------------------------------------------- reflow


def coupled_loss(denoiser, x0, z, t_sampling: str = "uniform"):
    """Rectified-flow loss on given couplings (Liu et al. 2022, Eq. 1): x_t = alpha x0 + sigma z
    with z the noise the teacher's ODE carried to x0 (not fresh noise), target the net's
    parameterisation (the velocity z - x0 under the flow schedule)."""
    from zoo.diffusion.losses import sample_t
    from zoo.diffusion.params import loss_weight, target

    t = sample_t(x0.shape[0], denoiser.schedule, t_sampling, None, x0.device).to(x0.dtype)
    a, s = alpha_sigma(denoiser.schedule, t, x0)
    pred, c = denoiser.raw(a * x0 + s * z, t)
    err = (pred - target(x0, z, c, denoiser.parameterisation)).pow(2).flatten(1).mean(1)
    return (loss_weight(c, denoiser.parameterisation).flatten() * err).mean()


def path_curvature(path: torch.Tensor, times) -> float:
    """Straightness of sampling paths (Liu et al. 2022, Sec. 2.2: S = E int |(x_1 - x_0) - v_t|^2 dt),
    from states path[k] at times[k]: the time-weighted mean squared deviation of each segment's
    velocity from the chord's, over the mean squared chord velocity. 0 for straight paths at
    constant speed; a one-step path is straight by definition."""
    t = torch.as_tensor(times, dtype=torch.float64)
    path = path.to(torch.float64)
    dt = (t[:-1] - t[1:]).reshape(-1, 1, 1)
    seg = (path[1:] - path[:-1]) / dt
    chord = (path[-1] - path[0]) / float(t[0] - t[-1])
    dev = (dt * (seg - chord).pow(2)).sum(0).sum(-1) / float(t[0] - t[-1])
    return float(dev.mean() / chord.pow(2).sum(-1).mean())
