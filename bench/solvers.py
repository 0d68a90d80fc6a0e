"""Solver benchmark on a 2D Gaussian mixture with its exact denoiser, so that only solver
error is measured (no network error). Writes bench/out/solvers.md and solvers.png.

  python bench/solvers.py [--samples 20000] [--seeds 3] [--quick]

1. Distribution error: sliced Wasserstein distance (SWD) to fresh true samples, averaged
   over seeds, for every solver x NFE x spacing, next to the Monte-Carlo floor (the same
   distance between two independent true sets of the same size).
2. Path error of the deterministic solvers: mean distance of each sample to a
   high-accuracy solution of the same PF-ODE from the same noise (no Monte-Carlo noise).
3. The smallest NFE at which each solver is within 1.5x of the floor.
4. Sampler overhead: wall time / (NFE x one denoiser call), small MLP, batch 4096.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from zoo.toy2d import gmm as mixture  # noqa: E402  (the "gmm" toy set: the same mixture the tests use)
from zoo.diffusion import DETERMINISTIC, SOLVERS, SPACINGS, sample_info  # noqa: E402
from zoo.diffusion.metrics import sliced_wasserstein  # noqa: E402
from zoo.diffusion.solvers import nfe_per_step  # noqa: E402

SCHEDULE = "vp-cosine"
NFES = (5, 10, 20, 50, 100, 1000)
OUT = Path(__file__).resolve().parent / "out"


def steps_for_nfe(solver: str, nfe: int) -> int:
    """The largest step count whose NFE does not exceed the budget."""
    steps = max(1, nfe)
    while steps > 1 and nfe_per_step(solver, steps) > nfe:
        steps -= 1
    return steps


def distribution_errors(gmm, n, seeds, spacings):
    """{(solver, spacing, nfe): (mean SWD, actual NFE)} plus the Monte-Carlo floor."""
    d = gmm.denoiser(SCHEDULE)
    truth = [gmm.sample(n, torch.Generator().manual_seed(10_000 + s)) for s in range(seeds)]
    floor = statistics.mean(
        sliced_wasserstein(gmm.sample(n, torch.Generator().manual_seed(20_000 + s)), truth[s]) for s in range(seeds))
    rows = {}
    for solver in SOLVERS:
        for spacing in spacings:
            for nfe in NFES:
                if nfe == NFES[-1] and spacing != spacings[0]:
                    # at 1000 NFE every spacing is converged; measured once (the first spacing)
                    rows[solver, spacing, nfe] = rows[solver, spacings[0], nfe]
                    continue
                steps = steps_for_nfe(solver, nfe)
                swd, used = [], 0
                for s in range(seeds):
                    out = sample_info(d, (n, 2), schedule=SCHEDULE, steps=steps, solver=solver, spacing=spacing,
                                      seed=s * n, dtype=torch.float64)
                    swd.append(sliced_wasserstein(out.x0, truth[s]))
                    used = out.nfe
                rows[solver, spacing, nfe] = (statistics.mean(swd), used)
            print(f"  {solver:15s} {spacing:8s}", " ".join(f"{rows[solver, spacing, k][0]:.4f}" for k in NFES), flush=True)
    return rows, floor


def path_errors(gmm, n, spacings):
    """Mean |x - x_ref| against a 4000-step Heun solution from the same noise."""
    d = gmm.denoiser(SCHEDULE)
    kw = dict(schedule=SCHEDULE, seed=0, dtype=torch.float64)
    ref = sample_info(d, (n, 2), steps=4000, solver="heun", spacing="logsnr", **kw).x0
    return {(solver, spacing, nfe): float((sample_info(d, (n, 2), steps=steps_for_nfe(solver, nfe), solver=solver,
                                                        spacing=spacing, **kw).x0 - ref).norm(dim=1).mean())
            for solver in DETERMINISTIC for spacing in spacings for nfe in NFES}


def sampler_overhead(batch=4096, steps=50, repeats=3):
    """wall time of a full sampling run / (NFE x time of one denoiser call)."""
    from zoo.diffusion import Denoiser
    from zoo.nets.mlp import MLP

    torch.manual_seed(0)
    d = Denoiser(MLP(MLP.Config()).eval(), SCHEDULE, "eps")
    x, t = torch.randn(batch, 2), torch.full((batch,), 0.5)
    with torch.no_grad():
        for _ in range(20):
            d(x, t)
        start = time.perf_counter()
        for _ in range(200):
            d(x, t)
        call = (time.perf_counter() - start) / 200
    ratios = {}
    for solver in SOLVERS:
        best = min(sample_info(d, (batch, 2), schedule=SCHEDULE, steps=steps, solver=solver).seconds
                   for _ in range(repeats))
        ratios[solver] = best / (nfe_per_step(solver, steps) * call)
    return ratios, call


def best_spacing(rows, solver, spacings):
    return min(spacings, key=lambda sp: sum(rows[solver, sp, k][0] for k in NFES if k <= 100))


def nfe_to_floor(rows, floor, solver, spacing):
    hits = [rows[solver, spacing, k][1] for k in NFES if rows[solver, spacing, k][0] <= 1.5 * floor]
    return min(hits) if hits else None


def markdown(rows, floor, paths, overhead, call, spacings, n, seeds):
    lines = [f"Mixture: 3 components (weights 0.5/0.3/0.2, stds 0.2-0.5), exact denoiser, schedule `{SCHEDULE}`, "
             f"{n} samples x {seeds} seeds. Monte-Carlo floor (SWD between two true sets): **{floor:.4f}**.", "",
             "Sliced Wasserstein distance to the data at each NFE budget (best spacing per solver):", "",
             "| solver | spacing | " + " | ".join(f"NFE {k}" for k in NFES) + " | NFE to 1.5x floor |",
             "|---|---|" + "---|" * len(NFES) + "---|"]
    for solver in SOLVERS:
        sp = best_spacing(rows, solver, spacings)
        cells = " | ".join(f"{rows[solver, sp, k][0]:.4f}" for k in NFES)
        lines.append(f"| {solver} | {sp} | {cells} | {nfe_to_floor(rows, floor, solver, sp) or '>1000'} |")
    lines += ["", "Mean distance to a 4000-step Heun solution of the same PF-ODE from the same noise "
              "(deterministic solvers, best spacing):", "",
              "| solver | spacing | " + " | ".join(f"NFE {k}" for k in NFES) + " |", "|---|---|" + "---|" * len(NFES)]
    for solver in DETERMINISTIC:
        sp = min(spacings, key=lambda s: paths[solver, s, 20])
        lines.append(f"| {solver} | {sp} | " + " | ".join(f"{paths[solver, sp, k]:.2e}" for k in NFES) + " |")
    lines += ["", f"Sampler overhead (wall time / (NFE x one denoiser call of {call * 1e3:.2f} ms), MLP, batch 4096, "
              "50 steps): " + ", ".join(f"{s} {r:.3f}" for s, r in overhead.items())]
    return "\n".join(lines) + "\n"


def plot(rows, floor, spacings, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for solver in SOLVERS:
        sp = best_spacing(rows, solver, spacings)
        ax.loglog([rows[solver, sp, k][1] for k in NFES], [rows[solver, sp, k][0] for k in NFES],
                  marker="o", label=f"{solver} ({sp})")
    ax.axhline(floor, color="k", ls="--", label="Monte-Carlo floor")
    ax.axhline(1.5 * floor, color="gray", ls=":", label="1.5 x floor")
    ax.set(xlabel="NFE", ylabel="sliced Wasserstein distance", title="Solvers on a 2D Gaussian mixture (exact denoiser)")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=20_000)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="2,000 samples, 1 seed: a smoke run")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = ap.parse_args()
    n, seeds = (2000, 1) if args.quick else (args.samples, args.seeds)
    OUT.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    spacings, gmm = sorted(SPACINGS, key=lambda sp: sp != "logsnr"), mixture()  # logsnr first
    rows, floor = distribution_errors(gmm, n, seeds, spacings)
    paths = path_errors(gmm, min(n, 4000), spacings)
    overhead, call = sampler_overhead()
    text = markdown(rows, floor, paths, overhead, call, spacings, n, seeds)
    (OUT / "solvers.md").write_text(text)
    plot(rows, floor, spacings, OUT / "solvers.png")
    print(text)


if __name__ == "__main__":
    main()
