"""What the toy tab shows, computed from a ToyPipeline: forward noising, reverse
trajectories, score / velocity fields, likelihoods and a solver comparison."""
import math
import weakref

import torch

from zoo.checks import check_choice
from zoo.data.toy2d import sample_toy
from zoo.diffusion import SOLVERS, get_schedule, sample_info
from zoo.diffusion.likelihood import bits_per_dim, ode_nll, vlb_nats
from zoo.diffusion.metrics import sliced_wasserstein
from zoo.diffusion.solvers import steps_for_nfe
from zoo.gpu import place
from zoo.pipelines.toy2d import ToyPipeline

FORWARD_TIMES = (0.0, 0.25, 0.5, 0.75, 1.0)
FIELD_KINDS = ("score", "velocity")


def forward_snapshots(dataset: str, schedule: str, n: int = 2000, seed: int = 0):
    """[(t, x_t)] for x_t = alpha(t) x0 + sigma(t) eps at FORWARD_TIMES (one x0, one eps)."""
    sch = get_schedule(schedule)
    x0 = sample_toy(dataset, n, seed)
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed + 1))
    shots = []
    for t in FORWARD_TIMES:
        t_eff = min(max(t, sch.t_min), sch.t_max) if t > 0 else 0.0
        alpha, sigma = (float(v) for v in sch.alpha_sigma(torch.tensor(t_eff, dtype=torch.float64)))
        shots.append((t, alpha * x0 + sigma * eps))
    return shots


def trajectories(pipe: ToyPipeline, n: int, steps: int, solver: str, seed: int, spacing: str, **options):
    """The reverse path of n points: (steps + 1, n, 2) states and their times; the last
    state is the sample."""
    states, times = [], []

    def record(i, t, x, x0):
        states.append(x.detach().clone())
        times.append(t)

    out = pipe(n=n, steps=steps, solver=solver, seed=seed, spacing=spacing, callback=record, **options)
    return torch.stack([s.cpu() for s in states] + [out.points]), times + [0.0], out


def vector_field(denoiser, schedule: str, t: float, kind: str, lim: float = 3.0, grid_n: int = 21):
    """Arrows at time t on a grid: the score -(x - alpha x0_hat) / sigma^2, or the PF-ODE
    velocity alpha' x0_hat + sigma' eps_hat (Song et al. 2021)."""
    check_choice(kind, FIELD_KINDS, "field")
    sch = get_schedule(schedule)
    if not math.isfinite(t) or not sch.t_min <= t <= sch.t_max:
        raise ValueError(f"t must be in [{sch.t_min}, {sch.t_max}] for {schedule}, got {t!r}")
    axis = torch.linspace(-lim, lim, grid_n)
    xy = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1).reshape(-1, 2)
    t64 = torch.tensor(t, dtype=torch.float64)
    alpha, sigma = (float(v) for v in sch.alpha_sigma(t64))
    device = place(denoiser)
    with torch.no_grad():
        x0 = denoiser(xy.to(device), torch.full((len(xy),), t, device=device)).float().cpu()
    if kind == "score":
        return xy, -(xy - alpha * x0) / sigma**2
    d_alpha, d_sigma = (float(v) for v in sch.derivatives(t64))
    return xy, d_alpha * x0 + d_sigma * (xy - alpha * x0) / sigma


_LIKELIHOODS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # pipeline -> {settings: result}


def likelihoods(pipe: ToyPipeline, n: int = 500, seed: int = 0, ode_steps: int = 32, vlb_steps: int = 200) -> dict:
    """Bits/dim of true data points under the model: exact PF-ODE NLL and the variational
    bound. They depend on the model, not on the sampler, so they are computed once per
    pipeline and settings (seconds of CPU) and remembered while the pipeline lives."""
    key = (n, seed, ode_steps, vlb_steps)
    cached = _LIKELIHOODS.setdefault(pipe, {})
    if key not in cached:
        x = sample_toy(pipe.dataset, n, seed).to(place(pipe.denoiser))
        ode = ode_nll(pipe.denoiser, x, pipe.schedule, steps=ode_steps).cpu()
        vlb = vlb_nats(pipe.denoiser, x, pipe.schedule, steps=vlb_steps, seed=seed).cpu()
        cached[key] = {"ode_bpd": float(bits_per_dim(ode, 2).mean()), "vlb_bpd": float(bits_per_dim(vlb, 2).mean())}
    return cached[key]


def noise_floor(dataset: str, n: int, seed: int = 0) -> float:
    """The distance between two independent true sets of n points: what 'perfect' reads."""
    return sliced_wasserstein(sample_toy(dataset, n, seed + 777), sample_toy(dataset, n, seed + 12345))


def compare_solvers(pipe: ToyPipeline, nfes=(4, 8, 16, 32, 64), n: int = 2000, seed: int = 0,
                    spacing: str = "logsnr", progress=None) -> dict:
    """{solver: [(nfe, sliced Wasserstein to data)]} for every solver on this model."""
    results, device = {}, place(pipe.denoiser)
    for k, solver in enumerate(SOLVERS):
        pts = []
        for nfe in nfes:
            steps = steps_for_nfe(solver, nfe)
            out = sample_info(pipe.denoiser, (n, 2), schedule=pipe.schedule, steps=steps, solver=solver,
                              spacing=spacing, seed=seed, device=device)
            pts.append((out.nfe, pipe.distance_to_data(out.x0.cpu())))
        results[solver] = pts
        if progress is not None:
            progress((k + 1) / len(SOLVERS), desc=f"compared {solver}")
    return results

