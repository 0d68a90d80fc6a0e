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
5. The few-step frontier on vp-cosine, vp-linear and flow: the deterministic solvers at
   5 and 10 NFE with its best fixed spacing and with "optimized" times (found for that
   solver, step count and schedule by zoo.diffusion.optimize_steps on 256 noise draws other
   than the ones measured), as SWD and multiples of the floor; issue 16's targets: the best
   solver within 1.2x the floor at 10 NFE and 2x at 5 NFE on each schedule.

  python bench/solvers.py --frontier-only   # just 5 (writes bench/out/frontier.md)
"""
import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from zoo.diffusion import DETERMINISTIC, FIXED_SPACINGS, SOLVERS, sample_info
from zoo.diffusion.metrics import sliced_wasserstein
from zoo.diffusion.optimize_steps import OptimizeConfig, optimize_times
from zoo.diffusion.solvers import nfe_per_step, steps_for_nfe
from zoo.pipelines.toy2d import gmm as mixture  # the "gmm" toy set: the same mixture the tests use

SCHEDULE = "vp-cosine"
NFES = (5, 10, 20, 50, 100, 1000)
FRONTIER_SCHEDULES = ("vp-cosine", "vp-linear", "flow")
FRONTIER_NFES = (5, 10)
FRONTIER_SOLVERS = ("euler", "heun", "dpmpp_2m", "dpmpp_3m")  # ddim: 4.6x / 2.1x the floor at 5 / 10 NFE
TARGETS = {5: 2.0, 10: 1.2}  # issue 16: best solver's SWD / floor at this NFE
OUT = Path(__file__).resolve().parent / "out"


def truth_and_floor(gmm, n, seeds):
    """Fresh true sets per seed, and the Monte-Carlo floor: SWD between two true sets."""
    truth = [gmm.sample(n, torch.Generator().manual_seed(10_000 + s)) for s in range(seeds)]
    floor = statistics.mean(
        sliced_wasserstein(gmm.sample(n, torch.Generator().manual_seed(20_000 + s)), truth[s]) for s in range(seeds))
    return truth, floor


def distribution_errors(gmm, n, seeds, spacings):
    """{(solver, spacing, nfe): (mean SWD, actual NFE)} plus the Monte-Carlo floor."""
    d = gmm.denoiser(SCHEDULE)
    truth, floor = truth_and_floor(gmm, n, seeds)
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
            print(f"  {solver:15s} {spacing:8s}", " ".join(f"{rows[solver, spacing, k][0]:.4f}" for k in NFES),
                  flush=True)
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
    ax.set(xlabel="NFE", ylabel="sliced Wasserstein distance",
           title="Solvers on a 2D Gaussian mixture (exact denoiser)")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def frontier_swd(d, schedule, truth, solver, steps, spacing, table=None) -> float:
    """Mean SWD over the seeds of `solver` at `steps` steps (the samples of distribution_errors)."""
    n = len(truth[0])
    return statistics.mean(
        sliced_wasserstein(sample_info(d, (n, 2), schedule=schedule, steps=steps, solver=solver, spacing=spacing,
                                       seed=s * n, dtype=torch.float64, optimized_times=table).x0, truth[s])
        for s in range(len(truth)))


def frontier(gmm, schedule, n, seeds, config: OptimizeConfig):
    """{(solver, nfe): (best fixed spacing, its SWD, optimized SWD, optimized times)} and the floor."""
    d = gmm.denoiser(schedule)
    truth, floor = truth_and_floor(gmm, n, seeds)
    rows = {}
    for solver in FRONTIER_SOLVERS:
        for nfe in FRONTIER_NFES:
            steps = steps_for_nfe(solver, nfe)
            opt = optimize_times(d, schedule, solver, steps, (2,), config)
            best = min(opt.fixed_errors, key=opt.fixed_errors.get)  # by path error on held-out draws
            swd = frontier_swd(d, schedule, truth, solver, steps, "optimized", {solver: {steps: opt.times}})
            rows[solver, nfe] = (best, frontier_swd(d, schedule, truth, solver, steps, best), swd, opt.times)
            print(f"  {schedule:9s} {solver:9s} NFE {nfe:2d}: {best} {rows[solver, nfe][1]:.4f} | optimized {swd:.4f} "
                  f"(floor {floor:.4f})", flush=True)
    return rows, floor


def frontier_markdown(results, n, seeds, config: OptimizeConfig) -> str:
    lines = [f"Few-step frontier: the same mixture and exact denoiser, {n} samples x {seeds} seeds; SWD and its "
             "multiple of the floor; the best fixed spacing is the one with the smallest path error on held-out draws. "
             "\"optimized\": times found for that solver, step count and schedule by "
             f"zoo.diffusion.optimize_steps ({config.draws} other noise draws, Nelder-Mead, {config.iterations} "
             "evaluations, path error to a DPM-Solver++(3M) "
             f"{config.reference_steps}-step solution). NFE = steps, but heun: 2 steps - 1.", "",
             "| schedule | solver | NFE | best fixed spacing | SWD (x floor) | optimized SWD (x floor) |",
             "|---|---|---|---|---|---|"]
    for schedule, (rows, floor) in results.items():
        for (solver, nfe), (sp, fixed, opt, _) in rows.items():
            lines.append(f"| {schedule} | {solver} | {nfe} | {sp} | {fixed:.4f} ({fixed / floor:.2f}x) | "
                         f"{opt:.4f} ({opt / floor:.2f}x) |")
    lines += ["", "Targets (issue 16): best solver and spacing at each NFE, SWD / floor:", ""]
    for schedule, (rows, floor) in results.items():
        for nfe, target in TARGETS.items():
            (solver, spacing), swd = min((((s, sp if fx <= op else "optimized"), min(fx, op))
                                          for (s, k), (sp, fx, op, _) in rows.items() if k == nfe), key=lambda r: r[1])
            verdict = "met" if swd <= target * floor else "NOT met"
            lines.append(f"* {schedule}, {nfe} NFE: {solver} ({spacing}) {swd / floor:.2f}x the floor "
                         f"(target <= {target}x): {verdict}")
    return "\n".join(lines) + "\n"


def run_frontier(gmm, n, seeds) -> str:
    config = OptimizeConfig(draws=256, holdout=64, reference_steps=400, iterations=400, seed=10**8,
                            dtype=torch.float64)
    results = {schedule: frontier(gmm, schedule, n, seeds, config) for schedule in FRONTIER_SCHEDULES}
    text = frontier_markdown(results, n, seeds, config)
    (OUT / "frontier.md").write_text(text)
    times = {f"{sch} {s} {k}": list(r[3]) for sch, (rows, _) in results.items() for (s, k), r in rows.items()}
    (OUT / "frontier_times.json").write_text(json.dumps(times, indent=1) + "\n")
    return text


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=20_000)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="2,000 samples, 1 seed: a smoke run")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--frontier-only", action="store_true", help="only the few-step frontier (part 5)")
    ap.add_argument("--frontier-seeds", type=int, default=None, help="seeds of the frontier (default --seeds)")
    args = ap.parse_args()
    n, seeds = (2000, 1) if args.quick else (args.samples, args.seeds)
    OUT.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(args.threads)
    if args.frontier_only:
        print(run_frontier(mixture(), n, args.frontier_seeds or seeds))
        return
    spacings, gmm = sorted(FIXED_SPACINGS, key=lambda sp: sp != "logsnr"), mixture()  # logsnr first
    rows, floor = distribution_errors(gmm, n, seeds, spacings)
    paths = path_errors(gmm, min(n, 4000), spacings)
    overhead, call = sampler_overhead()
    text = markdown(rows, floor, paths, overhead, call, spacings, n, seeds)
    (OUT / "solvers.md").write_text(text)
    plot(rows, floor, spacings, OUT / "solvers.png")
    print(text)
    print(run_frontier(gmm, n, seeds))


if __name__ == "__main__":
    main()
