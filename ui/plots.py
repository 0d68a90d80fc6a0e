"""Matplotlib figures for the tabs. Rendering only: the numbers come from zoo/."""

import numpy as np
from matplotlib.ticker import NullFormatter

from zoo.diffusion import FIXED_SPACINGS, SCHEDULES, get_schedule, make_grid
from zoo.figures import density_background, figure_image, finish, samples_figure, subplots  # noqa: F401 (the tabs' API)


def schedule_figure(selected, steps: int, spacing: str, solver: str = None, optimized_times: dict = None):
    """alpha(t), sigma(t) and log-SNR lambda(t) of every schedule (and of the model's own,
    when it is not one of them); the chosen schedule's sampling grid (steps, spacing) is
    marked with dots on its curves. "optimized" times belong to a model and solver: marked
    when the model's table (optimized_times) has them for (solver, steps)."""
    fig, axes = subplots(1, 3, figsize=(13, 3.6))
    chosen = get_schedule(selected)
    stored = spacing not in FIXED_SPACINGS and steps in (optimized_times or {}).get(solver, {})
    grid = (make_grid(chosen, steps, spacing, solver=solver, optimized_times=optimized_times)
            if spacing in FIXED_SPACINGS or stored else None)
    for name, sch in {**SCHEDULES, chosen.name: chosen}.items():
        c, width = sch.curves(), (2.5 if name == chosen.name else 1.0)
        axes[0].plot(c["t"], c["alpha"], color=sch.color, lw=width, label=name)
        axes[1].semilogy(c["t"], np.maximum(c["sigma"], 1e-3), color=sch.color, lw=width, label=name)
        axes[2].plot(c["t"], c["log_snr"], color=sch.color, lw=width, label=name)
    if grid is not None:
        dots = chosen.curves(t=grid.t[:-1])
        axes[0].plot(dots["t"], dots["alpha"], "o", color="k", ms=3, label=f"{steps} steps ({spacing})")
        axes[1].semilogy(dots["t"], dots["sigma"], "o", color="k", ms=3)
        axes[2].plot(dots["t"], dots["log_snr"], "o", color="k", ms=3)
    for ax, title in zip(axes, ("alpha(t)  (signal scale)", "sigma(t)  (noise scale, log axis)",
                                "log-SNR  lambda = log(alpha^2 / sigma^2)")):
        ax.set(title=title, xlabel="t")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return finish(fig)


def trajectories_figure(path, times, show_step: int, lim: float, density):
    """Reverse-time paths (steps+1, n, 2) of a few points; the state at `show_step` is
    highlighted, so a slider can step through t."""
    fig, ax = subplots(figsize=(4.6, 4.6))
    density_background(ax, density, lim)
    p = path.detach().cpu().numpy()
    for i in range(min(p.shape[1], 150)):
        ax.plot(p[:, i, 0], p[:, i, 1], color="tab:blue", lw=0.5, alpha=0.45)
    ax.scatter(p[0, :, 0], p[0, :, 1], s=5, c="tab:gray", label="start (noise)")
    ax.scatter(p[-1, :, 0], p[-1, :, 1], s=6, c="tab:orange", label="end (sample)")
    k = min(max(show_step, 0), len(p) - 1)
    ax.scatter(p[k, :, 0], p[k, :, 1], s=14, c="tab:red", label=f"step {k}: t = {times[k]:.3f}")
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), title="Reverse trajectories")
    ax.set_aspect("equal")
    ax.legend(fontsize=7, loc="upper right")
    return finish(fig)


def forward_figure(snapshots, lim: float):
    """Forward noising: [(t, points)] side by side."""
    fig, axes = subplots(1, len(snapshots), figsize=(3 * len(snapshots), 3.1))
    for ax, (t, pts) in zip(axes, snapshots):
        p = pts.detach().cpu().numpy()
        ax.scatter(p[:, 0], p[:, 1], s=2, alpha=0.5, c="tab:blue", linewidths=0)
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), title=f"t = {t:.2f}")
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("Forward process q(x_t | x_0): x_t = alpha(t) x_0 + sigma(t) eps")
    return finish(fig)


def field_figure(fields, lim: float, title: str):
    """Quiver plots of vector fields: [(label, xy (n, 2), vectors (n, 2))] side by side."""
    fig, axes = subplots(1, len(fields), figsize=(4.4 * len(fields), 4.4), squeeze=False)
    for ax, (label, xy, vec) in zip(axes[0], fields):
        v = vec.detach().cpu().numpy()
        norm = np.linalg.norm(v, axis=1, keepdims=True)
        u = v / np.maximum(norm, 1e-12) * np.log1p(norm)  # log-scaled lengths keep small arrows visible
        ax.quiver(xy[:, 0], xy[:, 1], u[:, 0], u[:, 1], norm[:, 0], cmap="viridis", angles="xy")
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), title=label)
        ax.set_aspect("equal")
    fig.suptitle(title)
    return finish(fig)


def curve_figure(xs, ys, title: str, xlabel: str, ylabel: str, logy: bool = False):
    fig, ax = subplots(figsize=(5, 3.2))
    ax.plot(xs, ys, color="tab:blue")
    if logy:
        ax.set_yscale("log")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    return finish(fig)


def compare_figure(results: dict, floor: float):
    """Distance to data vs NFE: {solver: [(nfe, distance)]}."""
    fig, ax = subplots(figsize=(6, 4))
    for solver, pts in results.items():
        ax.loglog([p[0] for p in pts], [p[1] for p in pts], marker="o", label=solver)
    ax.axhline(floor, color="k", ls="--", label="sampling-noise floor")
    nfes = sorted({p[0] for pts in results.values() for p in pts})
    ax.set_xticks(nfes, [str(k) for k in nfes])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set(xlabel="NFE (denoiser evaluations)", ylabel="sliced Wasserstein to data",
           title="Compare solvers on this model")
    ax.legend(fontsize=8, ncol=2)
    ax.grid(alpha=0.3, which="both")
    return finish(fig)


def image_rows_figure(rows, title: str):
    """One image strip per row, each labelled on the left: [(label, PIL image)]."""
    fig, axes = subplots(len(rows), 1, figsize=(8, 1.0 + 0.95 * len(rows)), squeeze=False)
    for ax, (label, image) in zip(axes[:, 0], rows):
        ax.imshow(np.asarray(image), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=10)
    fig.suptitle(title)
    return finish(fig)
